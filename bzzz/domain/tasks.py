"""The task model (issue 18): what a task is, where it comes from, and the states it
moves through. Pure: the sources (`bzzz.tasks`) read GitHub issues, a local
folder or a Hive API and hand their fields here; the task board (`bzzz.domain.board`)
folds entries into states with `step`.

A task's id names its source: ``github:OWNER/REPO#N``, ``local:SLUG``,
``hive:PROJECT/ID``. It is also the task's name in the claim book, so it fits a claim's
task (at most `claims.MAX_TASK` characters).

States::

    open -> claimed -> planning -> working -> review -> done
    blocked (a dependency is not done), escalated, failed, released, closed (at the source)

`step(state, event)` gives the next state, or why the event is impossible in that state:
a fold ignores such an entry and reports it, and never crashes on it.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from enum import StrEnum
from typing import Any

from bzzz.domain.claims import MAX_TASK

DEFAULT_PRIORITY = 3  # 0 is the most urgent
MAX_PRIORITY = 9
MAX_TITLE = 256  # characters
MAX_BODY = 32 * 1024  # bytes of UTF-8: a spec fits an entry's body with room to spare
MAX_LABELS = 50
MAX_LABEL = 50  # characters, as GitHub's own limit
MAX_DEPENDS = 20
MAX_LINK = 2048
MAX_NAME = 64  # a label's value: a type, a capability

_OWNER = r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,38})"
_REPO = r"[A-Za-z0-9._-]{1,100}"
_GITHUB = re.compile(rf"github:(?P<owner>{_OWNER})/(?P<repo>{_REPO})#(?P<number>[1-9][0-9]{{0,9}})")
_LOCAL = re.compile(r"local:[a-z0-9][a-z0-9._-]{0,99}")
_HIVE = re.compile(r"hive:[A-Za-z0-9._-]{1,100}/[A-Za-z0-9._-]{1,100}")
_NAME = re.compile(r"[a-z0-9][a-z0-9_.-]{0,63}")
_DEPENDS = re.compile(
    rf"depends on (?:(?P<owner>{_OWNER})/(?P<repo>{_REPO}))?#(?P<number>[1-9][0-9]{{0,9}})",
    re.IGNORECASE,
)
FRONT_MATTER_KEYS = frozenset({"title", "priority", "type", "needs", "depends_on", "repo"})


def task_id_problem(text: object) -> str | None:
    """Why `text` is not a task id, or None when it is one."""
    if not isinstance(text, str):
        return f"a task id is text, not {type(text).__name__}"
    if len(text) > MAX_TASK:
        return f"a task id is at most {MAX_TASK} characters"
    if _GITHUB.fullmatch(text) or _LOCAL.fullmatch(text) or _HIVE.fullmatch(text):
        return None
    return (
        f"{text[:80]!r} is not a task id: github:OWNER/REPO#N, local:SLUG "
        "(lowercase letters, digits, . _ -) or hive:PROJECT/ID"
    )


def github_id(owner: str, repo: str, number: int) -> str:
    return f"github:{owner}/{repo}#{number}"


def issue_number(task: str) -> int | None:
    """The issue number of a GitHub task id, or None for any other task."""
    found = _GITHUB.fullmatch(task)
    return int(found["number"]) if found else None


def local_id(slug: str) -> str:
    return f"local:{slug}"


def source_of(task_id: str) -> str:
    """`github`, `local` or `hive`."""
    return task_id.partition(":")[0]


@dataclass(frozen=True, slots=True)
class TaskSpec:
    """What a source says of a task."""

    id: str
    title: str
    body: str = ""
    labels: tuple[str, ...] = ()
    priority: int = DEFAULT_PRIORITY
    type: str | None = None
    needs: tuple[str, ...] = ()
    repo: str | None = None
    depends_on: tuple[str, ...] = ()
    url: str | None = None


def clean(text: str) -> str:
    """`text` as valid UTF-8: a lone surrogate (from JSON's "\\ud800", from YAML, from
    bytes that were not UTF-8) becomes "?", so that every node can encode it."""
    if text.isascii():
        return text
    return text.encode("utf-8", "replace").decode("utf-8")


def cut_utf8(text: str, limit: int) -> str:
    """`text` cut to at most `limit` bytes of UTF-8, on a character boundary."""
    text = clean(text)
    if len(text) * 4 <= limit:
        return text
    return text.encode("utf-8")[:limit].decode("utf-8", "ignore")


def fit(spec: TaskSpec) -> TaskSpec:
    """A spec cut to the limits every node enforces, so that it fits one entry whatever
    a source sent (a hostile server, a huge issue)."""
    return replace(
        spec,
        title=clean(spec.title[:MAX_TITLE]),
        body=cut_utf8(spec.body, MAX_BODY),
        labels=tuple(clean(label[:MAX_LABEL]) for label in spec.labels[:MAX_LABELS]),
        needs=tuple(clean(n) for n in spec.needs[:MAX_LABELS]),
        type=clean(spec.type) if spec.type is not None else None,
        depends_on=spec.depends_on[:MAX_DEPENDS],
        repo=clean(spec.repo[:MAX_LINK]) if spec.repo is not None else None,
        url=clean(spec.url[:MAX_LINK]) if spec.url is not None else None,
    )


@dataclass(frozen=True, slots=True)
class LabelFields:
    priority: int | None
    type: str | None
    needs: tuple[str, ...]


def fields_of_labels(labels: Iterable[str]) -> LabelFields:
    """`priority-N`, `type-X` and `needs-X` labels (case-insensitive); others are kept
    as labels only. Of several priorities the most urgent counts, of several types the
    first in order."""
    priorities: list[int] = []
    types: list[str] = []
    needs: list[str] = []
    for label in labels:
        name = label.strip().lower()
        kind, _, value = name.partition("-")
        if kind == "priority" and re.fullmatch(r"[0-9]", value) and int(value) <= MAX_PRIORITY:
            priorities.append(int(value))
        elif kind == "type" and _NAME.fullmatch(value):
            types.append(value)
        elif kind == "needs" and _NAME.fullmatch(value) and value not in needs:
            needs.append(value)
    return LabelFields(min(priorities, default=None), types[0] if types else None, tuple(needs))


def dependencies_in(body: str, owner: str, repo: str) -> tuple[str, ...]:
    """The issues a GitHub issue's body says it depends on (``depends on #12`` in the
    same repository, ``depends on OTHER/REPO#3`` elsewhere), in order, once each."""
    found: list[str] = []
    for match in _DEPENDS.finditer(body[:MAX_BODY]):
        task = github_id(match["owner"] or owner, match["repo"] or repo, int(match["number"]))
        if task not in found:
            found.append(task)
    return tuple(found)


def spec_from_github(
    owner: str,
    repo: str,
    number: int,
    title: str,
    body: str,
    labels: Iterable[str],
    url: str | None = None,
    web: str = "https://github.com",
) -> TaskSpec:
    """A GitHub issue as a task; the repository it changes is its own, on `web` (the
    forge's web origin: GitHub's, or a GitHub Enterprise server's)."""
    kept = tuple(labels)[:MAX_LABELS]
    fields = fields_of_labels(kept)
    spec = TaskSpec(
        id=github_id(owner, repo, number),
        title=title,
        body=body,
        labels=kept,
        priority=DEFAULT_PRIORITY if fields.priority is None else fields.priority,
        type=fields.type,
        needs=fields.needs,
        repo=f"{web}/{owner}/{repo}.git",
        depends_on=dependencies_in(body, owner, repo),
        url=url,
    )
    return fit(spec)


def spec_from_front_matter(slug: str, data: Mapping[str, Any], body: str) -> TaskSpec | str:
    """A local task file's YAML front matter (already parsed) as a task, or what is
    wrong with it, naming the key."""
    if _LOCAL.fullmatch(local_id(slug)) is None:
        return f"file name {slug!r}: use lowercase letters, digits, '.', '_' and '-'"
    unknown = sorted(str(k) for k in data if k not in FRONT_MATTER_KEYS)
    if unknown:
        return f"unknown key {unknown[0]!r} (known: {', '.join(sorted(FRONT_MATTER_KEYS))})"
    title = data.get("title")
    if not isinstance(title, str) or not title.strip() or len(title) > MAX_TITLE:
        return f"title: 1 to {MAX_TITLE} characters of text"
    priority = data.get("priority", DEFAULT_PRIORITY)
    if type(priority) is not int or not 0 <= priority <= MAX_PRIORITY:
        return f"priority: a whole number from 0 (most urgent) to {MAX_PRIORITY}"
    kind = data.get("type")
    if kind is not None and (not isinstance(kind, str) or not _NAME.fullmatch(kind)):
        return "type: one lowercase word, e.g. bug, feature, docs"
    needs = _names(data.get("needs", []))
    if needs is None:
        return "needs: a list of capabilities (lowercase words)"
    depends = data.get("depends_on", [])
    if isinstance(depends, str):
        depends = [depends]
    ids = [_as_id(d) for d in depends] if isinstance(depends, list) else [None]
    if any(task_id_problem(d) for d in ids):
        return "depends_on: a list of task ids (local:SLUG, github:OWNER/REPO#N, hive:P/ID)"
    repo = data.get("repo")
    if repo is not None and (not isinstance(repo, str) or not repo.strip()):
        return "repo: a git URL or a path"
    if clean(title) != title or clean(body) != body:
        return "not valid text (a lone surrogate, or bytes that were not UTF-8)"
    if len(body.encode("utf-8", "replace")) > MAX_BODY:
        return f"the body is longer than {MAX_BODY} bytes"
    if len(ids) > MAX_DEPENDS:
        return f"depends_on: at most {MAX_DEPENDS} tasks"
    return TaskSpec(
        id=local_id(slug),
        title=title.strip(),
        body=body,
        priority=priority,
        type=kind,
        needs=needs,
        repo=repo,
        depends_on=tuple(dict.fromkeys(d for d in ids if isinstance(d, str))),
    )


def _as_id(value: object) -> object:
    """A bare slug in `depends_on` names a local task."""
    if isinstance(value, str) and ":" not in value:
        return local_id(value)
    return value


def _names(value: object) -> tuple[str, ...] | None:
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list) or len(value) > MAX_LABELS:
        return None
    if not all(isinstance(v, str) and _NAME.fullmatch(v) for v in value):
        return None
    return tuple(dict.fromkeys(value))


class TaskState(StrEnum):
    OPEN = "open"
    BLOCKED = "blocked"
    CLAIMED = "claimed"
    PLANNING = "planning"
    WORKING = "working"
    REVIEW = "review"
    DONE = "done"
    ESCALATED = "escalated"
    FAILED = "failed"
    RELEASED = "released"
    CLOSED = "closed"


class TaskEvent(StrEnum):
    BLOCKED = "blocked"  # a dependency is not done
    UNBLOCKED = "unblocked"  # every dependency is done
    CLAIMED = "claimed"  # a grant made it the holder's
    PLANNING = "planning"  # the holder proposed a plan
    WORKING = "working"  # the plan was approved, or review asked for changes
    REVIEW = "review"  # a pull request or a pushed branch awaits review
    COMPLETED = "completed"  # the holder says it is done
    FAILED = "failed"  # the holder gave up, with the reason
    ESCALATED = "escalated"  # a person must decide
    RESOLVED = "resolved"  # the person decided: work goes on
    RELEASED = "released"  # the holder let it go, or its lease lapsed
    CLOSED = "closed"  # closed at the source
    REOPENED = "reopened"  # reopened at the source


S, E = TaskState, TaskEvent
# Work in progress: what the holder may do, and what may end it.
_HELD = {S.CLAIMED, S.PLANNING, S.WORKING, S.REVIEW, S.ESCALATED}
_CLAIMABLE = {S.OPEN, S.RELEASED, S.FAILED}
_NEXT: dict[tuple[TaskState, TaskEvent], TaskState] = {
    **{(s, E.CLAIMED): S.CLAIMED for s in _CLAIMABLE},
    **{(s, E.BLOCKED): S.BLOCKED for s in _CLAIMABLE},
    (S.BLOCKED, E.UNBLOCKED): S.OPEN,
    (S.CLAIMED, E.PLANNING): S.PLANNING,
    (S.PLANNING, E.PLANNING): S.PLANNING,  # a revised plan
    (S.PLANNING, E.WORKING): S.WORKING,
    (S.WORKING, E.REVIEW): S.REVIEW,
    (S.REVIEW, E.WORKING): S.WORKING,
    (S.REVIEW, E.REVIEW): S.REVIEW,  # more pushed to the same review
    (S.WORKING, E.COMPLETED): S.DONE,
    (S.CLAIMED, E.COMPLETED): S.DONE,  # done without a plan (a person's, a trivial task)
    (S.REVIEW, E.COMPLETED): S.DONE,
    (S.ESCALATED, E.RESOLVED): S.CLAIMED,  # the holder plans again
    **{(s, E.ESCALATED): S.ESCALATED for s in _HELD - {S.ESCALATED}},
    **{(s, E.FAILED): S.FAILED for s in _HELD},
    **{(s, E.RELEASED): S.RELEASED for s in _HELD},
    **{(s, E.CLOSED): S.CLOSED for s in S if s is not S.CLOSED},
    (S.CLOSED, E.REOPENED): S.OPEN,
}


def step(state: TaskState, event: TaskEvent) -> TaskState | str:
    """The state after `event`, or why `event` cannot happen in `state`."""
    found = _NEXT.get((state, event))
    if found is not None:
        return found
    if event in (E.PLANNING, E.WORKING, E.REVIEW, E.COMPLETED) and state not in _HELD:
        return f"{event.value} on a task that is {state.value}, not held by anyone"
    return f"a task that is {state.value} cannot be {event.value}"


def is_claimable(state: TaskState) -> bool:
    """Whether an agent may ask for the task now."""
    return state in _CLAIMABLE
