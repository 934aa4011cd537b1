"""What `bzzz audit` checks, as pure functions over stored rows.

A log is checked in chunks (ranges of seq) that can run in parallel; `join_chunks`
checks the seams and `head_findings` the end. In the default (fast) mode only the head's
signature is verified: with every hash link intact it authenticates the whole log. A
broken link costs two signature checks, which say which of the two entries was altered.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from itertools import pairwise
from typing import NamedTuple

from bzzz.domain.chain import Head
from bzzz.domain.entry import decode_entry, signing_bytes_of
from bzzz.domain.identity import verify_signature
from bzzz.errors import EntryError


@dataclass(frozen=True, slots=True)
class Finding:
    """One thing wrong with one log. `code` is a stable slug; `problem` is for people."""

    author: str | None
    seq: int | None
    code: str
    problem: str

    def as_json(self) -> dict[str, object]:
        return {"author": self.author, "seq": self.seq, "code": self.code, "problem": self.problem}


class Row(NamedTuple):
    """One stored entry with what the store says about it (a tuple: one is built per
    entry audited, and tuples are the cheapest immutable record).

    `seq` is where the store keeps it; `kind` and `position` (arrival order) are None
    where the source has no such metadata (a bundle).
    """

    raw: bytes
    seq: int
    kind: str | None = None
    position: int | None = None


@dataclass(slots=True)
class Edge:
    """An entry at the boundary of a checked stretch, kept to check the next link."""

    seq: int
    hash: bytes
    prev: bytes | None
    lamport: int
    position: int | None
    raw: bytes
    signature_ok: bool | None

    def verify(self, author: bytes) -> bool:
        if self.signature_ok is None:
            self.signature_ok = verify_signature(author, signing_bytes_of(self.raw), self.raw[-64:])
        return self.signature_ok


@dataclass(slots=True)
class ChunkResult:
    count: int = 0
    findings: list[Finding] = field(default_factory=list)
    first: Edge | None = None
    last: Edge | None = None
    last_seq: int | None = None


def _signature_finding(author_hex: str, seq: int) -> Finding:
    return Finding(
        author_hex,
        seq,
        "bad-signature",
        f"seq {seq}: signature does not verify: the entry was altered or forged",
    )


def link_findings(author: bytes, before: Edge, after: Edge, full: bool) -> list[Finding]:
    """Findings for the link from `before` (seq n) to `after` (seq n+1)."""
    author_hex = author.hex()
    found: list[Finding] = []
    if after.prev != before.hash:
        before_ok = before.verify(author)
        after_ok = after.verify(author)
        if not full:  # in full mode each signature was reported when it was checked
            if not before_ok:
                found.append(_signature_finding(author_hex, before.seq))
            if not after_ok:
                found.append(_signature_finding(author_hex, after.seq))
        if before_ok and after_ok:
            found.append(
                Finding(
                    author_hex,
                    after.seq,
                    "broken-link",
                    f"seq {after.seq} does not name seq {before.seq} as prev, yet both are "
                    "signed by the author: entries of two forks are mixed in this log",
                )
            )
    if after.lamport <= before.lamport:
        found.append(
            Finding(
                author_hex,
                after.seq,
                "lamport-regressed",
                f"seq {after.seq} has lamport {after.lamport}, "
                f"not above seq {before.seq}'s {before.lamport}",
            )
        )
    if (
        after.position is not None
        and before.position is not None
        and after.position <= before.position
    ):
        found.append(
            Finding(
                author_hex,
                after.seq,
                "arrival-order",
                f"seq {after.seq} is recorded as arriving before seq {before.seq}: "
                "the notification log was reordered",
            )
        )
    return found


class LogChecker:
    """Checks the stored rows of one author's log, in stored seq order, from `start`."""

    def __init__(self, author: bytes, *, start: int = 1, full: bool = False) -> None:
        self.author = author
        self.author_hex = author.hex()
        self.full = full
        self.expected = start
        self.result = ChunkResult()
        self._opened = False

    def feed(self, row: Row) -> None:
        result = self.result
        result.count += 1
        seq = row.seq
        is_first_row = not self._opened
        self._opened = True
        if seq != self.expected:
            if seq > self.expected:
                span = (
                    f"seq {self.expected}"
                    if seq == self.expected + 1
                    else (f"seq {self.expected} to {seq - 1}")
                )
                self._report(self.expected, "missing", f"{span} missing from the log")
            else:
                self._report(seq, "misplaced", f"seq {seq} is stored out of order")
            result.last = None
        self.expected = seq + 1
        result.last_seq = seq
        try:
            entry = decode_entry(row.raw)
        except EntryError as error:
            self._report(seq, error.code, f"seq {seq}: stored bytes are not a valid entry: {error}")
            result.last = None
            return
        if entry.author != self.author:
            self._report(
                seq,
                "wrong-author",
                f"seq {seq}: holds an entry by {entry.author.hex()[:12]}, another author",
            )
            result.last = None
            return
        if entry.seq != seq:
            self._report(
                seq, "misplaced", f"stored at seq {seq} but the entry says seq {entry.seq}"
            )
            result.last = None
            return
        if row.kind is not None and row.kind != entry.kind:
            self._report(
                seq,
                "metadata-mismatch",
                f"seq {seq}: the store files it as {row.kind!r} but the entry is {entry.kind!r}",
            )
        signature_ok: bool | None = None
        if self.full:
            signature_ok = entry.signature_ok()
            if not signature_ok:
                result.findings.append(_signature_finding(self.author_hex, seq))
        edge = Edge(seq, entry.hash, entry.prev, entry.lamport, row.position, row.raw, signature_ok)
        before = result.last
        if before is not None:
            result.findings.extend(link_findings(self.author, before, edge, self.full))
        if is_first_row:
            result.first = edge
        result.last = edge

    def _report(self, seq: int, code: str, problem: str) -> None:
        self.result.findings.append(Finding(self.author_hex, seq, code, problem))


def join_chunks(author: bytes, chunks: Sequence[ChunkResult], full: bool) -> list[Finding]:
    """Findings on the seams between consecutive chunks of one log."""
    found: list[Finding] = []
    for before, after in pairwise(chunks):
        if before.last is None or after.first is None:
            continue
        if before.last.seq + 1 == after.first.seq:
            found.extend(link_findings(author, before.last, after.first, full))
    return found


def head_findings(
    author: bytes, last: ChunkResult | None, recorded: Head | None, full: bool
) -> list[Finding]:
    """Findings about the end of a log: the head's signature (which vouches for all
    before it) and agreement with the head the store recorded."""
    author_hex = author.hex()
    found: list[Finding] = []
    head = last.last if last is not None else None
    last_seq = last.last_seq if last is not None else None
    head_ok = True
    if head is not None and head.seq == last_seq:
        head_ok = head.verify(author)
        if not head_ok and not full:
            found.append(_signature_finding(author_hex, head.seq))
    if recorded is None:
        return found
    stored = last_seq or 0
    if recorded.seq > stored:
        span = (
            f"seq {stored + 1}"
            if recorded.seq == stored + 1
            else (f"seq {stored + 1} to {recorded.seq}")
        )
        found.append(
            Finding(
                author_hex,
                stored + 1,
                "missing",
                f"{span} missing: the store recorded this log's head at seq {recorded.seq}",
            )
        )
    elif recorded.seq < stored:
        found.append(
            Finding(
                author_hex,
                recorded.seq + 1,
                "metadata-mismatch",
                f"entries after seq {recorded.seq}, where the store recorded this log's head",
            )
        )
    elif (
        head is not None
        and head.seq == stored
        and head_ok
        and (head.hash != recorded.hash or head.lamport != recorded.lamport)
    ):
        found.append(
            Finding(
                author_hex,
                stored,
                "metadata-mismatch",
                f"seq {stored}: hash or lamport differs from the head the store recorded",
            )
        )
    return found


def compare_heads(
    author: bytes,
    ours: Head | None,
    theirs: Head | None,
    their_hash_at_our_head: bytes | None,
    our_hash_at_their_head: bytes | None,
) -> Finding | None:
    """A finding when our copy of a log was cut short or rolled back, judged against
    another copy. The other copy being behind is not a finding about ours."""
    author_hex = author.hex()
    if theirs is None:
        return None
    if ours is None:
        return Finding(
            author_hex,
            1,
            "log-missing",
            f"log missing here; the reference holds seq 1 to {theirs.seq}",
        )
    if theirs.seq > ours.seq:
        if their_hash_at_our_head is not None and their_hash_at_our_head != ours.hash:
            return Finding(
                author_hex,
                ours.seq,
                "rolled-back",
                f"seq {ours.seq} differs from the reference, which goes on to seq "
                f"{theirs.seq}: this log was rolled back and rewritten",
            )
        return Finding(
            author_hex,
            ours.seq + 1,
            "cut-short",
            f"log ends at seq {ours.seq} but the reference holds it up to seq {theirs.seq}",
        )
    if our_hash_at_their_head is not None and our_hash_at_their_head != theirs.hash:
        return Finding(
            author_hex,
            theirs.seq,
            "rolled-back",
            f"seq {theirs.seq} differs from the reference's entry at that seq: "
            "this log was rolled back and rewritten",
        )
    return None
