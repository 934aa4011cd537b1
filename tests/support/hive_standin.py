"""A stand-in Hive server on 127.0.0.1: the BZZZ routes of the Hive API that
`bzzz.tasks.hive` reads (see its docstring), over real HTTP, with knobs.

    with HiveStandin(token="s3cret") as hive:
        hive.add_project(1, repository="app")
        hive.add_task(1, 15, "Fix the login")
        source = HiveSource(hive.url, token="s3cret")

Claims behave as the original's mock did: a second claim of a claimed task is a 409
naming the holder (also for the same agent); a ``completed``, ``released`` or
``failed`` status frees the claim.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any

FREEING = {"completed", "released", "failed"}


@dataclass
class Seen:
    """One request as the stand-in received it."""

    method: str
    path: str
    headers: dict[str, str]
    body: Any  # parsed JSON, or None


@dataclass
class _Override:
    status: int
    body: bytes
    headers: dict[str, str] = field(default_factory=dict)
    path: str | None = None  # only requests to this path; None: any
    delay_s: float = 0.0


class HiveStandin:
    def __init__(self, token: str | None = None) -> None:
        self.token = token
        self.projects: dict[int | str, dict[str, Any]] = {}
        # project id -> JSON of the task's number (True is not 1 here) -> task
        self.tasks: dict[int | str, dict[str, dict[str, Any]]] = {}
        self.claims: dict[tuple[str, str], str] = {}  # (project, task) -> agent id
        self.claim_posts: list[dict[str, Any]] = []  # every claim body, answered or not
        self.status_reports: list[dict[str, Any]] = []  # every status body
        self.requests: list[Seen] = []
        self._overrides: list[_Override] = []
        self._lock = threading.Lock()
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # --- knobs ----------------------------------------------------------------------

    def add_project(self, project_id: int | str, **fields: Any) -> dict[str, Any]:
        entry: dict[str, Any] = {
            "project_id": project_id,
            "name": f"project-{project_id}",
            "git_url": f"https://git.example/{project_id}.git",
            "owner": "example",
            "repository": f"repo-{project_id}",
            "branch": "main",
            "bzzz_enabled": True,
            "ready_to_claim": True,
            "private_repo": False,
            "github_token_required": False,
            **fields,
        }
        with self._lock:
            self.projects[project_id] = entry
            self.tasks.setdefault(project_id, {})
        return entry

    def remove_project(self, project_id: int | str) -> None:
        with self._lock:
            del self.projects[project_id]

    def add_task(
        self, project_id: int | str, number: object, title: object, **fields: Any
    ) -> dict[str, Any]:
        entry: dict[str, Any] = {
            "number": number,
            "title": title,
            "description": "",
            "state": "open",
            "labels": ["bzzz-task"],
            "created_at": "2025-01-14T10:00:00Z",
            "updated_at": "2025-01-14T10:30:00Z",
            "html_url": f"https://git.example/{project_id}/issues/{number}",
            "is_claimed": False,
            "assignees": [],
            "task_type": "feature",
            "dependencies": [],
            **fields,
        }
        with self._lock:
            self.tasks.setdefault(project_id, {})[json.dumps(number)] = entry
        return entry

    def remove_task(self, project_id: int | str, number: object) -> None:
        with self._lock:
            del self.tasks[project_id][json.dumps(number)]

    def fail_next(self, n: int = 1, status: int = 500, retry_after: str | None = None) -> None:
        """The next `n` requests are answered `status` (with ``Retry-After``)."""
        headers = {"Retry-After": retry_after} if retry_after is not None else {}
        self.respond_next(n, status, b'{"detail": "boom"}', headers)

    def respond_next(
        self,
        n: int,
        status: int,
        body: bytes,
        headers: dict[str, str] | None = None,
        path: str | None = None,
        delay_s: float = 0.0,
    ) -> None:
        """The next `n` requests (to `path`, or any) get this answer instead: garbage,
        a wrong shape, a huge body, a slow answer."""
        with self._lock:
            for _ in range(n):
                self._overrides.append(_Override(status, body, dict(headers or {}), path, delay_s))

    def claim_of(self, project_id: int | str, number: int | str) -> str | None:
        return self.claims.get((str(project_id), str(number)))

    # --- the server -----------------------------------------------------------------

    @property
    def url(self) -> str:
        assert self._server is not None, "not started"
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    def __enter__(self) -> HiveStandin:
        standin = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: Any) -> None:
                return None

            def do_GET(self) -> None:
                standin._handle(self, "GET")

            def do_POST(self) -> None:
                standin._handle(self, "POST")

            def do_PUT(self) -> None:
                standin._handle(self, "PUT")

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True
        )
        self._thread.start()
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        trace: TracebackType | None,
    ) -> None:
        assert self._server is not None and self._thread is not None
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)

    def _handle(self, handler: BaseHTTPRequestHandler, method: str) -> None:
        length = int(handler.headers.get("Content-Length") or 0)
        raw = handler.rfile.read(length) if length else b""
        try:
            body = json.loads(raw) if raw else None
        except ValueError:
            body = None
        path = handler.path
        with self._lock:
            self.requests.append(Seen(method, path, dict(handler.headers.items()), body))
            override = next((o for o in self._overrides if o.path is None or o.path == path), None)
            if override is not None:
                self._overrides.remove(override)
        if override is not None:
            if override.delay_s:
                threading.Event().wait(override.delay_s)
            self._send(handler, override.status, override.body, override.headers)
            return
        if self.token is not None and handler.headers.get("Authorization") != (
            f"Bearer {self.token}"
        ):
            self._json(handler, 401, {"detail": "Not authenticated"})
            return
        status, answer = self._route(method, path, body)
        self._json(handler, status, answer)

    def _route(self, method: str, path: str, body: Any) -> tuple[int, Any]:
        parts = path.split("?")[0].strip("/").split("/")
        with self._lock:
            if method == "GET" and parts == ["api", "bzzz", "active-repos"]:
                return 200, {"repositories": list(self.projects.values())}
            if len(parts) != 5 or parts[:3] != ["api", "bzzz", "projects"]:
                return 404, {"detail": "Not Found"}
            project = next((k for k in self.tasks if str(k) == parts[3]), None)
            if project is None:
                return 404, {"detail": "Project not found"}
            if method == "GET" and parts[4] == "tasks":
                return 200, list(self.tasks[project].values())
            if not isinstance(body, dict):
                return 422, {"detail": "a JSON object is required"}
            if method == "POST" and parts[4] == "claim":
                self.claim_posts.append(body)
                number, agent = body.get("task_number"), body.get("agent_id")
                if not number or not agent:
                    return 400, {"error": "task_number and agent_id are required"}
                key = (parts[3], str(number))
                if key in self.claims:
                    return 409, {"error": "Task already claimed", "claimed_by": self.claims[key]}
                self.claims[key] = str(agent)
                return 200, {"success": True, "claim_id": f"{parts[3]}-{number}-{agent}"}
            if method == "PUT" and parts[4] == "status":
                self.status_reports.append(body)
                number, status = body.get("task_number"), body.get("status")
                if not number or not status:
                    return 400, {"error": "task_number and status are required"}
                if status in FREEING:
                    self.claims.pop((parts[3], str(number)), None)
                return 200, {"success": True}
        return 405, {"detail": "Method Not Allowed"}

    def _json(self, handler: BaseHTTPRequestHandler, status: int, answer: Any) -> None:
        self._send(handler, status, json.dumps(answer).encode(), {})

    @staticmethod
    def _send(
        handler: BaseHTTPRequestHandler, status: int, body: bytes, headers: dict[str, str]
    ) -> None:
        handler.send_response(status)
        handler.send_header("Content-Type", "application/json")
        handler.send_header("Content-Length", str(len(body)))
        for name, value in headers.items():
            handler.send_header(name, value)
        handler.end_headers()
        with suppress(BrokenPipeError, ConnectionResetError):
            handler.wfile.write(body)


@contextmanager
def hive_standin(token: str | None = None) -> Iterator[HiveStandin]:
    with HiveStandin(token) as standin:
        yield standin
