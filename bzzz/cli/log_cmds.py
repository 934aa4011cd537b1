"""`bzzz log`: append, show, export, import."""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.markup import escape

from bzzz.agent.control import notify_agent
from bzzz.cli.authors import resolve_author
from bzzz.cli.keys_cmds import node_keyring
from bzzz.cli.options import AuthorOption, HomeOption, JsonOption
from bzzz.cli.render import entry_json, entry_line, err, iso_ms, out, print_json
from bzzz.clock import now_ms
from bzzz.domain.entry import Entry
from bzzz.domain.identity import short_id
from bzzz.domain.kinds import check_hand_written, check_kind
from bzzz.domain.limits import MAX_PAYLOAD_DEPTH
from bzzz.domain.payload import decode_payload, encode_payload
from bzzz.domain.sealing import Opened, looks_sealed, parse_envelope
from bzzz.errors import EntryError, UsageError, one_line
from bzzz.home.location import resolve_home
from bzzz.home.node import cluster_id_of, open_config, open_home_store, open_node
from bzzz.projections.keyring import Keyring
from bzzz.services.bundle_import import import_bundle
from bzzz.store import EventStore, StoredEntry
from bzzz.store.bundle import check_bundle, write_bundle

app = typer.Typer(help="Read and write the signed logs.", no_args_is_help=True)

FOLLOW_POLL_S = 0.25
BATCH_FIELDS = ("kind", "data")


def _load_json(text: str, what: str) -> Any:
    """JSON text, or UsageError naming `what` (an option, a line) and the problem."""
    try:
        return json.loads(text)
    except RecursionError:  # deeper than Python's parser goes: far past the limit anyway
        raise UsageError(f"{what}: nested deeper than {MAX_PAYLOAD_DEPTH} levels") from None
    except json.JSONDecodeError as exc:
        raise UsageError(f"{what} is not valid JSON: {exc}") from None
    except ValueError:  # Python refuses integers of more than 4300 digits
        raise UsageError(f"{what}: a number is too long (integers fit in 64 bits)") from None


def _parse_data(text: str) -> dict[str, Any]:
    data = _load_json(text, "--data")
    try:
        encode_payload(data)
    except EntryError as exc:
        raise UsageError(f"--data: {exc}") from None
    checked: dict[str, Any] = _not_an_envelope(data, "--data")
    return checked


def _not_an_envelope(data: Any, what: str) -> Any:
    """Refuse a plain payload that has exactly a sealed envelope's fields: no entry
    written in the clear may pass for a sealed one."""
    if isinstance(data, dict) and looks_sealed(data):
        raise UsageError(f"{what}: these are a sealed envelope's fields; seal with --seal-for")
    return data


def _batch_bytes(source: Path) -> bytes:
    try:
        if str(source) == "-":
            return sys.stdin.buffer.read()
        return source.read_bytes()
    except OSError as exc:
        raise UsageError(f"--batch: cannot read {source}: {one_line(exc)}") from None


def _batch_item(number: int, raw: bytes) -> tuple[str, dict[str, Any]] | None:
    """One line of a batch, checked; None for a blank line."""
    try:
        line = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise UsageError(
            f"--batch line {number}: not UTF-8 text (byte {exc.start + 1}: "
            f"{raw[exc.start : exc.start + 1]!r}); a batch is UTF-8 JSON lines"
        ) from None
    if not line.strip():
        return None
    record = _load_json(line, f"--batch line {number}")
    if not isinstance(record, dict) or not isinstance(record.get("kind"), str):
        raise UsageError(f'--batch line {number}: expected {{"kind": "...", "data": {{...}}}}')
    unknown = [key for key in record if key not in BATCH_FIELDS]
    if unknown:
        raise UsageError(
            f"--batch line {number}: unknown field {unknown[0]!a}; "
            'a line has only "kind" and "data"'
        )
    data = record.get("data", {})
    try:
        kind = check_hand_written(record["kind"])
        encode_payload(data)
    except EntryError as exc:
        raise UsageError(f"--batch line {number}: {exc}") from None
    return kind, _not_an_envelope(data, f"--batch line {number}")


def _read_batch(source: Path) -> list[tuple[str, dict[str, Any]]]:
    """JSON lines of {"kind": ..., "data": {...}}; every line is checked before any is
    written, so a bad line changes nothing."""
    items: list[tuple[str, dict[str, Any]]] = []
    for number, raw in enumerate(_batch_bytes(source).splitlines(), start=1):
        item = _batch_item(number, raw)
        if item is not None:
            items.append(item)
    if not items:
        raise UsageError(f"--batch: {source} holds no entries")
    return items


@app.command("append")
def append(
    kind: Annotated[
        str | None, typer.Option("--kind", "-k", help="Dotted lowercase, e.g. task.note.")
    ] = None,
    data: Annotated[str, typer.Option("--data", "-d", help="The payload: a JSON object.")] = "{}",
    batch: Annotated[
        Path | None,
        typer.Option(
            "--batch",
            help='Append JSON lines {"kind": ..., "data": {...}} from FILE (- for stdin) '
            "as one atomic batch.",
        ),
    ] = None,
    seal_for: Annotated[
        str | None,
        typer.Option(
            "--seal-for",
            help="Seal the payload for ROLE: only members who may read that role can open it.",
        ),
    ] = None,
    home: HomeOption = None,
    json_: JsonOption = False,
) -> None:
    """Sign entries and append them to this node's own log."""
    if (kind is None) == (batch is None):
        raise UsageError("give either --kind (with --data) or --batch FILE")
    if batch is not None:
        items = _read_batch(batch)
    else:
        assert kind is not None
        try:
            check_hand_written(kind)
        except EntryError as exc:
            raise UsageError(f"--kind: {exc}") from None
        items = [(kind, _parse_data(data))]
    where = resolve_home(home)
    with open_node(where) as node:
        if seal_for is None:
            bodies = [(k, encode_payload(d)) for k, d in items]
        else:
            keyring, _ = node_keyring(node)
            me = node.identity.public_key
            bodies = [(k, encode_payload(keyring.seal(me, k, seal_for, d))) for k, d in items]
        entries = node.store.append_batch(node.identity.signer, bodies, now_ms())
    notify_agent(where)
    for entry in entries if len(entries) <= 20 or json_ else entries[-1:]:
        if json_:
            print_json(entry_json(entry))
        else:
            out.print(entry_line(entry))
    if len(entries) > 20 and not json_:
        out.print(f"[dim]… appended {len(entries)} entries in one batch[/dim]")


class _Reader:
    """Opens sealed entries with this node's keys, read from its logs the first time a
    sealed entry is shown (none are written anywhere)."""

    def __init__(self, home: Path) -> None:
        self.home = home
        self._keyring: Keyring | None = None

    def open(self, entry: Entry) -> Opened | None:
        """None for a plain entry."""
        if parse_envelope(entry.body) is None:
            return None
        if self._keyring is None:
            with open_node(self.home) as node:
                self._keyring, _ = node_keyring(node)
        return self._keyring.open(entry)


def _sealed_json(entry: Entry, opened: Opened) -> dict[str, Any]:
    shown = entry_json(entry)
    shown["sealed_for"] = opened.role
    shown["generation"] = opened.generation
    shown["opened"] = opened.readable
    if opened.readable:
        shown["data"] = decode_payload(encode_payload(opened.payload or {}))
    else:
        shown["data"] = None
        shown["sealed"] = opened.label()
    return shown


def _sealed_line(entry: Entry, opened: Opened, width: int = 100) -> str:
    if opened.readable:
        data = json.dumps(decode_payload(encode_payload(opened.payload or {})), ensure_ascii=False)
        data = data if len(data) <= width else data[: width - 1] + "…"
        what = f"[magenta](sealed for {escape(opened.role or '')}, opened)[/magenta] {escape(data)}"
    else:
        what = f"[magenta]({escape(opened.label())})[/magenta]"
    return (
        f"[dim]{iso_ms(entry.ts)}[/dim] [cyan]{short_id(entry.author)}[/cyan]"
        f" [bold]#{entry.seq}[/bold] [green]{escape(entry.kind)}[/green] {what}"
    )


def _render(rows: list[StoredEntry], as_json: bool, reader: _Reader) -> int:
    for row in rows:
        try:
            entry = row.decode()
        except EntryError as exc:
            err.print(
                f"[yellow]warning:[/yellow] entry at position {row.position} (seq {row.seq}) is "
                f"damaged ({exc}); run `bzzz audit`"
            )
            continue
        opened = reader.open(entry)
        if as_json:
            print_json(entry_json(entry) if opened is None else _sealed_json(entry, opened))
        else:
            out.print(entry_line(entry) if opened is None else _sealed_line(entry, opened))
    return rows[-1].position if rows else 0


@app.command("show")
def show(
    author: AuthorOption = None,
    kind: Annotated[
        list[str] | None, typer.Option("--kind", "-k", help="Only this kind (repeatable).")
    ] = None,
    limit: Annotated[
        int | None, typer.Option("--limit", "-n", min=1, help="Only the most recent N entries.")
    ] = None,
    follow: Annotated[
        bool, typer.Option("--follow", "-f", help="Keep printing new entries.")
    ] = False,
    home: HomeOption = None,
    json_: JsonOption = False,
) -> None:
    """Show entries in local arrival order (oldest first), like `tail`. Sealed entries
    are opened when this node holds their role's key, else shown as "sealed for ROLE"."""
    kinds = kind or []
    for k in kinds:
        try:
            check_kind(k)
        except EntryError as exc:
            raise UsageError(f"--kind: {exc}") from None
    where = resolve_home(home)
    reader = _Reader(where)
    with open_home_store(where) as store:
        who = resolve_author(author, store.heads()) if author else None
        if limit is not None:
            position = _render(store.latest(limit, kinds=kinds, author=who), json_, reader)
            position = position or store.max_position()
        else:
            position = 0
            while rows := store.notifications(after=position, kinds=kinds, author=who):
                position = _render(rows, json_, reader)
        if follow:
            _follow(store, max(position, 0), kinds, who, json_, reader)


def _follow(
    store: EventStore,
    position: int,
    kinds: list[str],
    who: bytes | None,
    as_json: bool,
    reader: _Reader,
) -> None:
    """Poll for new arrivals until interrupted (SQLite has no change notifications)."""
    while True:
        rows = store.notifications(after=position, kinds=kinds, author=who)
        if rows:
            position = _render(rows, as_json, reader)
        else:
            time.sleep(FOLLOW_POLL_S)


def _export_raws(store: EventStore, authors: list[bytes]) -> Iterator[bytes]:
    for author in authors:
        position = 0
        while rows := store.entries(author, after=position, limit=5000):
            for row in rows:
                yield row.raw
            position = rows[-1].seq
    wanted = set(authors)
    for author, _seq, raw in store.forks():
        if author in wanted:
            yield raw


@app.command("export")
def export(
    file: Annotated[Path, typer.Argument(help="Bundle file to write.")],
    author: AuthorOption = None,
    home: HomeOption = None,
    json_: JsonOption = False,
) -> None:
    """Write logs (and any fork evidence) to a portable bundle file, labelled with this
    node's cluster id."""
    where = resolve_home(home)
    cluster_id = cluster_id_of(open_config(where))
    with open_home_store(where) as store:
        heads = store.heads()
        authors = [resolve_author(author, heads)] if author else sorted(heads)
        if author and authors[0] not in heads:
            raise UsageError(f"--author {author!r}: this store holds no log by that author")
        count = write_bundle(file, _export_raws(store, authors), cluster_id)
    if json_:
        print_json({"file": str(file), "logs": len(authors), "entries": count})
    else:
        out.print(f"Wrote {count} entries of {len(authors)} logs to {file}")


@app.command("import")
def import_(
    file: Annotated[Path, typer.Argument(help="Bundle file to read.")],
    home: HomeOption = None,
    json_: JsonOption = False,
) -> None:
    """Verify and store the entries of a bundle; report what was refused and why. A node
    of a cluster stores only the logs of its members (the others are refused as
    `not-member`), and refuses a bundle labelled with another cluster.

    Exits 1 when any entry was refused. A damaged bundle changes nothing."""
    total = check_bundle(file)
    where = resolve_home(home)
    with open_node(where) as node:  # opening pins a cluster id a home predates
        result = import_bundle(node.store, node.roles, cluster_id_of(node.config), file)
    accepted, duplicates = result.accepted, result.duplicates
    forks: list[dict[str, object]] = [
        {"author": e.author.hex(), "seq": e.seq, "hash": e.hash.hex()} for e in result.forks
    ]
    refused: list[dict[str, object]] = [
        {
            "author": r.author.hex() if r.author else None,
            "seq": r.seq,
            "code": r.code,
            "reason": r.reason,
        }
        for r in result.refused
    ]
    if accepted:
        notify_agent(where)
    summary = {
        "file": str(file),
        "entries": total,
        "accepted": accepted,
        "duplicates": duplicates,
        "forks": forks,
        "refused": refused,
    }
    if json_:
        print_json(summary)
    else:
        out.print(
            f"Read {total} entries from {file}: {accepted} accepted, {duplicates} already held, "
            f"{len(forks)} fork evidence, {len(refused)} refused"
        )
        for item in forks:
            out.print(f"  [red]fork[/red] {str(item['author'])[:12]} seq {item['seq']}")
        for item in refused[:50]:
            who = str(item["author"] or "?")[:12]
            out.print(f"  [yellow]refused[/yellow] {who} seq {item['seq']}: {item['reason']}")
        if len(refused) > 50:
            out.print(f"  … and {len(refused) - 50} more (use --json for all)")
    if refused or forks:
        raise typer.Exit(1)
