"""SLURP: the elected admin's curation of shared context (issue 21). Pure rules.

The admin (the leader of a proven, leased term) looks at the decisions in the context
(`bzzz.domain.context`), the task board and the HMMM threads, and records what it
concludes, one entry per act, in its own log:

- ``context.linked``     {term, version, task, thread}: the decision version `version`
  (an entry hash) came from the task `task` (on the board) and the thread `thread` (an
  HMMM thread); either is None when there is none. Both are the decision's own task
  (its address's TASK part), recorded only once that task or thread exists.
- ``context.superseded`` {term, version, by}: the decision version `version` is
  superseded by `by`, the next decision version at the same address.

Every act is an entry, so anyone can check it and a new admin continues where the old one
stopped: `due` answers only what no admin recorded yet (`fold_acts` counts the acts of
every proven leader). Role keys (grants, rotations) are the admin's other standing duty,
done by `bzzz.services.keys` with `bzzz.domain.keys.plan_keys`.

An act counts only when its author is the proven leader of the term it names and it was
written before a newer term was proven (`bzzz.domain.keys.admin_problem`, as for grants),
and only when it names a plain decision version this reader holds (for a supersession,
both, at the same address, the newer one later in its author's log). Acts are written in
the clear, so SLURP curates plain decisions only: linking a sealed decision would publish
its task, and superseding one would publish where it lives, both of which the sealed
envelope keeps secret (`bzzz.domain.context`). Nothing here raises on hostile bodies: an
act that does not fit is ignored with the reason.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from bzzz.domain import context as cx
from bzzz.domain import ucxl
from bzzz.domain.audit_rules import Finding
from bzzz.domain.hmmm import thread_id_problem
from bzzz.domain.keys import admin_problem
from bzzz.domain.limits import HASH_BYTES
from bzzz.domain.payload import payload_map
from bzzz.domain.tasks import task_id_problem

LINKED = "context.linked"
SUPERSEDED = "context.superseded"
KINDS = (LINKED, SUPERSEDED)
MAX_IGNORED = 1000
_FIELDS = {
    LINKED: frozenset({"term", "version", "task", "thread"}),
    SUPERSEDED: frozenset({"term", "version", "by"}),
}


@dataclass(frozen=True, slots=True)
class ActEntry:
    """What the rules need of an entry (any entry: those of other kinds are skipped)."""

    author: bytes
    seq: int
    lamport: int
    kind: str
    hash: bytes
    body: bytes

    @property
    def order(self) -> tuple[int, bytes, int]:
        """Causal order across logs: Lamport clock, then author, then its log's order."""
        return (self.lamport, self.author, self.seq)


@dataclass(frozen=True, slots=True)
class Act:
    """One act, parsed."""

    kind: str
    author: bytes
    seq: int
    lamport: int
    hash: bytes
    term: int
    version: bytes  # the decision version acted on
    task: str | None = None  # LINKED
    thread: str | None = None  # LINKED
    by: bytes | None = None  # SUPERSEDED


@dataclass(frozen=True, slots=True)
class Due:
    """An act the admin owes."""

    kind: str
    version: bytes
    task: str | None = None
    thread: str | None = None
    by: bytes | None = None

    def body(self, term: int) -> dict[str, Any]:
        if self.kind == LINKED:
            return {"term": term, "version": self.version, "task": self.task, "thread": self.thread}
        return {"term": term, "version": self.version, "by": self.by}


@dataclass
class Curation:
    """The acts that count, folded: each decision version's links and supersession."""

    links: dict[bytes, list[cx.Link]] = field(default_factory=dict)  # version -> links
    superseded: dict[bytes, bytes] = field(default_factory=dict)  # version -> by
    counted: int = 0
    ignored: list[tuple[bytes, int, str]] = field(default_factory=list)  # author, seq, why

    def ignore(self, act: ActEntry | Act, why: str) -> None:
        if len(self.ignored) < MAX_IGNORED:
            self.ignored.append((act.author, act.seq, why))


def _term(value: object) -> int | None:
    return value if type(value) is int and 0 < value < 2**63 else None


def _hash(value: object) -> bytes | None:
    return value if isinstance(value, bytes) and len(value) == HASH_BYTES else None


def parse_act(entry: ActEntry) -> Act | str:
    """An act's fields, or why it is malformed. Never raises."""
    fields = _FIELDS.get(entry.kind)
    if fields is None:
        return f"{entry.kind!r} is not a SLURP act"
    data = payload_map(entry.body)
    if data is None:
        return "its body is not a map"
    if set(data) != fields:
        return f"{entry.kind} has exactly the fields {', '.join(sorted(fields))}"
    term, version = _term(data["term"]), _hash(data["version"])
    if term is None:
        return "term: a positive number"
    if version is None:
        return f"version: an entry hash ({HASH_BYTES} bytes)"
    base = (entry.kind, entry.author, entry.seq, entry.lamport, entry.hash, term, version)
    if entry.kind == SUPERSEDED:
        by = _hash(data["by"])
        if by is None:
            return f"by: an entry hash ({HASH_BYTES} bytes)"
        if by == version:
            return "by: a version does not supersede itself"
        return Act(*base, by=by)
    task, thread = data["task"], data["thread"]
    if task is None and thread is None:
        return "a link names a task, a thread or both"
    if task is not None and task_id_problem(task) is not None:
        return "task: a task id"
    if thread is not None and thread_id_problem(thread) is not None:
        return "thread: a thread id"
    assert task is None or isinstance(task, str)
    assert thread is None or isinstance(thread, str)
    return Act(*base, task=task, thread=thread)


def _plain_decision(context: cx.Context, version: bytes) -> tuple[ucxl.Address, cx.Version] | str:
    found = context.version(version)
    if found is None:
        return f"version {version.hex()[:12]}: no decision version this node holds"
    address, v = found
    if v.kind != cx.DECISION:
        return f"version {version.hex()[:12]}: a {v.kind}, not a decision"
    if v.sealed_for is not None:
        return f"version {version.hex()[:12]}: sealed (SLURP curates plain decisions only)"
    return address, v


def fold_acts(
    entries: Iterable[ActEntry],
    leaders: Mapping[int, bytes],
    ends: Mapping[int, int],
    context: cx.Context,
) -> Curation:
    """The acts that count among `entries` (any order, any kinds: others are skipped),
    given the proven leaders by term, their terms' ends, and the context they curate. A
    version superseded once stays superseded by that version: a later act naming another
    is ignored."""
    curation = Curation()
    acts = sorted((e for e in entries if e.kind in KINDS), key=lambda e: e.order)
    for entry in acts:
        act = parse_act(entry)
        if isinstance(act, str):
            curation.ignore(entry, act)
            continue
        why = _counts(act, leaders, ends, context, curation)
        if why is not None:
            curation.ignore(act, why)
            continue
        curation.counted += 1
        if act.kind == SUPERSEDED:
            assert act.by is not None
            curation.superseded[act.version] = act.by
        else:
            curation.links.setdefault(act.version, []).append(cx.Link(act.task, act.thread))
    return curation


def _counts(
    act: Act,
    leaders: Mapping[int, bytes],
    ends: Mapping[int, int],
    context: cx.Context,
    curation: Curation,
) -> str | None:
    """Why `act` does not count, or None when it does."""
    problem = admin_problem(act.author, act.term, act.lamport, leaders, ends)
    if problem is not None:
        return problem
    found = _plain_decision(context, act.version)
    if isinstance(found, str):
        return found
    address, version = found
    if act.kind == LINKED:
        if {act.task, act.thread} - {None, address.task}:
            return f"a decision is linked to its own task and thread ({address.task})"
        return None
    assert act.by is not None
    newer = _plain_decision(context, act.by)
    if isinstance(newer, str):
        return f"by: {newer}"
    if newer[0] != address or newer[1].seq <= version.seq:
        return "by: not a later decision version at the same address"
    before = curation.superseded.get(act.version)
    if before is not None:
        return f"already superseded by {before.hex()[:12]}"
    return None


def curate(context: cx.Context, curation: Curation) -> cx.Context:
    """`context` with the counted acts shown on its versions and the others in its
    `ignored` (the same object, for chaining)."""
    context.curate(curation.links, curation.superseded)
    context.ignored.extend(curation.ignored)
    return context


def due(
    context: cx.Context,
    curation: Curation,
    tasks: Collection[str],
    threads: Collection[str],
) -> list[Due]:
    """The acts owed now, given the context, what the acts already recorded (by any
    admin) say, the task ids on the board and the HMMM threads' ids:

    - for each plain decision version whose task is on the board or has a thread, a link
      to them, unless a recorded link already says as much;
    - for each plain decision version followed by a newer one at the same address, its
      supersession by the next one, unless it is recorded superseded already.
    """
    owed: list[Due] = []
    for item in context.items():
        decisions = [
            v
            for v in item.versions
            if v.kind == cx.DECISION and v.sealed_for is None and v.readable
        ]
        task = item.address.task
        want = cx.Link(task if task in tasks else None, task if task in threads else None)
        for n, version in enumerate(decisions):
            if want.task is not None or want.thread is not None:
                known = curation.links.get(version.hash, ())
                if not any(link.covers(want) for link in known):
                    owed.append(Due(LINKED, version.hash, want.task, want.thread))
            if n + 1 < len(decisions) and version.hash not in curation.superseded:
                owed.append(Due(SUPERSEDED, version.hash, by=decisions[n + 1].hash))
    return owed


def audit_acts(
    entries: Iterable[ActEntry],
    leaders: Mapping[int, bytes],
    ends: Mapping[int, int],
    proofs_pending: bool = False,
) -> list[Finding]:
    """What `bzzz audit` finds wrong with SLURP acts, without the context (a sealed or
    missing decision is not the act's fault): a malformed act, or one not written by
    the proven leader of its term before a newer term was proven. `proofs_pending`:
    some leader claims wait for votes this store lacks, so an unproven term is not
    judged."""
    findings = []
    for entry in sorted((e for e in entries if e.kind in KINDS), key=lambda e: e.order):
        act = parse_act(entry)
        if isinstance(act, str):
            findings.append(
                Finding(entry.author.hex(), entry.seq, "slurp-malformed", f"{entry.kind}: {act}")
            )
            continue
        if proofs_pending and act.term not in leaders:
            continue
        problem = admin_problem(act.author, act.term, act.lamport, leaders, ends)
        if problem is not None:
            findings.append(
                Finding(
                    entry.author.hex(), entry.seq, "slurp-not-admin", f"{entry.kind}: {problem}"
                )
            )
    return findings
