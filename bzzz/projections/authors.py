"""The authors projection: per author, the head, entry counts by kind, and the first and
last timestamps. The first read model, and the proof that the framework works."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from sqlalchemy import (
    BigInteger,
    Column,
    Integer,
    LargeBinary,
    MetaData,
    PrimaryKeyConstraint,
    String,
    Table,
    insert,
    select,
    update,
)
from sqlalchemy.orm import Session

from bzzz.domain.entry import Entry
from bzzz.projections.framework import Projection

_BigInt = BigInteger().with_variant(Integer(), "sqlite")
metadata = MetaData()

authors = Table(
    "view_authors",
    metadata,
    Column("author", LargeBinary(32), primary_key=True),
    Column("head_seq", _BigInt, nullable=False),
    Column("head_hash", LargeBinary(32), nullable=False),
    Column("entries", _BigInt, nullable=False),
    Column("first_ts", _BigInt, nullable=False),
    Column("last_ts", _BigInt, nullable=False),
)

author_kinds = Table(
    "view_author_kinds",
    metadata,
    Column("author", LargeBinary(32), nullable=False),
    Column("kind", String(64), nullable=False),
    Column("entries", _BigInt, nullable=False),
    PrimaryKeyConstraint("author", "kind"),
)


@dataclass
class AuthorSummary:
    author: bytes
    head_seq: int
    head_hash: bytes
    entries: int
    first_ts: int
    last_ts: int
    kinds: dict[str, int] = field(default_factory=dict)

    def as_json(self) -> dict[str, object]:
        return {
            "author": self.author.hex(),
            "head_seq": self.head_seq,
            "head_hash": self.head_hash.hex(),
            "entries": self.entries,
            "first_ts": self.first_ts,
            "last_ts": self.last_ts,
            "kinds": dict(sorted(self.kinds.items())),
        }


class AuthorsProjection(Projection):
    name = "authors"
    metadata = metadata

    def apply(self, session: Session, batch: Sequence[tuple[int, Entry]]) -> None:
        if not batch:
            return
        existing = _load(session, {entry.author for _, entry in batch})
        stored_kinds = {(a, k) for a, s in existing.items() for k in s.kinds}
        changed: dict[bytes, AuthorSummary] = {}
        for _, entry in batch:
            summary = changed.get(entry.author) or existing.get(entry.author)
            if summary is None:
                summary = AuthorSummary(entry.author, 0, b"", 0, entry.ts, entry.ts)
            changed[entry.author] = summary
            summary.entries += 1
            if entry.seq > summary.head_seq:
                summary.head_seq, summary.head_hash = entry.seq, entry.hash
            summary.first_ts = min(summary.first_ts, entry.ts)
            summary.last_ts = max(summary.last_ts, entry.ts)
            summary.kinds[entry.kind] = summary.kinds.get(entry.kind, 0) + 1
        for author, summary in changed.items():
            values = {
                "head_seq": summary.head_seq,
                "head_hash": summary.head_hash,
                "entries": summary.entries,
                "first_ts": summary.first_ts,
                "last_ts": summary.last_ts,
            }
            if author in existing:
                session.execute(update(authors).where(authors.c.author == author).values(**values))
            else:
                session.execute(insert(authors).values(author=author, **values))
            for kind, count in summary.kinds.items():
                if (author, kind) in stored_kinds:
                    session.execute(
                        update(author_kinds)
                        .where(author_kinds.c.author == author, author_kinds.c.kind == kind)
                        .values(entries=count)
                    )
                else:
                    session.execute(
                        insert(author_kinds).values(author=author, kind=kind, entries=count)
                    )


def _load(session: Session, only: set[bytes] | None = None) -> dict[bytes, AuthorSummary]:
    query = select(authors).order_by(authors.c.author)
    kinds_query = select(author_kinds)
    if only is not None:
        query = query.where(authors.c.author.in_(only))
        kinds_query = kinds_query.where(author_kinds.c.author.in_(only))
    summaries = {
        bytes(r.author): AuthorSummary(
            bytes(r.author),
            int(r.head_seq),
            bytes(r.head_hash),
            int(r.entries),
            int(r.first_ts),
            int(r.last_ts),
        )
        for r in session.execute(query)
    }
    for r in session.execute(kinds_query):
        summary = summaries.get(bytes(r.author))
        if summary is not None:
            summary.kinds[r.kind] = int(r.entries)
    return summaries


def read_authors(session: Session) -> list[AuthorSummary]:
    return list(_load(session).values())
