"""GitHub pull requests: the `PullRequests` port for the repositories a ``github`` source
in config.yaml names, so a finished task's branch is proposed where its issue lives.

`remote` asks GitHub for the repository's ``clone_url``; git is let in with the token
through ``GIT_CONFIG_*`` environment variables (an ``http.<origin>.extraHeader``), never
an argument, a URL or a file, so the token shows in no process list, no remote's
configuration and no message. `open` is idempotent: it lists the pull requests from
``OWNER:branch`` (open or closed) first and opens one onto the default branch only when
there is none; GitHub's 422 "already exists" (another opener won a race) is answered by
looking again.

Every call is a few requests through PyGithub (retries off, in a thread); failures are
`SourceError`s with one line, a `retry_after_s` for rate limits and server errors, and
never the token.
"""

from __future__ import annotations

import asyncio
import base64
import logging
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import urlsplit

import requests
from github import GithubException
from github.PullRequest import PullRequest

from bzzz.clock import now_ms
from bzzz.domain.execution import Remote
from bzzz.errors import SourceError
from bzzz.home.config import GitHubSourceConfig
from bzzz.tasks.github import GitHubClient, web_origin
from bzzz.tasks.token import Secret, load_secret

log = logging.getLogger("bzzz.tasks.github")

GITHUB_API = "https://api.github.com"
MAX_TITLE = 256  # GitHub refuses a longer title (422)
MAX_BODY = 65_536  # and a longer body
UNREADABLE_PAUSE_S = 60.0  # after an answer BZZZ cannot read
EXISTS = "a pull request already exists"  # GitHub's 422 when one from head to base is open
_BRANCH_BAD = re.compile(r"[\x00-\x20\x7f:~^?*\[\\]|\.\.|@\{")  # what git refuses (and ":")
T = TypeVar("T")


def basic_auth(token: Secret) -> str:
    """The header git sends: GitHub takes any token as ``x-access-token``'s password."""
    pair = f"x-access-token:{token.reveal()}".encode()
    return "Authorization: Basic " + base64.b64encode(pair).decode("ascii")


def git_env(clone_url: str, token: Secret | None) -> dict[str, str]:
    """The environment that lets git into `clone_url` with `token`: one
    ``http.<origin>/.extraHeader`` (git sends it to that scheme, host and port only).
    Empty without a token, or for a URL git does not reach over HTTP (a path, SSH): the
    token goes nowhere it is not needed."""
    parts = urlsplit(clone_url)
    if token is None or parts.scheme.lower() not in ("http", "https") or not parts.hostname:
        return {}
    origin = f"{parts.scheme.lower()}://{parts.netloc.rpartition('@')[2]}/"
    return {
        "GIT_CONFIG_COUNT": "1",
        "GIT_CONFIG_KEY_0": f"http.{origin}.extraHeader",
        "GIT_CONFIG_VALUE_0": basic_auth(token),
    }


@dataclass(frozen=True, slots=True)
class _Repo:
    """What `open` and `remote` need of a repository, as GitHub says it now."""

    full: str  # as configured: the API's paths are built from it, not from the answer
    owner: str  # GitHub's login, the ``OWNER`` of ``OWNER:branch``
    default_branch: str
    clone_url: str


def _clone_url_problem(url: str) -> str | None:
    """Why git must not be given `url`: a server's word goes into git's arguments, so no
    option (``-...``), no transport helper (``ext::``) and nothing but printable text."""
    if not url:
        return "no clone_url"
    if url.startswith("-") or "::" in url or not url.isprintable() or len(url) > 2000:
        return "a clone_url git must not be given"
    return None


def _branch_problem(branch: str) -> str | None:
    if not branch or len(branch) > 250 or _BRANCH_BAD.search(branch):
        return f"{branch[:100]!r} is not a branch name"
    if branch.startswith(("-", "/")) or branch.endswith(("/", ".", ".lock")):
        return f"{branch[:100]!r} is not a branch name"
    return None


def _cut(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


class GitHubPullRequests:
    """The `PullRequests` of `repos` (``OWNER/REPO``) on the GitHub at `api_url`. Writes
    need a `token` (with ``contents`` and ``pull_requests`` write access); without one
    public repositories can be fetched, and GitHub refuses the rest (a `SourceError`)."""

    def __init__(
        self,
        repos: Iterable[str],
        *,
        api_url: str = GITHUB_API,
        token: Secret | None = None,
        clock: Callable[[], int] = now_ms,
    ) -> None:
        self.client = GitHubClient(api_url, token, clock=clock)
        self.repos = {r.lower(): r for r in repos}
        self.web = web_origin(self.client.api_url)

    def __repr__(self) -> str:
        return f"GitHubPullRequests({self.client.api_url!r}, {sorted(self.repos.values())!r})"

    def repo_of(self, repo: str) -> str | None:
        """The configured ``OWNER/REPO`` that a task's `repo` URL
        (``https://github.com/OWNER/REPO.git``, or without ``.git``) names, if any."""
        try:
            parts = urlsplit(repo)
        except ValueError:
            return None
        if parts.query or parts.fragment or f"{parts.scheme}://{parts.netloc}".lower() != self.web:
            return None
        owner, slash, name = parts.path.removeprefix("/").partition("/")
        name = name.removesuffix(".git")
        if not slash or not owner or not name or "/" in name:
            return None
        return self.repos.get(f"{owner}/{name}".lower())

    # -- PullRequests -----------------------------------------------------------------

    def handles(self, repo: str) -> bool:
        return self.repo_of(repo) is not None

    async def remote(self, repo: str) -> Remote:
        full = self._full(repo)
        found = await self._run(full, lambda: self._repository(full))
        url = found.clone_url
        return Remote(url, git_env(url, self.client.token))

    async def open(self, repo: str, branch: str, title: str, body: str) -> str:
        full = self._full(repo)
        problem = _branch_problem(branch)
        if problem is not None:
            raise SourceError(f"github: {full}: {problem}")
        what = f"{full}: a pull request from {branch}"
        return await self._run(
            what, lambda: self._open(full, branch, _cut(title, MAX_TITLE), _cut(body, MAX_BODY))
        )

    # -- in a thread ------------------------------------------------------------------

    def _full(self, repo: str) -> str:
        full = self.repo_of(repo)
        if full is None:
            raise SourceError(f"github: {repo[:100]!r} is not a repository of this adapter")
        return full

    def _repository(self, full: str) -> _Repo:
        """The repository, read now (one GET): its owner, default branch and clone URL."""
        _, data = self.client.gh.requester.requestJsonAndCheck("GET", f"/repos/{full}")
        if not isinstance(data, dict):
            raise _Unreadable("the repository is not an object")
        owner, branch, url = data.get("owner"), data.get("default_branch"), data.get("clone_url")
        login = owner.get("login") if isinstance(owner, dict) else None
        if not isinstance(login, str) or not login:
            raise _Unreadable("the repository has no owner")
        if not isinstance(branch, str) or not branch:
            raise _Unreadable("the repository has no default_branch")
        problem = _clone_url_problem(url) if isinstance(url, str) else "no clone_url"
        if problem is not None or not isinstance(url, str):
            raise _Unreadable(problem)
        return _Repo(full, login, branch, url)

    def _open(self, full: str, branch: str, title: str, body: str) -> str:
        repo = self._repository(full)
        found = self._existing(repo, branch)
        if found is not None:
            return found
        try:
            made = self.client.gh.get_repo(full).create_pull(  # lazy: no request for the repo
                repo.default_branch, branch, title=title, body=body
            )
        except GithubException as exc:
            if exc.status != 422 or not any(EXISTS in m.lower() for m in _messages(exc.data)):
                raise
            found = self._existing(repo, branch)  # another opener was first: its pull request
            if found is None:
                raise _Unreadable("GitHub says a pull request exists but lists none") from None
            return found
        log.info("github %s: opened %s from %s", self.client.host, made.html_url, branch)
        return made.html_url

    def _existing(self, repo: _Repo, branch: str) -> str | None:
        """The URL of a pull request from `branch` of `repo` itself: an open one, else the
        newest. Filtered here too: GitHub ignores a ``head`` it cannot parse."""
        pulls = self.client.gh.get_repo(repo.full).get_pulls(
            state="all", head=f"{repo.owner}:{branch}"
        )
        ours = [p for p in pulls.get_page(0) if _from(p, repo.owner, branch)]
        ours.sort(key=lambda p: p.state != "open")  # stable: GitHub's newest-first order
        return ours[0].html_url if ours else None

    async def _run(self, what: str, work: Callable[[], T]) -> T:
        try:
            return await asyncio.to_thread(work)
        except GithubException as exc:
            raise self._error(exc, what) from None
        except _Unreadable as exc:
            raise SourceError(
                f"github: {what}: {exc} ({self.client.api_url})", retry_after_s=UNREADABLE_PAUSE_S
            ) from None
        except (requests.RequestException, OSError, RuntimeError, AssertionError) as exc:
            # no connection, a timeout; PyGithub's refusal of a redirect to another host
            raise SourceError(
                f"github: {what}: no answer from {self.client.api_url} ({type(exc).__name__})",
                retry_after_s=2.0,
            ) from None
        except Exception as exc:  # an answer of the wrong shape (PyGithub's own errors)
            raise SourceError(
                f"github: {what}: an answer BZZZ cannot read ({type(exc).__name__})",
                retry_after_s=UNREADABLE_PAUSE_S,
            ) from None

    def _error(self, exc: GithubException, what: str) -> SourceError:
        """GitHub's refusal, one line: a 404 may be a token that cannot see the
        repository; a 422 says why in its ``errors``; the rest as the mirror says them."""
        if exc.status in (404, 410):
            return SourceError(
                f"github: {what}: not found, or the token may not see it ({exc.status})"
            )
        if exc.status == 422:
            said = "; ".join(_messages(exc.data)) or "Validation Failed"
            return SourceError(f"github: {what}: 422 {said.splitlines()[0][:200]}")
        return self.client.error_of(exc, what)


class _Unreadable(Exception):
    """GitHub answered, but not what its API describes."""


def _messages(data: Any) -> list[str]:
    """What a GitHub validation error's ``errors`` say: each one's message, else its
    field and code (``title missing_field``)."""
    errors = data.get("errors") if isinstance(data, Mapping) else None
    found: list[str] = []
    for error in errors if isinstance(errors, list) else []:
        if isinstance(error, Mapping) and not isinstance(error.get("message"), str):
            parts = (error.get("field"), error.get("code"))
            text: object = " ".join(p for p in parts if isinstance(p, str))
        else:
            text = error.get("message") if isinstance(error, Mapping) else error
        if isinstance(text, str) and text.strip():
            found.append(text.strip())
    return found


def _from(pull: PullRequest, owner: str, branch: str) -> bool:
    """Whether `pull` comes from `branch` of `owner`'s repository (a login's case is not
    its identity; a branch's is)."""
    head = pull.head
    label = head.label
    return (
        head.ref == branch
        and isinstance(label, str)
        and label.lower() == f"{owner}:{branch}".lower()
    )


def github_pulls_of(
    config: GitHubSourceConfig,
    home: Path,
    environ: Mapping[str, str] | None = None,
    clock: Callable[[], int] = now_ms,
) -> GitHubPullRequests:
    """The pull requests of a ``github`` source's repositories, with its token (from
    `config.token_file` relative to `home`, else `config.token_env`)."""
    token = load_secret(config.token_env, config.token_file, home, environ)
    return GitHubPullRequests(config.repos, api_url=config.api_url, token=token, clock=clock)
