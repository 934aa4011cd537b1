"""Reading a store that may be damaged: every value is checked for its type.

The store's own API trusts its tables. The audit cannot: a file edited behind BZZZ's
back can hold text where a blob belongs (SQLite columns are dynamically typed), so these
readers take raw values and turn anything malformed into a finding.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any
from uuid import UUID

from sqlalchemy import func, select, type_coerce
from sqlalchemy.types import NullType

from bzzz.domain.audit_rules import Finding
from bzzz.domain.limits import HASH_BYTES, KEY_BYTES
from bzzz.store import EventStore, StoredHead, tables


def _blob(value: Any, size: int | None = None) -> bytes | None:
    if isinstance(value, memoryview):
        value = bytes(value)
    if type(value) is not bytes or (size is not None and len(value) != size):
        return None
    return value


def _uint(value: Any) -> int | None:
    return value if type(value) is int and value >= 0 else None


def _uuid(value: Any) -> UUID | None:
    if isinstance(value, UUID):
        return value
    raw = _blob(value, 16)
    return UUID(bytes=raw) if raw is not None else None


def read_heads(store: EventStore) -> tuple[dict[bytes, StoredHead], list[Finding]]:
    h = tables.heads.c
    raw_cols = [
        type_coerce(c, NullType()) for c in (h.author, h.seq, h.hash, h.lamport, h.forked_seq)
    ]
    heads: dict[bytes, StoredHead] = {}
    found: list[Finding] = []
    with store.engine.connect() as conn:
        for author, seq, hash_, lamport, forked in conn.execute(select(*raw_cols)):
            key = _blob(author, KEY_BYTES)
            values = (_uint(seq), _blob(hash_, HASH_BYTES), _uint(lamport))
            if key is None or None in values or (forked is not None and _uint(forked) is None):
                who = key.hex() if key else None
                found.append(
                    Finding(who, None, "metadata-mismatch", "a recorded head is malformed")
                )
                continue
            heads[key] = StoredHead(key, values[0], values[1], values[2], forked)  # type: ignore[arg-type]
    return heads, found


def read_streams(store: EventStore) -> tuple[list[tuple[UUID, int, int]], list[Finding]]:
    """(stream, rows, highest seq) of every well-formed stream."""
    e = store.recorder.events_record_cls.__table__.c
    stream = type_coerce(e.originator_id, NullType())
    query = select(stream, func.count(), func.max(type_coerce(e.originator_version, NullType())))
    streams: list[tuple[UUID, int, int]] = []
    found: list[Finding] = []
    with store.engine.connect() as conn:
        for originator, rows, highest in conn.execute(query.group_by(stream)):
            uuid = _uuid(originator)
            if uuid is None:
                found.append(
                    Finding(
                        None,
                        None,
                        "unknown-stream",
                        f"{rows} entries are filed under a malformed stream id",
                    )
                )
            elif _uint(highest) is None:
                found.append(
                    Finding(
                        None,
                        None,
                        "unknown-stream",
                        f"stream {uuid} holds entries at non-numeric seqs",
                    )
                )
            else:
                streams.append((uuid, rows, highest))
    return streams, found


def scan(
    store: EventStore, originator: UUID, after: int, upto: int, page: int = 5000
) -> Iterator[tuple[Any, Any, bytes, Any]]:
    """Like EventStore.scan, but hands back whatever is stored, with the state as bytes
    even when it is not (text becomes its UTF-8, which then fails to decode)."""
    e = store.recorder.events_record_cls.__table__.c
    cols = [type_coerce(c, NullType()) for c in (e.originator_version, e.topic, e.state, e.id)]
    base = select(*cols).where(e.originator_id == originator).order_by(e.originator_version)
    with store.engine.connect() as conn:
        while after < upto:
            rows = conn.execute(
                base.where(e.originator_version > after, e.originator_version <= upto).limit(page)
            ).all()
            for version, topic, state, position in rows:
                raw = _blob(state)
                yield version, topic, raw if raw is not None else str(state).encode(), position
            if not rows or _uint(rows[-1][0]) is None:
                return
            after = rows[-1][0]


def read_forks(store: EventStore) -> tuple[list[tuple[bytes, int, bytes]], list[Finding]]:
    f = tables.forks.c
    cols = [type_coerce(c, NullType()) for c in (f.author, f.seq, f.raw)]
    forks: list[tuple[bytes, int, bytes]] = []
    found: list[Finding] = []
    with store.engine.connect() as conn:
        for author, seq, raw in conn.execute(select(*cols).order_by(f.id)):
            key, number, entry = _blob(author, KEY_BYTES), _uint(seq), _blob(raw)
            if key is None or number is None or entry is None:
                found.append(
                    Finding(
                        key.hex() if key else None,
                        number,
                        "bad-evidence",
                        "a fork evidence row is malformed",
                    )
                )
                continue
            forks.append((key, number, entry))
    return forks, found
