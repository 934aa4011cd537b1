"""Tables BZZZ keeps beside eventsourcing's: heads, fork evidence, and the schema version.

Heads are derivable from the logs, but keeping them in the same transaction as every
append makes them O(authors) to read and lets `bzzz audit` notice a deleted last entry.
"""

from __future__ import annotations

from uuid import UUID

from sqlalchemy import (
    BigInteger,
    Column,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    UniqueConstraint,
)

EVENTS_TABLE = "bzzz_entries"
TRACKING_TABLE = "bzzz_tracking"
SCHEMA_VERSION = 1

metadata = MetaData()

_BigInt = BigInteger().with_variant(Integer(), "sqlite")

heads = Table(
    "bzzz_heads",
    metadata,
    Column("author", LargeBinary(32), primary_key=True),
    Column("seq", _BigInt, nullable=False),
    Column("hash", LargeBinary(32), nullable=False),
    Column("lamport", _BigInt, nullable=False),
    # Where the author's log forked, once this node holds evidence of it; the author is
    # frozen from then on.
    Column("forked_seq", _BigInt, nullable=True),
)

forks = Table(
    "bzzz_forks",
    metadata,
    Column("id", _BigInt, primary_key=True, autoincrement=True),
    Column("author", LargeBinary(32), nullable=False),
    Column("seq", _BigInt, nullable=False),
    Column("hash", LargeBinary(32), nullable=False),
    Column("raw", LargeBinary(), nullable=False),
    UniqueConstraint("hash", name="bzzz_forks_hash_key"),
)

meta = Table(
    "bzzz_meta",
    metadata,
    Column("key", String(64), primary_key=True),
    Column("value", String(256), nullable=False),
)


def originator_of(author: bytes) -> UUID:
    """The eventsourcing stream id of an author's log: the key's first 16 bytes, so a
    stream id still reads as the start of its agent id."""
    return UUID(bytes=author[:16])
