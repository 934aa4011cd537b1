"""The Hive task source and mirror (issue 18): tasks listed by a Hive server's BZZZ API,
claims and their ends reported back to it.

The protocol is the one the original BZZZ (Go, ``anthonyrawlins/bzzz``) spoke: its
client ``pkg/hive/client.go`` and models ``pkg/hive/models.go``, the server side in
``anthonyrawlins/hive`` (``backend/app/api/projects.py``, the ``/api/bzzz`` router, and
``backend/app/services/project_service.py``), and the original's ``mock-hive-server.py``.
Every request carries ``Authorization: Bearer TOKEN`` when a token is configured
(the original sent it the same way; the server's BZZZ routes did not check it)::

    GET  /api/bzzz/active-repos
         -> {"repositories": [{"project_id": 1, "name": "...", "git_url": "https://...",
             "owner": "...", "repository": "...", "branch": "main", "bzzz_enabled": true,
             "ready_to_claim": true, "private_repo": false, "github_token_required": false}]}
    GET  /api/bzzz/projects/{project_id}/tasks
         -> [{"number": 15, "title": "...", "description": "...", "state": "open",
              "labels": ["bzzz-task", ...], "html_url": "https://...", "task_type": "feature",
              "is_claimed": false, "assignees": [],
              "dependencies": [{"repository": "bzzz", "task_number": 23, ...}]}]
         (the server and the mock send these; ``models.go`` also has ``issue_number``,
         ``priority``, ``requirements``, ``deliverables`` and ``context``)
    POST /api/bzzz/projects/{project_id}/claim   {"task_number", "agent_id", "claimed_at"}
         -> 200/201 {"success": true, "claim_id": "..."}; the original's mock answered
            409 {"error", "claimed_by", "claimed_at"} for a task already claimed
    PUT  /api/bzzz/projects/{project_id}/status  {"task_number", "status", "metadata"}
         -> 200 {"success": true}; statuses: claimed, in_progress, completed, failed,
            escalated. The server answers 400 without ``task_number``, which the Go
            client left out (it sent ``status``, ``updated_at`` and ``results``); this
            module sends ``task_number`` and both ``metadata`` and ``results``.

How this module reads it:

- Each poll lists the active projects, then each project's tasks: one complete
  `ScopeChanges` per project (scope ``hive:PROJECT``); a task's id is
  ``hive:PROJECT/NUMBER``. A project entry with ``"bzzz_enabled": false`` is not
  active. A project that was listed before (the cursor keeps the list) and is no longer
  is reported with no tasks, which closes them.
- Fields: title; ``description`` is the body; labels (strings, or objects with a
  ``name``); ``priority-N``, ``type-X`` and ``needs-X`` labels as for GitHub; else the
  ``priority`` field (a whole number on BZZZ's scale, clamped to 0..9, or a word:
  critical, urgent, high, medium, normal, low; labels ``high-priority`` and alike too);
  ``task_type`` as the type (lowercased; other characters become ``-``); the project's
  ``git_url`` as the repository; ``html_url`` as the link; ``dependencies`` whose
  ``repository`` names exactly one active project as ``hive:PROJECT/N``. A task whose
  ``state`` is present and not ``open`` is not listed (so it closes).
- Every byte is the server's word: a response is read up to `MAX_RESPONSE_BYTES`; a
  wrong shape of the project list, a refused token, a redirect, a 5xx or 429, a
  timeout or a refused connection fail the poll as a whole (`SourceError`, naming the
  URL path, never the token; ``retry_after_s`` from ``Retry-After`` or
  `DEFAULT_RETRY_S` for a 5xx or 429). A project whose tasks cannot be read (a 4xx, a
  wrong shape) is a problem line and its tasks stay as they are; a task that cannot
  be read is a problem line, kept as it is when its id could be read.

The mirror: `claimed` posts the claim, `released` and `completed` put the status
(``released`` is not one of the statuses above: the original never released a task;
the server takes any status). The body also carries the BZZZ claim (the grant's hash)
and token, for Hive or a person to tell the claims apart. Every call is idempotent:
a status put twice is the same status; the Hive server's claim handler records the
claim under ``PROJECT-TASK-AGENT`` and answers the same again, and a 409 naming our
own agent (the mock's answer to a repeated claim) counts as done. A 409 naming another
agent is a `SourceError`: Hive shows someone else, and the log is the truth.

Not done: a project's ``ready_to_claim`` flag is not read (its tasks are fetched
anyway), nor a task's ``is_claimed`` and ``assignees`` (a task someone outside BZZZ
claimed in Hive is still offered); a project dropped from the list while no cursor
was recorded (the first poll) keeps its tasks open; the timeout is per socket read, so a
server that trickles bytes can hold a poll up to the size cap; only projects this
source listed are mirrored, so after a restart nothing is mirrored until the first
poll. Left out: the original's other BZZZ routes (``coordination-log``,
``submit-work``, ``create-pr``, ``chat-log``, ``antennae-log``) and its ``/health``
check; the task fields ``requirements``, ``deliverables`` and ``context`` (a
`TaskSpec` has no place for them); a project's ``branch``.
"""

from __future__ import annotations

import asyncio
import http.client
import json
import math
import os
import re
import socket
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bzzz.domain.intake import ScopeChanges, SourcePoll, Tenure
from bzzz.domain.tasks import (
    DEFAULT_PRIORITY,
    MAX_BODY,
    MAX_LABELS,
    MAX_PRIORITY,
    MAX_TITLE,
    TaskSpec,
    fields_of_labels,
    task_id_problem,
)
from bzzz.errors import SourceError, UsageError
from bzzz.home.config import HiveSourceConfig

MAX_RESPONSE_BYTES = 8 * 1024 * 1024
MAX_PROJECTS = 500
MAX_TASKS = 5_000  # per project
MAX_LABEL = 100  # characters of one label
MAX_URL = 2_000
MAX_RESULT = 4_000  # characters of a completion result sent to Hive
MAX_RETRY_S = 3_600.0
DEFAULT_RETRY_S = 30.0
DEFAULT_TIMEOUT_S = 30.0  # the original's client timeout

ACTIVE_REPOS = "/api/bzzz/active-repos"
_PART = re.compile(r"[A-Za-z0-9._-]{1,100}")  # a project or task part of hive:PROJECT/ID
_NAME = re.compile(r"[a-z0-9][a-z0-9_.-]{0,63}")  # a type or capability (as in tasks)
_ONE_LINE = re.compile(r"[\x00-\x1f\x7f]+")
_URL = re.compile(r"(?:https?|ssh|git)://[^\s\x00-\x1f\x7f]+|[\w.-]+@[\w.-]+:[^\s\x00-\x1f]+")
_PRIORITY_WORDS = {"critical": 0, "urgent": 1, "high": 1, "medium": 3, "normal": 3, "low": 6}


@dataclass(frozen=True, slots=True)
class _Reply:
    status: int
    data: Any  # parsed JSON, or None when the body was empty
    error: str | None  # why the body could not be read as JSON


class _Refused(urllib.request.HTTPRedirectHandler):
    """No redirects: a redirect could carry the token to another host."""

    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None


class HiveSource:
    """A Hive server's BZZZ API as a `TaskSource` and a `TaskMirror`."""

    def __init__(
        self,
        url: str,
        token: str | None = None,
        name: str | None = None,
        *,
        timeout_s: float = DEFAULT_TIMEOUT_S,
        max_response_bytes: int = MAX_RESPONSE_BYTES,
    ) -> None:
        parts = urllib.parse.urlsplit(url.rstrip("/"))
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise UsageError("a Hive URL is http(s)://HOST[:PORT][/PATH]")
        if parts.username is not None or parts.password is not None:
            # Not echoed: it holds a secret. urllib would take it for part of the host.
            raise UsageError(
                "a Hive URL holds no user or password: put the token in the environment "
                "variable that token_env names"
            )
        self.base = url.rstrip("/")
        # For messages: the URL as urllib reads it, without a query or a fragment.
        host = parts.hostname if parts.port is None else f"{parts.hostname}:{parts.port}"
        self.shown = f"{parts.scheme}://{host}{parts.path}"
        self._token = token or None
        self._name = name or f"hive:{parts.hostname}"
        self.timeout_s = timeout_s
        self.max_response_bytes = max_response_bytes
        self.projects: frozenset[str] = frozenset()  # as the last poll listed them
        self._opener = urllib.request.build_opener(_Refused())

    @property
    def name(self) -> str:
        return self._name

    def __repr__(self) -> str:  # never the token
        return f"HiveSource({self.shown!r}, name={self._name!r})"

    # --- TaskSource -----------------------------------------------------------------

    async def poll(self, cursor: Mapping[str, Any] | None) -> SourcePoll:
        return await asyncio.to_thread(self.poll_now, cursor)

    def poll_now(self, cursor: Mapping[str, Any] | None) -> SourcePoll:
        """One poll, blocking (`poll` runs it in a thread)."""
        problems: list[str] = []
        reply = self._request("GET", ACTIVE_REPOS)
        requests = 1
        if reply.status >= 400:
            raise SourceError(f"{self._where('GET', ACTIVE_REPOS)}: HTTP {reply.status}")
        if reply.error is not None:
            raise SourceError(f"{self._where('GET', ACTIVE_REPOS)}: {reply.error}")
        repos = reply.data.get("repositories") if isinstance(reply.data, dict) else None
        if not isinstance(repos, list):
            raise SourceError(
                f"{self._where('GET', ACTIVE_REPOS)}: expected "
                '{"repositories": [...]}, got ' + _shape(reply.data)
            )
        if len(repos) > MAX_PROJECTS:
            problems.append(f"{ACTIVE_REPOS}: {len(repos)} projects; only {MAX_PROJECTS} are read")
        projects, known = self._projects(repos[:MAX_PROJECTS], problems)
        before = _projects_in(cursor)
        if len(repos) > MAX_PROJECTS:
            known |= before  # those past the cap are not read, not gone
        changes: list[ScopeChanges] = []
        for project in projects:
            path = f"/api/bzzz/projects/{project.id}/tasks"
            reply = self._request("GET", path)
            requests += 1
            if reply.status >= 400:
                problems.append(f"{path}: HTTP {reply.status}; its tasks are left as they are")
                continue
            if reply.error is not None:
                problems.append(f"{path}: {reply.error}; its tasks are left as they are")
                continue
            if not isinstance(reply.data, list):
                problems.append(
                    f"{path}: expected a list of tasks, got {_shape(reply.data)}; "
                    "its tasks are left as they are"
                )
                continue
            changes.append(_scope_of(project, reply.data, projects, path, problems))
        for gone in sorted(before - known):
            changes.append(ScopeChanges(f"hive:{gone}", ()))
        self.projects = frozenset(known)
        return SourcePoll(
            changes=tuple(changes),
            cursor={"projects": sorted(known)},
            problems=tuple(problems),
            requests=requests,
        )

    def _projects(self, repos: list[Any], problems: list[str]) -> tuple[list[_Project], set[str]]:
        """The active projects, and every project id listed (a project whose entry is
        wrong otherwise is still known: its tasks are not closed)."""
        found: list[_Project] = []
        known: set[str] = set()
        for n, entry in enumerate(repos):
            where = f"{ACTIVE_REPOS}: entry {n}"
            if not isinstance(entry, dict):
                problems.append(f"{where}: expected an object, got {_shape(entry)}")
                continue
            project_id = _part(entry.get("project_id"))
            if isinstance(project_id, _Bad):
                problems.append(f"{where}: project_id {project_id.why}")
                continue
            if project_id in known:
                problems.append(f"{where}: project {project_id} is listed twice")
                continue
            enabled = entry.get("bzzz_enabled", True)
            if enabled is False:
                continue
            known.add(project_id)
            git_url = entry.get("git_url")
            repo = _url(git_url, _URL)
            if git_url not in (None, "") and repo is None:
                problems.append(f"hive:{project_id}: git_url is not a git URL; tasks have no repo")
            found.append(
                _Project(
                    id=project_id,
                    repo=repo,
                    names=tuple(
                        v
                        for v in (entry.get("repository"), entry.get("name"))
                        if isinstance(v, str) and v
                    ),
                )
            )
        return found, known

    # --- TaskMirror -----------------------------------------------------------------

    def mirrors(self, task: str) -> bool:
        parsed = _task_parts(task)
        return parsed is not None and parsed[0] in self.projects

    async def claimed(self, tenure: Tenure) -> None:
        await asyncio.to_thread(self._claim, tenure)

    async def released(self, tenure: Tenure) -> None:
        await asyncio.to_thread(self._status, tenure, "released", {})

    async def completed(self, tenure: Tenure, result: str, link: str | None) -> None:
        found: dict[str, Any] = {"result": result[:MAX_RESULT]}
        if link:
            found["pull_request_url"] = link
        await asyncio.to_thread(self._status, tenure, "completed", found)

    def _claim(self, tenure: Tenure) -> None:
        project, number = self._parts(tenure.task)
        path = f"/api/bzzz/projects/{project}/claim"
        body = {
            "task_number": number,
            "agent_id": tenure.agent_id,
            "claimed_at": int(time.time()),
            **_marker(tenure),
        }
        reply = self._request("POST", path, body)
        if reply.status == 409:
            holder = reply.data.get("claimed_by") if isinstance(reply.data, dict) else None
            if holder == tenure.agent_id:
                return  # already ours: a repeated call
            other = _quote(holder) if isinstance(holder, str) else "another agent"
            raise SourceError(
                f"{self._where('POST', path)}: Hive says {tenure.task} is claimed by "
                f"{other}, not {tenure.agent_id[:16]}"
            )
        self._check(reply, "POST", path)

    def _status(self, tenure: Tenure, status: str, results: dict[str, Any]) -> None:
        project, number = self._parts(tenure.task)
        path = f"/api/bzzz/projects/{project}/status"
        metadata = {**_marker(tenure), **results}
        body = {
            "task_number": number,
            "status": status,
            "agent_id": tenure.agent_id,
            "updated_at": int(time.time()),
            "metadata": metadata,  # what the Hive server reads
            "results": metadata,  # what the original's client sent
        }
        self._check(self._request("PUT", path, body), "PUT", path)

    def _parts(self, task: str) -> tuple[str, int | str]:
        parsed = _task_parts(task)
        if parsed is None:
            raise SourceError(f"{self._name}: {task[:80]!r} is not a Hive task")
        project, number = parsed
        return project, int(number) if number.isdigit() and len(number) < 19 else number

    def _check(self, reply: _Reply, method: str, path: str) -> None:
        if reply.status not in (200, 201, 202, 204):
            raise SourceError(f"{self._where(method, path)}: HTTP {reply.status}")

    # --- HTTP -----------------------------------------------------------------------

    def _where(self, method: str, path: str) -> str:
        return f"{self._name}: {method} {self.shown}{path}"

    def _request(self, method: str, path: str, body: object = None) -> _Reply:
        """One request. A 2xx or 4xx is a reply (4xx without its body's meaning but for
        a 409); a refused token, a redirect, a 429, a 5xx or a failed connection raise."""
        where = self._where(method, path)
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(self.base + path, data=data, method=method)
        request.add_header("Accept", "application/json")
        request.add_header("User-Agent", "bzzz")
        if data is not None:
            request.add_header("Content-Type", "application/json")
        if self._token:
            request.add_unredirected_header("Authorization", f"Bearer {self._token}")
        try:
            with self._opener.open(request, timeout=self.timeout_s) as response:
                status = int(response.status)
                raw = response.read(self.max_response_bytes + 1)
        except urllib.error.HTTPError as error:
            with error:
                status = error.code
                if status in (401, 403):
                    why = "refused the token" if self._token else "needs a token (token_env)"
                    raise SourceError(f"{where}: HTTP {status}: the server {why}") from None
                if 300 <= status < 400:
                    raise SourceError(
                        f"{where}: HTTP {status}: redirects are not followed"
                    ) from None
                if status == 429 or status >= 500:
                    retry = _retry_after(error.headers.get("Retry-After"))
                    raise SourceError(f"{where}: HTTP {status}", retry_after_s=retry) from None
                try:
                    raw = error.read(self.max_response_bytes + 1)
                except (OSError, http.client.HTTPException):
                    raw = b""
        except (urllib.error.URLError, OSError, http.client.HTTPException, ValueError) as error:
            raise SourceError(f"{where}: {_reason(error)}") from None
        if len(raw) > self.max_response_bytes:
            raise SourceError(
                f"{where}: the response is larger than {self.max_response_bytes} bytes"
            )
        if not raw.strip():
            return _Reply(status, None, None)
        try:
            return _Reply(status, json.loads(raw), None)
        except (ValueError, RecursionError) as error:
            return _Reply(status, None, f"not JSON ({_one_line(str(error), 80)})")


@dataclass(frozen=True, slots=True)
class _Project:
    id: str
    repo: str | None
    names: tuple[str, ...]  # its repository's name and its name: what a dependency names


@dataclass(frozen=True, slots=True)
class _Bad:
    why: str


def hive_source_of(config: HiveSourceConfig, home: Path) -> HiveSource:
    """The source a `tasks.sources` entry of type ``hive`` configures: the token from
    the environment variable `token_env` names (none when unset or empty). `home` is
    unused: a Hive source has no files."""
    token = os.environ.get(config.token_env) if config.token_env else None
    return HiveSource(config.url, token=token or None, name=config.name)


# --- reading tasks ------------------------------------------------------------------


def _scope_of(
    project: _Project,
    tasks: list[Any],
    projects: list[_Project],
    path: str,
    problems: list[str],
) -> ScopeChanges:
    scope = f"hive:{project.id}"
    specs: list[TaskSpec] = []
    keep: list[str] = []
    seen: set[str] = set()
    complete = True
    if len(tasks) > MAX_TASKS:
        problems.append(f"{path}: {len(tasks)} tasks; only {MAX_TASKS} are read")
        complete = False
    for n, entry in enumerate(tasks[:MAX_TASKS]):
        if not isinstance(entry, dict):
            problems.append(f"{path}: task {n}: expected an object, got {_shape(entry)}")
            complete = False  # which task it was is unknown: close none
            continue
        raw = entry.get("number", entry.get("issue_number"))
        number = _part(raw)
        if isinstance(number, _Bad):
            problems.append(f"{path}: task {n}: number {number.why}")
            complete = False
            continue
        task_id = f"hive:{project.id}/{number}"
        if task_id_problem(task_id) is not None:  # longer than a claim's task
            problems.append(f"{path}: task {n}: {task_id_problem(task_id)}")
            complete = False
            continue
        if task_id in seen:
            problems.append(f"{task_id}: listed twice")
            continue
        seen.add(task_id)
        state = entry.get("state", "open")
        if state != "open":
            if not isinstance(state, str):
                problems.append(f"{task_id}: state is {_shape(state)}, not text")
                keep.append(task_id)
            continue  # closed (or claimed/finished in Hive's words): not offered
        spec = _spec(task_id, entry, project, projects, problems)
        if isinstance(spec, str):
            problems.append(f"{task_id}: {spec}")
            keep.append(task_id)
        else:
            specs.append(spec)
    return ScopeChanges(scope, tuple(specs), complete=complete, keep=tuple(keep))


def _spec(
    task_id: str,
    entry: dict[str, Any],
    project: _Project,
    projects: list[_Project],
    problems: list[str],
) -> TaskSpec | str:
    title = entry.get("title")
    if not isinstance(title, str) or not title.strip():
        return f"title: expected text, got {_shape(title)}"
    body = entry.get("description", entry.get("body"))
    if body is None:
        body = ""
    if not isinstance(body, str):
        return f"description: expected text, got {_shape(body)}"
    labels = _labels(entry.get("labels"))
    if labels is None:
        return f"labels: expected a list of text, got {_shape(entry.get('labels'))}"
    fields = fields_of_labels(labels)
    priority = fields.priority
    if priority is None:
        priority = _priority(entry.get("priority"), labels)
    kind = _type(entry.get("task_type")) or fields.type
    return TaskSpec(
        id=task_id,
        title=_one_line(title.strip(), MAX_TITLE),
        body=body.replace("\x00", "")[:MAX_BODY],
        labels=labels,
        priority=priority,
        type=kind,
        needs=fields.needs,
        repo=project.repo,
        depends_on=_dependencies(task_id, entry.get("dependencies"), projects, problems),
        url=_url(entry.get("html_url", entry.get("url")), _HTTP),
    )


_HTTP = re.compile(r"https?://[^\s\x00-\x1f\x7f]+")


def _labels(value: object) -> tuple[str, ...] | None:
    if value is None:
        return ()
    if not isinstance(value, list):
        return None
    found: list[str] = []
    for item in value:
        if isinstance(item, dict):
            item = item.get("name")
        if isinstance(item, str) and item.strip():
            label = _one_line(item.strip(), MAX_LABEL)
            if label not in found:
                found.append(label)
        if len(found) == MAX_LABELS:
            break
    return tuple(found)


def _priority(value: object, labels: tuple[str, ...]) -> int:
    if isinstance(value, int) and not isinstance(value, bool):
        return min(max(value, 0), MAX_PRIORITY)
    if isinstance(value, float) and math.isfinite(value):
        return min(max(round(value), 0), MAX_PRIORITY)
    if isinstance(value, str) and value.strip().lower() in _PRIORITY_WORDS:
        return _PRIORITY_WORDS[value.strip().lower()]
    worded = [
        _PRIORITY_WORDS[word]
        for label in labels
        for word in _label_priority_word(label.lower())
        if word in _PRIORITY_WORDS
    ]
    return min(worded, default=DEFAULT_PRIORITY)


def _label_priority_word(label: str) -> tuple[str, ...]:
    """``high-priority``, ``priority-high``, ``priority: high``: the word."""
    match = re.fullmatch(r"(\w+)[ _-]priority|priority[ _:/-]+(\w+)", label)
    if match is None:
        return ()
    return (match[1] or match[2],)


def _type(value: object) -> str | None:
    if not isinstance(value, str):
        return None
    word = re.sub(r"[^a-z0-9_.-]+", "-", value.strip().lower()).strip("-._")[:64]
    return word if _NAME.fullmatch(word) else None


def _dependencies(
    task_id: str, value: object, projects: list[_Project], problems: list[str]
) -> tuple[str, ...]:
    if not isinstance(value, list):
        return ()
    found: list[str] = []
    for item in value[:MAX_LABELS]:
        if not isinstance(item, dict):
            continue
        name, number = item.get("repository"), _part(item.get("task_number"))
        if not isinstance(name, str) or isinstance(number, _Bad):
            problems.append(f"{task_id}: a dependency without a repository and task_number")
            continue
        owners = [p for p in projects if name in p.names]
        if len(owners) != 1:
            how = "no" if not owners else "more than one"
            problems.append(
                f"{task_id}: depends on {_quote(name)}#{number}: {how} active Hive project "
                "has that repository; left out"
            )
            continue
        other = f"hive:{owners[0].id}/{number}"
        if task_id_problem(other) is None and other not in found and other != task_id:
            found.append(other)
    return tuple(found)


# --- small readers ------------------------------------------------------------------


def _part(value: object) -> str | _Bad:
    """A project id or a task number as one part of ``hive:PROJECT/ID``."""
    if isinstance(value, bool) or value is None:
        return _Bad(f"is {_shape(value)}, not a number or a name")
    if isinstance(value, int):
        if value < 0:
            return _Bad(f"{value} is negative")
        text = str(value)
    elif isinstance(value, str):
        text = value
    elif isinstance(value, float):
        return _Bad(f"{value!r} is not a whole number")
    else:
        return _Bad(f"is {_shape(value)}, not a number or a name")
    if not _PART.fullmatch(text) or set(text) == {"."}:
        return _Bad(f"{_quote(text)} does not fit hive:PROJECT/ID (letters, digits, . _ -)")
    return text


def _task_parts(task: str) -> tuple[str, str] | None:
    if task_id_problem(task) is not None or not task.startswith("hive:"):
        return None
    project, _, number = task.removeprefix("hive:").partition("/")
    if set(project) == {"."} or set(number) == {"."}:
        return None
    return project, number


def _projects_in(cursor: Mapping[str, Any] | None) -> set[str]:
    """The projects the cursor (our own, from the log) says were listed last."""
    listed = cursor.get("projects") if isinstance(cursor, Mapping) else None
    if not isinstance(listed, list):
        return set()
    return {p for p in listed if isinstance(p, str) and not isinstance(_part(p), _Bad)}


def _marker(tenure: Tenure) -> dict[str, Any]:
    return {
        "bzzz_claim": tenure.claim,
        "bzzz_token": list(tenure.token),
        "agent_name": tenure.agent_name,
    }


def _url(value: object, pattern: re.Pattern[str]) -> str | None:
    if isinstance(value, str) and len(value) <= MAX_URL and pattern.fullmatch(value):
        return value
    return None


def _shape(value: object) -> str:
    if value is None:
        return "nothing"
    if isinstance(value, bool):
        return "true or false"
    return {
        dict: "an object",
        list: "a list",
        str: "text",
        int: "a number",
        float: "a number",
    }.get(type(value), type(value).__name__)


def _quote(value: object) -> str:
    return repr(_one_line(value, 60)) if isinstance(value, str) else _shape(value)


def _one_line(text: str, limit: int) -> str:
    return _ONE_LINE.sub(" ", text)[:limit]


def _retry_after(value: str | None) -> float:
    """Seconds from a ``Retry-After`` header (a number; a date counts as the default)."""
    try:
        seconds = float(value) if value is not None else DEFAULT_RETRY_S
    except ValueError:
        seconds = DEFAULT_RETRY_S
    if not math.isfinite(seconds):
        seconds = DEFAULT_RETRY_S
    return min(max(seconds, 1.0), MAX_RETRY_S)


def _reason(error: BaseException) -> str:
    if isinstance(error, urllib.error.URLError) and not isinstance(error.reason, str):
        error = error.reason if isinstance(error.reason, BaseException) else error
    if isinstance(error, (TimeoutError, socket.timeout)):
        return "timed out"
    if isinstance(error, ConnectionRefusedError):
        return "connection refused"
    if isinstance(error, socket.gaierror):
        return "unknown host"
    if isinstance(error, OSError) and error.strerror:
        return _one_line(error.strerror, 120)
    if isinstance(error, http.client.HTTPException):
        return f"not an HTTP answer ({type(error).__name__})"
    return _one_line(str(error) or type(error).__name__, 120)
