"""What a task source reports when polled, and the entries the admin writes for it.

A source (`bzzz.tasks`: a local folder, GitHub, Hive) reports per *scope*: the unit it
lists at once (a folder, one repository, one Hive project). A scope's report is either
complete (every open task of the scope: a task of that scope on the board but not in the
report was closed at the source) or a delta (the tasks that changed, and those seen
closed). `changes_to_entries` turns reports and the board's current specs into
`task.opened` / `task.updated` / `task.closed` bodies, writing nothing for what did not
change: an unchanged source costs no entry.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from bzzz.domain import task_entries as te
from bzzz.domain.board import Board
from bzzz.domain.tasks import TaskSpec, TaskState, fit

S = TaskState


@dataclass(frozen=True, slots=True)
class ScopeChanges:
    """One scope's report, e.g. scope ``github:octo/app`` or ``local:/srv/tasks``."""

    scope: str
    specs: tuple[TaskSpec, ...]  # open tasks seen: all of them when complete
    closed: tuple[str, ...] = ()  # task ids seen closed (or no longer labelled for BZZZ)
    complete: bool = True  # True: any other task of this scope is closed
    keep: tuple[str, ...] = ()  # tasks that exist but could not be read now: left as they are


@dataclass(frozen=True, slots=True)
class SourcePoll:
    """What one poll of one source found. Scopes that were not polled (a rate limit cut
    the poll short) are simply absent: their tasks stay as they are."""

    changes: tuple[ScopeChanges, ...] = ()
    # JSON-able, without secrets (ETags, timestamps): recorded in the log so that the
    # next admin resumes from it. None keeps the cursor recorded last.
    cursor: Mapping[str, Any] | None = None
    problems: tuple[str, ...] = ()  # one line each, naming the file or repository
    retry_at_ms: int | None = None  # rate limited: poll again no sooner than this
    requests: int = 0  # HTTP requests this poll spent (0 for a folder)
    unchanged: tuple[str, ...] = field(default=())  # scopes the source says did not change


@dataclass(frozen=True, slots=True)
class Tenure:
    """One agent's uninterrupted hold on a task, as a mirror shows it to people."""

    task: str
    agent_id: str  # hex
    agent_name: str | None
    claim: str  # hex hash of the grant entry that began the hold: the mirror's marker
    token: tuple[int, int]


@dataclass(frozen=True, slots=True)
class SyncPlan:
    """What the admin writes for one poll of one source."""

    entries: list[tuple[str, dict[str, Any]]]  # task.opened / updated / closed
    synced: dict[str, Any] | None  # the task.synced body, or None: nothing worth a note
    problems: tuple[str, ...]


def plan_sync(board: Board, source: str, poll: SourcePoll, term: int) -> SyncPlan:
    """The entries that bring the board in line with what `source` reported. A task that
    the board holds under another scope is a problem line, not an entry: two sources
    must not fight over one id."""
    entries: list[tuple[str, dict[str, Any]]] = []
    problems = list(poll.problems)
    for change in poll.changes:
        seen: set[str] = set()
        for spec in map(fit, change.specs):
            if spec.id in seen:
                problems.append(f"{change.scope}: {spec.id} is listed twice")
                continue
            seen.add(spec.id)
            found = board.tasks.get(spec.id)
            if found is not None and found.scope != change.scope:
                problems.append(f"{spec.id} comes from {found.scope}, not {change.scope}")
            elif found is None or found.state is S.CLOSED:
                entries.append((te.OPENED, te.task_body(term, source, change.scope, spec)))
            elif found.spec != spec:
                entries.append((te.UPDATED, te.task_body(term, source, change.scope, spec)))
        gone = set(change.closed) - seen
        if change.complete:
            gone |= {
                task_id
                for task_id, task in board.tasks.items()
                if task.scope == change.scope and task_id not in seen
            }
        gone -= set(change.keep)
        for task_id in sorted(gone):
            found = board.tasks.get(task_id)
            if found is not None and found.scope == change.scope and found.state is not S.CLOSED:
                entries.append((te.CLOSED, te.closed_body(term, source, change.scope, task_id)))
    problems = [p[: te.MAX_TEXT] for p in problems[: te.MAX_PROBLEMS]]  # as the log keeps them
    last = board.cursors.get(source)
    cursor = poll.cursor if poll.cursor is not None else (last.cursor if last else None)
    asked = last is None or board.sync_requested > last.lamport
    worth = (
        entries
        or asked
        or (poll.cursor is not None and (last is None or dict(poll.cursor) != last.cursor))
        or tuple(problems) != (last.problems if last else ())
        or poll.retry_at_ms != (last.retry_at if last else None)
    )
    synced = (
        te.synced_body(term, source, cursor, tuple(problems), poll.retry_at_ms) if worth else None
    )
    return SyncPlan(entries, synced, tuple(problems))
