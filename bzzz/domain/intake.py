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

from bzzz.domain.tasks import TaskSpec


@dataclass(frozen=True, slots=True)
class ScopeChanges:
    """One scope's report, e.g. scope ``github:octo/app`` or ``local:/srv/tasks``."""

    scope: str
    specs: tuple[TaskSpec, ...]  # open tasks seen: all of them when complete
    closed: tuple[str, ...] = ()  # task ids seen closed (or no longer labelled for BZZZ)
    complete: bool = True  # True: any other task of this scope is closed


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
