"""`bzzz hap`: the Human Agent Portal, a full-screen terminal front end for a person.

It attaches to the agent running on the home (through its control socket), or starts
the home's node itself with the agent's own decisions off (no auto-claim, no model),
and stops that node when the portal quits. `--node-only` runs that node without the
screen (what `bzzz hap` starts in a process of its own)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from bzzz.cli.options import HomeOption, check_address
from bzzz.cli.render import out
from bzzz.home.location import resolve_home
from bzzz.home.node import open_config


def hap(
    home: HomeOption = None,
    listen: Annotated[
        str | None,
        typer.Option(help="HOST:PORT the node accepts peers on, when the portal starts it."),
    ] = None,
    peer: Annotated[
        list[str] | None, typer.Option("--peer", help="HOST:PORT of a peer to dial; repeatable.")
    ] = None,
    no_mdns: Annotated[
        bool, typer.Option("--no-mdns", help="Neither announce nor browse (a started node).")
    ] = False,
    light: Annotated[bool, typer.Option("--light", help="Start in the light theme.")] = False,
    node_only: Annotated[bool, typer.Option("--node-only", hidden=True)] = False,
    parent: Annotated[int | None, typer.Option("--parent", hidden=True)] = None,
) -> None:
    """The Human Agent Portal: see what the agents do, answer them, review plans,
    resolve escalations and take tasks, as this node's member."""
    if listen is not None:
        check_address("--listen", listen)
    for address in peer or []:
        check_address("--peer", address)
    where = resolve_home(home)
    config = open_config(where)  # a home that is not one is refused before anything starts
    if node_only:
        _run_node(where, listen, peer or [], no_mdns, parent, config.log.level)
        return
    from bzzz.hap.app import HapApp
    from bzzz.hap.client import NodeClient
    from bzzz.hap.launch import answers, start_node
    from bzzz.hap.templates import load_templates

    project = where / config.project if config.project else None
    templates = load_templates(project)
    started = None
    if answers(where):
        mode = "attached"
        if listen is not None or peer:
            out.print(
                "[yellow]an agent runs on this home: --listen and --peer are its own[/yellow]"
            )
    else:
        out.print(f"starting the node for {where} (its log: {where / 'hap-node.log'}) ...")
        started = start_node(where, listen=listen, peers=peer or [], mdns=not no_mdns)
        mode = "own node"
    try:
        HapApp(NodeClient(where), where, templates, mode=mode, light=light).run()
    finally:
        if started is not None:
            out.print("stopping the node ...")
            started.stop()


def _run_node(
    home: Path, listen: str | None, peers: list[str], no_mdns: bool, parent: int | None, level: str
) -> None:
    import uvloop

    from bzzz.agent.daemon import run_agent
    from bzzz.agent.logs import setup_logging

    setup_logging(level, False)
    uvloop.run(
        run_agent(
            home,
            listen=listen,
            peers=peers,
            mdns=False if no_mdns else None,
            autonomous=False,
            parent=parent,
        )
    )
