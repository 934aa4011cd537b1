"""HMMM: agents discuss a plan before they act (issue 19). Pure rules.

Messages are entries in their authors' logs; a thread is every HMMM entry naming it
(a task's thread is named by the task id). Each receiver folds the same entries the
same way (`fold_threads`), and every limit is enforced by that fold, not by the goodwill
of the sender: a message that breaks one stays in its author's log (logs are never
edited) but is left out of the thread and reported once, naming the author and the rule.

Kinds and bodies (``thread`` in each):

- ``hmmm.plan``       {thread, task, term, grant, text, files, approach, effort, risks,
  replaces?}: the holder's plan (a revision names the plan it replaces)
- ``hmmm.msg``        {thread, parent, hop_count, query_type, text, parameters}: the seeds'
  meta_msg; `query_type` is one of `QUERY_TYPES`
- ``hmmm.objection``  {thread, parent (the plan), severity, reason, resolve}
- ``hmmm.approval``   {thread, parent (the plan)}
- ``hmmm.escalation`` {thread, reason, to}: a person must decide
- ``hmmm.resolution`` {thread, outcome, why, of}: how a window, objection or escalation ended

Limits (`Limits`): hops below a root, participants, messages (then the thread
escalates), a time to live from the first message (then it escalates), messages per
author per minute, and no re-entry: a help request or dependency may not be addressed to
the author of one of its ancestors (a delegation cycle). Escalations and resolutions end
threads and count against no limit, but must come from a participant or the admin.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from bzzz.domain import claims as cl
from bzzz.domain.payload import payload_map
from bzzz.domain.tasks import task_id_problem

PLAN = "hmmm.plan"
MSG = "hmmm.msg"
OBJECTION = "hmmm.objection"
APPROVAL = "hmmm.approval"
ESCALATION = "hmmm.escalation"
RESOLUTION = "hmmm.resolution"
KINDS = (PLAN, MSG, OBJECTION, APPROVAL, ESCALATION, RESOLUTION)
QUERY_TYPES = (
    "clarification_needed",
    "suggestion",
    "concern",
    "answer",
    "help_request",
    "help_offer",
    "dependency",
)
ADDRESSED = ("help_request", "dependency")  # carry `parameters.to`: who is asked
SEVERITIES = ("minor", "major", "blocking")
OUTCOMES = ("proceed", "revise", "release", "escalated", "decided")
MAX_TEXT = 8192
MAX_FILES = 200
MAX_PATH = 512
MAX_REPORTED = 1000
_CROSS = re.compile(r"x:[0-9a-f]{16,64}")


@dataclass(frozen=True, slots=True)
class Limits:
    max_hops: int = 3
    max_participants: int = 5
    max_messages: int = 10
    ttl_ms: int = 30 * 60_000
    window_ms: int = 30_000  # the objection window after a plan
    max_revisions: int = 2
    per_minute: int = 6  # messages one author may add to one thread in any minute


class ThreadState(StrEnum):
    DISCUSSING = "discussing"  # messages, no plan yet
    WINDOW = "window"  # a plan waits out its objection window
    READY = "ready"  # the window passed with no major or blocking objection
    OBJECTED = "objected"  # a major objection: revise or release
    ESCALATED = "escalated"  # a person must decide (asked, blocking, or a limit)
    RESOLVED = "resolved"  # the holder proceeds, released, or a person decided


@dataclass(frozen=True, slots=True)
class Message:
    """An accepted HMMM entry."""

    hash: bytes
    author: bytes
    kind: str
    ts: int
    lamport: int
    parent: bytes | None
    hop: int
    data: Mapping[str, Any]

    @property
    def text(self) -> str:
        for key in ("text", "reason", "why"):
            value = self.data.get(key)
            if isinstance(value, str):
                return value
        return ""


@dataclass(frozen=True, slots=True)
class Plan:
    message: Message
    task: str
    token: cl.Token
    files: tuple[str, ...]
    replaces: bytes | None

    @property
    def hash(self) -> bytes:
        return self.message.hash


@dataclass
class Thread:
    id: str
    task: str | None
    first_ts: int = 0
    messages: list[Message] = field(default_factory=list)
    by_hash: dict[bytes, Message] = field(default_factory=dict)
    participants: list[bytes] = field(default_factory=list)
    plans: list[Plan] = field(default_factory=list)
    ignored: list[tuple[bytes, bytes, str]] = field(default_factory=list)  # hash, author, rule
    limit_hit: str | None = None  # the first limit that ended the discussion
    recent: dict[bytes, list[int]] = field(default_factory=dict)  # author -> timestamps

    @property
    def plan(self) -> Plan | None:
        """The current plan: the latest."""
        return self.plans[-1] if self.plans else None

    def after(self, plan: Plan, kind: str) -> list[Message]:
        return [m for m in self.messages if m.kind == kind and m.lamport > plan.message.lamport]

    def objections(self, plan: Plan) -> list[Message]:
        return [m for m in self.messages if m.kind == OBJECTION and m.parent == plan.hash]

    def approvals(self, plan: Plan) -> list[Message]:
        return [m for m in self.messages if m.kind == APPROVAL and m.parent == plan.hash]

    def worst(self, plan: Plan) -> str | None:
        """The most severe objection to `plan`, or None."""
        found = {str(m.data.get("severity")) for m in self.objections(plan)}
        return next((s for s in reversed(SEVERITIES) if s in found), None)


@dataclass(frozen=True, slots=True)
class ThreadView:
    thread: Thread
    state: ThreadState
    why: str
    until: int | None  # when the state changes by itself (a window, the TTL), if it does


@dataclass
class Threads:
    threads: dict[str, Thread] = field(default_factory=dict)
    ignored: list[str] = field(default_factory=list)  # one line per entry left out


# Holder check: (task, author, token) -> whether `author` holds `task` with `token`.
Holds = Callable[[str, bytes, cl.Token], bool]


def thread_id_problem(value: object) -> str | None:
    if isinstance(value, str) and (_CROSS.fullmatch(value) or task_id_problem(value) is None):
        return None
    return "a thread is a task id or x:HEX (a thread between tasks)"


def fold_threads(
    entries: Iterable[cl.ClaimEntry],
    limits: Limits,
    holds: Holds,
    admins: Iterable[bytes] = (),
) -> Threads:
    """The threads from HMMM entries (any order: folded in causal order)."""
    out = Threads()
    admin = frozenset(admins)
    for entry in sorted(entries, key=lambda e: e.order):
        why = _take(out, entry, limits, holds, admin)
        if why is not None and len(out.ignored) < MAX_REPORTED:
            out.ignored.append(
                f"{entry.kind} {entry.hash.hex()[:12]} by {entry.author.hex()[:12]}: {why}"
            )
    return out


def _take(
    out: Threads, entry: cl.ClaimEntry, limits: Limits, holds: Holds, admin: frozenset[bytes]
) -> str | None:
    """Add `entry` to its thread; why not, when it is left out."""
    data = payload_map(entry.body)
    if data is None or entry.kind not in KINDS:
        return "not an HMMM body"
    thread_id = data.get("thread")
    problem = thread_id_problem(thread_id)
    if problem is not None:
        return problem
    assert isinstance(thread_id, str)
    thread = out.threads.get(thread_id)
    if thread is None:
        task = thread_id if task_id_problem(thread_id) is None else None
        thread = Thread(thread_id, task, first_ts=entry.ts)
    why = _check(thread, entry, data, limits, holds, admin)
    if why is not None:
        if thread_id in out.threads:
            thread.ignored.append((entry.hash, entry.author, why))
        return why
    out.threads[thread_id] = thread
    parent = _parent(data)
    hop = thread.by_hash[parent].hop + 1 if parent is not None else 0
    message = Message(
        entry.hash, entry.author, entry.kind, entry.ts, entry.lamport, parent, hop, data
    )
    thread.messages.append(message)
    thread.by_hash[entry.hash] = message
    if entry.author not in thread.participants:
        thread.participants.append(entry.author)
    thread.recent.setdefault(entry.author, []).append(entry.ts)
    if entry.kind == PLAN:
        thread.plans.append(_plan(message))
    counted = sum(1 for m in thread.messages if m.kind not in (ESCALATION, RESOLUTION))
    if counted >= limits.max_messages and thread.limit_hit is None:
        thread.limit_hit = f"the thread reached {limits.max_messages} messages"
    return None


def _parent(data: Mapping[str, Any]) -> bytes | None:
    """The entry a message answers: its hash as bytes, or as 64 hex digits (what a
    script writing JSON can give)."""
    parent = data.get("parent")
    if isinstance(parent, str) and re.fullmatch(r"[0-9a-f]{64}", parent):
        return bytes.fromhex(parent)
    return parent if isinstance(parent, bytes) and len(parent) == 32 else None


def _check(
    thread: Thread,
    entry: cl.ClaimEntry,
    data: Mapping[str, Any],
    limits: Limits,
    holds: Holds,
    admin: frozenset[bytes],
) -> str | None:
    """Which rule `entry` breaks in `thread`, or None."""
    kind, author = entry.kind, entry.author
    text = data.get("text", data.get("reason", data.get("why", "")))
    if not isinstance(text, str) or len(text) > MAX_TEXT:
        return f"text: at most {MAX_TEXT} characters"
    ending = kind in (ESCALATION, RESOLUTION)
    if ending:
        if author not in thread.participants and author not in admin:
            return "only a participant or the admin ends a thread"
        if kind == RESOLUTION and data.get("outcome") not in OUTCOMES:
            return f"outcome: one of {', '.join(OUTCOMES)}"
        return None
    if thread.limit_hit is not None:
        return f"the discussion is over: {thread.limit_hit}"
    if thread.messages and entry.ts > thread.first_ts + limits.ttl_ms:
        return f"after the thread's time to live ({limits.ttl_ms // 60_000} min)"
    if author not in thread.participants and len(thread.participants) >= limits.max_participants:
        return f"the thread has its {limits.max_participants} participants"
    window = [t for t in thread.recent.get(author, []) if entry.ts - 60_000 < t <= entry.ts]
    if len(window) >= limits.per_minute:
        return f"more than {limits.per_minute} messages in a minute"
    raw_parent = data.get("parent")
    parent = _parent(data)
    if raw_parent is not None and (parent is None or parent not in thread.by_hash):
        return "its parent is not a message of this thread"
    if kind == PLAN:
        return _plan_problem(thread, author, data, holds)
    if kind in (OBJECTION, APPROVAL):
        if parent is None or thread.by_hash[parent].kind != PLAN:
            return "an objection or approval answers a plan (its parent)"
        if author == thread.by_hash[parent].author:
            return "the planner does not review its own plan"
        if kind == OBJECTION and data.get("severity") not in SEVERITIES:
            return f"severity: one of {', '.join(SEVERITIES)}"
        return None
    # hmmm.msg
    if data.get("query_type") not in QUERY_TYPES:
        return f"query_type: one of {', '.join(QUERY_TYPES)}"
    if parent is None and thread.messages:
        return "a reply names its parent"
    hop = thread.by_hash[parent].hop + 1 if parent is not None else 0
    claimed = data.get("hop_count")
    if claimed is not None and claimed != hop:
        return f"hop_count {claimed!r} is not its parent's plus one ({hop})"
    if hop > limits.max_hops:
        return f"more than {limits.max_hops} hops"
    if data.get("query_type") in ADDRESSED:
        to = _asked(data)
        if to is not None and to in _ancestors(thread, parent):
            return "re-entry: it asks an agent that is already up its chain"
    return None


def _asked(data: Mapping[str, Any]) -> bytes | None:
    parameters = data.get("parameters")
    to = parameters.get("to") if isinstance(parameters, dict) else None
    if isinstance(to, str) and re.fullmatch(r"[0-9a-f]{64}", to):
        return bytes.fromhex(to)
    return to if isinstance(to, bytes) and len(to) == 32 else None


def _ancestors(thread: Thread, parent: bytes | None) -> set[bytes]:
    authors: set[bytes] = set()
    while parent is not None and parent in thread.by_hash:
        message = thread.by_hash[parent]
        authors.add(message.author)
        parent = message.parent
    return authors


def _plan_problem(
    thread: Thread, author: bytes, data: Mapping[str, Any], holds: Holds
) -> str | None:
    task = data.get("task")
    token = _token(data)
    if thread.task is None or task != thread.task:
        return "a plan belongs in its task's thread"
    if token is None or not holds(thread.task, author, token):
        return "a plan comes from the task's holder, with a token of its hold"
    files = data.get("files", [])
    if not isinstance(files, list) or len(files) > MAX_FILES:
        return f"files: a list of at most {MAX_FILES} paths"
    if not all(isinstance(f, str) and 0 < len(f) <= MAX_PATH for f in files):
        return "files: paths as text"
    replaces = data.get("replaces")
    current = thread.plan
    if current is not None and replaces != current.hash:
        return "a new plan names the current one it replaces"
    if replaces is not None and current is None:
        return "it replaces a plan this thread does not have"
    return None


def _token(data: Mapping[str, Any]) -> cl.Token | None:
    term, grant = data.get("term"), data.get("grant")
    if type(term) is int and type(grant) is int and term > 0 and grant > 0:
        return term, grant
    return None


def _plan(message: Message) -> Plan:
    data = message.data
    token = _token(data)
    assert token is not None  # checked before it was taken
    files = tuple(f for f in data.get("files", []) if isinstance(f, str))
    replaces = data.get("replaces")
    return Plan(
        message,
        str(data["task"]),
        token,
        files,
        replaces if isinstance(replaces, bytes) else None,
    )


def last_ending(thread: Thread) -> Message | None:
    """The latest escalation or resolution of the thread."""
    return next((m for m in reversed(thread.messages) if m.kind in (ESCALATION, RESOLUTION)), None)


def view(thread: Thread, now: int, limits: Limits) -> ThreadView:
    """Where `thread` stands at `now`."""
    last_end = last_ending(thread)
    plan = thread.plan
    if last_end is not None and (plan is None or last_end.lamport > plan.message.lamport):
        if last_end.kind == RESOLUTION:
            outcome = str(last_end.data.get("outcome"))
            return ThreadView(thread, ThreadState.RESOLVED, f"{outcome}: {last_end.text}", None)
        return ThreadView(thread, ThreadState.ESCALATED, last_end.text or "escalated", None)
    if thread.limit_hit is not None:
        return ThreadView(thread, ThreadState.ESCALATED, thread.limit_hit, None)
    expires = thread.first_ts + limits.ttl_ms
    if now >= expires:
        return ThreadView(thread, ThreadState.ESCALATED, "its time to live ran out", None)
    if plan is None:
        return ThreadView(thread, ThreadState.DISCUSSING, "no plan yet", expires)
    worst = thread.worst(plan)
    if worst == "blocking":
        return ThreadView(thread, ThreadState.ESCALATED, "a blocking objection", None)
    closes = plan.message.ts + limits.window_ms
    if worst == "major":
        return ThreadView(thread, ThreadState.OBJECTED, "a major objection", expires)
    if now < closes:
        return ThreadView(thread, ThreadState.WINDOW, "the objection window is open", closes)
    approvals = len(thread.approvals(plan))
    why = f"no major objection in the window; {approvals} approvals"
    return ThreadView(thread, ThreadState.READY, why, expires)


class Next(StrEnum):
    """What the holder of a task does next about its thread."""

    WAIT = "wait"
    PROCEED = "proceed"  # write a resolution (proceed) and start working
    REVISE = "revise"  # post a revised plan
    RELEASE = "release"  # give the task up: revisions are spent
    ESCALATE = "escalate"  # write an escalation
    NOTHING = "nothing"  # the thread is resolved or already escalated


def next_step(v: ThreadView, limits: Limits) -> tuple[Next, str]:
    """The holder's next step, and why."""
    state, thread = v.state, v.thread
    if state is ThreadState.READY:
        return Next.PROCEED, v.why
    if state is ThreadState.OBJECTED:
        revisions = len(thread.plans) - 1
        if revisions < limits.max_revisions:
            return (
                Next.REVISE,
                f"a major objection; revision {revisions + 1} of {limits.max_revisions}",
            )
        return Next.RELEASE, f"a major objection after {revisions} revisions"
    if state is ThreadState.ESCALATED:
        end = last_ending(thread)
        if end is not None and end.kind == ESCALATION:
            return Next.NOTHING, "escalated; a person decides"
        return Next.ESCALATE, v.why
    if state is ThreadState.RESOLVED:
        return Next.NOTHING, v.why
    return Next.WAIT, v.why
