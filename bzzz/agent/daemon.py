"""`bzzz agent`: the autonomous front end. It assembles the node (`bzzz.runtime`), adds
its control socket, and runs until SIGINT or SIGTERM. The decisions an agent takes on
its own (tasks, discussion, execution) will live here; today it keeps the node's
duties (replication, election, claims) and answers its control socket.

Under systemd (`Type=notify`) it says READY=1 once every step has started (the mesh
listens, the services run, the control socket answers), WATCHDOG=1 while its event loop
turns, and STOPPING=1 as it begins to stop; without NOTIFY_SOCKET it says nothing."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sys
from pathlib import Path

from bzzz.agent.control import ControlServer, serve_control, socket_path
from bzzz.agent.lock import HomeLock
from bzzz.agent.logs import tag
from bzzz.agent.requests import Requests
from bzzz.home.node import open_node
from bzzz.ops.notify import Notifier
from bzzz.runtime.assembly import NodeRuntime, assemble

log = logging.getLogger("bzzz.agent")

# Store work runs on threads; with the default 5 ms GIL switch interval the event loop
# waits that long for a thread holding the GIL, which a hop's latency would inherit.
SWITCH_INTERVAL_S = 0.0005


def add_service_manager(runtime: NodeRuntime, notifier: Notifier) -> None:
    """The last step: READY=1 once the others have started, STOPPING=1 first on the way
    down; WATCHDOG=1 every half of systemd's WatchdogSec meanwhile."""
    watchdog: asyncio.Task[None] | None = None

    async def ping() -> None:
        assert notifier.watchdog_s is not None
        while True:
            notifier.watchdog()
            await asyncio.sleep(notifier.watchdog_s / 2)

    async def start() -> None:
        nonlocal watchdog
        where = runtime.mesh.advertised
        status = f"{runtime.node.config.name}: listening on {where}"
        log.info("ready: %s", status)
        notifier.ready(status)
        if notifier.watchdog_s is not None:
            watchdog = asyncio.create_task(ping())

    async def stop() -> None:
        notifier.stopping(f"{runtime.node.config.name}: stopping")
        if watchdog is not None:
            watchdog.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await watchdog

    runtime.add("service manager", start, stop)


async def run_agent(
    home: Path,
    *,
    listen: str | None = None,
    peers: list[str] | None = None,
    mdns: bool | None = None,
) -> None:
    sys.setswitchinterval(SWITCH_INTERVAL_S)
    notifier = Notifier.from_environment()  # and out of the environment of children
    lock = HomeLock(home)
    lock.acquire()
    try:
        with open_node(home) as node:
            tag(BZZZ_AGENT=node.identity.public_key.hex(), BZZZ_NODE=node.config.name)
            runtime = assemble(node, listen=listen, peers=peers, mdns=mdns)
            control: ControlServer | None = None

            async def start_control() -> None:
                nonlocal control
                control = await serve_control(node.home, Requests(runtime).handle)

            async def stop_control() -> None:
                if control is not None:
                    await control.close()
                with contextlib.suppress(FileNotFoundError):
                    socket_path(node.home).unlink()

            runtime.add("control socket", start_control, stop_control)
            add_service_manager(runtime, notifier)
            await runtime.run_until_signal()
    finally:
        lock.release()
