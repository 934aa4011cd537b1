"""Chain rules: how one entry may follow another in its author's log.

A valid signature on entry n plus matching hash links back to entry k authenticates
every entry from k to n, so a run of entries is checked with one signature
(`check_run`) and only a failure costs more (`valid_prefix`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from bzzz.domain.entry import Entry
from bzzz.errors import EntryError


@dataclass(frozen=True, slots=True)
class Head:
    """The last entry of a log as far as one node knows it."""

    author: bytes
    seq: int
    hash: bytes
    lamport: int

    @classmethod
    def of(cls, entry: Entry) -> Head:
        return cls(entry.author, entry.seq, entry.hash, entry.lamport)


def check_successor(head: Head | None, entry: Entry) -> None:
    """Raise EntryError unless `entry` may directly follow `head` (None: an empty log)."""
    if head is None:
        if entry.seq != 1:
            raise EntryError("gap", f"log starts at seq 1 but this entry is seq {entry.seq}")
        return
    if entry.author != head.author:
        raise EntryError("wrong-author", "an entry by another author cannot extend this log")
    if entry.seq != head.seq + 1:
        raise EntryError(
            "gap" if entry.seq > head.seq + 1 else "stale",
            f"expected seq {head.seq + 1} after {head.seq}, got seq {entry.seq}",
        )
    if entry.prev != head.hash:
        raise EntryError(
            "broken-link", f"seq {entry.seq} does not name the hash of seq {head.seq} as prev"
        )
    if entry.lamport <= head.lamport:
        raise EntryError(
            "lamport-regressed",
            f"seq {entry.seq} has lamport {entry.lamport}, "
            f"not above seq {head.seq}'s {head.lamport}",
        )


def check_links(head: Head | None, entries: Sequence[Entry]) -> None:
    """Every chain rule except signatures, for a run that extends `head`."""
    for entry in entries:
        check_successor(head, entry)
        head = Head.of(entry)


def check_run(head: Head | None, entries: Sequence[Entry]) -> None:
    """Links for every entry plus the last entry's signature: enough to trust the run."""
    check_links(head, entries)
    if entries and not entries[-1].signature_ok():
        raise EntryError("bad-signature", f"seq {entries[-1].seq}: signature does not verify")


def valid_prefix(head: Head | None, entries: Sequence[Entry]) -> tuple[int, EntryError | None]:
    """How many leading entries pass every rule, checking each signature, and why the
    next one fails. For the rare run whose batch check failed."""
    for i, entry in enumerate(entries):
        try:
            check_successor(head, entry)
        except EntryError as error:
            return i, error
        if not entry.signature_ok():
            return i, EntryError("bad-signature", f"seq {entry.seq}: signature does not verify")
        head = Head.of(entry)
    return len(entries), None


def conflicts(stored: Entry, other: Entry) -> bool:
    """Whether two entries by one author prove a fork: different entries at one seq, or
    entries that name different predecessors for the same place in the log."""
    if stored.author != other.author:
        return False
    if stored.seq == other.seq:
        return stored.hash != other.hash
    return other.seq == stored.seq + 1 and other.prev != stored.hash
