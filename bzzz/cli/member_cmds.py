"""`bzzz invite`, `bzzz join` and `bzzz member list|remove`."""

from __future__ import annotations

import asyncio
import shutil
import socket
import sys
from pathlib import Path
from typing import Annotated

import typer

from bzzz.agent.control import ask, notify_agent
from bzzz.cli.options import HomeOption, JsonOption, check_address
from bzzz.cli.render import err, iso_ms, out, print_json
from bzzz.domain.identity import is_id_prefix
from bzzz.domain.invite import decode_token, encode_token
from bzzz.errors import UsageError
from bzzz.home.config import load_config
from bzzz.home.location import check_home_path, resolve_home
from bzzz.home.node import Node, cluster_id_of, init_node, open_node
from bzzz.projections.membership import read_membership

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
    from bzzz.services.members import create_invite

    if address is not None:
        check_address("--address", address)
    where = resolve_home(home)
    with open_node(where) as node:
        reach = address or _daemon_address(where) or node.config.mesh.listen
        token = create_invite(node, role, expires, reach)
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
    from bzzz.runtime.assembly import inviters_of  # the mesh's imports: only when needed
    from bzzz.services.members import join_cluster

    parsed = decode_token(token)
    if listen is not None:
        check_address("--listen", listen)
    where = resolve_home(home)
    check_home_path(where)
    node_name = name or socket.gethostname().split(".")[0] or "node"
    made: set[Path] | None = None  # what this join created, to remove if it fails
    if (where / "config.yaml").exists():
        node = open_node(where)
        if node.config.mesh.cluster is not None:
            node.close()
            raise UsageError(f"{where} is already in cluster {node.config.mesh.cluster!r}")
    else:
        before = set(where.iterdir()) if where.is_dir() else None
        node = init_node(where, name=node_name, role=parsed.role, listen=listen)
        made = {where} if before is None else set(where.iterdir()) - before
    try:
        with node:
            result = asyncio.run(join_cluster(node, parsed, inviters_of(node)))
    except BaseException:
        if _joined(where):  # admitted, config written: a member that must keep its key
            raise
        for path in made or ():
            if path.is_dir():
                shutil.rmtree(path, ignore_errors=True)
            else:
                path.unlink(missing_ok=True)
        raise
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
        state = read_membership(node.store, node.roles, cluster_id_of(node.config))
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
    from bzzz.services.members import change_role

    where = resolve_home(home)
    with open_node(where) as node:
        target = change_role(node, _one_member(node, member), role)
    notify_agent(where)
    out.print(f"{target.name} {target.agent_id.hex()} is now a {role}")


def _one_member(node: Node, member: str) -> bytes:
    if not is_id_prefix(member):
        raise UsageError(f"{member!r} is not an agent id or a prefix of at least 4 hex digits")
    state = read_membership(node.store, node.roles, cluster_id_of(node.config))
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
    yes: Annotated[
        bool, typer.Option("--yes", "-y", help="Remove this node itself without asking.")
    ] = False,
) -> None:
    """Remove a member: every node refuses its key from then on."""
    from bzzz.services.members import remove_member

    where = resolve_home(home)
    with open_node(where) as node:
        target = _one_member(node, member)
        if target == node.identity.public_key and not yes:
            _confirm_own_removal()
        gone = remove_member(node, target, reason)
    notify_agent(where)
    out.print(f"removed {gone.name} {gone.agent_id.hex()}")


def _confirm_own_removal() -> None:
    """Removing this node itself: ask, or refuse where nobody can answer."""
    if not sys.stdin.isatty():
        raise UsageError(
            "that is this node itself: it would be shut out of the cluster; "
            "add --yes if you mean it"
        )
    if not typer.confirm("Remove this node itself from the cluster?", default=False):
        raise UsageError("not removed")


def _daemon_address(home: Path) -> str | None:
    """Where the running agent listens, if one runs on this home."""
    answer = ask(home, {"op": "status"})
    if answer is None or not answer.get("ok"):
        return None
    listen = answer["status"].get("listen")
    return listen if isinstance(listen, str) else None


def _joined(home: Path) -> bool:
    """Whether the home's config names a cluster id (a join wrote it)."""
    try:
        return load_config(home).mesh.cluster_id is not None
    except UsageError:
        return False
