"""`bzzz agent`: run one node in the mesh until SIGINT or SIGTERM."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import sys
from pathlib import Path
from typing import Any

from bzzz.domain.election import Settings
from bzzz.domain.identity import parse_agent_id
from bzzz.domain.payload import decode_payload
from bzzz.errors import ConfigError, EntryError, UsageError
from bzzz.mesh.discovery import Discovery
from bzzz.mesh.mesh import PROFILE, Mesh
from bzzz.runtime.control import serve_control, socket_path
from bzzz.runtime.election import ElectionRunner
from bzzz.runtime.lock import HomeLock
from bzzz.runtime.node import Node, open_node

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
    election = ElectionRunner(
        mesh, Settings(e.heartbeat_ms, e.election_min_ms, e.election_max_ms), _admin_duties
    )
    await election.start()

    async def handle(request: dict[str, Any]) -> dict[str, Any]:
        op = request.get("op")
        if op == "status":
            return {"ok": True, "status": await mesh.status()}
        if op == "append":
            kind, data = request.get("kind"), request.get("data")
            if not isinstance(kind, str) or not isinstance(data, dict):
                raise UsageError('append needs {"kind": str, "data": {...}}')
            entry = await mesh.append(kind, data)
            return {"ok": True, "seq": entry.seq, "hash": entry.hash.hex()}
        if op == "election":
            return {"ok": True, "election": await election.status()}
        if op == "wait":
            return await _wait(mesh, request)
        if op == "refresh":
            await mesh.refresh()
            return {"ok": True}
        raise UsageError(f"unknown request {op!r}")

    control = await serve_control(node.home, handle)
    discovery = Discovery(mesh) if (settings.mdns if mdns is None else mdns) else None
    if discovery is not None:
        await discovery.start()
    try:
        await stop.wait()
        log.info("stopping")
    finally:
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(signum)
        control.close()
        with contextlib.suppress(FileNotFoundError):
            socket_path(node.home).unlink()
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(SHUTDOWN_GRACE_S):
                await election.stop()
                if discovery is not None:
                    await discovery.stop()
                await mesh.stop()
        log.info("stopped")


async def _admin_duties(on: bool) -> None:
    """The admin (SLURP) role's duties start and stop here, in one place."""
    if on:
        log.info("admin duties on (task-source sync and claim granting are not built yet)")
    else:
        log.info("admin duties off")


async def _record_profile(mesh: Mesh) -> None:
    """Log an `agent.profile` entry when capabilities or models changed since the last."""
    agent = mesh.config.agent
    profile = {"capabilities": sorted(agent.capabilities), "models": sorted(agent.models)}
    latest = await asyncio.to_thread(mesh.store.latest, 1, kinds=[PROFILE], author=mesh.me)
    if latest:
        try:
            previous = decode_payload(latest[0].decode().body)
        except EntryError:
            previous = None
        if previous == profile:
            return
    await mesh.append(PROFILE, profile)


MAX_WAIT_S = 600.0


async def _wait(mesh: Mesh, request: dict[str, Any]) -> dict[str, Any]:
    """Answer once this node holds `author`'s log up to `seq` (or after `timeout`)."""
    author, seq, timeout = request.get("author"), request.get("seq"), request.get("timeout", 30)
    try:
        key = parse_agent_id(author) if isinstance(author, str) else b""
    except UsageError:
        key = b""
    if not key or type(seq) is not int or not isinstance(timeout, int | float):
        raise UsageError('wait needs {"author": agent id, "seq": int, "timeout": seconds}')
    reached = await mesh.wait_for_head(key, seq, min(float(timeout), MAX_WAIT_S))
    return {"ok": True, "reached": reached, "seq": mesh.heads.get(key, 0)}
