"""GitHub issues as tasks: the `TaskSource` (and, through `GitHubMirror`, the
`TaskMirror`) of the repositories a ``github`` source in config.yaml names.

Per repository (scope ``github:OWNER/REPO``):

- with no cursor for it: every open issue carrying the source's label, all pages
  (a complete report), then one delta request from the server's time of that listing,
  whose ETag the cursor keeps;
- afterwards: one delta request (``state=all``, ``since`` = a second before the server's
  time of the previous one, ``sort=updated``, newest first) sent with ``If-None-Match``.
  A 304 costs no rate limit: the scope is reported unchanged. Otherwise an issue open
  with the label is a spec, one closed or without the label is closed for BZZZ. A change
  moves an issue to the first page, so when the delta is one page its ETag stands for
  all of it (a longer delta keeps no ETag: the next one is asked for in full).

Pull requests (which the issues API lists too) are skipped. A spent rate limit, a
secondary limit or a server error ends the round with what was done and a
`retry_at_ms`; a missing repository is a problem line and the others go on; a refused
token is a `SourceError`. Nothing else escapes `poll`.
"""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from bzzz.clock import now_ms
from bzzz.domain.intake import ScopeChanges, SourcePoll, Tenure
from bzzz.domain.tasks import TaskSpec, github_id, spec_from_github
from bzzz.home.config import GitHubSourceConfig
from bzzz.tasks.github import GitHubClient, Kind, Reply, backoff_s, web_origin
from bzzz.tasks.github_mirror import GitHubMirror
from bzzz.tasks.token import Secret, load_secret

log = logging.getLogger("bzzz.tasks.github")

MAX_PAGES = 100  # 10,000 issues a listing; a Link loop ends here
SLACK_S = 1
TIME_FORMAT = "%Y-%m-%dT%H:%M:%SZ"
_TIME = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}Z")
_warned: set[str] = set()


@dataclass(frozen=True, slots=True)
class RepoCursor:
    since: str  # GitHub's time, e.g. 2024-05-01T12:00:00Z: the next delta's `since`
    etag: str | None  # of the last delta's first page


@dataclass(frozen=True, slots=True)
class _Issue:
    number: int
    title: str
    body: str
    labels: tuple[str, ...]
    open: bool
    updated_at: str
    url: str | None


class _Stop(Exception):
    """End the round: rate limited or the server failing."""

    def __init__(self, retry_at_ms: int, problem: str | None = None) -> None:
        super().__init__(problem)
        self.retry_at_ms = retry_at_ms
        self.problem = problem


class _RepoProblem(Exception):
    """This repository cannot be polled now; the others go on."""


@dataclass
class _Round:
    requests: int = 0
    problems: list[str] = field(default_factory=list)


def scope_of(repo: str) -> str:
    return f"github:{repo}"


def read_cursor(cursor: Mapping[str, Any] | None, repos: Iterable[str]) -> dict[str, RepoCursor]:
    """The per-repository cursors in `cursor` for the repositories configured now;
    anything malformed is dropped (that repository is listed in full again)."""
    found: dict[str, RepoCursor] = {}
    listed = cursor.get("repos") if isinstance(cursor, Mapping) else None
    if not isinstance(listed, Mapping):
        return found
    for repo in repos:
        entry = listed.get(repo)
        if not isinstance(entry, Mapping):
            continue
        since, etag = entry.get("since"), entry.get("etag")
        if not isinstance(since, str) or not _TIME.fullmatch(since):
            continue
        if etag is not None and (not isinstance(etag, str) or len(etag) > 200):
            etag = None
        found[repo] = RepoCursor(since, etag)
    return found


def write_cursor(cursors: Mapping[str, RepoCursor]) -> dict[str, Any]:
    return {
        "repos": {repo: {"since": c.since, "etag": c.etag} for repo, c in sorted(cursors.items())}
    }


def _next_since(first: Reply, updated: Iterable[str]) -> str | None:
    """Where the next delta starts: a second before the server's time of this listing
    (an issue changed after it has a later `updated_at`; the second covers a skew
    between GitHub's clocks), or without a Date header the latest `updated_at` seen."""
    server = first.server_time
    if server is not None:
        earlier = datetime.strptime(server, TIME_FORMAT) - timedelta(seconds=SLACK_S)
        return earlier.strftime(TIME_FORMAT)
    return max(updated, default=None)


def _issue_of(item: object) -> _Issue | None:
    """An issue of GitHub's JSON, or None for a pull request or a malformed item."""
    if not isinstance(item, dict) or item.get("pull_request") is not None:
        return None
    number, title, body = item.get("number"), item.get("title"), item.get("body")
    state, updated, url = item.get("state"), item.get("updated_at"), item.get("html_url")
    if type(number) is not int or number < 1 or not isinstance(title, str):
        return None
    if not isinstance(updated, str) or not _TIME.fullmatch(updated):
        return None
    names: list[str] = []
    labels = item.get("labels")
    for label in labels if isinstance(labels, list) else []:
        name = label.get("name") if isinstance(label, dict) else label
        if isinstance(name, str):
            names.append(name)
    return _Issue(
        number,
        title,
        body if isinstance(body, str) else "",
        tuple(names),
        state == "open",
        updated,
        url if isinstance(url, str) else None,
    )


class GitHubSource:
    """Polls the issues of `repos`; mirrors claims on them (see `GitHubMirror`)."""

    def __init__(
        self,
        name: str,
        client: GitHubClient,
        repos: Iterable[str],
        label: str,
        mirror: GitHubMirror,
        clock: Callable[[], int] = now_ms,
    ) -> None:
        self._name = name
        self.client = client
        self.repos = tuple(repos)
        self.label = label
        self.mirror = mirror
        self.clock = clock
        self._failures = 0  # consecutive server errors, for the backoff
        self._not_before_ms = 0  # rate limited until then: no request before
        self._spent_until_ms = 0  # the primary limit is spent until then

    def __repr__(self) -> str:
        return f"GitHubSource({self._name!r}, {list(self.repos)!r})"

    @property
    def name(self) -> str:
        return self._name

    # -- TaskSource -------------------------------------------------------------------

    async def poll(self, cursor: Mapping[str, Any] | None) -> SourcePoll:
        known = read_cursor(cursor, self.repos)
        now = self.clock()
        waiting = max(self._not_before_ms, self._spent_until_ms)
        if waiting > now:
            return SourcePoll(cursor=write_cursor(known), retry_at_ms=waiting)
        round_ = _Round()
        changes: list[ScopeChanges] = []
        unchanged: list[str] = []
        retry_at: int | None = None
        for repo in self.repos:
            try:
                found = await self._poll_repo(repo, known.get(repo), round_)
            except _Stop as stop:
                retry_at = stop.retry_at_ms
                if stop.problem:
                    round_.problems.append(stop.problem)
                break
            except _RepoProblem as problem:
                round_.problems.append(str(problem))
                continue
            change, kept = found
            if change is None:
                unchanged.append(scope_of(repo))
            else:
                changes.append(change)
            if kept is None:
                known.pop(repo, None)
            else:
                known[repo] = kept
        self._not_before_ms = retry_at or 0
        return SourcePoll(
            changes=tuple(changes),
            cursor=write_cursor(known),
            problems=tuple(round_.problems),
            retry_at_ms=retry_at,
            requests=round_.requests,
            unchanged=tuple(unchanged),
        )

    async def _poll_repo(
        self, repo: str, known: RepoCursor | None, round_: _Round
    ) -> tuple[ScopeChanges | None, RepoCursor | None]:
        """The scope's report (None: unchanged) and its cursor (None: list it in full
        next time)."""
        owner, _, name = repo.partition("/")
        if known is None:
            params = {"state": "open", "labels": self.label, "per_page": "100"}
            first, items = await self._pages(repo, params, None, round_)
            specs: dict[str, TaskSpec] = {}
            seen: list[str] = []
            for issue in filter(None, map(_issue_of, items)):
                if issue.open and self._labelled(issue):
                    specs[github_id(owner, name, issue.number)] = self._spec(owner, name, issue)
                seen.append(issue.updated_at)
            start = _next_since(first, seen)
            if start is None:  # no Date header and no issue: nothing to start a delta at
                return ScopeChanges(scope_of(repo), tuple(specs.values())), None
            got = await self._delta(repo, RepoCursor(start, None), round_)
            assert got is not None  # no If-None-Match, so never a 304
            delta, cursor = got
            for spec in delta.specs:
                specs[spec.id] = spec
            for task in delta.closed:
                specs.pop(task, None)
            return ScopeChanges(scope_of(repo), tuple(specs.values())), cursor
        got = await self._delta(repo, known, round_)
        if got is None:
            return None, known
        change, cursor = got
        if not change.specs and not change.closed:  # only pull requests, or nothing
            return None, cursor
        return change, cursor

    async def _delta(
        self, repo: str, known: RepoCursor, round_: _Round
    ) -> tuple[ScopeChanges, RepoCursor] | None:
        """What changed in `repo` since `known.since`; None when the server says nothing."""
        owner, _, name = repo.partition("/")
        params = {
            "state": "all",
            "since": known.since,
            "sort": "updated",
            "direction": "desc",
            "per_page": "100",
        }
        first, items = await self._pages(repo, params, known.etag, round_)
        if first.kind is Kind.NOT_MODIFIED:
            return None
        specs: dict[str, TaskSpec] = {}
        closed: dict[str, None] = {}
        seen: list[str] = []
        for issue in filter(None, map(_issue_of, items)):
            task = github_id(owner, name, issue.number)
            seen.append(issue.updated_at)
            if task in specs or task in closed:
                continue  # listed again on a later page: the first sighting is the newest
            if issue.open and self._labelled(issue):
                specs[task] = self._spec(owner, name, issue)
            else:
                closed[task] = None
        change = ScopeChanges(scope_of(repo), tuple(specs.values()), tuple(closed), False)
        since = max(known.since, _next_since(first, seen) or known.since)
        # Only the first page's ETag is kept, and only when it was the one page: ties of
        # updated_at (one-second resolution) could keep a change off the first page.
        etag = first.etag if first.next_url is None else None
        return change, RepoCursor(since, etag)

    def _labelled(self, issue: _Issue) -> bool:
        return self.label.lower() in (n.lower() for n in issue.labels)

    def _spec(self, owner: str, name: str, issue: _Issue) -> TaskSpec:
        return spec_from_github(
            owner,
            name,
            issue.number,
            issue.title,
            issue.body,
            issue.labels,
            issue.url,
            web_origin(self.client.api_url),
        )

    async def _pages(
        self, repo: str, params: dict[str, str], etag: str | None, round_: _Round
    ) -> tuple[Reply, list[Any]]:
        """Every page of one issue listing: the first page's reply and all the items."""
        url = f"/repos/{repo}/issues"
        headers = {"If-None-Match": etag} if etag else {}
        first = await self._get(repo, url, params, headers, round_)
        if first.kind is Kind.NOT_MODIFIED:
            return first, []
        items = list(first.data)
        following, pages = first.next_url, 1
        while following is not None:
            pages += 1
            if pages > MAX_PAGES:
                raise _RepoProblem(
                    f"{scope_of(repo)}: more than {MAX_PAGES * 100} issues listed; "
                    "only the first ones were read"
                )
            reply = await self._get(repo, following, None, {}, round_)
            items.extend(reply.data)
            following = reply.next_url
        return first, items

    async def _get(
        self,
        repo: str,
        url: str,
        params: Mapping[str, str] | None,
        headers: Mapping[str, str],
        round_: _Round,
    ) -> Reply:
        """One GET, sorted: a reply worth reading, or an exception that says what next."""
        if self._spent_until_ms > self.clock():
            raise _Stop(self._spent_until_ms)
        round_.requests += 1
        reply = await asyncio.to_thread(self.client.request, "GET", url, params, headers)
        if reply.kind in (Kind.OK, Kind.NOT_MODIFIED):
            self._failures = 0
            self._spent_until_ms = reply.rate_spent_until_ms or 0
            if reply.kind is Kind.OK and not isinstance(reply.data, list):
                raise _RepoProblem(f"{scope_of(repo)}: GitHub answered {url} with no list")
            return reply
        if reply.kind is Kind.LIMITED:
            assert reply.retry_at_ms is not None
            log.info(
                "github %s: rate limited (%s) until %d",
                self.client.host,
                reply.note,
                reply.retry_at_ms,
            )
            raise _Stop(reply.retry_at_ms)
        if reply.kind is Kind.SERVER:
            self._failures += 1
            wait = backoff_s(self._failures)
            log.warning("github %s: %s; trying again in %.0f s", self.client.host, reply.note, wait)
            raise _Stop(
                self.clock() + int(wait * 1000), f"github: {self.client.host}: {reply.note}"
            )
        if reply.kind is Kind.REFUSED:
            raise self.client.refused()
        if reply.kind is Kind.MISSING:
            raise _RepoProblem(
                f"{scope_of(repo)}: not found, or the token may not read it ({reply.note})"
            )
        raise _RepoProblem(f"{scope_of(repo)}: {reply.note}")

    # -- TaskMirror -------------------------------------------------------------------

    def mirrors(self, task: str) -> bool:
        return self.mirror.mirrors(task)

    async def claimed(self, tenure: Tenure) -> None:
        await self.mirror.claimed(tenure)

    async def released(self, tenure: Tenure) -> None:
        await self.mirror.released(tenure)

    async def completed(self, tenure: Tenure, result: str, link: str | None) -> None:
        await self.mirror.completed(tenure, result, link)


def default_name(api_url: str) -> str:
    host = (urlsplit(api_url).hostname or "github").lower()
    return f"github:{host}"


def github_source_of(
    config: GitHubSourceConfig,
    home: Path,
    environ: Mapping[str, str] | None = None,
    clock: Callable[[], int] = now_ms,
) -> GitHubSource:
    """The source (and mirror) a ``github`` entry of config.yaml describes. The token
    comes from `config.token_file` (relative to `home`) when named, else from the
    environment variable `config.token_env`; without one, public repositories are read
    at GitHub's lower anonymous rate and nothing is mirrored."""
    token: Secret | None = load_secret(config.token_env, config.token_file, home, environ)
    name = config.name or default_name(config.api_url)
    if token is None and name not in _warned:
        _warned.add(name)
        log.warning(
            "github source %s: no token (%s is not set, no token_file): public repositories "
            "only, at a low rate limit, and claims are not shown on the issues",
            name,
            config.token_env,
        )
    client = GitHubClient(config.api_url, token, clock=clock)
    mirror = GitHubMirror(
        GitHubClient(config.api_url, token, clock=clock), config.repos, config.mirror
    )
    return GitHubSource(name, client, config.repos, config.label, mirror, clock)
