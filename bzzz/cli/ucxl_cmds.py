"""`bzzz ucxl get|history|search|put` and `bzzz decide`: shared context by UCXL address,
read from this node's store (the agent need not run) and written to its own log."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.markup import escape

from bzzz.agent.control import ask
from bzzz.cli.keys_cmds import node_keyring
from bzzz.cli.options import HomeOption, JsonOption
from bzzz.cli.render import iso_ms, out, print_json
from bzzz.clock import now_ms
from bzzz.domain import context as cx
from bzzz.domain import ucxl
from bzzz.domain.context_write import Writer, check_text, check_write
from bzzz.domain.payload import encode_payload
from bzzz.domain.roles import can_make_decisions
from bzzz.errors import NotFoundError, UsageError
from bzzz.home.location import resolve_home
from bzzz.home.node import Node, cluster_id_of, open_node
from bzzz.projections.context import hidden_json, read_context, version_json
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


def _line(row: dict[str, Any]) -> str:
    """One version (its JSON) in a line: where, which of how many, what, when."""
    sealed = f", sealed for {row['sealed_for']}" if row.get("sealed_for") else ""
    superseded = ", superseded" if row.get("superseded_by") else ""
    links = "".join(f", from task {link['task']}" for link in row.get("links", []) if link["task"])
    return (
        f"[bold]{escape(row['address'])}[/bold] [dim]({row['version']} of {row['versions']}, "
        f"{row['kind']}, {iso_ms(row['ts'])}{escape(sealed + superseded + links)})[/dim]"
    )


def _first_line(row: dict[str, Any]) -> str:
    text = str(row["text"])
    return escape(text.splitlines()[0][:100]) if text else ""


def _from_agent(home: Path, request: dict[str, Any]) -> dict[str, Any] | None:
    """The running agent's answer (it keeps the context folded), or None when no agent
    runs on this home; its refusal as a usage error."""
    answer = ask(home, request, timeout=30.0)
    if answer is not None and not answer.get("ok"):
        raise UsageError(str(answer.get("error", "the agent refused")))
    return answer


def _offline(home: Path) -> tuple[cx.Context, dict[bytes, str]]:
    """The context this node's logs hold, and the members' names (no agent runs)."""
    with open_node(home) as node:
        names = _names(node)
        return _context(node), names


def _names(node: Node) -> dict[bytes, str]:
    membership = read_membership(node.store, node.roles, cluster_id_of(node.config))
    return {
        m.agent_id: m.name for m in (*membership.removed.values(), *membership.members.values())
    }


def _row(item: cx.Item, version: cx.Version, names: dict[bytes, str]) -> dict[str, Any]:
    return {**version_json(item, version), "author_name": names.get(version.author)}


@app.command("get")
def get(address: AddressArg, home: HomeOption = None, json_: JsonOption = False) -> None:
    """The version of one piece of context an address names (~latest, ~vN, ~-N, a time)."""
    wanted, where = _address(address), resolve_home(home)
    answer = _from_agent(where, {"op": "ucxl_get", "address": str(wanted)})
    if answer is not None:
        row = answer["version"]
    else:
        context, names = _offline(where)
        item = cx.one_item(context, wanted)
        version = cx.pick(item.versions, wanted.temporal)
        if version is None:
            raise NotFoundError(
                f"{item.address} has {len(item.versions)} versions: none is {wanted.temporal}"
            )
        row = _row(item, version, names)
    if json_:
        print_json(row)
        return
    out.print(_line(row))
    out.print(escape(row["text"]), highlight=False)


@app.command("history")
def history(address: AddressArg, home: HomeOption = None, json_: JsonOption = False) -> None:
    """Every version of one piece of context, oldest first, and who wrote each (the
    newest 500 when the agent answers; `more` says how many older ones it left out)."""
    wanted, where = _address(address), resolve_home(home)
    answer = _from_agent(where, {"op": "ucxl_history", "address": str(wanted)})
    if answer is not None:
        shown = {k: answer[k] for k in ("address", "versions", "more")}
    else:
        context, names = _offline(where)
        item = cx.one_item(context, wanted)
        rows = [_row(item, v, names) for v in item.versions]
        shown = {"address": str(item.address), "versions": rows, "more": 0}
    if json_:
        print_json(shown)
        return
    if shown["more"]:
        out.print(f"[dim]… {shown['more']} older versions[/dim]")
    for row in shown["versions"]:
        out.print(f"{_line(row)} {_first_line(row)}", highlight=False)


@app.command("search")
def search(
    pattern: Annotated[
        str, typer.Argument(help="An address with * in agent, role, project or task.")
    ],
    home: HomeOption = None,
    json_: JsonOption = False,
) -> None:
    """Every piece of context a pattern matches (a path matches itself and below; the
    first 500 when the agent answers, `more` says how many it left out)."""
    wanted, where = _address(pattern, "PATTERN"), resolve_home(home)
    answer = _from_agent(where, {"op": "ucxl_search", "pattern": str(wanted)})
    if answer is not None:
        shown = {k: answer[k] for k in ("pattern", "found", "more", "hidden")}
    else:
        context, names = _offline(where)
        rows = [_row(item, version, names) for item, version in context.search(wanted)]
        hidden = hidden_json(context, wanted)
        shown = {"pattern": str(wanted), "found": rows, "more": 0, "hidden": hidden}
    if json_:
        print_json(shown)
        return
    if not shown["found"]:
        out.print("nothing matches")
    for row in shown["found"]:
        out.print(f"{_line(row)} {_first_line(row)}", highlight=False)
    if shown["more"]:
        out.print(f"[dim]… and {shown['more']} more: narrow the pattern[/dim]")
    for row in shown["hidden"]:
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
    """A new version: through the running agent (the one writer of this node's log
    while it runs), else straight to the store."""
    where = resolve_home(home)
    request = {"op": "ucxl_put", "address": str(address), "text": text}
    answer = _from_agent(where, {**request, "decision": kind == cx.DECISION, "seal_for": seal_for})
    if answer is not None:
        row, entry = answer["version"], answer.get("entry")
    else:
        row, entry = _write_offline(where, kind, address, text, seal_for)
    if row is None:  # sealed for a role this node may not read: written, not readable here
        if json_:
            print_json({"version": None, "entry": entry, "sealed_for": seal_for})
        else:
            out.print(
                f"wrote entry {str(entry)[:12]}, sealed for {escape(seal_for or '?')}: this "
                "node holds no key of that role to read it back"
            )
        return
    if json_:
        print_json(row)
    else:
        out.print(f"wrote {_line(row)}")


def _write_offline(
    where: Path, kind: str, address: ucxl.Address, text: str, seal_for: str | None
) -> tuple[dict[str, Any] | None, str]:
    with open_node(where) as node:
        at = check_write(address, kind, writer_of(node))
        data = cx.put_body(at.task, at.path, text)
        if seal_for is not None:
            keyring, _ = node_keyring(node)
            data = keyring.seal(node.identity.public_key, kind, seal_for, data)
        entry = node.store.append(node.identity.signer, kind, encode_payload(data), now_ms())
        item = _context(node).history(at)
        names = _names(node)
    version = next((v for v in item.versions if v.hash == entry.hash), None) if item else None
    row = _row(item, version, names) if item is not None and version is not None else None
    return row, entry.hash.hex()


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
