"""The task board: every node folds the same entries into the same board.

`fold_board(entries, leaders)` walks the task entries (`bzzz.domain.task_entries`) and
the claim entries in causal order (Lamport clock, then author) and moves each task
through `tasks.step`. An entry that is not valid (an admin entry whose author did not
lead its term, a holder's entry with a token that is not of its hold) or that would make
an impossible transition is ignored and reported in `Board.ignored`; nothing crashes
the fold.

Time is not an entry: whether a held task's lease has lapsed, and whether a task waits
for a dependency, is decided when the board is looked at (`Board.view(now, live)`,
with the claim book saying which grants are live).

A *hold* (a tenure) is one agent's uninterrupted claim on a task: it begins with a grant
to that agent while nobody holds the task, and carries on through the grants a new
leader re-issues to the same agent under new tokens. Each of its tokens is good for the
holder's progress, completion or failure; the hash of the grant entry that began it
names it (GitHub comments carry it as their marker).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from bzzz.domain import claims as cl
from bzzz.domain import task_entries as te
from bzzz.domain.payload import payload_map
from bzzz.domain.tasks import MAX_LINK, TaskEvent, TaskSpec, TaskState, is_claimable, step

S, E = TaskState, TaskEvent
HELD = frozenset({S.CLAIMED, S.PLANNING, S.WORKING, S.REVIEW, S.ESCALATED})
KINDS = (
    *te.ADMIN_KINDS,
    *te.HOLDER_KINDS,
    te.SYNC_REQUESTED,
    cl.GRANTED,
    cl.RELEASED,
    cl.PROGRESS,
)
MAX_HISTORY = 200  # per task: the oldest are dropped past this
MAX_IGNORED = 1000
MAX_ENDED = 20  # per task: earlier holds kept for the mirror


# A task or claim entry reduced to what the board needs: the claim rules' own.
BoardEntry = cl.ClaimEntry


@dataclass(frozen=True, slots=True)
class Event:
    """One line of a task's history."""

    ts: int
    author: bytes
    kind: str
    what: str
    entry: bytes


@dataclass
class Hold:
    holder: bytes
    claim: bytes  # the grant entry that began the hold
    tokens: list[cl.Token]

    @property
    def token(self) -> cl.Token:
        return self.tokens[-1]


@dataclass
class BoardTask:
    spec: TaskSpec
    source: str
    scope: str
    opened_ts: int
    state: TaskState = S.OPEN
    hold: Hold | None = None
    result: str | None = None
    link: str | None = None
    reason: str | None = None  # of a failure
    history: list[Event] = field(default_factory=list)
    ended: list[Hold] = field(default_factory=list)  # earlier holds, the latest last
    mirrored: set[tuple[bytes, str]] = field(default_factory=set)  # (claim, step) shown
    top: cl.Token | None = None  # the newest grant's token, as the claim book keeps it

    def end_hold(self) -> None:
        if self.hold is not None:
            self.ended = [*self.ended[-(MAX_ENDED - 1) :], self.hold]
            self.hold = None

    def note(self, entry: BoardEntry, what: str) -> None:
        self.history.append(Event(entry.ts, entry.author, entry.kind, what, entry.hash))
        if len(self.history) > MAX_HISTORY:
            del self.history[0]


@dataclass(frozen=True, slots=True)
class Cursor:
    source: str
    cursor: Mapping[str, Any] | None
    ts: int
    lamport: int
    problems: tuple[str, ...]
    retry_at: int | None


@dataclass(frozen=True, slots=True)
class TaskView:
    """A task as it stands at some moment."""

    task: BoardTask
    state: TaskState
    holder: bytes | None
    token: cl.Token | None
    waiting_for: tuple[str, ...]  # dependencies not done yet
    unknown: tuple[str, ...]  # dependencies the board does not know

    @property
    def id(self) -> str:
        return self.task.spec.id

    @property
    def claimable(self) -> bool:
        return is_claimable(self.state)


@dataclass
class Board:
    tasks: dict[str, BoardTask] = field(default_factory=dict)
    cursors: dict[str, Cursor] = field(default_factory=dict)  # per source: the latest
    sync_requested: int = 0  # the Lamport clock of the latest request to poll now
    ignored: list[str] = field(default_factory=list)
    last: tuple[int, bytes, bytes] | None = None  # the order of the last entry folded

    def ignore(self, entry: BoardEntry, why: str) -> None:
        if len(self.ignored) < MAX_IGNORED:
            self.ignored.append(f"{entry.kind} {entry.hash.hex()[:12]}: {why}")

    def view(self, task: str, now: int, live: Callable[[str], cl.Grant | None]) -> TaskView:
        """`task` at `now`; `live(task)` is the claim book's live grant of a task."""
        t = self.tasks[task]
        state, holder, token = t.state, None, None
        if state in HELD and t.hold is not None:
            grant = live(task)
            if grant is not None and grant.claimant == t.hold.holder:
                holder, token = t.hold.holder, t.hold.token
            else:
                state = S.RELEASED  # the lease lapsed, or the grant died with its term
        waiting: list[str] = []
        unknown: list[str] = []
        for dep in t.spec.depends_on:
            other = self.tasks.get(dep)
            if other is None:
                unknown.append(dep)
            elif other.state not in (S.DONE, S.CLOSED):
                waiting.append(dep)
        if waiting and is_claimable(state):
            blocked = step(state, E.BLOCKED)
            state = blocked if isinstance(blocked, TaskState) else state
        return TaskView(t, state, holder, token, tuple(waiting), tuple(unknown))

    def views(self, now: int, live: Callable[[str], cl.Grant | None]) -> list[TaskView]:
        """Every task, most urgent first, then oldest."""
        ordered = sorted(
            self.tasks.values(), key=lambda t: (t.spec.priority, t.opened_ts, t.spec.id)
        )
        return [self.view(t.spec.id, now, live) for t in ordered]


def fold_board(
    entries: Iterable[BoardEntry],
    leaders: Mapping[int, bytes],
    ends: Mapping[int, int] | None = None,
) -> Board:
    """The board from task and claim entries (any order), the proven leaders and when
    each term's authority ended (`Leadership.ends`)."""
    board = Board()
    apply_board(board, sorted(entries, key=lambda e: e.order), leaders, ends)
    return board


def apply_board(
    board: Board,
    ordered: Iterable[BoardEntry],
    leaders: Mapping[int, bytes],
    ends: Mapping[int, int] | None = None,
) -> None:
    """Fold more entries, which must come after every entry folded so far (in
    `BoardEntry.order`); otherwise fold anew.

    An admin entry counts when its author proved leadership of the term it names and it
    does not come (in causal order) after the proof of a newer term: a deposed admin
    cannot go on writing the board in its old term's name. An honest entry that loses
    that race is only a delay: the new admin's next sync or mirror pass writes it again.
    """
    ends = ends or {}
    for entry in ordered:
        assert board.last is None or entry.order > board.last, "entries out of order"
        board.last = entry.order
        data = payload_map(entry.body)
        if data is None:
            board.ignore(entry, "the body is not a map")
            continue
        if entry.kind in te.ADMIN_KINDS:
            _admin(board, entry, data, leaders, ends)
        elif entry.kind == te.SYNC_REQUESTED:
            board.sync_requested = entry.lamport
        elif entry.kind == cl.GRANTED:
            _granted(board, entry, data, leaders)
        else:
            _holders(board, entry, data)


def _admin(
    board: Board,
    entry: BoardEntry,
    data: Mapping[str, Any],
    leaders: Mapping[int, bytes],
    ends: Mapping[int, int],
) -> None:
    term = te.term_of(data)
    if term is None or leaders.get(term) != entry.author:
        board.ignore(entry, "not written by a proven leader of its term")
        return
    end = ends.get(term)
    if end is not None and entry.lamport > end:
        board.ignore(entry, f"written after a newer term than {term} was proven")
        return
    if entry.kind == te.MIRRORED:
        shown = board.tasks.get(te.text_field(data, "task", 200) or "")
        claim, what = data.get("claim"), data.get("step")
        if shown is None or not isinstance(claim, bytes) or what not in te.MIRROR_STEPS:
            board.ignore(entry, "a mirror note names a task on the board, a claim and a step")
            return
        assert isinstance(what, str)
        shown.mirrored.add((claim, what))
        return
    if entry.kind == te.SYNCED:
        source = te.text_field(data, "source", te.MAX_SCOPE)
        cursor = data.get("cursor")
        problems = data.get("problems")
        retry = data.get("retry_at")
        if source is None or not (cursor is None or isinstance(cursor, dict)):
            board.ignore(entry, "a sync names its source and a cursor map")
            return
        listed = problems if isinstance(problems, list) else []
        lines = tuple(p for p in listed if isinstance(p, str))
        board.cursors[source] = Cursor(
            source,
            cursor,
            entry.ts,
            entry.lamport,
            lines[: te.MAX_PROBLEMS],
            retry if type(retry) is int else None,
        )
        return
    where = te.scope_of(data)
    if where is None:
        board.ignore(entry, "no source and scope")
        return
    source, scope = where
    if entry.kind == te.CLOSED:
        task = te.text_field(data, "task", 200)
        found = board.tasks.get(task) if task else None
        if found is None:
            board.ignore(entry, f"closes {task!r}, which is not on the board")
            return
        if _step(board, found, entry, E.CLOSED, "closed at the source"):
            found.end_hold()
        return
    spec = te.parse_spec(data.get("spec"))
    if isinstance(spec, str):
        board.ignore(entry, spec)
        return
    found = board.tasks.get(spec.id)
    if found is None:
        found = BoardTask(spec, source, scope, entry.ts)
        board.tasks[spec.id] = found
        found.note(entry, f"opened from {scope}")
        return
    if found.scope != scope:
        board.ignore(entry, f"{spec.id} belongs to {found.scope}, not {scope}")
        return
    found.spec = spec
    if found.state is S.CLOSED:
        _step(board, found, entry, E.REOPENED, "reopened at the source")
    else:
        found.note(entry, "updated at the source")


def _granted(
    board: Board, entry: BoardEntry, data: Mapping[str, Any], leaders: Mapping[int, bytes]
) -> None:
    for item in cl.grant_maps(data) or []:
        grant = cl.parse_grant(entry.author, entry.ts, item, leaders)
        if isinstance(grant, str):
            continue  # the claim book reports bad grants
        task = board.tasks.get(grant.task)
        if task is None:
            continue  # a claim on something that is not on the board
        if task.top is not None and grant.token <= task.top:
            continue  # an older grant that arrived late: the newest token wins
        task.top = grant.token
        hold = task.hold
        if task.state in HELD and hold is not None and hold.holder == grant.claimant:
            if grant.token > hold.token:
                hold.tokens.append(grant.token)  # a re-issue: the same hold goes on
            continue
        if task.state in HELD:  # the old hold ended without an entry (lease, term)
            task.state = S.RELEASED
            task.end_hold()
        if _step(board, task, entry, E.CLAIMED, f"granted to {grant.claimant.hex()[:12]}"):
            task.end_hold()
            task.hold = Hold(grant.claimant, entry.hash, [grant.token])
            task.result = task.link = task.reason = None


def _holders(board: Board, entry: BoardEntry, data: Mapping[str, Any]) -> None:
    task_id = te.text_field(data, "task", 200)
    task = board.tasks.get(task_id) if task_id else None
    if task is None:
        if entry.kind in te.HOLDER_KINDS:
            board.ignore(entry, f"{task_id!r} is not on the board")
        return
    token = te.token_of(data)
    hold = task.hold
    if entry.kind == cl.RELEASED and _over(task, entry.author, token):
        return  # a holder lets go of its claim after its work ended: nothing to fold
    if hold is None or entry.author != hold.holder or token not in hold.tokens:
        if entry.kind != cl.PROGRESS or data.get("phase") is not None:
            board.ignore(entry, f"{task_id}: the author does not hold it with that token")
        return
    if entry.kind == cl.RELEASED:
        if _step(board, task, entry, E.RELEASED, "released by its holder"):
            task.end_hold()
    elif entry.kind == te.COMPLETED:
        if _step(board, task, entry, E.COMPLETED, "completed"):
            task.result = te.text_field(data, "result")
            task.link = te.text_field(data, "link", MAX_LINK)
    elif entry.kind == te.FAILED:
        if _step(board, task, entry, E.FAILED, "failed"):
            task.reason = te.text_field(data, "reason")
            task.end_hold()
    elif entry.kind == cl.PROGRESS:
        phase = data.get("phase")
        if phase in te.PHASES:
            assert isinstance(phase, str)
            _step(board, task, entry, TaskEvent(phase), phase)
        elif phase is not None:
            board.ignore(entry, f"{task_id}: unknown phase (known: {', '.join(te.PHASES)})")


def _over(task: BoardTask, author: bytes, token: cl.Token | None) -> bool:
    """Whether `token` is of a hold by `author` whose work is over (done, or ended)."""
    holds = [*task.ended, *([task.hold] if task.hold and task.state is S.DONE else [])]
    return any(h.holder == author and token in h.tokens for h in holds)


def _step(board: Board, task: BoardTask, entry: BoardEntry, event: TaskEvent, what: str) -> bool:
    after = step(task.state, event)
    if not isinstance(after, TaskState):  # a TaskState is a str too: test for it
        board.ignore(entry, f"{task.spec.id}: {after}")
        return False
    task.state = after
    task.note(entry, what)
    return True
