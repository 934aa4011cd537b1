"""What the store hands out, and the one place stored rows become them.

Rows are checked for their types on the way out: a damaged database is reported as a
StoreError that points at `bzzz audit`, never as a traceback.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from bzzz.domain.chain import Head
from bzzz.domain.entry import Entry, decode_entry
from bzzz.errors import StoreError


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


def damaged(what: str) -> StoreError:
    return StoreError(f"the store is damaged ({what}); run `bzzz audit` to see where")


def as_bytes(value: Any) -> bytes:
    if isinstance(value, bytes | memoryview):
        return bytes(value)
    raise TypeError(f"expected bytes, found {type(value).__name__}")


def as_int(value: Any) -> int:
    if type(value) is not int:
        raise TypeError(f"expected a whole number, found {type(value).__name__}")
    return value


def stored_head(row: Any) -> StoredHead:
    try:
        return StoredHead(
            as_bytes(row.author),
            as_int(row.seq),
            as_bytes(row.hash),
            as_int(row.lamport),
            None if row.forked_seq is None else as_int(row.forked_seq),
        )
    except (TypeError, ValueError) as exc:
        raise damaged(f"a recorded head: {exc}") from None


def stored_entry(row: Any) -> StoredEntry:
    try:
        return StoredEntry(as_int(row[0]), as_int(row[1]), str(row[2]), as_bytes(row[3]))
    except (TypeError, ValueError) as exc:
        raise damaged(f"the entry at position {row[0]!r}: {exc}") from None
