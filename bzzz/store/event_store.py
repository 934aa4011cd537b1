"""The event store, built on eventsourcing's SQLAlchemy process recorder.

One stream per author: originator id from the author key, originator version = seq,
topic = kind, state = the entry bytes exactly as signed. The recorder's unique
(originator, version) index is what stops two entries at one seq. Heads and fork evidence
are written in the same transaction as the entries they describe.

Writers are optimistic: read heads, decide, write with a check that the head has not
moved; a concurrent writer turns into a retry, never into a corrupt log.
"""

from __future__ import annotations

import random
import time
from collections import defaultdict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar

import sqlalchemy.exc
from eventsourcing.persistence import IntegrityError as EsIntegrityError
from eventsourcing.persistence import PersistenceError, StoredEvent
from eventsourcing_sqlalchemy.datastore import SQLAlchemyDatastore
from eventsourcing_sqlalchemy.recorders import SQLAlchemyProcessRecorder
from sqlalchemy import Engine, bindparam, event, func, insert, inspect, select, update
from sqlalchemy.orm import Session

from bzzz.domain.chain import Head, check_run, conflicts, valid_prefix
from bzzz.domain.entry import Entry, create_entry, decode_entry
from bzzz.domain.identity import Signer
from bzzz.errors import ConflictError, EntryError, StoreError, one_line
from bzzz.store import tables
from bzzz.store.ddl import ensure_tables
from bzzz.store.tables import EVENTS_TABLE, TRACKING_TABLE, originator_of
from bzzz.store.urls import StoreUrl

# Writers retry a lost race with jittered backoff until this many seconds have passed.
WRITE_DEADLINE_S = 60.0
T = TypeVar("T")


def _retrying(attempt: Callable[[], T], what: str) -> T:
    """Run `attempt` until it does not raise ConflictError, backing off with jitter."""
    deadline = time.monotonic() + WRITE_DEADLINE_S
    delay = 0.001
    while True:
        try:
            return attempt()
        except ConflictError:
            if time.monotonic() > deadline:
                raise StoreError(
                    f"could not {what}: other writers kept changing these logs"
                ) from None
            time.sleep(random.uniform(0, delay))
            delay = min(delay * 2, 0.25)


@dataclass(frozen=True, slots=True)
class StoredHead:
    author: bytes
    seq: int
    hash: bytes
    lamport: int
    forked_seq: int | None

    @property
    def head(self) -> Head:
        return Head(self.author, self.seq, self.hash, self.lamport)


@dataclass(frozen=True, slots=True)
class StoredEntry:
    """An entry as stored: its arrival position and the exact bytes."""

    position: int
    seq: int
    kind: str
    raw: bytes

    def decode(self) -> Entry:
        return decode_entry(self.raw)


@dataclass(frozen=True, slots=True)
class Refusal:
    author: bytes | None
    seq: int | None
    code: str
    reason: str


@dataclass
class IngestReport:
    accepted: list[Entry] = field(default_factory=list)
    duplicates: int = 0
    forks: list[Entry] = field(default_factory=list)
    refused: list[Refusal] = field(default_factory=list)


@dataclass
class _Plan:
    """What one ingest attempt will write."""

    entries: list[Entry] = field(default_factory=list)
    heads: dict[bytes, tuple[StoredHead | None, Head]] = field(default_factory=dict)
    forks: list[tuple[Entry, int]] = field(default_factory=list)
    report: IngestReport = field(default_factory=IngestReport)


def _set_sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    # A signed entry that was acknowledged and then lost would make this node sign a
    # different entry at the same seq: a fork of its own log. So: fsync every commit.
    cursor.execute("PRAGMA synchronous=FULL")
    cursor.close()


class EventStore:
    def __init__(self, store_url: StoreUrl, *, create: bool = True) -> None:
        self.url = store_url
        try:
            self.datastore = SQLAlchemyDatastore(
                url=store_url.url.render_as_string(hide_password=False),
                **store_url.engine_kwargs,
            )
            engine = self.engine
            if store_url.is_sqlite:
                event.listen(engine, "connect", _set_sqlite_pragmas)
            self.recorder = SQLAlchemyProcessRecorder(
                self.datastore,
                events_table_name=EVENTS_TABLE,
                tracking_table_name=TRACKING_TABLE,
            )
            if create:
                ensure_tables(
                    engine,
                    [
                        *self.recorder.tables,
                        self.recorder.tracking_table,
                        *tables.metadata.sorted_tables,
                    ],
                )
                self._stamp_schema()
            elif not inspect(engine).has_table(EVENTS_TABLE):
                raise StoreError(f"no BZZZ store at {store_url.display()}")
            self._check_schema()
        except (sqlalchemy.exc.SQLAlchemyError, PersistenceError) as exc:
            raise StoreError(f"cannot open store {store_url.display()}: {one_line(exc)}") from None
        self._events = self.recorder.events_record_cls.__table__
        # Our own logs' heads and the clock after our last append, so that appending
        # needs no reads; the guarded head update refuses a stale cache.
        self._own: dict[bytes, tuple[StoredHead, int]] = {}
        self._seen_lamport = 0

    @property
    def engine(self) -> Engine:
        engine = self.datastore.engine
        assert isinstance(engine, Engine)
        return engine

    def close(self) -> None:
        self.engine.dispose()

    def __enter__(self) -> EventStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _stamp_schema(self) -> None:
        try:
            with self.engine.begin() as conn:
                exists = conn.execute(
                    select(tables.meta.c.value).where(tables.meta.c.key == "schema_version")
                ).first()
                if exists is None:
                    conn.execute(
                        insert(tables.meta).values(
                            key="schema_version", value=str(tables.SCHEMA_VERSION)
                        )
                    )
        except sqlalchemy.exc.IntegrityError:
            pass  # another process stamped it first

    def _check_schema(self) -> None:
        with self.engine.connect() as conn:
            if not inspect(conn).has_table(tables.meta.name):
                raise StoreError(f"{self.url.display()} is not a BZZZ store (no schema version)")
            value = conn.execute(
                select(tables.meta.c.value).where(tables.meta.c.key == "schema_version")
            ).scalar()
        if value is None or not str(value).isdigit():
            raise StoreError(
                f"{self.url.display()} has no readable schema version: "
                "it is damaged or not a BZZZ store"
            )
        if int(value) > tables.SCHEMA_VERSION:
            raise StoreError(
                f"store {self.url.display()} has schema version {value!r}; this bzzz reads "
                f"up to {tables.SCHEMA_VERSION}: upgrade bzzz"
            )

    # Reads

    def heads(self) -> dict[bytes, StoredHead]:
        with self.engine.connect() as conn:
            rows = conn.execute(select(tables.heads)).all()
        return {bytes(r.author): _stored_head(r) for r in rows}

    def head(self, author: bytes) -> StoredHead | None:
        with self.engine.connect() as conn:
            row = conn.execute(select(tables.heads).where(tables.heads.c.author == author)).first()
        return None if row is None else _stored_head(row)

    def max_lamport(self) -> int:
        with self.engine.connect() as conn:
            value = conn.execute(select(func.max(tables.heads.c.lamport))).scalar()
        return int(value or 0)

    def count(self) -> int:
        with self.engine.connect() as conn:
            return int(conn.execute(select(func.count()).select_from(self._events)).scalar() or 0)

    def max_position(self) -> int:
        return self.recorder.max_notification_id() or 0

    def entries(
        self, author: bytes, *, after: int = 0, upto: int | None = None, limit: int | None = None
    ) -> list[StoredEntry]:
        """An author's entries with seq in (after, upto], in seq order."""
        e = self._events.c
        query = (
            select(e.id, e.originator_version, e.topic, e.state)
            .where(e.originator_id == originator_of(author), e.originator_version > after)
            .order_by(e.originator_version)
        )
        if upto is not None:
            query = query.where(e.originator_version <= upto)
        if limit is not None:
            query = query.limit(limit)
        with self.engine.connect() as conn:
            return [_stored_entry(r) for r in conn.execute(query)]

    def entry_at(self, author: bytes, seq: int) -> Entry | None:
        found = self.entries(author, after=seq - 1, upto=seq)
        return found[0].decode() if found else None

    def notifications(
        self,
        *,
        after: int = 0,
        limit: int = 1000,
        kinds: Sequence[str] = (),
        author: bytes | None = None,
    ) -> list[StoredEntry]:
        """Entries in local arrival order, after position `after`."""
        query = self._arrival_query(kinds, author).where(self._events.c.id > after)
        with self.engine.connect() as conn:
            return [_stored_entry(r) for r in conn.execute(query.limit(limit))]

    def latest(
        self, limit: int, *, kinds: Sequence[str] = (), author: bytes | None = None
    ) -> list[StoredEntry]:
        """The `limit` most recent arrivals, oldest first."""
        query = self._arrival_query(kinds, author).order_by(None).order_by(self._events.c.id.desc())
        with self.engine.connect() as conn:
            rows = [_stored_entry(r) for r in conn.execute(query.limit(limit))]
        rows.reverse()
        return rows

    def _arrival_query(self, kinds: Sequence[str], author: bytes | None) -> Any:
        e = self._events.c
        query = select(e.id, e.originator_version, e.topic, e.state).order_by(e.id)
        if kinds:
            query = query.where(e.topic.in_(list(kinds)))
        if author is not None:
            query = query.where(e.originator_id == originator_of(author))
        return query

    def forks(self) -> list[tuple[bytes, int, bytes]]:
        """Fork evidence: (author, seq, raw entry) for every conflicting entry held."""
        f = tables.forks.c
        with self.engine.connect() as conn:
            rows = conn.execute(select(f.author, f.seq, f.raw).order_by(f.id)).all()
        try:
            return [(_as_bytes(a), _as_int(s), _as_bytes(r)) for a, s, r in rows]
        except TypeError as exc:
            raise _damaged(f"fork evidence: {exc}") from None

    # Writes

    def append(self, signer: Signer, kind: str, body: bytes, ts: int) -> Entry:
        return self.append_batch(signer, [(kind, body)], ts)[0]

    def append_batch(
        self, signer: Signer, items: Sequence[tuple[str, bytes]], ts: int
    ) -> list[Entry]:
        """Sign and store entries of our own, atomically: all of them or none."""
        if not items:
            return []
        author = signer.public_key

        def attempt() -> list[Entry]:
            cached = self._own.get(author)
            if cached is not None:
                current, lamport = cached
            else:
                current, lamport = self.head(author), self.max_lamport()
            if current is not None and current.forked_seq is not None:
                raise StoreError(
                    f"this node's own log forked at seq {current.forked_seq}; "
                    "it must not sign more entries with this identity"
                )
            lamport = max(lamport, self._seen_lamport)
            seq, prev = (current.seq, current.hash) if current else (0, None)
            batch: list[Entry] = []
            for kind, body in items:
                seq += 1
                lamport += 1
                entry = create_entry(
                    signer, seq=seq, prev=prev, lamport=lamport, ts=ts, kind=kind, body=body
                )
                batch.append(entry)
                prev = entry.hash
            try:
                self._write(
                    batch, {author: (current, Head.of(batch[-1]))}, [], clock=batch[0].lamport
                )
            except ConflictError:
                self._own.pop(author, None)  # stale: read afresh on the next attempt
                raise
            last = batch[-1]
            self._own[author] = (
                StoredHead(author, last.seq, last.hash, last.lamport, None),
                last.lamport,
            )
            return batch

        return _retrying(attempt, "append")

    def ingest(self, raws: Iterable[bytes]) -> IngestReport:
        """Verify and store entries from elsewhere; report what was refused and why.

        Per author, entries are taken in seq order; each contiguous run is trusted on one
        signature (its last), and only a failing run is checked entry by entry.
        """
        decoded: list[Entry] = []
        early_refusals: list[Refusal] = []
        for raw in raws:
            try:
                decoded.append(decode_entry(raw))
            except EntryError as error:
                early_refusals.append(Refusal(None, None, error.code, str(error)))
        by_author: dict[bytes, list[Entry]] = defaultdict(list)
        for entry in decoded:
            by_author[entry.author].append(entry)
        for entries in by_author.values():
            entries.sort(key=lambda e: e.seq)

        def attempt() -> IngestReport:
            plan = self._plan_ingest(by_author)
            self._write(plan.entries, plan.heads, plan.forks)
            return plan.report

        report = _retrying(attempt, "ingest")
        report.refused[:0] = early_refusals
        if report.accepted:
            self._seen_lamport = max(self._seen_lamport, *(e.lamport for e in report.accepted))
            for entry in report.accepted:
                self._own.pop(entry.author, None)
        return report

    def _plan_ingest(self, by_author: dict[bytes, list[Entry]]) -> _Plan:
        plan = _Plan()
        known = self.heads()
        for author, entries in by_author.items():
            self._plan_author(plan, known.get(author), author, entries)
        return plan

    def _plan_author(
        self, plan: _Plan, stored: StoredHead | None, author: bytes, entries: list[Entry]
    ) -> None:
        report = plan.report
        if stored is not None and stored.forked_seq is not None:
            report.refused.extend(_frozen(author, e.seq, stored.forked_seq) for e in entries)
            return
        head = stored.head if stored else None
        head_seq = head.seq if head else 0
        old = [e for e in entries if e.seq <= head_seq]
        evidence = self._check_known(plan, author, old)
        run: list[Entry] = []
        rivals: list[Entry] = []
        seen: dict[int, bytes] = {}
        for entry in (e for e in entries if e.seq > head_seq):
            if entry.seq not in seen:
                seen[entry.seq] = entry.hash
                run.append(entry)
            elif seen[entry.seq] == entry.hash:
                report.duplicates += 1
            else:
                rivals.append(entry)
        if evidence is not None:
            report.refused.extend(_frozen(author, e.seq, evidence) for e in run + rivals)
            return
        accepted = self._accept_run(plan, head, run, author)
        by_seq = {e.seq: e for e in accepted}
        for rival in rivals:
            ours = by_seq.get(rival.seq)
            if ours is not None and self._is_evidence(ours, rival, report):
                plan.forks.append((rival, rival.seq))
            elif ours is None:
                report.refused.append(
                    Refusal(
                        author,
                        rival.seq,
                        "after-refused",
                        f"seq {rival.seq} follows a refused entry",
                    )
                )
        if accepted:
            plan.entries.extend(accepted)
            plan.heads[author] = (stored, Head.of(accepted[-1]))

    def _check_known(self, plan: _Plan, author: bytes, old: list[Entry]) -> int | None:
        """Sort entries at seqs we already hold into duplicates and fork evidence; the
        lowest forked seq, if any."""
        if not old:
            return None
        report = plan.report
        forked: int | None = None
        held = self.entries(author, after=old[0].seq - 1, upto=old[-1].seq)
        ours = {s.seq: s for s in held}
        for entry in old:
            mine = ours.get(entry.seq)
            try:
                decoded = mine.decode() if mine is not None else None
            except EntryError:
                decoded = None
            if decoded is None:
                report.refused.append(
                    Refusal(
                        author,
                        entry.seq,
                        "store-damaged",
                        f"seq {entry.seq}: the stored copy is missing or damaged; run `bzzz audit`",
                    )
                )
            elif decoded.hash == entry.hash:
                report.duplicates += 1
            elif self._is_evidence(decoded, entry, report):
                plan.forks.append((entry, entry.seq))
                forked = entry.seq if forked is None else min(forked, entry.seq)
        return forked

    def _is_evidence(self, ours: Entry, theirs: Entry, report: IngestReport) -> bool:
        """Whether `theirs` proves a fork against `ours`; refuses it when unsigned."""
        if not theirs.signature_ok():
            report.refused.append(
                Refusal(
                    theirs.author,
                    theirs.seq,
                    "bad-signature",
                    f"seq {theirs.seq}: signature does not verify",
                )
            )
            return False
        if conflicts(ours, theirs):
            report.forks.append(theirs)
            return True
        return False

    def _accept_run(
        self, plan: _Plan, head: Head | None, run: list[Entry], author: bytes
    ) -> list[Entry]:
        report = plan.report
        if not run:
            return []
        try:
            check_run(head, run)
        except EntryError:
            pass
        else:
            report.accepted.extend(run)
            return run
        good, error = valid_prefix(head, run)
        assert error is not None
        accepted, rejected = run[:good], run[good:]
        report.accepted.extend(accepted)
        first = rejected[0]
        if error.code == "broken-link" and first.signature_ok():
            # A validly signed entry that names another predecessor: proof of a fork.
            plan.forks.append((first, first.seq - 1))
            report.forks.append(first)
        else:
            report.refused.append(Refusal(author, first.seq, error.code, str(error)))
        report.refused.extend(
            Refusal(author, e.seq, "after-refused", f"seq {e.seq} follows a refused entry")
            for e in rejected[1:]
        )
        return accepted

    def _write(
        self,
        entries: list[Entry],
        heads: dict[bytes, tuple[StoredHead | None, Head]],
        fork_evidence: list[tuple[Entry, int]],
        clock: int | None = None,
    ) -> None:
        """Store entries, move heads and keep fork evidence in one transaction. With
        `clock`, the write also fails if any log holds a lamport at or above it."""
        if not entries and not fork_evidence:
            return
        originators = {author: originator_of(author) for author in {e.author for e in entries}}
        stored_events = [StoredEvent(originators[e.author], e.seq, e.kind, e.raw) for e in entries]
        try:
            with self.datastore.transaction(commit=True) as session:
                if stored_events:
                    self.recorder.insert_events(stored_events, session=session)
                forked_at: dict[bytes, int] = {}
                for entry, seq in fork_evidence:
                    forked_at[entry.author] = min(seq, forked_at.get(entry.author, seq))
                for author, (before, after) in heads.items():
                    _move_head(session, before, after, forked_at.pop(author, None), clock)
                for author, seq in forked_at.items():
                    _mark_forked(session, author, seq)
                for entry, _ in fork_evidence:
                    _record_fork(session, entry)
        except (sqlalchemy.exc.IntegrityError, EsIntegrityError) as exc:
            raise ConflictError(str(exc)) from None
        except (sqlalchemy.exc.SQLAlchemyError, PersistenceError) as exc:
            raise StoreError(f"could not write to {self.url.display()}: {one_line(exc)}") from None


_h = tables.heads.c
_MOVE_HEAD = (
    update(tables.heads)
    .where(_h.author == bindparam("b_author"), _h.seq == bindparam("b_seq"))
    .where(_h.hash == bindparam("b_hash"))
    .values(seq=bindparam("a_seq"), hash=bindparam("a_hash"), lamport=bindparam("a_lamport"))
)
# Own appends also require the log not to be forked and no log to have reached the clock
# the new entries start from, all in the one statement that moves the head.
_MOVE_OWN_HEAD = _MOVE_HEAD.where(
    _h.forked_seq.is_(None),
    select(func.coalesce(func.max(_h.lamport), 0)).scalar_subquery() < bindparam("clock"),
)
_NEW_HEAD = insert(tables.heads).values(
    author=bindparam("a_author"),
    seq=bindparam("a_seq"),
    hash=bindparam("a_hash"),
    lamport=bindparam("a_lamport"),
    forked_seq=bindparam("forked_seq"),
)
_HIGHEST_CLOCK = select(func.max(_h.lamport))


def _move_head(
    session: Session,
    before: StoredHead | None,
    after: Head,
    forked_seq: int | None,
    clock: int | None = None,
) -> None:
    """Move a head from `before` to `after`, or raise ConflictError if it is not where
    the writer thought (another writer, a fork found meanwhile, a newer clock). The
    statements are built once: building them per call cost more than running them."""
    conn = session.connection()
    moved = {"a_seq": after.seq, "a_hash": after.hash, "a_lamport": after.lamport}
    if before is None:
        if clock is not None:
            highest = conn.execute(_HIGHEST_CLOCK).scalar()
            if highest is not None and highest >= clock:
                raise ConflictError("a log with a later lamport arrived")
        conn.execute(_NEW_HEAD, {**moved, "a_author": after.author, "forked_seq": forked_seq})
        return
    params = {**moved, "b_author": after.author, "b_seq": before.seq, "b_hash": before.hash}
    if clock is not None:
        result = conn.execute(_MOVE_OWN_HEAD, {**params, "clock": clock})
    else:
        result = conn.execute(_MOVE_HEAD, params)
    if result.rowcount != 1:
        raise ConflictError("head moved")
    if forked_seq is not None:
        _mark_forked(session, after.author, forked_seq)


def _frozen(author: bytes, seq: int, forked_seq: int) -> Refusal:
    return Refusal(
        author,
        seq,
        "frozen",
        f"author forked at seq {forked_seq}; its entries are no longer accepted",
    )


def _mark_forked(session: Session, author: bytes, seq: int) -> None:
    h = tables.heads.c
    session.execute(
        update(tables.heads)
        .where(h.author == author, (h.forked_seq.is_(None)) | (h.forked_seq > seq))
        .values(forked_seq=seq)
    )


def _record_fork(session: Session, entry: Entry) -> None:
    f = tables.forks.c
    exists = session.execute(select(f.id).where(f.hash == entry.hash)).first()
    if exists is None:
        session.execute(
            insert(tables.forks).values(
                author=entry.author, seq=entry.seq, hash=entry.hash, raw=entry.raw
            )
        )


def _damaged(what: str) -> StoreError:
    return StoreError(f"the store is damaged ({what}); run `bzzz audit` to see where")


def _as_bytes(value: Any) -> bytes:
    if isinstance(value, bytes | memoryview):
        return bytes(value)
    raise TypeError(f"expected bytes, found {type(value).__name__}")


def _as_int(value: Any) -> int:
    if type(value) is not int:
        raise TypeError(f"expected a whole number, found {type(value).__name__}")
    return value


def _stored_head(row: Any) -> StoredHead:
    try:
        return StoredHead(
            _as_bytes(row.author),
            _as_int(row.seq),
            _as_bytes(row.hash),
            _as_int(row.lamport),
            None if row.forked_seq is None else _as_int(row.forked_seq),
        )
    except (TypeError, ValueError) as exc:
        raise _damaged(f"a recorded head: {exc}") from None


def _stored_entry(row: Any) -> StoredEntry:
    try:
        return StoredEntry(_as_int(row[0]), _as_int(row[1]), str(row[2]), _as_bytes(row[3]))
    except (TypeError, ValueError) as exc:
        raise _damaged(f"the entry at position {row[0]!r}: {exc}") from None
