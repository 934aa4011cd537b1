"""`bzzz agent`: the autonomous front end. It assembles the node (`bzzz.runtime`), adds
its control socket, and runs until SIGINT or SIGTERM. The decisions an agent takes on
its own (tasks, discussion, execution) will live here; today it keeps the node's
duties (replication, election, claims) and answers its control socket."""

from __future__ import annotations

import contextlib
import sys
from pathlib import Path

from bzzz.agent.control import ControlServer, serve_control, socket_path
from bzzz.agent.lock import HomeLock
from bzzz.agent.requests import Requests
from bzzz.home.node import open_node
from bzzz.runtime.assembly import assemble

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
            await runtime.run_until_signal()
    finally:
        lock.release()
