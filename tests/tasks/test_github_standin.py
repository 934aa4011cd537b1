"""The GitHub stand-in against GitHub's published OpenAPI description: the source, the
mirror and the pull requests run against it, and every request it received and every
response it sent is validated with openapi-core (``fixtures/github-openapi``: npm's
``@octokit/openapi``, installed by ``bash scripts/install-system-deps.sh``).

Responses GitHub sends on any endpoint but its description lists for few (a 304 to a
conditional request, a 401, a rate limit's 403, a 5xx) are checked by HTTP's rules and
against the description's ``basic-error`` schema instead."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import requests
from openapi_core import Config, OpenAPI
from openapi_core.contrib.werkzeug import WerkzeugOpenAPIRequest, WerkzeugOpenAPIResponse
from openapi_core.templating.responses.exceptions import ResponseNotFound
from openapi_schema_validator import OAS30Validator
from werkzeug.test import EnvironBuilder
from werkzeug.wrappers import Response

from bzzz.domain.intake import Tenure
from bzzz.errors import SourceError
from bzzz.home.config import GitHubSourceConfig
from bzzz.tasks.github_pulls import GitHubPullRequests
from bzzz.tasks.github_source import github_source_of
from bzzz.tasks.token import Secret
from tests.support.github_standin import Exchange, FakeClock, GitHubStandIn

ROOT = Path(__file__).resolve().parents[2]
DESCRIPTION = (
    ROOT / "fixtures/github-openapi/node_modules/@octokit/openapi/generated/api.github.com.json"
)
TOKEN = "ghp_ContractToken"
GITHUB = "https://api.github.com"


@dataclass(frozen=True)
class Described:
    app: OpenAPI
    spec: dict[str, Any]


@pytest.fixture(scope="module")
def described() -> Described:
    if not DESCRIPTION.is_file():
        pytest.fail(
            f"GitHub's OpenAPI description is missing ({DESCRIPTION.relative_to(ROOT)}); "
            "run `bash scripts/install-system-deps.sh` (it runs `npm ci` in "
            "fixtures/github-openapi)"
        )
    spec = json.loads(DESCRIPTION.read_text())
    # Spec validation off: 0.9 s to load instead of 27 s; the description is GitHub's.
    return Described(OpenAPI.from_dict(spec, config=Config(spec_validator_cls=None)), spec)


@pytest.fixture
def exchanges() -> Iterator[list[Exchange]]:
    """Everything the source and the mirror send in a busy life, as the stand-in saw it."""
    clock = FakeClock()
    with GitHubStandIn(token=TOKEN, clock=clock) as gh:
        for i in range(130):
            gh.add_issue("octo/app", f"task {i}", f"body {i}", ["bzzz-task", "priority-1"])
        gh.add_issue("octo/app", "a pull request", "", ["bzzz-task"], pull_request=True)
        gh.add_issue("octo/app", "closed", None, ["bzzz-task"], state="closed")
        gh.add_issue("octo/lib", "other", "depends on octo/app#1", ["bzzz-task"])
        clock.advance(10)
        config = GitHubSourceConfig.model_validate(
            {"type": "github", "repos": ["octo/app", "octo/gone", "octo/lib"], "api_url": gh.url}
        )
        source = github_source_of(config, Path("/"), {"GITHUB_TOKEN": TOKEN}, clock.ms)

        async def life() -> None:
            first = await source.poll(None)
            clock.advance(10)
            unchanged = await source.poll(first.cursor)
            gh.edit_issue("octo/app", 1, title="renamed")
            gh.close_issue("octo/app", 2)
            gh.set_labels("octo/lib", 1, [])
            clock.advance(10)
            delta = await source.poll(unchanged.cursor)
            hold = Tenure("github:octo/app#3", "ab" * 32, "alice", "cd" * 64, (2, 5))
            await source.claimed(hold)
            await source.claimed(hold)
            await source.released(hold)
            await source.released(hold)  # a 404: the label is gone
            await source.completed(hold, "done <!-- x -->", "https://github.com/octo/app/pull/4")
            gh.fail_next(1, status=502)
            await source.poll(delta.cursor)
            clock.advance(60)
            gh.secondary_limit(retry_after_s=5)
            await source.poll(delta.cursor)
            clock.advance(10)
            gh.set_rate_limit(remaining=0, reset=int(clock.now) + 60)
            await source.poll(delta.cursor)
            clock.advance(61)
            gh.refuse_tokens = True
            with pytest.raises(SourceError):
                await source.poll(delta.cursor)

        asyncio.run(life())
        yield list(gh.exchanges)


def _request(exchange: Exchange) -> WerkzeugOpenAPIRequest:
    headers = dict(exchange.request_headers)
    content_type = headers.pop("content-type", None)
    headers.pop("host", None)  # the stand-in's; the description's server is GitHub's
    built = EnvironBuilder(
        method=exchange.method,
        base_url=GITHUB,
        path=exchange.path,
        query_string=exchange.query,
        headers=list(headers.items()),
        data=exchange.request_body or None,
        content_type=content_type,
    )
    return WerkzeugOpenAPIRequest(built.get_request())


def _response(exchange: Exchange) -> WerkzeugOpenAPIResponse:
    return WerkzeugOpenAPIResponse(
        Response(exchange.response_body, exchange.status, exchange.response_headers)
    )


@pytest.fixture
def pull_exchanges() -> Iterator[list[Exchange]]:
    """Everything the pull requests send: a remote, opening, finding, a race, refusals;
    and what they never ask for (one pull request, a head without its owner)."""
    clock = FakeClock()
    with GitHubStandIn(token=TOKEN, clock=clock) as gh:
        gh.set_repo("octo/app", default_branch="trunk")
        gh.add_issue("octo/app", "an issue", "", ["bzzz-task"])
        gh.add_pull("octo/app", "bzzz/old", title="closed", state="closed")
        gh.add_pull("octo/app", "mallory:bzzz/one", title="a fork's", body=None)
        secret = Secret(TOKEN, "the environment variable GITHUB_TOKEN")
        pulls = GitHubPullRequests(["octo/app", "octo/gone"], api_url=gh.url, token=secret)
        app, gone = f"{gh.url}/octo/app.git", f"{gh.url}/octo/gone.git"

        async def life() -> None:
            await pulls.remote(app)
            await pulls.open(app, "bzzz/one", "One", "the first")
            await pulls.open(app, "bzzz/one", "One", "again: found")
            await pulls.open(app, "bzzz/old", "Old", "a closed one: found")
            gh.before_next(
                "POST",
                r"/repos/octo/app/pulls",
                lambda: gh.add_pull("octo/app", "bzzz/race", base="trunk", title="first"),
            )
            await pulls.open(app, "bzzz/race", "Race", "lost: a 422, then found")
            for call in [
                pulls.remote(gone),  # 404
                pulls.open(app, "bzzz/untitled", "", "a 422 of a missing title"),
            ]:
                with pytest.raises(SourceError):
                    await call
            clock.advance(10)
            gh.before_next("POST", r".*", lambda: gh.secondary_limit(retry_after_s=5))
            with pytest.raises(SourceError):
                await pulls.open(app, "bzzz/two", "Two", "a secondary limit")
            clock.advance(10)
            gh.refuse_tokens = True
            with pytest.raises(SourceError):
                await pulls.remote(app)

        asyncio.run(life())
        gh.refuse_tokens = False
        for path in ["pulls/2", "pulls/1", "pulls?head=bzzz/one&sort=updated&state=closed"]:
            _get(gh, f"/repos/octo/app/{path}")
        yield list(gh.exchanges)


def _get(gh: GitHubStandIn, path: str) -> None:
    requests.get(gh.url + path, headers={"Authorization": f"token {TOKEN}"}, timeout=5)


def test_every_exchange_matches_githubs_openapi_description(
    described: Described, exchanges: list[Exchange]
) -> None:
    kinds = {(e.method, e.status) for e in exchanges}
    # The life above went through all of these.
    for kind in [
        ("GET", 200),
        ("GET", 304),
        ("GET", 404),
        ("POST", 200),
        ("POST", 201),
        ("DELETE", 200),
        ("DELETE", 404),
        ("GET", 401),
        ("GET", 403),
        ("GET", 502),
    ]:
        assert kind in kinds, kind
    failures = _mismatches(described, exchanges)
    assert not failures, "\n".join(f[:400] + " ... " + f[-600:] for f in failures[:10])


def test_every_pull_request_exchange_matches_githubs_openapi_description(
    described: Described, pull_exchanges: list[Exchange]
) -> None:
    done = {(e.method, e.path, e.status) for e in pull_exchanges}
    for kind in [
        ("GET", "/repos/octo/app", 200),
        ("GET", "/repos/octo/gone", 404),
        ("GET", "/repos/octo/app", 401),
        ("GET", "/repos/octo/app/pulls", 200),
        ("POST", "/repos/octo/app/pulls", 201),
        ("POST", "/repos/octo/app/pulls", 422),  # the race, and the missing title
        ("POST", "/repos/octo/app/pulls", 403),  # the secondary limit
        ("GET", "/repos/octo/app/pulls/2", 200),
        ("GET", "/repos/octo/app/pulls/1", 404),  # an issue, not a pull request
    ]:
        assert kind in done, kind
    failures = _mismatches(described, pull_exchanges)
    assert not failures, "\n".join(f[:400] + " ... " + f[-600:] for f in failures[:10])


def _mismatches(described: Described, exchanges: list[Exchange]) -> list[str]:
    """Every exchange that is not as GitHub's description says, one line each."""
    basic_error = OAS30Validator(described.spec["components"]["schemas"]["basic-error"])
    etags_sent: dict[str, set[str]] = {}
    failures: list[str] = []
    for exchange in exchanges:
        where = f"{exchange.method} {exchange.url} -> {exchange.status}"
        request = _request(exchange)
        try:
            described.app.validate_request(request)
        except Exception as exc:  # the test reports every mismatch at once
            failures.append(f"{where}: request: {exc}: {exc.__cause__}")
            continue
        if exchange.status == 304:
            wanted = exchange.request_headers.get("if-none-match", "")
            if wanted not in etags_sent.get(exchange.path, set()) or exchange.response_body:
                failures.append(f"{where}: a 304 without a matching If-None-Match")
            continue
        if "etag" in {k.lower() for k in exchange.response_headers}:
            etags_sent.setdefault(exchange.path, set()).add(exchange.response_headers["ETag"])
        try:
            described.app.validate_response(request, _response(exchange))
        except ResponseNotFound:
            # Not listed for this operation (401, rate limits, 5xx): GitHub's basic error.
            errors = list(basic_error.iter_errors(json.loads(exchange.response_body)))
            if errors or exchange.status not in (401, 403, 429, 500, 502, 503):
                failures.append(f"{where}: undescribed response: {errors}")
        except Exception as exc:
            failures.append(f"{where}: response: {exc}: {exc.__cause__}")
    return failures
