"""A local stand-in for GitHub's REST API: what the GitHub task source, mirror and pull
requests use.

A real HTTP server on 127.0.0.1 (a `ThreadingHTTPServer` in a background thread), so
PyGithub, and daemons in other processes, talk to it as they would to api.github.com:

- ``GET /repos/{o}/{r}/issues`` (state, labels, since, sort, direction, per_page, page;
  a ``Link`` header to the other pages; pull requests mixed in, with a ``pull_request``
  key), ``GET /repos/{o}/{r}/issues/{n}``, ``GET /repos/{o}/{r}``;
- ``GET``/``POST /repos/{o}/{r}/issues/{n}/comments``;
- ``POST /repos/{o}/{r}/issues/{n}/labels``, ``DELETE /repos/{o}/{r}/issues/{n}/labels/{name}``;
- ``GET /repos/{o}/{r}/pulls`` (state, head ``OWNER:BRANCH``, base, sort, direction,
  per_page, page; a ``head`` without its owner is ignored, as GitHub ignores it),
  ``POST /repos/{o}/{r}/pulls`` (a 422 when a pull request from that head to that base
  is open), ``GET /repos/{o}/{r}/pulls/{n}``. A pull request is an issue too (one
  numbering; listed by the issues API with a ``pull_request`` key).

As GitHub does: an ``ETag`` on every 200 GET and a 304 for a matching ``If-None-Match``
(a 304 made with an ``Authorization`` header costs no rate limit), the
``X-RateLimit-*`` headers, a 403 once the limit is spent, commenting and labelling bump
the issue's ``updated_at``. The JSON shapes are those of GitHub's OpenAPI description
(`tests/tasks/test_github_standin.py` checks every exchange against it). Branches and
commits are not kept: a pull request's head and base are names, their ``sha`` made up.

Knobs for tests: `set_rate_limit`, `fail_next` (5xx), `secondary_limit` (a 403 with
``Retry-After``), `refuse_tokens` (401), `set_repo` (``clone_url``, e.g. a local bare
repository, and ``default_branch``), `before_next` (run something just before a request
is answered: a race); counters (`requests`, `not_modified`, `by_path`, `rate_used`); the
raw `exchanges`; and direct edits of the state (`pulls` lists the pull requests).
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
_PULLS = re.compile(_REPO.pattern + r"/pulls")
_PULL = re.compile(_PULLS.pattern + r"/(?P<number>[0-9]+)")
CREATE_PULL_DOCS = "https://docs.github.com/rest/pulls/pulls#create-a-pull-request"


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
class Pull:
    """What a pull request has beyond its issue (title, body, state, comments)."""

    number: int
    head_owner: str
    head_ref: str
    base_ref: str
    draft: bool = False


@dataclass(frozen=True)
class PullSummary:
    """A pull request as tests assert on it; `head` is ``OWNER:BRANCH``."""

    number: int
    head: str
    base: str
    title: str
    body: str | None
    state: str
    user: str


@dataclass
class Repo:
    id: int
    owner: str
    name: str
    created_at: float = 0.0
    default_branch: str = "main"
    clone_url: str | None = None  # None: GitHub's, https://github.com/OWNER/NAME.git
    issues: dict[int, Issue] = field(default_factory=dict)
    pulls: dict[int, Pull] = field(default_factory=dict)
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
        self._before: list[tuple[str, str, Callable[[], object]]] = []  # see `before_next`
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

    def before_next(self, method: str, pattern: str, action: Callable[[], object]) -> None:
        """Run `action` (once, holding the stand-in's lock, so it may edit the state or set
        a knob) just before the next `method` request whose path matches the regular
        expression `pattern` is answered: what happened in between, e.g. another client
        won a race, or the rate limit ran out."""
        with self._lock:
            self._before.append((method, pattern, action))

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
            made = Repo(self._new_id(), owner, name, self._now())
            self._repos.setdefault(full_name.lower(), made)

    def set_repo(
        self, full_name: str, *, clone_url: str | None = None, default_branch: str | None = None
    ) -> None:
        """Add `full_name` if new; set where it is cloned from (any URL or path git takes)
        and its default branch."""
        self.add_repo(full_name)
        with self._lock:
            repo = self._repo(full_name)
            if clone_url is not None:
                repo.clone_url = clone_url
            if default_branch is not None:
                repo.default_branch = default_branch

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
            if pull_request:
                found.pulls[number] = Pull(number, user, f"patch-{number}", found.default_branch)
            return number

    def add_pull(
        self,
        repo: str,
        head: str,
        base: str | None = None,
        title: str = "a pull request",
        body: str | None = "",
        *,
        state: str = "open",
        user: str = "octocat",
    ) -> int:
        """A new pull request from `head` (``BRANCH`` of `repo` itself, or
        ``OWNER:BRANCH``) onto `base` (the default branch); its number."""
        number = self.add_issue(repo, title, body, state=state, pull_request=True, user=user)
        with self._lock:
            found = self._repo(repo)
            owner, ref = _head(found, head)
            found.pulls[number] = Pull(number, owner, ref, base or found.default_branch)
            return number

    def pulls(self, repo: str) -> list[PullSummary]:
        """The pull requests of `repo`, oldest first."""
        with self._lock:
            found = self._repo(repo)
            listed = []
            for number, pull in sorted(found.pulls.items()):
                issue = found.issues[number]
                listed.append(
                    PullSummary(
                        number,
                        f"{pull.head_owner}:{pull.head_ref}",
                        pull.base_ref,
                        issue.title,
                        issue.body,
                        issue.state,
                        issue.user,
                    )
                )
            return listed

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
        """A repository as ``GET /repos/{o}/{r}`` shows it (``full-repository``; also
        what a pull request's head and base hold, ``repository``)."""
        api = f"{self.url}/repos/{repo.full_name}"
        html = f"https://github.com/{repo.full_name}"
        open_issues = sum(i.state == "open" for i in repo.issues.values())
        return {
            "id": repo.id,
            "node_id": f"R_{repo.id}",
            "name": repo.name,
            "full_name": repo.full_name,
            "owner": self._user(repo.owner),
            "private": False,
            "html_url": html,
            "description": None,
            "fork": False,
            "url": api,
            "forks_url": f"{api}/forks",
            "keys_url": f"{api}/keys{{/key_id}}",
            "collaborators_url": f"{api}/collaborators{{/collaborator}}",
            "teams_url": f"{api}/teams",
            "hooks_url": f"{api}/hooks",
            "issue_events_url": f"{api}/issues/events{{/number}}",
            "events_url": f"{api}/events",
            "assignees_url": f"{api}/assignees{{/user}}",
            "branches_url": f"{api}/branches{{/branch}}",
            "tags_url": f"{api}/tags",
            "blobs_url": f"{api}/git/blobs{{/sha}}",
            "git_tags_url": f"{api}/git/tags{{/sha}}",
            "git_refs_url": f"{api}/git/refs{{/sha}}",
            "trees_url": f"{api}/git/trees{{/sha}}",
            "statuses_url": f"{api}/statuses/{{sha}}",
            "languages_url": f"{api}/languages",
            "stargazers_url": f"{api}/stargazers",
            "contributors_url": f"{api}/contributors",
            "subscribers_url": f"{api}/subscribers",
            "subscription_url": f"{api}/subscription",
            "commits_url": f"{api}/commits{{/sha}}",
            "git_commits_url": f"{api}/git/commits{{/sha}}",
            "comments_url": f"{api}/comments{{/number}}",
            "issue_comment_url": f"{api}/issues/comments{{/number}}",
            "contents_url": f"{api}/contents/{{+path}}",
            "compare_url": f"{api}/compare/{{base}}...{{head}}",
            "merges_url": f"{api}/merges",
            "archive_url": f"{api}/{{archive_format}}{{/ref}}",
            "downloads_url": f"{api}/downloads",
            "issues_url": f"{api}/issues{{/number}}",
            "pulls_url": f"{api}/pulls{{/number}}",
            "milestones_url": f"{api}/milestones{{/number}}",
            "notifications_url": f"{api}/notifications{{?since,all,participating}}",
            "labels_url": f"{api}/labels{{/name}}",
            "releases_url": f"{api}/releases{{/id}}",
            "deployments_url": f"{api}/deployments",
            "created_at": iso(repo.created_at),
            "updated_at": iso(repo.created_at),
            "pushed_at": iso(repo.created_at),
            "git_url": f"git://github.com/{repo.full_name}.git",
            "ssh_url": f"git@github.com:{repo.full_name}.git",
            "clone_url": repo.clone_url or f"{html}.git",
            "svn_url": html,
            "homepage": None,
            "size": 0,
            "stargazers_count": 0,
            "watchers_count": 0,
            "language": None,
            "has_issues": True,
            "has_projects": True,
            "has_downloads": True,
            "has_wiki": True,
            "has_pages": False,
            "has_discussions": False,
            "forks_count": 0,
            "mirror_url": None,
            "archived": False,
            "disabled": False,
            "open_issues_count": open_issues,
            "license": None,
            "allow_forking": True,
            "is_template": False,
            "web_commit_signoff_required": False,
            "topics": [],
            "visibility": "public",
            "forks": 0,
            "open_issues": open_issues,
            "watchers": 0,
            "default_branch": repo.default_branch,
            "network_count": 0,
            "subscribers_count": 0,
        }

    def _pull(self, repo: Repo, pull: Pull, *, full: bool) -> dict[str, Any]:
        """A pull request as GitHub lists it (``pull-request-simple``) or shows it alone
        and on creation (`full`: ``pull-request``)."""
        issue = repo.issues[pull.number]
        api = f"{self.url}/repos/{repo.full_name}"
        url = f"{api}/pulls/{pull.number}"
        html = f"https://github.com/{repo.full_name}/pull/{pull.number}"
        head_repo = self._repos.get(f"{pull.head_owner}/{repo.name}".lower(), repo)
        head_sha = _sha(f"{head_repo.full_name}\0{pull.head_ref}")
        statuses = f"{api}/statuses/{head_sha}"
        body: dict[str, Any] = {
            "url": url,
            "id": repo.id * 100_000 + pull.number,
            "node_id": f"PR_{repo.id}_{pull.number}",
            "html_url": html,
            "diff_url": f"{html}.diff",
            "patch_url": f"{html}.patch",
            "issue_url": f"{api}/issues/{pull.number}",
            "commits_url": f"{url}/commits",
            "review_comments_url": f"{url}/comments",
            "review_comment_url": f"{api}/pulls/comments{{/number}}",
            "comments_url": f"{api}/issues/{pull.number}/comments",
            "statuses_url": statuses,
            "number": pull.number,
            "state": issue.state,
            "locked": False,
            "title": issue.title,
            "user": self._user(issue.user),
            "body": issue.body,
            "labels": [self._label(repo, name) for name in issue.labels],
            "milestone": None,
            "active_lock_reason": None,
            "created_at": iso(issue.created_at),
            "updated_at": iso(issue.updated_at),
            "closed_at": iso(issue.closed_at) if issue.closed_at is not None else None,
            "merged_at": None,
            "merge_commit_sha": None,
            "assignee": None,
            "assignees": [],
            "requested_reviewers": [],
            "requested_teams": [],
            "head": {
                "label": f"{pull.head_owner}:{pull.head_ref}",
                "ref": pull.head_ref,
                "sha": head_sha,
                "user": self._user(pull.head_owner),
                "repo": self._repo_json(head_repo),
            },
            "base": {
                "label": f"{repo.owner}:{pull.base_ref}",
                "ref": pull.base_ref,
                "sha": _sha(f"{repo.full_name}\0{pull.base_ref}"),
                "user": self._user(repo.owner),
                "repo": self._repo_json(repo),
            },
            "_links": {
                "self": {"href": url},
                "html": {"href": html},
                "issue": {"href": f"{api}/issues/{pull.number}"},
                "comments": {"href": f"{api}/issues/{pull.number}/comments"},
                "review_comments": {"href": f"{url}/comments"},
                "review_comment": {"href": f"{api}/pulls/comments{{/number}}"},
                "commits": {"href": f"{url}/commits"},
                "statuses": {"href": statuses},
            },
            "author_association": "OWNER" if issue.user == repo.owner else "CONTRIBUTOR",
            "auto_merge": None,
            "draft": pull.draft,
        }
        if full:
            body.update(
                {
                    "merged": False,
                    "mergeable": None,
                    "rebaseable": None,
                    "mergeable_state": "unknown",
                    "merged_by": None,
                    "comments": len(issue.comments),
                    "review_comments": 0,
                    "maintainer_can_modify": False,
                    "commits": 1,
                    "additions": 0,
                    "deletions": 0,
                    "changed_files": 0,
                }
            )
        return body

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
        for hook in list(self._before):
            if hook[0] == method and re.fullmatch(hook[1], path):
                self._before.remove(hook)
                hook[2]()
                break
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
        if found := _PULL.fullmatch(path):
            if method == "GET":
                repo = self._find_repo(found)
                pull = repo.pulls.get(int(found["number"]))
                if pull is None:
                    raise _Reply(
                        404, {"message": "Not Found", "documentation_url": DOCS, "status": "404"}
                    )
                return 200, {}, self._pull(repo, pull, full=True)
        elif found := _PULLS.fullmatch(path):
            if method == "GET":
                return self._list_pulls(found, path, query)
            if method == "POST":
                return self._create_pull(found, body)
        elif found := _LABEL.fullmatch(path):
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

    def _list_pulls(
        self, found: re.Match[str], path: str, query: dict[str, list[str]]
    ) -> tuple[int, dict[str, str], Any]:
        repo = self._find_repo(found)
        state = query.get("state", ["open"])[0]
        sort = query.get("sort", ["created"])[0]
        direction = query.get("direction", ["desc" if sort == "created" else "asc"])[0]
        if state not in ("open", "closed", "all") or sort not in (
            "created",
            "updated",
            "popularity",
            "long-running",
        ):
            raise _Reply(422, {"message": "Validation Failed", "documentation_url": DOCS})
        # GitHub filters by head only given as OWNER:BRANCH; a bare branch is ignored.
        head_owner, colon, head_ref = query.get("head", [""])[0].partition(":")
        base = query.get("base", [None])[0]
        pulls = [
            pull
            for pull in repo.pulls.values()
            if (state == "all" or repo.issues[pull.number].state == state)
            and (
                not colon
                or (pull.head_owner.lower(), pull.head_ref) == (head_owner.lower(), head_ref)
            )
            and (base is None or pull.base_ref == base)
        ]

        def key(pull: Pull) -> tuple[float, int]:
            issue = repo.issues[pull.number]
            value = {
                "created": issue.created_at,
                "updated": issue.updated_at,
                "popularity": float(len(issue.comments)),
                "long-running": issue.created_at,
            }[sort]
            return value, pull.number

        pulls.sort(key=key, reverse=direction != "asc")
        return self._page(path, query, [self._pull(repo, pull, full=False) for pull in pulls])

    def _create_pull(self, found: re.Match[str], body: bytes) -> tuple[int, dict[str, str], Any]:
        repo = self._find_repo(found)
        data = _json(body)
        if not isinstance(data, dict):
            raise _Reply(400, {"message": "Problems parsing JSON", "documentation_url": DOCS})
        for name in ("head", "base", "title"):  # title: no `issue` to take it from here
            if not isinstance(data.get(name), str) or not data[name]:
                raise _Reply(
                    422,
                    {
                        "message": "Validation Failed",
                        "errors": [
                            {"resource": "PullRequest", "field": name, "code": "missing_field"}
                        ],
                        "documentation_url": CREATE_PULL_DOCS,
                        "status": "422",
                    },
                )
        owner, ref = _head(repo, data["head"])
        base = data["base"]
        for pull in repo.pulls.values():
            same = (pull.head_owner.lower(), pull.head_ref, pull.base_ref) == (
                owner.lower(),
                ref,
                base,
            )
            if same and repo.issues[pull.number].state == "open":
                raise _Reply(
                    422,
                    {
                        "message": "Validation Failed",
                        "errors": [
                            {
                                "resource": "PullRequest",
                                "code": "custom",
                                "message": f"A pull request already exists for {owner}:{ref}.",
                            }
                        ],
                        "documentation_url": CREATE_PULL_DOCS,
                        "status": "422",
                    },
                )
        text = data.get("body")
        number = len(repo.issues) + 1
        now = self._now()
        repo.issues[number] = Issue(
            number,
            data["title"],
            text if isinstance(text, str) else None,
            [],
            "open",
            now,
            now,
            pull_request=True,
            user=self.login,
        )
        pull = Pull(number, owner, ref, base, data.get("draft") is True)
        repo.pulls[number] = pull
        made = self._pull(repo, pull, full=True)
        return 201, {"Location": made["url"]}, made

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


def _head(repo: Repo, head: str) -> tuple[str, str]:
    """A pull request's head, ``OWNER:BRANCH`` or a branch of `repo` itself."""
    owner, colon, ref = head.partition(":")
    return (owner, ref) if colon else (repo.owner, head)


def _sha(text: str) -> str:
    """A commit id for a branch the stand-in does not keep."""
    return hashlib.sha1(text.encode()).hexdigest()


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
