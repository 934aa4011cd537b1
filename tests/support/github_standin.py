"""A local stand-in for GitHub's REST API: what the GitHub task source and mirror use.

A real HTTP server on 127.0.0.1 (a `ThreadingHTTPServer` in a background thread), so
PyGithub, and daemons in other processes, talk to it as they would to api.github.com:

- ``GET /repos/{o}/{r}/issues`` (state, labels, since, sort, direction, per_page, page;
  a ``Link`` header to the other pages; pull requests mixed in, with a ``pull_request``
  key), ``GET /repos/{o}/{r}/issues/{n}``, ``GET /repos/{o}/{r}``;
- ``GET``/``POST /repos/{o}/{r}/issues/{n}/comments``;
- ``POST /repos/{o}/{r}/issues/{n}/labels``, ``DELETE /repos/{o}/{r}/issues/{n}/labels/{name}``.

As GitHub does: an ``ETag`` on every 200 GET and a 304 for a matching ``If-None-Match``
(a 304 made with an ``Authorization`` header costs no rate limit), the
``X-RateLimit-*`` headers, a 403 once the limit is spent, commenting and labelling bump
the issue's ``updated_at``. The JSON shapes are those of GitHub's OpenAPI description
(`tests/tasks/test_github_standin.py` checks every exchange against it; the one
exception is ``GET /repos/{o}/{r}``, which the source never calls, served in short).

Knobs for tests: `set_rate_limit`, `fail_next` (5xx), `secondary_limit` (a 403 with
``Retry-After``), `refuse_tokens` (401); counters (`requests`, `not_modified`,
`by_path`, `rate_used`); the raw `exchanges`; and direct edits of the state.
"""

from __future__ import annotations

import calendar
import hashlib
import json
import re
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from email.utils import formatdate
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any
from urllib.parse import parse_qs, quote, unquote, urlencode, urlsplit

DOCS = "https://docs.github.com/rest"
PRIMARY_LIMIT_DOCS = (
    "https://docs.github.com/rest/overview/rate-limits-for-the-rest-api"
    "#about-the-primary-rate-limit"
)
SECONDARY_LIMIT_DOCS = (
    "https://docs.github.com/rest/overview/rate-limits-for-the-rest-api#about-secondary-rate-limits"
)
_ISSUES = re.compile(r"/repos/(?P<owner>[^/]+)/(?P<repo>[^/]+)/issues")
_ISSUE = re.compile(r"/repos/(?P<owner>[^/]+)/(?P<repo>[^/]+)/issues/(?P<number>[0-9]+)")
_COMMENTS = re.compile(_ISSUE.pattern + r"/comments")
_LABELS = re.compile(_ISSUE.pattern + r"/labels")
_LABEL = re.compile(_ISSUE.pattern + r"/labels/(?P<name>[^/]+)")
_REPO = re.compile(r"/repos/(?P<owner>[^/]+)/(?P<repo>[^/]+)")


def iso(epoch_s: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(int(epoch_s)))


def parse_iso(text: str) -> float:
    return float(calendar.timegm(time.strptime(text, "%Y-%m-%dT%H:%M:%SZ")))


@dataclass
class Issue:
    number: int
    title: str
    body: str | None
    labels: list[str]
    state: str
    created_at: float
    updated_at: float
    closed_at: float | None = None
    pull_request: bool = False
    user: str = "octocat"
    comments: list[Comment] = field(default_factory=list)


@dataclass
class Comment:
    id: int
    body: str
    user: str
    created_at: float


@dataclass
class Repo:
    id: int
    owner: str
    name: str
    issues: dict[int, Issue] = field(default_factory=dict)
    label_ids: dict[str, int] = field(default_factory=dict)

    @property
    def full_name(self) -> str:
        return f"{self.owner}/{self.name}"


@dataclass(frozen=True)
class Exchange:
    """One request and the response the stand-in sent, as they went over the wire."""

    method: str
    path: str  # without the query
    query: str
    request_headers: dict[str, str]
    request_body: bytes
    status: int
    response_headers: dict[str, str]
    response_body: bytes

    @property
    def url(self) -> str:
        return self.path + ("?" + self.query if self.query else "")


class _Reply(Exception):
    """Ends a request with this status and JSON body."""

    def __init__(
        self, status: int, body: Any = None, headers: dict[str, str] | None = None
    ) -> None:
        super().__init__(status)
        self.status = status
        self.body = body
        self.headers = headers or {}


class GitHubStandIn:
    """Start with `with GitHubStandIn(token="t") as gh:`; `gh.url` is the API's base."""

    def __init__(
        self,
        token: str | None = None,
        *,
        limit: int = 5000,
        clock: Callable[[], float] = time.time,
        login: str = "bzzz-bot",
    ) -> None:
        self.token = token
        self.clock = clock
        self.login = login  # the user the token authenticates (who writes comments)
        self.refuse_tokens = False
        self._lock = threading.RLock()
        self._repos: dict[str, Repo] = {}
        self._next_id = 1000
        self.limit = limit
        self.remaining = limit
        self.reset = int(clock()) + 3600
        self._failures: list[int] = []  # statuses of the next injected 5xx
        self._secondary: list[int] = []  # Retry-After seconds of the next secondary limits
        self.requests = 0
        self.not_modified = 0
        self.rate_used = 0
        self.by_path: Counter[str] = Counter()
        self.exchanges: list[Exchange] = []
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # -- life -------------------------------------------------------------------------

    def start(self) -> GitHubStandIn:
        server = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
        server.daemon_threads = True
        server.standin = self  # type: ignore[attr-defined]
        self._server = server
        self._thread = threading.Thread(
            target=server.serve_forever, args=(0.05,), name="github-standin", daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None

    def __enter__(self) -> GitHubStandIn:
        return self.start()

    def __exit__(
        self,
        kind: type[BaseException] | None,
        value: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    @property
    def url(self) -> str:
        assert self._server is not None, "not started"
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    # -- knobs ------------------------------------------------------------------------

    def set_rate_limit(
        self, remaining: int | None = None, reset: int | None = None, limit: int | None = None
    ) -> None:
        with self._lock:
            if limit is not None:
                self.limit = limit
            if remaining is not None:
                self.remaining = remaining
            if reset is not None:
                self.reset = reset

    def fail_next(self, count: int = 1, status: int = 502) -> None:
        """The next `count` requests answer `status` (a 5xx)."""
        with self._lock:
            self._failures.extend([status] * count)

    def secondary_limit(self, retry_after_s: int = 60, count: int = 1) -> None:
        """The next `count` requests hit a secondary rate limit: 403 with Retry-After."""
        with self._lock:
            self._secondary.extend([retry_after_s] * count)

    def reset_counters(self) -> None:
        with self._lock:
            self.requests = self.not_modified = self.rate_used = 0
            self.by_path.clear()
            self.exchanges.clear()

    # -- state ------------------------------------------------------------------------

    def _new_id(self) -> int:
        self._next_id += 1
        return self._next_id

    def _now(self) -> float:
        return float(int(self.clock()))

    def add_repo(self, full_name: str) -> None:
        owner, _, name = full_name.partition("/")
        with self._lock:
            self._repos.setdefault(full_name.lower(), Repo(self._new_id(), owner, name))

    def remove_repo(self, full_name: str) -> None:
        with self._lock:
            self._repos.pop(full_name.lower(), None)

    def _repo(self, full_name: str) -> Repo:
        return self._repos[full_name.lower()]

    def add_issue(
        self,
        repo: str,
        title: str,
        body: str | None = "",
        labels: Iterable[str] = (),
        *,
        state: str = "open",
        pull_request: bool = False,
        user: str = "octocat",
    ) -> int:
        """A new issue (or pull request) in `repo` (added if new); its number."""
        self.add_repo(repo)
        with self._lock:
            found = self._repo(repo)
            number = len(found.issues) + 1
            now = self._now()
            found.issues[number] = Issue(
                number,
                title,
                body,
                list(dict.fromkeys(labels)),
                state,
                now,
                now,
                now if state == "closed" else None,
                pull_request,
                user,
            )
            for label in labels:
                self._label_id(found, label)
            return number

    def issue(self, repo: str, number: int) -> Issue:
        with self._lock:
            return self._repo(repo).issues[number]

    def _touch(self, issue: Issue) -> None:
        issue.updated_at = self._now()

    def edit_issue(
        self, repo: str, number: int, *, title: str | None = None, body: str | None = None
    ) -> None:
        with self._lock:
            issue = self.issue(repo, number)
            if title is not None:
                issue.title = title
            if body is not None:
                issue.body = body
            self._touch(issue)

    def close_issue(self, repo: str, number: int) -> None:
        with self._lock:
            issue = self.issue(repo, number)
            issue.state, issue.closed_at = "closed", self._now()
            self._touch(issue)

    def reopen_issue(self, repo: str, number: int) -> None:
        with self._lock:
            issue = self.issue(repo, number)
            issue.state, issue.closed_at = "open", None
            self._touch(issue)

    def set_labels(self, repo: str, number: int, labels: Iterable[str]) -> None:
        with self._lock:
            issue = self.issue(repo, number)
            issue.labels = list(dict.fromkeys(labels))
            for label in issue.labels:
                self._label_id(self._repo(repo), label)
            self._touch(issue)

    def labels(self, repo: str, number: int) -> list[str]:
        with self._lock:
            return list(self.issue(repo, number).labels)

    def add_comment(self, repo: str, number: int, body: str, user: str = "octocat") -> None:
        with self._lock:
            issue = self.issue(repo, number)
            issue.comments.append(Comment(self._new_id(), body, user, self._now()))
            self._touch(issue)

    def comments(self, repo: str, number: int) -> list[str]:
        with self._lock:
            return [c.body for c in self.issue(repo, number).comments]

    def _label_id(self, repo: Repo, name: str) -> int:
        key = name.lower()
        if key not in repo.label_ids:
            repo.label_ids[key] = self._new_id()
        return repo.label_ids[key]

    # -- JSON as GitHub's ------------------------------------------------------------

    def _user(self, login: str) -> dict[str, Any]:
        api = f"{self.url}/users/{login}"
        return {
            "login": login,
            "id": int(hashlib.sha256(login.encode()).hexdigest()[:8], 16),
            "node_id": "U_" + hashlib.sha256(login.encode()).hexdigest()[:12],
            "avatar_url": f"https://avatars.githubusercontent.com/{login}",
            "gravatar_id": "",
            "url": api,
            "html_url": f"https://github.com/{login}",
            "followers_url": f"{api}/followers",
            "following_url": f"{api}/following{{/other_user}}",
            "gists_url": f"{api}/gists{{/gist_id}}",
            "starred_url": f"{api}/starred{{/owner}}{{/repo}}",
            "subscriptions_url": f"{api}/subscriptions",
            "organizations_url": f"{api}/orgs",
            "repos_url": f"{api}/repos",
            "events_url": f"{api}/events{{/privacy}}",
            "received_events_url": f"{api}/received_events",
            "type": "User",
            "site_admin": False,
        }

    def _label(self, repo: Repo, name: str) -> dict[str, Any]:
        label_id = self._label_id(repo, name)
        return {
            "id": label_id,
            "node_id": f"LA_{label_id}",
            "url": f"{self.url}/repos/{repo.full_name}/labels/{quote(name, safe='')}",
            "name": name,
            "description": None,
            "color": "ededed",
            "default": False,
        }

    def _issue(self, repo: Repo, issue: Issue) -> dict[str, Any]:
        api = f"{self.url}/repos/{repo.full_name}/issues/{issue.number}"
        html = f"https://github.com/{repo.full_name}"
        body: dict[str, Any] = {
            "id": repo.id * 100_000 + issue.number,
            "node_id": f"I_{repo.id}_{issue.number}",
            "url": api,
            "repository_url": f"{self.url}/repos/{repo.full_name}",
            "labels_url": f"{api}/labels{{/name}}",
            "comments_url": f"{api}/comments",
            "events_url": f"{api}/events",
            "html_url": f"{html}/{'pull' if issue.pull_request else 'issues'}/{issue.number}",
            "number": issue.number,
            "state": issue.state,
            "title": issue.title,
            "body": issue.body,
            "user": self._user(issue.user),
            "labels": [self._label(repo, name) for name in issue.labels],
            "assignee": None,
            "assignees": [],
            "milestone": None,
            "locked": False,
            "active_lock_reason": None,
            "comments": len(issue.comments),
            "closed_at": iso(issue.closed_at) if issue.closed_at is not None else None,
            "created_at": iso(issue.created_at),
            "updated_at": iso(issue.updated_at),
            "author_association": "OWNER",
        }
        if issue.state == "closed":
            body["state_reason"] = "completed"
        if issue.pull_request:
            pulls = f"{self.url}/repos/{repo.full_name}/pulls/{issue.number}"
            body["pull_request"] = {
                "url": pulls,
                "html_url": f"{html}/pull/{issue.number}",
                "diff_url": f"{html}/pull/{issue.number}.diff",
                "patch_url": f"{html}/pull/{issue.number}.patch",
                "merged_at": None,
            }
        return body

    def _comment(self, repo: Repo, issue: Issue, comment: Comment) -> dict[str, Any]:
        issue_url = f"{self.url}/repos/{repo.full_name}/issues/{issue.number}"
        return {
            "id": comment.id,
            "node_id": f"IC_{comment.id}",
            "url": f"{self.url}/repos/{repo.full_name}/issues/comments/{comment.id}",
            "html_url": (
                f"https://github.com/{repo.full_name}/issues/{issue.number}"
                f"#issuecomment-{comment.id}"
            ),
            "body": comment.body,
            "user": self._user(comment.user),
            "created_at": iso(comment.created_at),
            "updated_at": iso(comment.created_at),
            "issue_url": issue_url,
            "author_association": "OWNER",
        }

    def _repo_json(self, repo: Repo) -> dict[str, Any]:
        api = f"{self.url}/repos/{repo.full_name}"
        return {
            "id": repo.id,
            "node_id": f"R_{repo.id}",
            "name": repo.name,
            "full_name": repo.full_name,
            "owner": self._user(repo.owner),
            "private": False,
            "html_url": f"https://github.com/{repo.full_name}",
            "url": api,
            "issues_url": f"{api}/issues{{/number}}",
            "has_issues": True,
            "open_issues_count": sum(i.state == "open" for i in repo.issues.values()),
            "default_branch": "main",
        }

    # -- serving ----------------------------------------------------------------------

    def handle(
        self, method: str, target: str, headers: dict[str, str], body: bytes
    ) -> tuple[int, dict[str, str], bytes]:
        """One request: its status, headers and body. Records the exchange."""
        split = urlsplit(target)
        with self._lock:
            authorized = "authorization" in headers
            status, extra, payload = self._answer(method, split.path, split.query, headers, body)
            data = b"" if payload is None else json.dumps(payload).encode()
            etag = None
            if method == "GET" and status == 200:
                etag = 'W/"' + hashlib.sha256(data).hexdigest() + '"'
                wanted = headers.get("if-none-match")
                if wanted is not None and _etag_matches(wanted, etag):
                    status, data = 304, b""
                    self.not_modified += 1
            # A 401 and a spent limit's 403 cost nothing; nor does a 304 made with
            # credentials (GitHub's rule for conditional requests).
            spent = status == 403 and extra.get("X-RateLimit-Remaining") == "0"
            free = status == 401 or spent or (status == 304 and authorized)
            if not free and self.remaining > 0:
                self.remaining -= 1
                self.rate_used += 1
            out = {
                "Content-Type": "application/json; charset=utf-8",
                "X-GitHub-Media-Type": "github.v3; format=json",
                "X-RateLimit-Limit": str(self.limit),
                "X-RateLimit-Remaining": str(self.remaining),
                "X-RateLimit-Reset": str(self.reset),
                "X-RateLimit-Used": str(self.limit - self.remaining),
                "X-RateLimit-Resource": "core",
                "X-GitHub-Request-Id": f"BZZZ:{self.requests:08X}",
            }
            out.update(extra)
            if etag is not None:
                out["ETag"] = etag
            if status == 304:
                del out["Content-Type"]
            self.requests += 1
            self.by_path[f"{method} {split.path}"] += 1
            self.exchanges.append(
                Exchange(method, split.path, split.query, headers, body, status, out, data)
            )
            return status, out, data

    def _answer(
        self, method: str, path: str, query: str, headers: dict[str, str], body: bytes
    ) -> tuple[int, dict[str, str], Any]:
        try:
            self._gate(headers)
            return self._route(method, path, parse_qs(query), body)
        except _Reply as reply:
            return reply.status, reply.headers, reply.body

    def _gate(self, headers: dict[str, str]) -> None:
        """Authentication, the rate limit and the injected failures, as GitHub orders them."""
        given = headers.get("authorization")
        if given is not None or self.token is not None:
            scheme, _, value = (given or "").partition(" ")
            right = scheme.lower() in ("token", "bearer") and value == self.token
            if given is None:
                raise _Reply(401, {"message": "Requires authentication", "documentation_url": DOCS})
            if self.refuse_tokens or not right:
                raise _Reply(
                    401, {"message": "Bad credentials", "documentation_url": DOCS, "status": "401"}
                )
        if self.clock() >= self.reset:
            self.remaining, self.reset = self.limit, int(self.clock()) + 3600
        if self.remaining <= 0:
            raise _Reply(
                403,
                {
                    "message": "API rate limit exceeded for user ID 1. If you reach out to "
                    "GitHub Support for help, please include the request ID.",
                    "documentation_url": PRIMARY_LIMIT_DOCS,
                },
                {"X-RateLimit-Remaining": "0"},
            )
        if self._secondary:
            wait = self._secondary.pop(0)
            raise _Reply(
                403,
                {
                    "message": "You have exceeded a secondary rate limit. Please wait a few "
                    "minutes before you try again.",
                    "documentation_url": SECONDARY_LIMIT_DOCS,
                },
                {"Retry-After": str(wait)},
            )
        if self._failures:
            status = self._failures.pop(0)
            raise _Reply(status, {"message": "Server Error", "documentation_url": DOCS})

    def _route(
        self, method: str, path: str, query: dict[str, list[str]], body: bytes
    ) -> tuple[int, dict[str, str], Any]:
        if found := _LABEL.fullmatch(path):
            if method == "DELETE":
                return self._delete_label(found, unquote(found["name"]))
        elif found := _LABELS.fullmatch(path):
            if method == "POST":
                return self._add_labels(found, body)
        elif found := _COMMENTS.fullmatch(path):
            if method == "GET":
                return self._list_comments(found, path, query)
            if method == "POST":
                return self._post_comment(found, body)
        elif found := _ISSUE.fullmatch(path):
            if method == "GET":
                repo, issue = self._find_issue(found)
                return 200, {}, self._issue(repo, issue)
        elif found := _ISSUES.fullmatch(path):
            if method == "GET":
                return self._list_issues(found, path, query)
        elif (found := _REPO.fullmatch(path)) and method == "GET":
            return 200, {}, self._repo_json(self._find_repo(found))
        raise _Reply(404, {"message": "Not Found", "documentation_url": DOCS, "status": "404"})

    def _find_repo(self, found: re.Match[str]) -> Repo:
        repo = self._repos.get(f"{found['owner']}/{found['repo']}".lower())
        if repo is None:
            raise _Reply(404, {"message": "Not Found", "documentation_url": DOCS, "status": "404"})
        return repo

    def _find_issue(self, found: re.Match[str]) -> tuple[Repo, Issue]:
        repo = self._find_repo(found)
        issue = repo.issues.get(int(found["number"]))
        if issue is None:
            raise _Reply(404, {"message": "Not Found", "documentation_url": DOCS, "status": "404"})
        return repo, issue

    def _page(
        self, path: str, query: dict[str, list[str]], items: list[Any]
    ) -> tuple[int, dict[str, str], Any]:
        """One page of `items` and the Link header to the others, as GitHub paginates."""
        try:
            per_page = min(max(int(query.get("per_page", ["30"])[0]), 1), 100)
            page = max(int(query.get("page", ["1"])[0]), 1)
        except ValueError:
            raise _Reply(422, {"message": "Validation Failed", "documentation_url": DOCS}) from None
        last = max((len(items) + per_page - 1) // per_page, 1)
        links = []

        def link(number: int, rel: str) -> str:
            params = {k: v[-1] for k, v in query.items()}
            params["page"] = str(number)
            return f'<{self.url}{path}?{urlencode(params)}>; rel="{rel}"'

        if page > 1:
            links += [link(page - 1, "prev"), link(1, "first")]
        if page < last:
            links += [link(page + 1, "next"), link(last, "last")]
        headers = {"Link": ", ".join(links)} if links else {}
        return 200, headers, items[(page - 1) * per_page : page * per_page]

    def _list_issues(
        self, found: re.Match[str], path: str, query: dict[str, list[str]]
    ) -> tuple[int, dict[str, str], Any]:
        repo = self._find_repo(found)
        state = query.get("state", ["open"])[0]
        sort = query.get("sort", ["created"])[0]
        direction = query.get("direction", ["desc"])[0]
        wanted = [w.strip().lower() for w in query.get("labels", [""])[0].split(",") if w.strip()]
        since: float | None = None
        if "since" in query:
            try:
                since = parse_iso(query["since"][0])
            except ValueError:
                raise _Reply(
                    422, {"message": "Validation Failed", "documentation_url": DOCS}
                ) from None
        if state not in ("open", "closed", "all") or sort not in ("created", "updated", "comments"):
            raise _Reply(422, {"message": "Validation Failed", "documentation_url": DOCS})
        issues = [
            issue
            for issue in repo.issues.values()
            if (state == "all" or issue.state == state)
            and all(w in {n.lower() for n in issue.labels} for w in wanted)
            and (since is None or issue.updated_at >= since)
        ]

        def key(issue: Issue) -> tuple[float, int]:
            value = {
                "created": issue.created_at,
                "updated": issue.updated_at,
                "comments": float(len(issue.comments)),
            }[sort]
            return value, issue.number

        issues.sort(key=key, reverse=direction != "asc")
        return self._page(path, query, [self._issue(repo, issue) for issue in issues])

    def _list_comments(
        self, found: re.Match[str], path: str, query: dict[str, list[str]]
    ) -> tuple[int, dict[str, str], Any]:
        repo, issue = self._find_issue(found)
        listed = [self._comment(repo, issue, c) for c in issue.comments]
        return self._page(path, query, listed)

    def _post_comment(self, found: re.Match[str], body: bytes) -> tuple[int, dict[str, str], Any]:
        repo, issue = self._find_issue(found)
        data = _json(body)
        if not isinstance(data, dict) or not isinstance(data.get("body"), str):
            raise _Reply(422, {"message": "Invalid request.", "documentation_url": DOCS})
        comment = Comment(self._new_id(), data["body"], self.login, self._now())
        issue.comments.append(comment)
        self._touch(issue)
        made = self._comment(repo, issue, comment)
        return 201, {"Location": made["url"]}, made

    def _add_labels(self, found: re.Match[str], body: bytes) -> tuple[int, dict[str, str], Any]:
        repo, issue = self._find_issue(found)
        data = _json(body)
        names = data.get("labels") if isinstance(data, dict) else data
        if isinstance(names, str):
            names = [names]
        if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
            raise _Reply(422, {"message": "Invalid request.", "documentation_url": DOCS})
        have = {n.lower() for n in issue.labels}
        for name in names:
            if name.lower() not in have:
                issue.labels.append(name)
                have.add(name.lower())
        self._touch(issue)
        return 200, {}, [self._label(repo, name) for name in issue.labels]

    def _delete_label(self, found: re.Match[str], name: str) -> tuple[int, dict[str, str], Any]:
        repo, issue = self._find_issue(found)
        kept = [n for n in issue.labels if n.lower() != name.lower()]
        if len(kept) == len(issue.labels):
            raise _Reply(404, {"message": "Label does not exist", "documentation_url": DOCS})
        issue.labels = kept
        self._touch(issue)
        return 200, {}, [self._label(repo, n) for n in issue.labels]

    def exchanges_of(self, method: str, pattern: str) -> Iterator[Exchange]:
        """The recorded exchanges whose path matches the regular expression `pattern`."""
        with self._lock:
            listed = list(self.exchanges)
        return (e for e in listed if e.method == method and re.fullmatch(pattern, e.path))


def _json(body: bytes) -> Any:
    try:
        return json.loads(body or b"null")
    except ValueError:
        raise _Reply(400, {"message": "Problems parsing JSON", "documentation_url": DOCS}) from None


def _etag_matches(header: str, etag: str) -> bool:
    """If-None-Match compares weakly: W/"x" matches "x"."""
    bare = etag.removeprefix("W/")
    return any(tag.strip().removeprefix("W/") in (bare, "*") for tag in header.split(","))


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    timeout = 30
    server_version = "GitHub.com-standin"

    def _serve(self) -> None:
        standin: GitHubStandIn = self.server.standin  # type: ignore[attr-defined]
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        headers = {k.lower(): v for k, v in self.headers.items()}
        status, out, data = standin.handle(self.command, self.path, headers, body)
        self.send_response(status)
        for name, value in out.items():
            self.send_header(name, value)
        if status != 304:
            self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        if status != 304:
            self.wfile.write(data)

    do_GET = do_POST = do_DELETE = do_PATCH = do_PUT = _serve

    def date_time_string(self, timestamp: float | None = None) -> str:
        """The Date header by the stand-in's clock (tests may move it)."""
        standin: GitHubStandIn = self.server.standin  # type: ignore[attr-defined]
        return formatdate(standin.clock() if timestamp is None else timestamp, usegmt=True)

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet: the exchanges are recorded instead."""


class FakeClock:
    """A clock tests move by hand, shared by the stand-in (seconds) and the source (ms)."""

    def __init__(self, start: float = 1_700_000_000.0) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now

    def ms(self) -> int:
        return int(self.now * 1000)

    def advance(self, seconds: float) -> None:
        self.now += seconds
