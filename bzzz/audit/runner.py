"""Running an audit over a store or a bundle.

A store is audited in chunks of each log, over every core when it is large: workers
stream their chunk from the database, so memory stays flat whatever the store's size.
"""

from __future__ import annotations

import contextlib
import multiprocessing
import os
import time
from collections import defaultdict
from collections.abc import Callable, Iterable
from concurrent.futures import ProcessPoolExecutor, as_completed
from pathlib import Path
from typing import Protocol
from uuid import UUID

import sqlalchemy.exc

from bzzz.audit.chunks import Chunk, check_chunk, close_worker_stores
from bzzz.audit.reader import read_forks, read_heads, read_streams, scan
from bzzz.audit.report import AuditReport
from bzzz.domain import membership as ms
from bzzz.domain import slurp as sl
from bzzz.domain.audit_rules import (
    ChunkResult,
    Finding,
    LogChecker,
    Row,
    compare_heads,
    head_findings,
    join_chunks,
)
from bzzz.domain.chain import Head, conflicts
from bzzz.domain.entry import Entry, decode_entry, entry_hash
from bzzz.domain.key_audit import KINDS as KEY_KINDS
from bzzz.domain.key_audit import audit_keys
from bzzz.domain.leadership_audit import KINDS as LEADERSHIP_KINDS
from bzzz.domain.leadership_audit import audit_leadership
from bzzz.domain.membership_audit import audit_membership
from bzzz.domain.roles import Roles
from bzzz.errors import BundleError, EntryError, NotABundleError, one_line
from bzzz.home.roles import load_roles
from bzzz.store import EventStore, StoredHead
from bzzz.store.bundle import bundle_cluster, read_bundle
from bzzz.store.tables import originator_of
from bzzz.store.urls import StoreUrl

CHUNK_ENTRIES = 50_000
# Below this many entries, starting worker processes costs more than it saves.
PARALLEL_FROM = 2 * CHUNK_ENTRIES


class Progress(Protocol):
    def start(self, total: int) -> None: ...

    def advance(self, entries: int) -> None: ...


class _NoProgress:
    def start(self, total: int) -> None:
        pass

    def advance(self, entries: int) -> None:
        pass


def audit_store(
    url: StoreUrl,
    *,
    authors: set[bytes] | None = None,
    full: bool = False,
    workers: int | None = None,
    progress: Progress | None = None,
    roles: Roles | None = None,
    founding: bytes | None = None,
) -> AuditReport:
    """`roles` decide who votes (the node's project roles; the packaged ones if None);
    `founding` is the cluster id the membership must follow from (None: the store's
    only founding entry; several are then a finding)."""
    progress = progress or _NoProgress()
    started = time.perf_counter()
    report = AuditReport(source=url.display(), mode="full" if full else "fast")
    with EventStore(url, create=False) as store:
        try:
            _audit_opened(store, url, report, authors, full, workers, progress)
            if authors is None:  # leadership needs every log
                _audit_leadership(store, report, roles or load_roles(None), founding)
        except sqlalchemy.exc.DatabaseError as exc:
            report.findings.append(
                Finding(
                    None, None, "store-damaged", f"the store could not be read: {one_line(exc)}"
                )
            )
    report.seconds = time.perf_counter() - started
    return report


def seq_ranges(highest: int, rows: int) -> list[tuple[int, int]]:
    """The seq ranges (after, upto] a log is checked in, of CHUNK_ENTRIES seqs each. As
    many as the rows held need: a damaged row can claim any seq (2**40, say), and the
    last range then reaches it instead of the audit making a range for every 50,000
    seqs on the way."""
    count = min(-(-highest // CHUNK_ENTRIES), rows // CHUNK_ENTRIES + 1)
    ranges = [(k * CHUNK_ENTRIES, (k + 1) * CHUNK_ENTRIES) for k in range(count)]
    if ranges:
        ranges[-1] = (ranges[-1][0], highest)
    return ranges


def _audit_opened(
    store: EventStore,
    url: StoreUrl,
    report: AuditReport,
    authors: set[bytes] | None,
    full: bool,
    workers: int | None,
    progress: Progress,
) -> None:
    recorded, malformed = read_heads(store)
    report.findings.extend(malformed)
    logs = _find_logs(store, recorded, report)
    if authors is not None:
        logs = {a: v for a, v in logs.items() if a in authors}
        report.findings = [f for f in report.findings if _named(f, authors)]
    chunks = [
        Chunk(originator, author, after, upto)
        for author, (originator, highest, rows) in logs.items()
        for after, upto in seq_ranges(highest, rows)
    ]
    total = sum(rows for _o, _h, rows in logs.values())
    progress.start(total)
    results = _run_chunks(url, chunks, full, workers, total, progress)
    by_author: dict[bytes, list[ChunkResult]] = defaultdict(list)
    for chunk, result in zip(chunks, results, strict=True):
        by_author[chunk.author].append(result)
    for author, chunk_results in by_author.items():
        _finish_log(report, author, chunk_results, recorded.get(author), full)
    report.logs = len(logs)
    report.findings.extend(_fork_findings(store, recorded, authors))


def _audit_leadership(
    store: EventStore, report: AuditReport, roles: Roles, founding: bytes | None
) -> None:
    entries: list[Entry] = []
    after = 0
    kinds = [*LEADERSHIP_KINDS, *KEY_KINDS, *sl.KINDS]
    while page := store.notifications(after=after, kinds=kinds, limit=10_000):
        for stored in page:
            with contextlib.suppress(EntryError):  # the log checks report damaged rows
                entries.append(stored.decode())
        after = page[-1].position
    checked = audit_leadership(entries, roles, founding)
    report.findings.extend(checked.findings)
    acts = [ms.MembershipAct.of(e) for e in entries if e.kind in ms.KINDS]
    report.findings.extend(audit_membership(acts, roles, founding, report.heads))
    report.leadership = checked.summary()
    members = ms.fold_membership(acts, roles, founding)
    names = {m.agent_id: m.name for m in (*members.members.values(), *members.removed.values())}
    keys = audit_keys(
        entries,
        checked.proof,
        [*members.members, *members.removed],
        names,
        proofs_pending=checked.waiting > 0,
    )
    report.findings.extend(keys.findings)
    report.ceremonies = keys.ceremonies
    curation = [
        sl.ActEntry(e.author, e.seq, e.lamport, e.kind, e.hash, e.body)
        for e in entries
        if e.kind in sl.KINDS
    ]
    leaders = {term: proof.leader for term, proof in checked.proof.proven.items()}
    report.findings.extend(
        sl.audit_acts(curation, leaders, checked.proof.ends(), proofs_pending=checked.waiting > 0)
    )


def _named(finding: Finding, authors: set[bytes]) -> bool:
    return finding.author is not None and bytes.fromhex(finding.author) in authors


def _find_logs(
    store: EventStore, recorded: dict[bytes, StoredHead], report: AuditReport
) -> dict[bytes, tuple[UUID, int, int]]:
    """author -> (stream, highest stored seq, rows), from the streams actually present,
    reporting streams and heads that do not match each other."""
    by_originator = {originator_of(a): a for a in recorded}
    logs: dict[bytes, tuple[UUID, int, int]] = {}
    streams, malformed = read_streams(store)
    report.findings.extend(malformed)
    for originator, rows, highest in streams:
        author = by_originator.get(originator) or _author_of_stream(store, originator)
        if author is None or originator_of(author) != originator:
            report.findings.append(
                Finding(
                    None,
                    None,
                    "unknown-stream",
                    f"stream {originator} holds {rows} entries that belong to no recorded log",
                )
            )
            continue
        if author not in recorded:
            report.findings.append(
                Finding(
                    author.hex(),
                    None,
                    "metadata-mismatch",
                    "the store holds this log but did not record its head",
                )
            )
        logs[author] = (originator, highest, rows)
    for author, head in recorded.items():
        if author not in logs:
            report.findings.append(
                Finding(
                    author.hex(),
                    1,
                    "missing",
                    f"seq 1 to {head.seq} missing: the whole log is gone from the store",
                )
            )
    return logs


def _stored_entry(store: EventStore, author: bytes, seq: int) -> Entry | None:
    for _seq, _kind, raw, _position in scan(store, originator_of(author), seq - 1, seq):
        try:
            return decode_entry(raw)
        except EntryError:
            return None
    return None


def _author_of_stream(store: EventStore, originator: UUID) -> bytes | None:
    for _seq, _kind, raw, _position in scan(store, originator, 0, 2**62, page=1):
        try:
            return decode_entry(raw).author
        except EntryError:
            return None
    return None


def _run_chunks(
    url: StoreUrl,
    chunks: list[Chunk],
    full: bool,
    workers: int | None,
    total: int,
    progress: Progress,
) -> list[ChunkResult]:
    workers = workers or os.cpu_count() or 1
    if workers == 1 or total < PARALLEL_FROM or len(chunks) < 2:
        results = []
        for chunk in chunks:
            result = check_chunk(url, chunk, full)
            progress.advance(result.count)
            results.append(result)
        close_worker_stores()
        return results
    done: list[ChunkResult | None] = [None] * len(chunks)
    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(max_workers=workers, mp_context=context) as pool:
        futures = {pool.submit(check_chunk, url, c, full): i for i, c in enumerate(chunks)}
        for future in as_completed(futures):
            result = future.result()
            done[futures[future]] = result
            progress.advance(result.count)
    return [r for r in done if r is not None]


def _finish_log(
    report: AuditReport,
    author: bytes,
    results: list[ChunkResult],
    recorded: StoredHead | None,
    full: bool,
) -> None:
    for result in results:
        report.entries += result.count
        report.findings.extend(result.findings)
    report.findings.extend(join_chunks(author, results, full))
    last = results[-1] if results else None
    report.findings.extend(head_findings(author, last, recorded.head if recorded else None, full))
    if last is not None and last.last is not None and last.last.seq == last.last_seq:
        report.heads[author] = Head(author, last.last.seq, last.last.hash, last.last.lamport)


def _fork_findings(
    store: EventStore, recorded: dict[bytes, StoredHead], authors: set[bytes] | None
) -> list[Finding]:
    forks, found = read_forks(store)
    evidenced: set[bytes] = set()
    for author, seq, raw in forks:
        if authors is not None and author not in authors:
            continue
        evidenced.add(author)
        stored = [_stored_entry(store, author, s) for s in (seq, seq - 1) if s >= 1]
        found.append(_evidence_finding(author, seq, raw, [e for e in stored if e]))
        head = recorded.get(author)
        if head is not None and head.forked_seq is None:
            found.append(
                Finding(
                    author.hex(),
                    seq,
                    "metadata-mismatch",
                    "the store holds fork evidence for this author but has not frozen it",
                )
            )
    for author, head in recorded.items():
        wanted = authors is None or author in authors
        if head.forked_seq is not None and author not in evidenced and wanted:
            found.append(
                Finding(
                    author.hex(),
                    head.forked_seq,
                    "metadata-mismatch",
                    "the store marks this author forked but holds no evidence of it",
                )
            )
    return found


def _evidence_finding(author: bytes, seq: int, raw: bytes, stored: list[Entry]) -> Finding:
    author_hex = author.hex()
    try:
        evidence = decode_entry(raw)
    except EntryError as error:
        return Finding(author_hex, seq, "bad-evidence", f"fork evidence at seq {seq}: {error}")
    if evidence.author != author or evidence.seq != seq or not evidence.signature_ok():
        return Finding(
            author_hex,
            seq,
            "bad-evidence",
            f"fork evidence at seq {seq} is not an entry signed by this author at that seq",
        )
    for entry in stored:
        if conflicts(entry, evidence):
            where = (
                f"two different entries at seq {seq}"
                if entry.seq == seq
                else f"an entry at seq {seq} that names another seq {seq - 1}"
            )
            return Finding(
                author_hex,
                seq,
                "fork",
                f"the author signed {where} (this log has {entry.hash.hex()[:12]}, "
                f"the evidence {evidence.hash.hex()[:12]}); the author is frozen",
            )
    return Finding(
        author_hex,
        seq,
        "bad-evidence",
        f"fork evidence at seq {seq} does not conflict with this log",
    )


def audit_bundle(
    path: Path,
    *,
    authors: set[bytes] | None = None,
    full: bool = False,
    progress: Progress | None = None,
    roles: Roles | None = None,
    founding: bytes | None = None,
) -> AuditReport:
    """Audit the logs in a bundle. A bundle has no store metadata, so what is checked is
    the entries themselves, their chains, conflicting copies (forks), and that its
    membership follows from the founding entry `founding` (default: the cluster id the
    bundle names, else its only founding entry)."""
    progress = progress or _NoProgress()
    started = time.perf_counter()
    report = AuditReport(source=str(path), mode="full" if full else "fast")
    copies, damage = _read_copies(path, report)
    copies = {a: v for a, v in copies.items() if authors is None or a in authors}
    progress.start(sum(len(v) for v in copies.values()))
    for author, by_seq in copies.items():
        checker = LogChecker(author, start=1, full=full)
        for seq in sorted(by_seq):
            first, *others = by_seq[seq]
            checker.feed(Row(first, seq))
            for other in others:
                if other != first:
                    report.findings.append(
                        _evidence_finding(author, seq, other, [decode_entry(first)])
                    )
        progress.advance(checker.result.count)
        _finish_log(report, author, [checker.result], None, full)
    report.logs = len(copies)
    if damage is not None:
        report.findings.append(damage)
    if authors is None:
        acts = []
        for by_seq in copies.values():
            for raws in by_seq.values():
                with contextlib.suppress(EntryError):  # the log checks report it
                    entry = decode_entry(raws[0])
                    if entry.kind in ms.KINDS:
                        acts.append(ms.MembershipAct.of(entry))
        anchor = founding if founding is not None else bundle_cluster(path)
        report.findings.extend(audit_membership(acts, roles or load_roles(None), anchor, copies))
    report.seconds = time.perf_counter() - started
    return report


def _read_copies(
    path: Path, report: AuditReport
) -> tuple[dict[bytes, dict[int, list[bytes]]], Finding | None]:
    """author -> seq -> the copies of that entry in the bundle, in file order."""
    copies: dict[bytes, dict[int, list[bytes]]] = defaultdict(lambda: defaultdict(list))
    try:
        for index, raw in enumerate(read_bundle(path), start=1):
            try:
                entry = decode_entry(raw)
            except EntryError as error:
                report.findings.append(
                    Finding(None, None, error.code, f"entry #{index} of the bundle: {error}")
                )
                continue
            copies[entry.author][entry.seq].append(raw)
    except NotABundleError:
        raise
    except BundleError as error:
        return copies, Finding(None, None, "bundle-damaged", str(error))
    return copies, None


Reference = tuple[dict[bytes, Head], Callable[[bytes, int], bytes | None]]


def store_reference(store: EventStore) -> Reference:
    try:
        heads = {a: h.head for a, h in read_heads(store)[0].items()}
    except sqlalchemy.exc.DatabaseError:
        heads = {}  # a damaged reference: compare against what can be read

    def hash_at(author: bytes, seq: int) -> bytes | None:
        for _seq, _kind, raw, _position in scan(store, originator_of(author), seq - 1, seq):
            return entry_hash(raw)
        return None

    return heads, hash_at


def bundle_reference(path: Path) -> Reference:
    hashes: dict[bytes, dict[int, bytes]] = defaultdict(dict)
    heads: dict[bytes, Head] = {}
    for raw in read_bundle(path):
        try:
            entry = decode_entry(raw)
        except EntryError:
            continue
        hashes[entry.author].setdefault(entry.seq, entry.hash)
        current = heads.get(entry.author)
        if current is None or entry.seq > current.seq:
            heads[entry.author] = Head.of(entry)

    def hash_at(author: bytes, seq: int) -> bytes | None:
        return hashes.get(author, {}).get(seq)

    return heads, hash_at


def compare_against(
    report: AuditReport,
    ours: Reference,
    reference: Reference,
    authors: Iterable[bytes] | None = None,
) -> None:
    """Add findings for logs that are cut short or rolled back relative to `reference`."""
    our_heads, our_hash_at = ours
    their_heads, their_hash_at = reference
    wanted = set(authors) if authors is not None else set(our_heads) | set(their_heads)
    for author in sorted(wanted):
        mine = report.heads.get(author, our_heads.get(author))
        theirs = their_heads.get(author)
        finding = compare_heads(
            author,
            mine,
            theirs,
            their_hash_at(author, mine.seq) if mine and theirs and theirs.seq >= mine.seq else None,
            our_hash_at(author, theirs.seq) if mine and theirs and mine.seq >= theirs.seq else None,
        )
        if finding is not None:
            report.findings.append(finding)
