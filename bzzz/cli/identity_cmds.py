"""`bzzz init` and `bzzz id`."""

from __future__ import annotations

import socket
from typing import Annotated

import typer

from bzzz.cli.options import HomeOption, JsonOption, check_address
from bzzz.cli.render import out, print_json
from bzzz.errors import UsageError, one_line
from bzzz.home.keys import Identity, load_identity
from bzzz.home.location import (
    check_home_path,
    resolve_home,
)
from bzzz.home.node import init_node, open_config


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
    check_home_path(where)  # a file, a path below one, a read-only folder: say so first
    if listen is not None:
        check_address("--listen", listen)
    node_name = name or socket.gethostname().split(".")[0] or "node"
    try:
        node = init_node(  # the home 0700, its files 0600, whatever the umask
            where,
            name=node_name,
            role=role or ("admin" if new_cluster else "developer"),
            store_url=store_url,
            cluster=new_cluster,
            listen=listen,
        )
    except OSError as exc:
        raise UsageError(f"cannot create the node home {where}: {one_line(exc)}") from None
    with node:
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
