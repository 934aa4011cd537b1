"""`bzzz ucxl get|history|search|put` and `bzzz decide`: shared context by UCXL address,
read from this node's store (the agent need not run) and written to its own log."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape

from bzzz.agent.control import notify_agent
from bzzz.cli.keys_cmds import node_keyring
from bzzz.cli.options import HomeOption, JsonOption
from bzzz.cli.render import iso_ms, out, print_json
from bzzz.clock import now_ms
from bzzz.domain import context as cx
from bzzz.domain import ucxl
from bzzz.domain.context_write import Writer, check_text, check_write
from bzzz.domain.payload import encode_payload
from bzzz.domain.roles import can_make_decisions
from bzzz.errors import UsageError
from bzzz.home.location import resolve_home
from bzzz.home.node import Node, cluster_id_of, open_node
from bzzz.projections.context import hidden_json, read_context, version_address, version_json
from bzzz.projections.membership import read_membership

app = typer.Typer(help="Shared context by UCXL address.", no_args_is_help=True)

AddressArg = Annotated[str, typer.Argument(help="ucxl://AGENT:ROLE@PROJECT:TASK/TEMPORAL/PATH")]
TextOption = Annotated[
    str | None, typer.Option("--text", "-t", help="The text; - reads it from stdin.")
]
FileOption = Annotated[Path | None, typer.Option("--file", "-f", help="Read the text from FILE.")]


def _address(text: str, what: str = "ADDRESS") -> ucxl.Address:
    try:
        return ucxl.parse(text)
    except UsageError as error:
        raise UsageError(f"{what}: {error}") from None


def _context(node: Node) -> cx.Context:
    """The context this node's logs hold, sealed versions opened where its keys allow."""
    project = cx.project_name(node.config.mesh.cluster)
    keyring, _ = node_keyring(node)
    return read_context(node.store, node.roles, cluster_id_of(node.config), project, keyring)


def _line(item: cx.Item, version: cx.Version) -> str:
    sealed = f", sealed for {version.sealed_for}" if version.sealed_for else ""
    superseded = ", superseded" if version.superseded_by else ""
    links = "".join(f", from task {link.task}" for link in version.links if link.task)
    return (
        f"[bold]{escape(version_address(item, version))}[/bold] [dim]({version.number} of "
        f"{len(item.versions)}, {version.kind}, {iso_ms(version.ts)}"
        f"{escape(sealed + superseded + links)})[/dim]"
    )


@app.command("get")
def get(address: AddressArg, home: HomeOption = None, json_: JsonOption = False) -> None:
    """The version of one piece of context an address names (~latest, ~vN, ~-N, a time)."""
    wanted = _address(address)
    with open_node(resolve_home(home)) as node:
        item = cx.one_item(_context(node), wanted)
    version = cx.pick(item.versions, wanted.temporal)
    if version is None:
        raise UsageError(
            f"{item.address} has {len(item.versions)} versions: none is {wanted.temporal}"
        )
    found = (item, version)
    if json_:
        print_json(version_json(*found))
        return
    out.print(_line(*found))
    out.print(escape(found[1].text), highlight=False)


@app.command("history")
def history(address: AddressArg, home: HomeOption = None, json_: JsonOption = False) -> None:
    """Every version of one piece of context, oldest first, and who wrote each."""
    wanted = _address(address)
    with open_node(resolve_home(home)) as node:
        item = cx.one_item(_context(node), wanted)
    if json_:
        print_json(
            {
                "address": str(item.address),
                "versions": [version_json(item, v) for v in item.versions],
            }
        )
        return
    for version in item.versions:
        first = version.text.splitlines()[0] if version.text else ""
        out.print(f"{_line(item, version)} {escape(first[:100])}", highlight=False)


@app.command("search")
def search(
    pattern: Annotated[
        str, typer.Argument(help="An address with * in agent, role, project or task.")
    ],
    home: HomeOption = None,
    json_: JsonOption = False,
) -> None:
    """Every piece of context a pattern matches (a path matches itself and below)."""
    wanted = _address(pattern, "PATTERN")
    with open_node(resolve_home(home)) as node:
        context = _context(node)
    found, hidden = context.search(wanted), hidden_json(context, wanted)
    if json_:
        rows = [version_json(i, v) for i, v in found]
        print_json({"pattern": str(wanted), "found": rows, "hidden": hidden})
        return
    if not found:
        out.print("nothing matches")
    for item, version in found:
        first = version.text.splitlines()[0] if version.text else ""
        out.print(f"{_line(item, version)} {escape(first[:100])}", highlight=False)
    for row in hidden:
        out.print(
            f"[dim]{row['versions']} version(s) sealed for {escape(row['sealed_for'])} may "
            "match and are not shown (this node holds no key of that role)[/dim]"
        )


def _text(text: str | None, file: Path | None) -> str:
    if (text is None) == (file is None):
        raise UsageError("give the text with --text TEXT (- for stdin) or --file FILE")
    if file is not None:
        try:
            value = file.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as error:
            raise UsageError(f"--file: cannot read {file}: {error}") from None
    else:
        value = sys.stdin.read() if text == "-" else str(text)
    check_text(value)
    return value


def writer_of(node: Node) -> Writer:
    """This node as a writer of context; a usage error when it is not a member."""
    member = read_membership(node.store, node.roles, cluster_id_of(node.config)).members.get(
        node.identity.public_key
    )
    if member is None:
        raise UsageError("this node is not a member of a cluster (`bzzz join`)")
    role = node.roles.get(member.role)
    return Writer(
        node.identity.public_key.hex(),
        member.role,
        role is not None and can_make_decisions(role),
        cx.project_name(node.config.mesh.cluster),
    )


def _write(
    home: Path | None,
    kind: str,
    address: ucxl.Address,
    text: str,
    seal_for: str | None,
    json_: bool,
) -> None:
    where = resolve_home(home)
    with open_node(where) as node:
        at = check_write(address, kind, writer_of(node))
        data = cx.put_body(at.task, at.path, text)
        if seal_for is not None:
            keyring, _ = node_keyring(node)
            data = keyring.seal(node.identity.public_key, kind, seal_for, data)
        entry = node.store.append(node.identity.signer, kind, encode_payload(data), now_ms())
        item = _context(node).history(at)
    notify_agent(where)
    version = next((v for v in item.versions if v.hash == entry.hash), None) if item else None
    if item is None or version is None:
        # Sealed for a role this node may not read: written, and not readable here.
        if json_:
            print_json({"version": None, "entry": entry.hash.hex(), "sealed_for": seal_for})
        else:
            out.print(
                f"wrote entry {entry.hash.hex()[:12]} (seq {entry.seq}), sealed for "
                f"{escape(seal_for or '?')}: this node holds no key of that role to read it back"
            )
        return
    if json_:
        print_json(version_json(item, version))
    else:
        out.print(f"wrote {_line(item, version)}")


SealOption = Annotated[
    str | None,
    typer.Option(
        "--seal-for",
        help="Seal the text for ROLE: only members who may read that role can open it.",
    ),
]


@app.command("put")
def put(
    address: AddressArg,
    text: TextOption = None,
    file: FileOption = None,
    seal_for: SealOption = None,
    home: HomeOption = None,
    json_: JsonOption = False,
) -> None:
    """Write a new version of a piece of your own context (a signed `context.put`)."""
    _write(home, cx.PUT, _address(address), _text(text, file), seal_for, json_)


def decide(
    address: Annotated[
        str, typer.Option("--address", "-a", help="Where the decision lives (under decisions/).")
    ],
    text: TextOption = None,
    file: FileOption = None,
    seal_for: SealOption = None,
    home: HomeOption = None,
    json_: JsonOption = False,
) -> None:
    """Record a decision as context (a signed `decision.made`; roles that may decide)."""
    _write(home, cx.DECISION, _address(address, "--address"), _text(text, file), seal_for, json_)
