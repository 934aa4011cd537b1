"""The writes that accompany entries: moving heads, freezing forked authors, keeping
fork evidence. Each runs inside the transaction that stores the entries."""

from __future__ import annotations

from sqlalchemy import Connection, bindparam, func, insert, select, update

from bzzz.domain.chain import Head
from bzzz.domain.entry import Entry
from bzzz.errors import ConflictError
from bzzz.store import driver_sql, tables
from bzzz.store.records import StoredHead

_h = tables.heads.c
# A head moves only from where the writer saw it, and a forked log's head never moves.
_MOVE_HEAD = (
    update(tables.heads)
    .where(_h.author == bindparam("b_author"), _h.seq == bindparam("b_seq"))
    .where(_h.hash == bindparam("b_hash"), _h.forked_seq.is_(None))
    .values(seq=bindparam("a_seq"), hash=bindparam("a_hash"), lamport=bindparam("a_lamport"))
)
# Own appends also require that no log has reached the clock the new entries start from,
# all in the one statement that moves the head.
_MOVE_OWN_HEAD = _MOVE_HEAD.where(
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


def move_head(
    conn: Connection,
    before: StoredHead | None,
    after: Head,
    forked_seq: int | None,
    clock: int | None = None,
) -> None:
    """Move a head from `before` to `after`, or raise ConflictError if it is not where
    the writer thought (another writer, a fork found meanwhile, a newer clock). The
    statements are built once: building them per call cost more than running them."""
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
        result = driver_sql.execute(conn, _MOVE_OWN_HEAD, {**params, "clock": clock})
    else:
        result = driver_sql.execute(conn, _MOVE_HEAD, params)
    if result.rowcount != 1:
        raise ConflictError("head moved")
    if forked_seq is not None:
        mark_forked(conn, after.author, forked_seq)


def mark_forked(conn: Connection, author: bytes, seq: int) -> None:
    h = tables.heads.c
    conn.execute(
        update(tables.heads)
        .where(h.author == author, (h.forked_seq.is_(None)) | (h.forked_seq > seq))
        .values(forked_seq=seq)
    )


def record_fork(conn: Connection, entry: Entry) -> None:
    f = tables.forks.c
    exists = conn.execute(select(f.id).where(f.hash == entry.hash)).first()
    if exists is None:
        conn.execute(
            insert(tables.forks).values(
                author=entry.author, seq=entry.seq, hash=entry.hash, raw=entry.raw
            )
        )
