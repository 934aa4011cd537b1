"""Planning an ingest: which received entries extend a log, which are duplicates, which
prove a fork, and which are refused and why.

Per author, entries are taken in seq order; each contiguous run is trusted on its hash
links plus one signature (its last), and only a failing run is checked entry by entry.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from bzzz.domain.chain import Head, check_run, conflicts, valid_prefix
from bzzz.domain.entry import Entry
from bzzz.errors import EntryError
from bzzz.store.records import StoredEntry, StoredHead

# (author, after, upto) -> the stored entries with seq in (after, upto]
HeldEntries = Callable[[bytes, int, int], list[StoredEntry]]


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
    # Entries by authors the caller did not want (see `EventStore.ingest`): not stored,
    # not judged; the caller decides what they are.
    unwanted: list[Entry] = field(default_factory=list)

    def merge(self, other: IngestReport) -> None:
        """Add what another ingest of the same batch stored, found and refused."""
        self.accepted += other.accepted
        self.duplicates += other.duplicates
        self.forks += other.forks
        self.refused += other.refused
        self.unwanted += other.unwanted


@dataclass
class IngestPlan:
    """What one ingest attempt will write."""

    entries: list[Entry] = field(default_factory=list)
    heads: dict[bytes, tuple[StoredHead | None, Head]] = field(default_factory=dict)
    forks: list[tuple[Entry, int]] = field(default_factory=list)
    report: IngestReport = field(default_factory=IngestReport)


def plan_ingest(
    by_author: dict[bytes, list[Entry]], known: dict[bytes, StoredHead], held: HeldEntries
) -> IngestPlan:
    """Decide what to store from `by_author` (each list sorted by seq), given the heads
    this store knows and a way to read the entries it holds. Pure but for `held`."""
    plan = IngestPlan()
    for author, entries in by_author.items():
        _plan_author(plan, known.get(author), author, entries, held)
    return plan


def _plan_author(
    plan: IngestPlan,
    stored: StoredHead | None,
    author: bytes,
    entries: list[Entry],
    held: HeldEntries,
) -> None:
    report = plan.report
    if stored is not None and stored.forked_seq is not None:
        report.refused.extend(_frozen(author, e.seq, stored.forked_seq) for e in entries)
        return
    head = stored.head if stored else None
    head_seq = head.seq if head else 0
    old = [e for e in entries if e.seq <= head_seq]
    evidence = _check_known(plan, author, old, held)
    run, rivals = _pick_run(head, [e for e in entries if e.seq > head_seq], report)
    if evidence is not None:
        report.refused.extend(_frozen(author, e.seq, evidence) for e in run + rivals)
        return
    accepted = _accept_run(plan, head, run, author)
    by_seq = {e.seq: e for e in accepted}
    for rival in rivals:
        ours = by_seq.get(rival.seq)
        if ours is not None and _is_evidence(ours, rival, report):
            plan.forks.append((rival, rival.seq))
        elif ours is None:
            report.refused.append(_after_refused(plan, author, rival.seq))
    if accepted:
        plan.entries.extend(accepted)
        plan.heads[author] = (stored, Head.of(accepted[-1]))


def _check_known(
    plan: IngestPlan, author: bytes, old: list[Entry], held: HeldEntries
) -> int | None:
    """Sort entries at seqs we already hold into duplicates and fork evidence; the
    lowest forked seq, if any."""
    if not old:
        return None
    report = plan.report
    forked: int | None = None
    ours = {s.seq: s for s in held(author, old[0].seq - 1, old[-1].seq)}
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
        elif _is_evidence(decoded, entry, report):
            plan.forks.append((entry, entry.seq))
            forked = entry.seq if forked is None else min(forked, entry.seq)
    return forked


def _is_evidence(ours: Entry, theirs: Entry, report: IngestReport) -> bool:
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
    plan: IngestPlan, head: Head | None, run: list[Entry], author: bytes
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
    report.refused.extend(_after_refused(plan, author, e.seq) for e in rejected[1:])
    return accepted


def _pick_run(
    head: Head | None, entries: list[Entry], report: IngestReport
) -> tuple[list[Entry], list[Entry]]:
    """Split entries above the head into the run that may extend the log and the
    rivals (other entries at a seq the run already has). At each seq the run takes
    the entry that links to the one before it, and failing that one that the next seq
    links to: a peer that passes on fork evidence together with the log it holds
    sends both entries of a seq, in no particular order, and the log is the chain."""
    if len({e.seq for e in entries}) == len(entries):
        return entries, []  # nearly every delivery: one entry per seq, already in order
    by_seq: dict[int, list[Entry]] = {}
    for entry in entries:
        same = by_seq.setdefault(entry.seq, [])
        if any(e.hash == entry.hash for e in same):
            report.duplicates += 1
        else:
            same.append(entry)
    run: list[Entry] = []
    rivals: list[Entry] = []
    prev = head.hash if head is not None else None
    for seq in sorted(by_seq):
        candidates = by_seq[seq]
        after = by_seq.get(seq + 1, [])
        linked = [e for e in candidates if e.prev == prev]
        followed = [e for e in candidates if any(n.prev == e.hash for n in after)]
        chosen = (linked or followed or candidates)[0]
        run.append(chosen)
        rivals.extend(e for e in candidates if e is not chosen)
        prev = chosen.hash
    return run, rivals


def _after_refused(plan: IngestPlan, author: bytes, seq: int) -> Refusal:
    """An entry that cannot be taken because an earlier one was not. After proof of a
    fork that is no fault of the sender (an honest peer may hold the other branch), so
    it is refused as frozen; after an invalid entry it is part of the offence."""
    forked = [at for entry, at in plan.forks if entry.author == author]
    if forked:
        return _frozen(author, seq, min(forked))
    return Refusal(author, seq, "after-refused", f"seq {seq} follows a refused entry")


def _frozen(author: bytes, seq: int, forked_seq: int) -> Refusal:
    return Refusal(
        author,
        seq,
        "frozen",
        f"author forked at seq {forked_seq}; its entries are no longer accepted",
    )
