"""`bzzz agent`: the node's daemon. It assembles the node (`bzzz.runtime`), adds its
control socket, and runs until SIGINT or SIGTERM. The same daemon serves the Human Agent
Portal (`bzzz hap --node-only`) with `autonomous=False`: the agent's own decisions (auto-
claim, a model working the tasks) off, since a person makes them, and it stops when the
portal that started it goes away.

Under systemd (`Type=notify`) it says READY=1 once every step has started (the mesh
listens, the services run, the control socket answers), WATCHDOG=1 while its event loop
turns, and STOPPING=1 as it begins to stop; without NOTIFY_SOCKET it says nothing."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import sys
from pathlib import Path

from bzzz.agent.control import ControlServer, serve_control, socket_path
from bzzz.agent.lock import HomeLock
from bzzz.agent.logs import tag
from bzzz.agent.requests import Requests
from bzzz.agent.ucxi_backend import RequestsBackend
from bzzz.home.config import NodeConfig
from bzzz.home.node import open_node
from bzzz.http.ucxi_server import ucxi_server
from bzzz.ops.notify import Notifier
from bzzz.runtime.assembly import NodeRuntime, assemble

log = logging.getLogger("bzzz.agent")

# Store work runs on threads; with the default 5 ms GIL switch interval the event loop
# waits that long for a thread holding the GIL, which a hop's latency would inherit.
SWITCH_INTERVAL_S = 0.0005
PARENT_CHECK_S = 0.5


def without_autonomy(config: NodeConfig) -> NodeConfig:
    """The node's config with the agent's own decisions off: a person takes the tasks,
    writes the plans and does the work."""
    agent = config.agent.model_copy(update={"auto_claim": False})
    return config.model_copy(update={"agent": agent, "reasoning": None})


def add_parent_watch(runtime: NodeRuntime, parent: int) -> None:
    """Stop this node (as SIGTERM does) once the process that started it is gone."""
    watcher: asyncio.Task[None] | None = None

    async def watch() -> None:
        while os.getppid() == parent:
            await asyncio.sleep(PARENT_CHECK_S)
        log.info("the portal that started this node is gone: stopping")
        os.kill(os.getpid(), signal.SIGTERM)

    async def start() -> None:
        nonlocal watcher
        watcher = asyncio.create_task(watch())

    async def stop() -> None:
        if watcher is not None:
            watcher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await watcher

    runtime.add("parent watch", start, stop)


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
    autonomous: bool = True,
    parent: int | None = None,
) -> None:
    """Run the node on `home` until a signal. `autonomous=False`: the portal's node (no
    auto-claim, no model); `parent`: stop when that process is gone."""
    sys.setswitchinterval(SWITCH_INTERVAL_S)
    notifier = Notifier.from_environment()  # and out of the environment of children
    lock = HomeLock(home)
    lock.acquire()
    try:
        with open_node(home) as node:
            tag(BZZZ_AGENT=node.identity.public_key.hex(), BZZZ_NODE=node.config.name)
            if not autonomous:
                node.config = without_autonomy(node.config)
            runtime = assemble(node, listen=listen, peers=peers, mdns=mdns)
            requests = Requests(runtime)
            control: ControlServer | None = None

            async def start_control() -> None:
                nonlocal control
                control = await serve_control(node.home, requests.handle)

            async def stop_control() -> None:
                if control is not None:
                    await control.close()
                with contextlib.suppress(FileNotFoundError):
                    socket_path(node.home).unlink()

            runtime.add("control socket", start_control, stop_control)
            ucxi = ucxi_server(node.home, node.config, RequestsBackend(requests.handle))
            if ucxi is not None:
                requests.ucxi = ucxi
                runtime.add("ucxi", ucxi.start, ucxi.stop)
            if parent is not None:
                add_parent_watch(runtime, parent)
            add_service_manager(runtime, notifier)
            await runtime.run_until_signal()
    finally:
        lock.release()
