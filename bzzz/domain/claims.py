"""Task claims: requested by agents, granted by the admin (the elected leader) with a
fencing token, decided and checked by pure rules.

A grant's token is (term, grant number). A grant counts only if its author proved
leadership of its term (`bzzz.domain.leadership`), and it is live only while its term is
the newest proven term: a new leader re-issues the live grants it knows in its own term,
and whatever it did not know is void. Within a term one leader grants, and only while it
holds its lease (`Election.has_lease`), so no grant of an old term can be made after a
newer leader exists. A live grant lasts `lease_ms` from the grant or from the holder's
latest `task.progress` entry carrying the token; a release ends it. Anything acting on a
task checks the token: older than the task's latest grant, or not live, is refused.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from bzzz.domain.limits import HASH_BYTES, KEY_BYTES
from bzzz.domain.payload import payload_map
from bzzz.domain.roles import Authority, Role

REQUESTED = "task.claim_requested"
GRANTED = "task.claim_granted"
REFUSED = "task.claim_refused"
RELEASED = "task.claim_released"
PROGRESS = "task.progress"
KINDS = (REQUESTED, GRANTED, REFUSED, RELEASED, PROGRESS)
DEFAULT_LEASE_MS = 60_000
MAX_TASK = 200
# A grant encodes to at most about 330 bytes: 100 stay well inside an entry's body.
GRANTS_PER_ENTRY = 100

Token = tuple[int, int]


@dataclass(frozen=True, slots=True)
class Request:
    author: bytes
    task: str
    needs: tuple[str, ...]
    hash: bytes
    ts: int


@dataclass(frozen=True, slots=True)
class Grant:
    leader: bytes
    task: str
    claimant: bytes
    token: Token
    lease_ms: int
    request: bytes | None
    ts: int

    @property
    def term(self) -> int:
        return self.token[0]


@dataclass(frozen=True, slots=True)
class Refusal:
    task: str
    claimant: bytes
    reason: str
    request: bytes | None


@dataclass
class TaskClaim:
    """A task's latest valid grant and what the holder did with it."""

    grant: Grant
    renewed_ts: int
    released: bool = False

    def expires(self) -> int:
        return max(self.grant.ts, self.renewed_ts) + self.grant.lease_ms


@dataclass
class ClaimBook:
    """Claims as the logs say, given the proven leaders by term.

    Indexed so that each new entry and each decision costs the same however many tasks
    and requests came before: a busy cluster answers thousands of requests."""

    current_term: int = 0
    tasks: dict[str, TaskClaim] = field(default_factory=dict)
    answered: set[bytes] = field(default_factory=set)
    refused: dict[bytes, str] = field(default_factory=dict)  # request hash -> reason
    requests: list[Request] = field(default_factory=list)
    ignored: list[tuple[str, str]] = field(default_factory=list)
    early: list[ClaimEntry] = field(default_factory=list)  # renewals ahead of their grant
    unanswered: dict[bytes, Request] = field(default_factory=dict)
    held_by: dict[bytes, set[str]] = field(default_factory=dict)  # claimant -> its tasks
    by_request: dict[bytes, Grant] = field(default_factory=dict)
    highest: dict[int, int] = field(default_factory=dict)  # term -> its last grant number

    def hold(self, grant: Grant) -> None:
        """Make `grant` the task's latest grant."""
        before = self.tasks.get(grant.task)
        if before is not None:
            self.held_by.get(before.grant.claimant, set()).discard(grant.task)
        self.tasks[grant.task] = TaskClaim(grant, grant.ts)
        self.held_by.setdefault(grant.claimant, set()).add(grant.task)
        if grant.request is not None:
            self.by_request[grant.request] = grant
        term, number = grant.token
        self.highest[term] = max(number, self.highest.get(term, 0))

    def ask(self, request: Request) -> None:
        self.requests.append(request)
        if request.hash not in self.answered:
            self.unanswered[request.hash] = request

    def answer(self, request: bytes) -> None:
        self.answered.add(request)
        self.unanswered.pop(request, None)

    def live(self, task: str, now: int) -> Grant | None:
        claim = self.tasks.get(task)
        if claim is None or claim.released or claim.grant.term != self.current_term:
            return None
        return claim.grant if now < claim.expires() else None

    def live_grants(self, now: int, claimant: bytes | None = None) -> list[Grant]:
        tasks = self.tasks if claimant is None else self.held_by.get(claimant, ())
        return [g for task in tasks if (g := self.live(task, now)) is not None]

    def load(self, claimant: bytes, now: int) -> int:
        return len(self.live_grants(now, claimant))

    def check_token(self, task: str, token: Token, holder: bytes, now: int) -> str | None:
        """Why work on `task` with `token` by `holder` must be refused, or None."""
        claim = self.tasks.get(task)
        if claim is None:
            return f"task {task!r} has no grant"
        latest = claim.grant.token
        if token < latest:
            return f"stale token {list(token)}: the task's latest grant is {list(latest)}"
        if token != latest or claim.grant.claimant != holder:
            return f"token {list(token)} is not the task's grant to this agent"
        if self.live(task, now) is None:
            return f"the grant {list(latest)} is no longer live (expired, released or old term)"
        return None

    def next_grant(self, term: int) -> int:
        return self.highest.get(term, 0) + 1

    def pending(self) -> list[Request]:
        return list(self.unanswered.values())


def request_body(task: str, needs: list[str]) -> dict[str, Any]:
    return {"task": task, "needs": needs}


def grant_bodies(grants: list[Grant]) -> list[dict[str, Any]]:
    """The entry bodies for the grants of one decision, as few as fit: every node stores
    and checks each entry, so a leader answering several requests at once pays for one
    entry, not one per grant."""
    return [
        {"grants": [_grant_map(g) for g in grants[start : start + GRANTS_PER_ENTRY]]}
        for start in range(0, len(grants), GRANTS_PER_ENTRY)
    ]


def _grant_map(grant: Grant) -> dict[str, Any]:
    return {
        "task": grant.task,
        "claimant": grant.claimant,
        "term": grant.token[0],
        "grant": grant.token[1],
        "lease_ms": grant.lease_ms,
        "request": grant.request,
    }


def grant_maps(data: Mapping[str, Any]) -> list[Mapping[str, Any]] | None:
    """The grants a `task.claim_granted` body carries, unchecked: a list under
    "grants", or the body itself in entries written before grants were batched."""
    if "grants" not in data:
        return [data]
    items = data["grants"]
    if not isinstance(items, list) or not 0 < len(items) <= GRANTS_PER_ENTRY:
        return None
    return items if all(isinstance(item, dict) for item in items) else None


def refusal_body(refusal: Refusal) -> dict[str, Any]:
    return {
        "task": refusal.task,
        "claimant": refusal.claimant,
        "reason": refusal.reason,
        "request": refusal.request,
    }


def token_body(task: str, token: Token) -> dict[str, Any]:
    return {"task": task, "term": token[0], "grant": token[1]}


@dataclass(frozen=True, slots=True)
class ClaimEntry:
    """A claim entry reduced to what the rules need."""

    author: bytes
    kind: str
    body: bytes
    hash: bytes
    ts: int
    lamport: int

    @property
    def order(self) -> tuple[int, bytes, bytes]:
        """Causal order across logs: Lamport clock, then author, then hash."""
        return (self.lamport, self.author, self.hash)


def _task(data: Mapping[str, Any]) -> str | None:
    task = data.get("task")
    return task if isinstance(task, str) and 0 < len(task) <= MAX_TASK else None


def _token(data: Mapping[str, Any]) -> Token | None:
    term, grant = data.get("term"), data.get("grant")
    if type(term) is int and type(grant) is int and term > 0 and grant > 0:
        return term, grant
    return None


def _key(value: Any, size: int) -> bytes | None:
    return value if isinstance(value, bytes) and len(value) == size else None


def fold_claims(
    entries: Iterable[ClaimEntry], leaders: Mapping[int, bytes], current_term: int
) -> ClaimBook:
    """The claim book from claim entries (any order), the proven leader of each term,
    and the newest proven term."""
    book = ClaimBook(current_term)
    apply_claims(book, entries, leaders)
    return book


def apply_claims(
    book: ClaimBook, entries: Iterable[ClaimEntry], leaders: Mapping[int, bytes]
) -> None:
    """Bring `book` up to date with more entries. Order does not matter: grants compete
    by token, and a renewal or release that arrives before its grant waits for it. The
    leaders must be those the book was built with; when they change, fold anew."""
    ordered = sorted(entries, key=lambda e: (e.lamport, e.author))
    grants: list[Grant] = []
    for entry in ordered:
        data = payload_map(entry.body)
        if data is not None and entry.kind == GRANTED:
            for grant in _grants(entry, data, leaders, book):
                grants.append(grant)
                if grant.request is not None:
                    book.answer(grant.request)
            continue
        task = _task(data) if data is not None else None
        if data is None or task is None:
            book.ignored.append((entry.kind, "no task"))
            continue
        if entry.kind == REQUESTED:
            needs = data.get("needs") or []
            if isinstance(needs, list) and all(isinstance(n, str) for n in needs):
                book.ask(Request(entry.author, task, tuple(needs), entry.hash, entry.ts))
        elif entry.kind == REFUSED:
            request, reason = _key(data.get("request"), HASH_BYTES), data.get("reason")
            if request is not None and entry.author in leaders.values():
                book.answer(request)
                book.refused[request] = reason if isinstance(reason, str) else "refused"
    for grant in sorted(grants, key=lambda g: g.token):
        held = book.tasks.get(grant.task)
        if held is None or grant.token > held.grant.token:
            book.hold(grant)
    waiting, book.early = book.early, []
    for entry in [*waiting, *ordered]:
        if entry.kind in (RELEASED, PROGRESS):
            _renew_or_release(book, entry)


def _grants(
    entry: ClaimEntry, data: Mapping[str, Any], leaders: Mapping[int, bytes], book: ClaimBook
) -> list[Grant]:
    """The valid grants of one entry; each invalid one is noted in `book.ignored`."""
    items = grant_maps(data)
    if items is None:
        book.ignored.append((entry.kind, f"grants: not a list of 1 to {GRANTS_PER_ENTRY} maps"))
        return []
    grants = []
    for item in items:
        grant = parse_grant(entry.author, entry.ts, item, leaders)
        if isinstance(grant, str):
            book.ignored.append((entry.kind, grant))
        else:
            grants.append(grant)
    return grants


def parse_grant(
    author: bytes, ts: int, data: Mapping[str, Any], leaders: Mapping[int, bytes]
) -> Grant | str:
    """One grant of a `task.claim_granted` entry by `author`, or why it does not count."""
    task = _task(data)
    if task is None:
        return "no task"
    token, claimant = _token(data), _key(data.get("claimant"), KEY_BYTES)
    lease = data.get("lease_ms")
    if token is None or claimant is None or type(lease) is not int or lease <= 0:
        return f"{task}: not a grant (token, claimant and lease_ms are required)"
    if leaders.get(token[0]) != author:
        return f"{task}: not a grant by that term's leader"
    request = _key(data.get("request"), HASH_BYTES)
    return Grant(author, task, claimant, token, lease, request, ts)


def _renew_or_release(book: ClaimBook, entry: ClaimEntry) -> None:
    data = payload_map(entry.body)
    task = _task(data) if data is not None else None
    token = _token(data) if data is not None else None
    claim = book.tasks.get(task) if task is not None else None
    if task is not None and token is not None and (claim is None or token > claim.grant.token):
        book.early.append(entry)  # its grant has not arrived yet
        return
    if claim is None or token != claim.grant.token or entry.author != claim.grant.claimant:
        if entry.kind == PROGRESS and token is not None:
            book.ignored.append((entry.kind, f"{task}: stale or foreign token {list(token)}"))
        return
    if entry.kind == RELEASED:
        claim.released = True
    elif entry.ts > claim.renewed_ts and not claim.released:
        claim.renewed_ts = entry.ts


def may_take(role: Role | None, needs: Iterable[str]) -> str | None:
    """Why an agent with `role` may not take a task that needs these capabilities."""
    if role is None:
        return "its role is not defined"
    if role.authority == Authority.READ_ONLY:
        return f"role {role.name} is read_only"
    # A need is a capability, or the name of the role itself.
    missing = [n for n in needs if n not in role.capabilities and n != role.name]
    if missing:
        return f"role {role.name} lacks {', '.join(missing)}"
    return None


def decide(
    book: ClaimBook,
    request: Request,
    *,
    leader: bytes,
    term: int,
    now: int,
    max_tasks: int,
    role: Role | None,
    lease_ms: int = DEFAULT_LEASE_MS,
) -> Grant | Refusal:
    """The leader's answer to one request, from its claim book."""
    held = book.live(request.task, now)
    if held is not None:
        whose = "it" if held.claimant == request.author else held.claimant.hex()[:12]
        return Refusal(request.task, request.author, f"already held by {whose}", request.hash)
    if book.load(request.author, now) >= max_tasks:
        reason = f"the claimant is at its max tasks ({max_tasks})"
        return Refusal(request.task, request.author, reason, request.hash)
    problem = may_take(role, request.needs)
    if problem is not None:
        return Refusal(request.task, request.author, problem, request.hash)
    token = (term, book.next_grant(term))
    return Grant(leader, request.task, request.author, token, lease_ms, request.hash, now)


def reissues(book: ClaimBook, *, leader: bytes, term: int, now: int) -> list[Grant]:
    """A new leader's grants that carry forward the live grants of earlier terms."""
    out: list[Grant] = []
    number = book.next_grant(term)
    for claim in book.tasks.values():
        g = claim.grant
        if g.term < term and not claim.released and now < claim.expires():
            remaining = claim.expires() - now
            out.append(Grant(leader, g.task, g.claimant, (term, number), remaining, None, now))
            number += 1
    return out
