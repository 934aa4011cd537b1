"""`bzzz init` and `bzzz id`."""

from __future__ import annotations

import socket
from typing import Annotated

import typer

from bzzz.cli.options import HomeOption, JsonOption
from bzzz.cli.render import out, print_json
from bzzz.home.keys import Identity, load_identity
from bzzz.home.location import resolve_home
from bzzz.runtime.node import init_node, open_config


def _id_json(identity: Identity, name: str, role: str) -> dict[str, str]:
    return {
        "agent_id": identity.public_key.hex(),
        "public_key": identity.ssh_public_key(),
        "age_recipient": identity.age_recipient,
        "name": name,
        "role": role,
    }


def init(
    home: HomeOption = None,
    name: Annotated[str | None, typer.Option(help="Node name (default: the host name).")] = None,
    role: Annotated[
        str | None,
        typer.Option(help="This agent's role (default: admin with --new-cluster, else developer)."),
    ] = None,
    store_url: Annotated[
        str | None,
        typer.Option("--store-url", help="Store URL (default: SQLite file in the home)."),
    ] = None,
    new_cluster: Annotated[
        str | None,
        typer.Option("--new-cluster", help="Found a new cluster with this name."),
    ] = None,
    listen: Annotated[
        str | None, typer.Option(help="HOST:PORT the agent listens on (mesh.listen).")
    ] = None,
    json_: JsonOption = False,
) -> None:
    """Create a node home: an agent key, an age identity, config.yaml and the store."""
    where = resolve_home(home)
    node_name = name or socket.gethostname().split(".")[0] or "node"
    with init_node(
        where,
        name=node_name,
        role=role or ("admin" if new_cluster else "developer"),
        store_url=store_url,
        cluster=new_cluster,
        listen=listen,
    ) as node:
        info = _id_json(node.identity, node.config.name, node.config.role)
        if json_:
            print_json({**info, "home": str(where)})
            return
        out.print(f"Created node [bold]{node.config.name}[/bold] in {where}")
        out.print(f"  agent id  {info['agent_id']}")
        out.print(f"  role      {node.config.role}")
        out.print(f"  store     {node.store.url.display()}")


def show_id(home: HomeOption = None, json_: JsonOption = False) -> None:
    """Print this node's agent id, public key and age recipient."""
    where = resolve_home(home)
    config = open_config(where)
    info = _id_json(load_identity(where), config.name, config.role)
    if json_:
        print_json(info)
        return
    for key, value in info.items():
        out.print(f"{key:<14}{value}")
