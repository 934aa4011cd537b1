"""The entries of the task board (issue 18): their kinds, the bodies BZZZ writes, and
strict parsing of the bodies it reads (every body may come from a hostile peer).

Written by the admin, from the sources, each naming the term it leads (the board counts
one only if its author proved leadership of that term, like a claim grant):

- ``task.opened``  {term, source, scope, spec}: a task appeared (or reappeared)
- ``task.updated`` {term, source, scope, spec}: its title, body, labels... changed
- ``task.closed``  {term, source, scope, task}: closed or removed at the source
- ``task.synced``  {term, source, cursor, problems, retry_at}: a poll ended; the cursor
  is where the next admin resumes
- ``task.mirrored`` {term, task, claim, step}: a hold was shown where people look
  (``claimed``, ``released``, ``completed``), so that the next admin does not repeat it

Written by the holder of a grant, carrying its token (any token of its uninterrupted
hold counts: a new leader re-issues grants under new tokens):

- ``task.progress`` {task, term, grant, phase?}: a renewal; with a phase (planning,
  working, review) also a step of the task
- ``task.completed`` {task, term, grant, result, link}
- ``task.failed``    {task, term, grant, reason}

Written by anyone: ``task.sync_requested`` {}: asks the admin to poll now.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from bzzz.domain.claims import Token
from bzzz.domain.tasks import (
    MAX_BODY,
    MAX_DEPENDS,
    MAX_LABEL,
    MAX_LABELS,
    MAX_LINK,
    MAX_NAME,
    MAX_PRIORITY,
    MAX_TITLE,
    TaskSpec,
    task_id_problem,
)

OPENED = "task.opened"
UPDATED = "task.updated"
CLOSED = "task.closed"
SYNCED = "task.synced"
MIRRORED = "task.mirrored"
SYNC_REQUESTED = "task.sync_requested"
COMPLETED = "task.completed"
FAILED = "task.failed"
ADMIN_KINDS = (OPENED, UPDATED, CLOSED, SYNCED, MIRRORED)
MIRROR_STEPS = ("claimed", "released", "completed")
HOLDER_KINDS = (COMPLETED, FAILED)
PHASES = ("planning", "working", "review")
MAX_TEXT = 4096  # a result, a reason
MAX_SCOPE = 256
MAX_PROBLEMS = 20
# Task entries of one sync go in batches of this many: a batch is one write.
ENTRIES_PER_BATCH = 200


def spec_map(spec: TaskSpec) -> dict[str, Any]:
    return {
        "id": spec.id,
        "title": spec.title,
        "body": spec.body,
        "labels": list(spec.labels),
        "priority": spec.priority,
        "type": spec.type,
        "needs": list(spec.needs),
        "repo": spec.repo,
        "depends_on": list(spec.depends_on),
        "url": spec.url,
    }


def task_body(term: int, source: str, scope: str, spec: TaskSpec) -> dict[str, Any]:
    """The body of `task.opened` and `task.updated`."""
    return {"term": term, "source": source, "scope": scope, "spec": spec_map(spec)}


def closed_body(term: int, source: str, scope: str, task: str) -> dict[str, Any]:
    return {"term": term, "source": source, "scope": scope, "task": task}


def synced_body(
    term: int,
    source: str,
    cursor: Mapping[str, Any] | None,
    problems: tuple[str, ...],
    retry_at: int | None,
) -> dict[str, Any]:
    return {
        "term": term,
        "source": source,
        "cursor": dict(cursor) if cursor is not None else None,
        "problems": [p[:MAX_TEXT] for p in problems[:MAX_PROBLEMS]],
        "retry_at": retry_at,
    }


def mirrored_body(term: int, task: str, claim: bytes, step: str) -> dict[str, Any]:
    return {"term": term, "task": task, "claim": claim, "step": step}


def outcome_body(task: str, token: Token, **fields: Any) -> dict[str, Any]:
    """`task.progress`, `task.completed` or `task.failed`: the token and its fields."""
    return {"task": task, "term": token[0], "grant": token[1], **fields}


def _text(value: object, limit: int, allow_empty: bool = True) -> str | None:
    if not isinstance(value, str) or len(value) > limit or (not allow_empty and not value):
        return None
    return value


def _opt_text(value: object, limit: int) -> str | bool | None:
    """None stays None; text within `limit` is itself; anything else is False."""
    if value is None:
        return None
    found = _text(value, limit)
    return False if found is None else found


def _names(value: object, limit: int) -> tuple[str, ...] | None:
    if not isinstance(value, list) or len(value) > MAX_LABELS:
        return None
    if not all(isinstance(v, str) and 0 < len(v) <= limit for v in value):
        return None
    return tuple(value)


def parse_spec(data: object) -> TaskSpec | str:
    """A spec map from an entry, or what is wrong with it."""
    if not isinstance(data, dict):
        return "spec: not a map"
    task = data.get("id")
    problem = task_id_problem(task)
    if problem is not None:
        return f"spec.id: {problem}"
    assert isinstance(task, str)
    title, body = _text(data.get("title"), MAX_TITLE, False), _text(data.get("body"), MAX_BODY)
    if body is not None and len(body.encode("utf-8", "replace")) > MAX_BODY:
        body = None
    if title is None or body is None:
        return f"{task}: title (1 to {MAX_TITLE} characters) and body (text) are required"
    priority = data.get("priority")
    if type(priority) is not int or not 0 <= priority <= MAX_PRIORITY:
        return f"{task}: priority must be 0 to {MAX_PRIORITY}"
    labels, needs = _names(data.get("labels"), MAX_LABEL), _names(data.get("needs"), MAX_NAME)
    depends = _names(data.get("depends_on"), 200)
    if labels is None or needs is None or depends is None or len(depends) > MAX_DEPENDS:
        return f"{task}: labels, needs and depends_on must be lists of text"
    if any(task_id_problem(d) for d in depends):
        return f"{task}: depends_on must list task ids"
    kind, repo = _opt_text(data.get("type"), MAX_NAME), _opt_text(data.get("repo"), MAX_LINK)
    url = _opt_text(data.get("url"), MAX_LINK)
    if kind is False or repo is False or url is False:
        return f"{task}: type, repo and url must be text or null"
    assert not isinstance(kind, bool) and not isinstance(repo, bool) and not isinstance(url, bool)
    return TaskSpec(task, title, body, labels, priority, kind, needs, repo, depends, url)


def term_of(data: Mapping[str, Any]) -> int | None:
    term = data.get("term")
    return term if type(term) is int and term > 0 else None


def token_of(data: Mapping[str, Any]) -> Token | None:
    term, grant = data.get("term"), data.get("grant")
    if type(term) is int and type(grant) is int and term > 0 and grant > 0:
        return term, grant
    return None


def scope_of(data: Mapping[str, Any]) -> tuple[str, str] | None:
    """(source, scope) of an admin entry."""
    source, scope = _text(data.get("source"), MAX_SCOPE, False), data.get("scope")
    scope = _text(scope, MAX_SCOPE, False)
    return (source, scope) if source is not None and scope is not None else None


def text_field(data: Mapping[str, Any], key: str, limit: int = MAX_TEXT) -> str | None:
    """An optional text field, cut to `limit`; None when absent or not text."""
    value = data.get(key)
    return value[:limit] if isinstance(value, str) else None
