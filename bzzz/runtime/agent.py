"""`bzzz agent`: run one node in the mesh until SIGINT or SIGTERM."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import sys
from pathlib import Path

from bzzz.domain.election import Settings
from bzzz.domain.payload import decode_payload
from bzzz.domain.standing import TransferPolicy
from bzzz.errors import ConfigError, EntryError, UsageError
from bzzz.mesh.discovery import Discovery
from bzzz.mesh.mesh import PROFILE, Mesh
from bzzz.runtime.claims import ClaimService
from bzzz.runtime.control import serve_control, socket_path
from bzzz.runtime.election import ElectionRunner
from bzzz.runtime.lock import HomeLock
from bzzz.runtime.node import Node, open_node
from bzzz.runtime.requests import Requests

log = logging.getLogger("bzzz.agent")
SHUTDOWN_GRACE_S = 5.0


# Store work runs on threads; with the default 5 ms GIL switch interval the event loop
# waits that long for a thread holding the GIL, which a hop's latency would inherit.
SWITCH_INTERVAL_S = 0.0005


async def run_agent(
    home: Path,
    *,
    listen: str | None = None,
    peers: list[str] | None = None,
    mdns: bool | None = None,
) -> None:
    sys.setswitchinterval(SWITCH_INTERVAL_S)
    lock = HomeLock(home)
    lock.acquire()
    try:
        with open_node(home) as node:
            await _serve(node, listen, peers or [], mdns)
    finally:
        lock.release()


async def _serve(node: Node, listen: str | None, peers: list[str], mdns: bool | None) -> None:
    settings = node.config.mesh
    mesh = Mesh(node.store, node.identity, node.config, node.roles, listen=listen)
    await mesh.refresh()
    if mesh.cluster is None:
        raise ConfigError(
            "this node is in no cluster: found one with `bzzz init --new-cluster NAME`, "
            "or join one with `bzzz join TOKEN`"
        )
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    try:
        await mesh.start([*settings.peers, *peers])
    except OSError as error:
        raise UsageError(f"cannot listen on {mesh.listen}: {error.strerror or error}") from None
    me = mesh.membership.members.get(mesh.me)
    log.info(
        "agent %s (%s) role %s (%s) in cluster %s listening on %s",
        node.config.name,
        mesh.me.hex(),
        me.role if me else node.config.role,
        mesh.status_authority(),
        mesh.cluster,
        mesh.advertised,
    )
    if me is None:
        log.warning("this node is not a member of cluster %s: peers will refuse it", mesh.cluster)
    await _record_profile(mesh)
    e = node.config.election
    if not e.heartbeat_ms < e.election_min_ms <= e.election_max_ms:
        raise ConfigError(
            "election: need heartbeat_ms < election_min_ms <= election_max_ms "
            f"(have {e.heartbeat_ms}, {e.election_min_ms}, {e.election_max_ms})"
        )
    policy = TransferPolicy(
        e.transfer_margin, int(e.transfer_sustain_s * 1000), int(e.min_tenure_s * 1000)
    )
    election = ElectionRunner(
        mesh,
        Settings(e.heartbeat_ms, e.election_min_ms, e.election_max_ms),
        policy if e.transfer else None,
    )
    claims = ClaimService(mesh, election, node.config.agent.claim_lease_ms)
    election.on_admin = claims.set_admin  # the admin's duties: granting claims
    await claims.start()
    await election.start()

    control = await serve_control(node.home, Requests(mesh, election, claims).handle)
    discovery = Discovery(mesh) if (settings.mdns if mdns is None else mdns) else None
    if discovery is not None:
        await discovery.start()
    try:
        await stop.wait()
        log.info("stopping")
    finally:
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(signum)
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(SHUTDOWN_GRACE_S):
                await control.close()
        with contextlib.suppress(FileNotFoundError):
            socket_path(node.home).unlink()
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(SHUTDOWN_GRACE_S):
                await election.stop()
                await claims.stop()
                if discovery is not None:
                    await discovery.stop()
                await mesh.stop()
        log.info("stopped")


async def _record_profile(mesh: Mesh) -> None:
    """Log an `agent.profile` entry when capabilities or models changed since the last."""
    agent = mesh.config.agent
    profile = {
        "capabilities": sorted(agent.capabilities),
        "models": sorted(agent.models),
        "max_tasks": agent.max_tasks,
    }
    latest = await asyncio.to_thread(mesh.store.latest, 1, kinds=[PROFILE], author=mesh.me)
    if latest:
        try:
            previous = decode_payload(latest[0].decode().body)
        except EntryError:
            previous = None
        if previous == profile:
            return
    await mesh.append(PROFILE, profile)
