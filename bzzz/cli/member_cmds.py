"""`bzzz invite`, `bzzz join` and `bzzz member list|remove`."""

from __future__ import annotations

import asyncio
import socket
from typing import Annotated

import typer

from bzzz.cli.options import HomeOption, JsonOption
from bzzz.cli.render import err, iso_ms, out, print_json
from bzzz.domain.identity import is_id_prefix
from bzzz.domain.invite import decode_token, encode_token
from bzzz.errors import UsageError
from bzzz.home.location import resolve_home
from bzzz.projections.membership import read_membership
from bzzz.runtime.control import notify_agent
from bzzz.runtime.node import Node, init_node, open_node

app = typer.Typer(help="Who belongs to the cluster.", no_args_is_help=True)


def invite(
    home: HomeOption = None,
    role: Annotated[str, typer.Option(help="The newcomer's role.")] = "developer",
    expires: Annotated[
        str, typer.Option(help="How long the token is valid: 90s, 30m, 1h, 2d.")
    ] = "1h",
    address: Annotated[
        str | None,
        typer.Option(help="HOST:PORT the newcomer dials (default: the agent's listen address)."),
    ] = None,
    json_: JsonOption = False,
) -> None:
    """Print a one-time token that lets a new node join this cluster."""
    from bzzz.runtime.members import create_invite  # the mesh's imports: only when needed

    where = resolve_home(home)
    with open_node(where) as node:
        token = create_invite(node, role, expires, address)
    notify_agent(where)
    text = encode_token(token)
    if json_:
        print_json(
            {
                "token": text,
                "cluster": token.cluster,
                "address": f"{token.host}:{token.port}",
                "role": token.role,
                "expires": token.expires_ms,
            }
        )
        return
    out.print(text)
    err.print(
        f"[dim]one use, for role {token.role}, until {iso_ms(token.expires_ms)}; "
        f"on the new node: bzzz join TOKEN[/dim]"
    )


def join(
    token: Annotated[str, typer.Argument(help="The token `bzzz invite` printed.")],
    home: HomeOption = None,
    name: Annotated[str | None, typer.Option(help="Node name (default: the host name).")] = None,
    listen: Annotated[str | None, typer.Option(help="HOST:PORT this node will listen on.")] = None,
    json_: JsonOption = False,
) -> None:
    """Join a cluster with an invite token: get admitted and copy its logs."""
    from bzzz.runtime.members import join_cluster

    parsed = decode_token(token)
    where = resolve_home(home)
    node_name = name or socket.gethostname().split(".")[0] or "node"
    if (where / "config.yaml").exists():
        node = open_node(where)
        if node.config.mesh.cluster is not None:
            node.close()
            raise UsageError(f"{where} is already in cluster {node.config.mesh.cluster!r}")
    else:
        node = init_node(where, name=node_name, role=parsed.role, listen=listen)
    with node:
        result = asyncio.run(join_cluster(node, parsed))
    if json_:
        print_json(
            {
                "cluster": result.cluster,
                "inviter": result.inviter.hex(),
                "entries": result.entries,
                "logs": result.logs,
                "seconds": round(result.seconds, 3),
                "home": str(where),
            }
        )
        return
    out.print(
        f"Joined cluster [bold]{result.cluster}[/bold]: copied {result.entries} entries "
        f"in {result.logs} logs in {result.seconds:.1f}s. Start the agent with `bzzz agent`."
    )


@app.command("list")
def list_members(home: HomeOption = None, json_: JsonOption = False) -> None:
    """Members, removed members and open invites, as this node's logs say."""
    with open_node(resolve_home(home)) as node:
        state = read_membership(node.store, node.roles)
    rows = [
        {
            "agent_id": m.agent_id.hex(),
            "name": m.name,
            "role": m.role,
            "admitted_by": m.admitted_by.hex() if m.admitted_by else None,
            "status": status,
        }
        for status, group in (("member", state.members), ("removed", state.removed))
        for m in group.values()
    ]
    if json_:
        print_json({"cluster": state.cluster, "members": rows})
        return
    out.print(f"cluster [bold]{state.cluster}[/bold]: {len(state.members)} members")
    for row in rows:
        colour = "green" if row["status"] == "member" else "red"
        out.print(
            f"  [{colour}]{row['status']:<8}[/{colour}] {row['agent_id']} "
            f"{row['name']} ({row['role']})"
        )


@app.command("role")
def set_role(
    member: Annotated[str, typer.Argument(help="The member's agent id or a unique prefix.")],
    role: Annotated[str, typer.Argument(help="Its new role.")],
    home: HomeOption = None,
) -> None:
    """Give a member another role (your authority must cover both roles)."""
    from bzzz.runtime.members import change_role

    where = resolve_home(home)
    with open_node(where) as node:
        target = change_role(node, _one_member(node, member), role)
    notify_agent(where)
    out.print(f"{target.name} {target.agent_id.hex()} is now a {role}")


def _one_member(node: Node, member: str) -> bytes:
    if not is_id_prefix(member):
        raise UsageError(f"{member!r} is not an agent id or a prefix of at least 4 hex digits")
    state = read_membership(node.store, node.roles)
    matches = [k for k in state.members if k.hex().startswith(member.strip().lower())]
    if len(matches) != 1:
        found = "no member" if not matches else f"{len(matches)} members"
        raise UsageError(f"{found} match {member!r} (see `bzzz member list`)")
    return matches[0]


@app.command("remove")
def remove(
    member: Annotated[str, typer.Argument(help="The member's agent id or a unique prefix.")],
    home: HomeOption = None,
    reason: Annotated[str, typer.Option(help="Why, for the log.")] = "removed by an operator",
) -> None:
    """Remove a member: every node refuses its key from then on."""
    from bzzz.runtime.members import remove_member

    where = resolve_home(home)
    with open_node(where) as node:
        gone = remove_member(node, _one_member(node, member), reason)
    notify_agent(where)
    out.print(f"removed {gone.name} {gone.agent_id.hex()}")
