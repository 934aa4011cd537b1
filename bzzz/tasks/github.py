"""GitHub's REST API as the GitHub source and mirror use it: PyGithub with its own retries
and sleeps turned off (the admin's poll loop decides when to try again), one HTTP request
per call, and GitHub's answers sorted into what a caller acts on: fine, not modified,
rate limited until a time, a server error, a refused token, or a missing repository.

PyGithub is synchronous; callers run it in a thread (`asyncio.to_thread`). Its
``Requester.requestJsonAndCheck`` answers a 304 with ``(headers, None)``, exactly as an
empty 200 (the status is dropped); so conditional requests go through
``Requester.requestJson``, which returns the status, the headers and the raw body and
raises for nothing but a failed connection.
"""

from __future__ import annotations

import json
import logging
import math
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC
from email.utils import parsedate_to_datetime
from enum import Enum
from typing import Any
from urllib.parse import urlsplit

import requests
from github import Auth, Github, GithubException

from bzzz.clock import now_ms
from bzzz.errors import SourceError, one_line
from bzzz.tasks.token import Secret

log = logging.getLogger("bzzz.tasks.github")

TIMEOUT_S = 15
PER_PAGE = 100
USER_AGENT = "bzzz-task-source"
SECONDARY_WAIT_S = 60  # GitHub: without Retry-After, wait at least a minute
BACKOFF_FIRST_S = 2
BACKOFF_MAX_S = 300
_NEXT = re.compile(r'<([^>]+)>\s*;\s*rel="next"')


def web_origin(api_url: str) -> str:
    """Where the repositories of the API at `api_url` are on the web: ``api.github.com``
    serves ``github.com``; GitHub Enterprise serves ``https://HOST/api/v3`` for
    ``https://HOST`` (and ``api.HOST`` for ``HOST`` on ghe.com)."""
    parts = urlsplit(api_url)
    host = parts.netloc.lower().rpartition("@")[2]
    return f"{parts.scheme.lower()}://{host.removeprefix('api.')}"


class Kind(Enum):
    OK = "ok"
    NOT_MODIFIED = "not-modified"
    LIMITED = "rate-limited"  # primary or secondary: `retry_at_ms` says until when
    SERVER = "server-error"  # a 5xx, or no answer at all
    REFUSED = "refused"  # 401: the token (or its absence)
    MISSING = "missing"  # 404 / 410: no such repository or issue, or no access to it
    OTHER = "other"  # another 4xx


@dataclass(frozen=True, slots=True)
class Reply:
    """One HTTP exchange, sorted. `headers` have lowercase names."""

    kind: Kind
    status: int
    headers: Mapping[str, str]
    data: Any
    retry_at_ms: int | None = None
    note: str = ""  # what went wrong, one line, for a problem or an error

    @property
    def etag(self) -> str | None:
        return self.headers.get("etag")

    @property
    def next_url(self) -> str | None:
        """The next page, from the Link header."""
        found = _NEXT.search(self.headers.get("link", ""))
        return found.group(1) if found else None

    @property
    def rate_spent_until_ms(self) -> int | None:
        """The reset time when this answer says the primary limit is now spent."""
        if self.headers.get("x-ratelimit-remaining") == "0":
            return _reset_ms(self.headers)
        return None

    @property
    def server_time(self) -> str | None:
        """The server's clock (the Date header) as GitHub writes times."""
        try:
            when = parsedate_to_datetime(self.headers["date"])
        except (KeyError, TypeError, ValueError):
            return None
        if when.tzinfo is not None:
            when = when.astimezone(UTC)
        return when.strftime("%Y-%m-%dT%H:%M:%SZ")


MAX_WAIT_S = 3600.0  # a server's word on how long to wait is believed up to an hour
MAX_EPOCH_S = 4_102_444_800  # 2100-01-01: a reset later than that is not believed


def _number(headers: Mapping[str, str], name: str) -> float | None:
    """A header's number, or None when absent or not a finite number (a hostile server
    may send inf or 1e300)."""
    try:
        value = float(headers[name])
    except (KeyError, ValueError):
        return None
    return value if math.isfinite(value) else None


def _reset_ms(headers: Mapping[str, str]) -> int | None:
    value = _number(headers, "x-ratelimit-reset")  # seconds since the epoch
    return int(value * 1000) if value is not None and 0 <= value < MAX_EPOCH_S else None


def _retry_after_s(headers: Mapping[str, str]) -> float | None:
    value = _number(headers, "retry-after")
    return None if value is None else min(max(value, 0.0), MAX_WAIT_S)


def sort_reply(
    status: int, headers: Mapping[str, str], data: Any, clock: Callable[[], int] = now_ms
) -> Reply:
    """GitHub's answer as a `Reply`, by GitHub's documented rules for rate limits: a 403
    or 429 with Retry-After is a secondary limit (wait that long); with
    ``X-RateLimit-Remaining: 0`` the primary limit (wait for ``X-RateLimit-Reset``);
    a 403/429 saying "secondary rate limit" without either waits a minute."""
    message = data.get("message") if isinstance(data, dict) else None
    note = f"{status} {message}" if isinstance(message, str) else str(status)
    note = note.splitlines()[0][:200] if note else str(status)
    if 200 <= status < 300:
        return Reply(Kind.OK, status, headers, data)
    if status == 304:
        return Reply(Kind.NOT_MODIFIED, status, headers, None)
    if status in (403, 429):
        wait = _retry_after_s(headers)
        if wait is not None:
            return Reply(Kind.LIMITED, status, headers, data, clock() + int(wait * 1000), note)
        if headers.get("x-ratelimit-remaining") == "0":
            reset = _reset_ms(headers) or clock() + SECONDARY_WAIT_S * 1000
            return Reply(Kind.LIMITED, status, headers, data, reset, note)
        text = (message or "").lower()
        if status == 429 or "rate limit" in text:
            return Reply(
                Kind.LIMITED, status, headers, data, clock() + SECONDARY_WAIT_S * 1000, note
            )
    if status == 401:
        return Reply(Kind.REFUSED, status, headers, data, None, note)
    if status in (404, 410):
        return Reply(Kind.MISSING, status, headers, data, None, note)
    if status >= 500:
        return Reply(Kind.SERVER, status, headers, data, None, note)
    return Reply(Kind.OTHER, status, headers, data, None, note)


def backoff_s(failures: int) -> float:
    """The wait after `failures` consecutive server errors: 2 s, 4 s, 8 s ... 5 min."""
    return float(min(BACKOFF_FIRST_S * 2 ** max(failures - 1, 0), BACKOFF_MAX_S))


class GitHubClient:
    """One PyGithub connection to one API. `request` makes exactly one HTTP request."""

    def __init__(
        self,
        api_url: str,
        token: Secret | None,
        *,
        timeout_s: int = TIMEOUT_S,
        clock: Callable[[], int] = now_ms,
    ) -> None:
        self.api_url = api_url.rstrip("/")
        self.host = urlsplit(self.api_url).hostname or self.api_url
        self.token = token
        self.clock = clock
        self.gh = Github(
            base_url=self.api_url,
            auth=Auth.Token(token.reveal()) if token is not None else None,
            retry=None,
            seconds_between_requests=None,
            seconds_between_writes=None,
            timeout=timeout_s,
            per_page=PER_PAGE,
            user_agent=USER_AGENT,
            lazy=True,
        )

    def __repr__(self) -> str:
        return f"GitHubClient({self.api_url!r}, token={self.token!r})"

    def request(
        self,
        verb: str,
        url: str,
        params: Mapping[str, str] | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> Reply:
        """One request; a failed connection is a `Kind.SERVER` reply, never an exception."""
        try:
            status, got, body = self.gh.requester.requestJson(
                verb, url, dict(params or {}), dict(headers or {})
            )
        except (requests.RequestException, OSError) as exc:
            note = f"no answer from {self.api_url} ({type(exc).__name__})"
            return Reply(Kind.SERVER, 0, {}, None, None, note)
        except (GithubException, RuntimeError, AssertionError, ValueError) as exc:
            # PyGithub: a redirect to another host, a Link to another server.
            note = f"{self.api_url}: {type(exc).__name__}: {one_line(exc)[:200]}"
            return Reply(Kind.OTHER, 0, {}, None, None, note)
        lowered = {str(k).lower(): str(v) for k, v in got.items()}
        data: Any = None
        if body:
            try:
                data = json.loads(body)
            except ValueError:
                return Reply(
                    Kind.SERVER, status, lowered, None, None, f"{status}: not JSON from GitHub"
                )
        return sort_reply(status, lowered, data, self.clock)

    def refused(self) -> SourceError:
        """The error for a 401, naming where the token came from (never the token)."""
        if self.token is None:
            return SourceError(
                f"github: {self.api_url} asks for a token (401); set GITHUB_TOKEN "
                "(or the source's token_env) or name a token_file in the source's config"
            )
        return SourceError(
            f"github: the token was refused (401) by {self.api_url}; check the token "
            f"in {self.token.origin}"
        )

    def error_of(self, exc: GithubException, what: str) -> SourceError:
        """A PyGithub exception (from its objects' methods) as a `SourceError`."""
        headers = {str(k).lower(): str(v) for k, v in (exc.headers or {}).items()}
        reply = sort_reply(exc.status, headers, exc.data, self.clock)
        if reply.kind is Kind.REFUSED:
            return self.refused()
        retry = None
        if reply.retry_at_ms is not None:
            retry = max(reply.retry_at_ms - self.clock(), 0) / 1000
        elif reply.kind is Kind.SERVER:
            retry = backoff_s(1)
        return SourceError(f"github: {what}: {reply.note}", retry_after_s=retry)
