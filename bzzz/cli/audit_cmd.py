"""`bzzz audit`: verify logs; exit 0 clean, 1 findings, 2 usage."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeRemainingColumn

from bzzz.audit.report import AuditReport
from bzzz.audit.runner import (
    Reference,
    audit_bundle,
    audit_store,
    bundle_reference,
    compare_against,
    store_reference,
)
from bzzz.cli.authors import resolve_author
from bzzz.cli.options import AuthorOption, HomeOption, JsonOption
from bzzz.cli.render import err, out, print_json
from bzzz.errors import UsageError
from bzzz.home.config import CONFIG_FILE
from bzzz.home.location import resolve_home
from bzzz.home.node import cluster_id_of, open_config, roles_of, store_url_of
from bzzz.store import EventStore
from bzzz.store.urls import StoreUrl, resolve_store_url

PROGRESS_FROM = 20_000


class _RichProgress:
    """A progress bar on stderr for large audits, when stderr is a terminal."""

    def __init__(self) -> None:
        self._bar: Progress | None = None
        self._task: object = None

    def start(self, total: int) -> None:
        if total >= PROGRESS_FROM and sys.stderr.isatty():
            self._bar = Progress(
                "[progress.description]{task.description}",
                BarColumn(),
                MofNCompleteColumn(),
                TimeRemainingColumn(),
                console=err,
                transient=True,
            )
            self._bar.start()
            self._task = self._bar.add_task("auditing", total=total)

    def advance(self, entries: int) -> None:
        if self._bar is not None:
            self._bar.advance(self._task, entries)  # type: ignore[arg-type]

    def stop(self) -> None:
        if self._bar is not None:
            self._bar.stop()


def _url_of_home(home: Path) -> StoreUrl:
    return store_url_of(home, open_config(home))


def _open_reference(text: str) -> Reference:
    path = Path(text)
    if "://" in text:
        store = EventStore(resolve_store_url(text), create=False)
        return store_reference(store)
    if path.is_dir() and (path / CONFIG_FILE).exists():
        return store_reference(EventStore(_url_of_home(path.absolute()), create=False))
    if path.exists():
        return bundle_reference(path)
    raise UsageError(f"--against {text!r}: not a store URL, a node home or a bundle file")


def audit(
    home: HomeOption = None,
    store: Annotated[
        str | None, typer.Option("--store", help="Audit the store at this URL.")
    ] = None,
    bundle: Annotated[Path | None, typer.Option("--bundle", help="Audit a bundle file.")] = None,
    author: AuthorOption = None,
    full: Annotated[
        bool, typer.Option("--full", help="Verify every signature (over all cores).")
    ] = False,
    against: Annotated[
        str | None,
        typer.Option("--against", help="Another store URL, node home or bundle to compare with."),
    ] = None,
    workers: Annotated[
        int | None, typer.Option("--workers", min=1, help="Processes to use (default: cores).")
    ] = None,
    cluster: Annotated[
        str | None,
        typer.Option(
            "--cluster",
            help="The cluster id (its founding entry's hash) membership must follow from "
            "(default: the node's, the bundle's, or the store's only founding entry).",
        ),
    ] = None,
    json_: JsonOption = False,
) -> None:
    """Verify every log: encoding, signatures, links, seq, Lamport, metadata, forks."""
    if sum(x is not None for x in (home, store, bundle)) > 1:
        raise UsageError("give at most one of --home, --store and --bundle")
    progress = _RichProgress()
    try:
        founding = _cluster_id(cluster)
        report, ours = _run(home, store, bundle, author, full, workers, progress, founding)
    finally:
        progress.stop()
    if against is not None:
        wanted = None if author is None else set(report.heads) or None
        compare_against(report, ours, _open_reference(against), wanted)
    _print(report, json_)
    if not report.ok:
        raise typer.Exit(1)


def _run(
    home: Path | None,
    store: str | None,
    bundle: Path | None,
    author: str | None,
    full: bool,
    workers: int | None,
    progress: _RichProgress,
    founding: bytes | None,
) -> tuple[AuditReport, Reference]:
    if bundle is not None:
        reference = bundle_reference(bundle)
        wanted = {resolve_author(author, reference[0])} if author else None
        report = audit_bundle(
            bundle, authors=wanted, full=full, progress=progress, founding=founding
        )
        return report, reference
    roles = None
    if store is not None:
        url = resolve_store_url(store)
    else:
        where = resolve_home(home)
        config = open_config(where)
        url, roles = store_url_of(where, config), roles_of(where, config)
        founding = founding or cluster_id_of(config)
    opened = EventStore(url, create=False)
    reference = store_reference(opened)
    wanted = {resolve_author(author, reference[0])} if author else None
    report = audit_store(
        url,
        authors=wanted,
        full=full,
        workers=workers,
        progress=progress,
        roles=roles,
        founding=founding,
    )
    return report, reference


def _cluster_id(text: str | None) -> bytes | None:
    if text is None:
        return None
    try:
        found = bytes.fromhex(text.strip())
    except ValueError:
        found = b""
    if len(found) != 32:
        raise UsageError(f"--cluster {text!r}: give the 64 hex digits of a cluster id")
    return found


def _print(report: AuditReport, as_json: bool) -> None:
    if as_json:
        print_json(report.as_json())
        return
    count = len(report.findings)
    plural = "finding" if count == 1 else "findings"
    verdict = "[green]clean[/green]" if report.ok else f"[red]{count} {plural}[/red]"
    out.print(
        f"Audited {report.entries} entries in {report.logs} logs from {report.source} "
        f"({report.mode} mode, {report.seconds:.2f}s): {verdict}"
    )
    lead = report.leadership
    if lead is not None and lead["proven_terms"]:
        leader = str(lead["latest_leader"])[:12]
        waiting = lead["waiting_for_votes"]
        out.print(
            f"  leadership: {lead['proven_terms']} terms proven by their votes; "
            f"term {lead['latest_term']} led by {leader}"
            + (f"; {waiting} claims wait for vote entries not here yet" if waiting else "")
        )
    for row in report.ceremonies or []:
        by = str(row["by_name"] or str(row["by"])[:12])
        if row["ceremony"] == "split":
            holders = row["holders"]
            shares = str(len(holders)) if isinstance(holders, list) else "?"
            out.print(
                f"  key ceremony: split {str(row['entry'])[:12]} by {escape(by)} "
                f"({row['threshold']} of {shares})"
            )
        else:
            out.print(
                f"  key ceremony: reconstruct {str(row['entry'])[:12]} by {escape(by)}: "
                f"{row['status']} ({escape(str(row['reason']))})"
            )
    for finding in report.sorted_findings():
        who = (finding.author or "?")[:12]
        seq = "-" if finding.seq is None else str(finding.seq)
        out.print(f"  [red]{finding.code:<18}[/red] {who} seq {seq:<6} {finding.problem}")
