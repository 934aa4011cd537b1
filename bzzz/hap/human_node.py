"""The node a portal starts when no agent runs on its home: the node `bzzz agent` runs
(the same composition root, `bzzz.runtime.assembly.assemble`, and the same control
socket), with the agent's own decisions off, since a person makes them: no auto-claim
and no model working the tasks this identity holds. Replication, the election, claims,
the board, the HMMM flow and escalations run as on any node. It runs in a process of its
own (`bzzz hap --node-only`, started by `bzzz hap`), so that the screen never waits on
the store, and it stops when the portal that started it goes away."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import sys
from pathlib import Path

from bzzz.agent.control import ControlServer, serve_control, socket_path
from bzzz.agent.lock import HomeLock
from bzzz.agent.requests import Requests
from bzzz.home.config import NodeConfig
from bzzz.home.node import open_node
from bzzz.runtime.assembly import assemble

SWITCH_INTERVAL_S = 0.0005  # as the agent daemon: store threads hand the GIL back soon
PARENT_CHECK_S = 0.5


def without_autonomy(config: NodeConfig) -> NodeConfig:
    """The node's config with the agent's own decisions off: a person takes the tasks,
    writes the plans and does the work."""
    agent = config.agent.model_copy(update={"auto_claim": False})
    return config.model_copy(update={"agent": agent, "reasoning": None})


async def _watch_parent(parent: int) -> None:
    """Stop this node (as SIGTERM does) once the portal that started it is gone."""
    while os.getppid() == parent:
        await asyncio.sleep(PARENT_CHECK_S)
    os.kill(os.getpid(), signal.SIGTERM)


async def run_human_node(
    home: Path,
    *,
    listen: str | None = None,
    peers: list[str] | None = None,
    mdns: bool | None = None,
    parent: int | None = None,
) -> None:
    sys.setswitchinterval(SWITCH_INTERVAL_S)
    lock = HomeLock(home)  # one process writes an identity's log: an agent or this node
    lock.acquire()
    try:
        with open_node(home) as node:
            node.config = without_autonomy(node.config)
            runtime = assemble(node, listen=listen, peers=peers, mdns=mdns)
            control: ControlServer | None = None
            watcher: asyncio.Task[None] | None = None

            async def start_control() -> None:
                nonlocal control, watcher
                control = await serve_control(node.home, Requests(runtime).handle)
                if parent is not None:
                    watcher = asyncio.create_task(_watch_parent(parent))

            async def stop_control() -> None:
                if watcher is not None:
                    watcher.cancel()
                    with contextlib.suppress(asyncio.CancelledError):
                        await watcher
                if control is not None:
                    await control.close()
                with contextlib.suppress(FileNotFoundError):
                    socket_path(node.home).unlink()

            runtime.add("control socket", start_control, stop_control)
            await runtime.run_until_signal()
    finally:
        lock.release()
