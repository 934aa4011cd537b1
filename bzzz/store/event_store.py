"""The event store, built on eventsourcing's SQLAlchemy process recorder.

One stream per author: originator id from the author key, originator version = seq,
topic = kind, state = the entry bytes exactly as signed. The recorder's unique
(originator, version) index is what stops two entries at one seq. Heads and fork evidence
are written in the same transaction as the entries they describe.

Writers are optimistic: read heads, decide, write with a check that the head has not
moved; a concurrent writer turns into a retry, never into a corrupt log.
"""

from __future__ import annotations

import contextlib
import random
import threading
import time
from collections import defaultdict
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Any, TypeVar

import sqlalchemy.exc
from eventsourcing.persistence import IntegrityError as EsIntegrityError
from eventsourcing.persistence import PersistenceError, StoredEvent
from eventsourcing_sqlalchemy.datastore import SQLAlchemyDatastore
from sqlalchemy import Connection, Engine, func, insert, inspect, select

from bzzz.domain.chain import Head
from bzzz.domain.entry import Entry, create_entry, decode_entry
from bzzz.domain.identity import Signer
from bzzz.errors import ConflictError, EntryError, StoreError, one_line
from bzzz.store import tables
from bzzz.store.ddl import ensure_tables
from bzzz.store.driver_sql import DRIVER_ERRORS, INTEGRITY_ERRORS
from bzzz.store.head_writes import mark_forked, move_head, record_fork
from bzzz.store.ingest import IngestReport, Refusal, plan_ingest
from bzzz.store.recorder import BulkProcessRecorder
from bzzz.store.records import (
    StoredEntry,
    StoredHead,
    as_bytes,
    as_int,
    damaged,
    stored_entry,
    stored_head,
)
from bzzz.store.tables import EVENTS_TABLE, TRACKING_TABLE, originator_of
from bzzz.store.urls import StoreUrl

# Writers retry a lost race with jittered backoff until this many seconds have passed.
WRITE_DEADLINE_S = 60.0
T = TypeVar("T")
# An entry this process stored, with its position in local arrival order.
Written = tuple[int, Entry]
# A write that lost a race (a unique index or a head that moved), and one that failed.
_CONFLICTS: tuple[type[Exception], ...] = (
    sqlalchemy.exc.IntegrityError,
    EsIntegrityError,
    *INTEGRITY_ERRORS,
)
_FAILURES: tuple[type[Exception], ...] = (
    sqlalchemy.exc.SQLAlchemyError,
    PersistenceError,
    *DRIVER_ERRORS,
)


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


def _set_durability(conn: Connection, durable: bool, sqlite: bool, was: bool | None) -> None:
    """Own entries are fsynced at commit: one that was sent and then lost would make this
    node sign a different entry at the same seq, a fork of its own log. Entries from
    peers are not: losing the last few to a power cut only means fetching them again,
    and the WAL is sequential, so the next durable commit makes them durable too. So
    anything this node acted on (a vote, a grant: own entries) is on disk first.

    SQLite takes the setting on the connection, outside a transaction, so it is set
    before the first statement, and only when it changes (`was`, the level it has);
    PostgreSQL takes it for the transaction."""
    if sqlite:
        if was == durable:
            return
        level = "FULL" if durable else "NORMAL"
        conn.exec_driver_sql(f"PRAGMA synchronous={level}")
    elif not durable:
        conn.exec_driver_sql("SET LOCAL synchronous_commit TO OFF")


class EventStore:
    def __init__(self, store_url: StoreUrl, *, create: bool = True) -> None:
        self.url = store_url
        try:
            self.datastore = SQLAlchemyDatastore(
                url=store_url.url.render_as_string(hide_password=False),
                **store_url.engine_kwargs,
            )
            engine = self.engine
            self.recorder = BulkProcessRecorder(
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
                # eventsourcing switches SQLite to WAL lazily, in the first write
                # transaction; concurrent first writers then fail with "database is locked".
                self.datastore.init_sqlite_wal_mode()
            elif not inspect(engine).has_table(EVENTS_TABLE):
                raise StoreError(f"no BZZZ store at {store_url.display()}")
            self._check_schema()
        except (sqlalchemy.exc.SQLAlchemyError, PersistenceError) as exc:
            raise StoreError(f"cannot open store {store_url.display()}: {one_line(exc)}") from None
        self._events = self.recorder.events_record_cls.__table__
        # Our own logs' heads and the clock after our last append, so that appending
        # needs no reads; the guarded head update refuses a stale cache.
        self._own: dict[bytes, tuple[StoredHead, int]] = {}
        # Every head as this process last wrote or read it, so that ingesting needs no
        # read either. A stale copy (another process wrote) fails the guarded write, and
        # the retry reads afresh.
        self._known: dict[bytes, StoredHead] | None = None
        self._seen_lamport = 0
        self._listeners: list[Callable[[list[Written]], None]] = []
        # One connection kept for writes, which take turns on it: with the synchronous
        # level set only when it changes, a single-entry ingest costs 0.85x the CPU of
        # checking a connection out of the pool and setting the level every write.
        self._writer: Connection | None = None
        self._writer_durable: bool | None = None  # its SQLite synchronous level, if set
        self._writer_lock = threading.Lock()

    def on_write(self, listener: Callable[[list[Written]], None]) -> None:
        """Call `listener` after each commit of entries, in the writing thread, with
        what was stored in position order: a reader in this process then need not query
        for what it could have been handed."""
        self._listeners.append(listener)

    @property
    def engine(self) -> Engine:
        engine = self.datastore.engine
        assert isinstance(engine, Engine)
        return engine

    def close(self) -> None:
        with self._writer_lock:
            if self._writer is not None:
                self._writer.close()
                self._writer = None
        self.engine.dispose()

    def __enter__(self) -> EventStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _stamp_schema(self) -> None:
        # Another process may stamp it first: its row is as good as ours.
        with contextlib.suppress(sqlalchemy.exc.IntegrityError), self.engine.begin() as conn:
            exists = conn.execute(
                select(tables.meta.c.value).where(tables.meta.c.key == "schema_version")
            ).first()
            if exists is None:
                conn.execute(
                    insert(tables.meta).values(
                        key="schema_version", value=str(tables.SCHEMA_VERSION)
                    )
                )

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
        return {bytes(r.author): stored_head(r) for r in rows}

    def head(self, author: bytes) -> StoredHead | None:
        with self.engine.connect() as conn:
            row = conn.execute(select(tables.heads).where(tables.heads.c.author == author)).first()
        return None if row is None else stored_head(row)

    def max_lamport(self) -> int:
        with self.engine.connect() as conn:
            value = conn.execute(select(func.max(tables.heads.c.lamport))).scalar()
        return int(value or 0)

    def count(self) -> int:
        with self.engine.connect() as conn:
            return int(conn.execute(select(func.count()).select_from(self._events)).scalar() or 0)

    def max_position(self) -> int:
        """The latest arrival's position. A Core query: the recorder's goes through the
        ORM, and the agent asks this often."""
        with self.engine.connect() as conn:
            return int(conn.execute(select(func.max(self._events.c.id))).scalar() or 0)

    def foreign_writes(self) -> int | None:
        """A number that changes when another connection (another process on this
        home: `bzzz log append`) commits, and not for this store's own writes: SQLite's
        `data_version` on the kept writer connection. A poller skips its query while it
        holds still; an idle daemon asks every second. None on PostgreSQL, which has
        no such number."""
        if not self.url.is_sqlite:
            return None
        try:
            with self._writer_lock:
                raw: Any = self._writer_connection().connection.driver_connection
                return int(raw.execute("PRAGMA data_version").fetchone()[0])
        except _FAILURES as exc:
            raise StoreError(f"could not read {self.url.display()}: {one_line(exc)}") from None

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
            return [stored_entry(r) for r in conn.execute(query)]

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
            return [stored_entry(r) for r in conn.execute(query.limit(limit))]

    def latest(
        self, limit: int, *, kinds: Sequence[str] = (), author: bytes | None = None
    ) -> list[StoredEntry]:
        """The `limit` most recent arrivals, oldest first."""
        query = self._arrival_query(kinds, author).order_by(None).order_by(self._events.c.id.desc())
        with self.engine.connect() as conn:
            rows = [stored_entry(r) for r in conn.execute(query.limit(limit))]
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
            return [(as_bytes(a), as_int(s), as_bytes(r)) for a, s, r in rows]
        except TypeError as exc:
            raise damaged(f"fork evidence: {exc}") from None

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
            # The clock must exceed every entry this process could have read before it
            # decided to write. Read fresh, it does: entries stored while we sign were
            # not seen, and may carry later clocks (ingest goes on; only another writer
            # of our own log conflicts). Cached, it may be stale, so the write checks
            # that no log has reached it, and a conflict drops the cache.
            cached = self._own.get(author)
            current: StoredHead | None
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
                    batch,
                    {author: (current, Head.of(batch[-1]))},
                    [],
                    own=True,
                    clock=batch[0].lamport if cached is not None else None,
                )
            except ConflictError:
                self._own.pop(author, None)  # stale: read afresh on the next attempt
                self._known = None
                raise
            last = batch[-1]
            head = StoredHead(author, last.seq, last.hash, last.lamport, None)
            self._own[author] = (head, last.lamport)
            if self._known is not None:
                self._known[author] = head
            return batch

        return _retrying(attempt, "append")

    def ingest(
        self, raws: Iterable[bytes], wanted: Callable[[Entry], bool] | None = None
    ) -> IngestReport:
        """Verify and store entries from elsewhere; report what was refused and why.
        With `wanted`, only the entries it accepts are considered; the others are
        handed back unjudged in `report.unwanted`."""
        decoded: list[Entry] = []
        early_refusals: list[Refusal] = []
        for raw in raws:
            try:
                decoded.append(decode_entry(raw))
            except EntryError as error:
                early_refusals.append(Refusal(None, None, error.code, str(error)))
        by_author: dict[bytes, list[Entry]] = defaultdict(list)
        unwanted: list[Entry] = []
        for entry in decoded:
            if wanted is None or wanted(entry):
                by_author[entry.author].append(entry)
            else:
                unwanted.append(entry)
        for entries in by_author.values():
            entries.sort(key=lambda e: e.seq)

        def attempt() -> IngestReport:
            if self._known is None:
                self._known = self.heads()
            plan = plan_ingest(by_author, self._known, self._held)
            try:
                self._write(plan.entries, plan.heads, plan.forks)
            except ConflictError:
                self._known = None
                raise
            if plan.forks:
                self._known = None  # which heads froze where: read it back
            else:
                for author, (_, head) in plan.heads.items():
                    self._known[author] = StoredHead(
                        author, head.seq, head.hash, head.lamport, None
                    )
            return plan.report

        report = _retrying(attempt, "ingest") if by_author else IngestReport()
        report.refused[:0] = early_refusals
        report.unwanted = unwanted
        if report.accepted:
            self._seen_lamport = max(self._seen_lamport, *(e.lamport for e in report.accepted))
            for entry in report.accepted:
                self._own.pop(entry.author, None)
        return report

    def _held(self, author: bytes, after: int, upto: int) -> list[StoredEntry]:
        return self.entries(author, after=after, upto=upto)

    def _writer_connection(self) -> Connection:
        """The kept write connection, opened on first use; the caller holds `_writer_lock`."""
        if self._writer is None:
            self._writer = self.engine.connect()
        return self._writer

    @contextlib.contextmanager
    def _writing(self, durable: bool) -> Iterator[Connection]:
        """One write transaction on the kept Core connection. eventsourcing's ORM
        session costs about as much Python per write as the statements themselves, and
        a daemon stores one small batch at a time. Writers in this process still queue
        on the datastore's SQLite write lock, as eventsourcing's own transactions do. A
        connection the server dropped fails its write; SQLAlchemy reconnects it for the
        next."""
        lock = self.datastore.write_lock
        if lock is not None:
            lock.acquire()
        try:
            with self._writer_lock:
                conn = self._writer_connection()
                if conn.invalidated:  # it reconnects: SQLite's level is the default again
                    self._writer_durable = None
                with conn.begin():
                    _set_durability(conn, durable, self.url.is_sqlite, self._writer_durable)
                    self._writer_durable = durable
                    yield conn
        finally:
            if lock is not None:
                lock.release()

    def _write(
        self,
        entries: list[Entry],
        heads: dict[bytes, tuple[StoredHead | None, Head]],
        fork_evidence: list[tuple[Entry, int]],
        *,
        own: bool = False,
        clock: int | None = None,
    ) -> None:
        """Store entries, move heads and keep fork evidence in one transaction. Our
        `own` entries are durable at commit; with `clock`, the write also fails if any
        log holds a lamport at or above it."""
        if not entries and not fork_evidence:
            return
        originators = {author: originator_of(author) for author in {e.author for e in entries}}
        stored_events = [StoredEvent(originators[e.author], e.seq, e.kind, e.raw) for e in entries]
        try:
            with self._writing(durable=own) as conn:
                positions = self.recorder.insert_rows(conn, stored_events)
                forked_at: dict[bytes, int] = {}
                for entry, seq in fork_evidence:
                    forked_at[entry.author] = min(seq, forked_at.get(entry.author, seq))
                for author, (before, after) in heads.items():
                    move_head(conn, before, after, forked_at.pop(author, None), clock)
                for author, seq in forked_at.items():
                    mark_forked(conn, author, seq)
                for entry, _ in fork_evidence:
                    record_fork(conn, entry)
        except _CONFLICTS as exc:
            raise ConflictError(str(exc)) from None
        except _FAILURES as exc:
            raise StoreError(f"could not write to {self.url.display()}: {one_line(exc)}") from None
        if self._listeners and entries:
            written = list(zip(positions, entries, strict=True))
            for listener in self._listeners:
                listener(written)
