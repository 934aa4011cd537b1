"""The GitHub task source against the GitHub stand-in, over real HTTP on 127.0.0.1."""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from bzzz.errors import ConfigError, SourceError
from bzzz.home.config import GitHubSourceConfig
from bzzz.tasks.github_source import GitHubSource, github_source_of
from bzzz.tasks.token import load_secret
from tests.support.github_standin import FakeClock, GitHubStandIn

TOKEN = "ghp_TopSecretToken1234567890"
LABEL = "bzzz-task"


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def gh(clock: FakeClock) -> Iterator[GitHubStandIn]:
    with GitHubStandIn(token=TOKEN, clock=clock) as standin:
        yield standin


def source_of(gh: GitHubStandIn, clock: FakeClock, repos: list[str], **kw: object) -> GitHubSource:
    config = GitHubSourceConfig.model_validate(
        {"type": "github", "repos": repos, "api_url": gh.url, **kw}
    )
    return github_source_of(config, Path("/nonexistent"), {"GITHUB_TOKEN": TOKEN}, clock.ms)


def fill(gh: GitHubStandIn, repo: str, count: int, label: str = LABEL) -> None:
    for i in range(count):
        gh.add_issue(repo, f"task {i + 1}", f"body {i + 1}", [label, "priority-2"])


async def test_first_sync_lists_open_labelled_issues_and_skips_the_rest(
    gh: GitHubStandIn, clock: FakeClock
) -> None:
    gh.add_issue("octo/app", "one", "depends on #2", [LABEL, "type-bug", "needs-python"])
    gh.add_issue("octo/app", "two", None, [LABEL])
    gh.add_issue("octo/app", "not ours", "", ["bug"])
    gh.add_issue("octo/app", "closed", "", [LABEL], state="closed")
    gh.add_issue("octo/app", "a pull request", "", [LABEL], pull_request=True)
    clock.advance(10)
    poll = await source_of(gh, clock, ["octo/app"]).poll(None)
    assert poll.problems == () and poll.retry_at_ms is None
    (change,) = poll.changes
    assert change.scope == "github:octo/app" and change.complete
    specs = {s.id: s for s in change.specs}
    assert sorted(specs) == ["github:octo/app#1", "github:octo/app#2"]
    one = specs["github:octo/app#1"]
    assert one.title == "one" and one.type == "bug" and one.needs == ("python",)
    assert one.depends_on == ("github:octo/app#2",)
    assert one.url == "https://github.com/octo/app/issues/1"
    assert specs["github:octo/app#2"].body == ""
    assert poll.requests == 2  # the listing and the delta that primes the ETag


async def test_unchanged_second_sync_is_all_304_and_costs_no_rate_limit(
    gh: GitHubStandIn, clock: FakeClock
) -> None:
    repos = ["octo/a", "octo/b", "octo/c"]
    for repo in repos:
        fill(gh, repo, 150)
    clock.advance(10)
    source = source_of(gh, clock, repos)
    first = await source.poll(None)
    assert [len(c.specs) for c in first.changes] == [150, 150, 150]
    assert first.requests == 9  # per repository: 2 pages, 1 delta
    gh.reset_counters()
    clock.advance(60)
    second = await source.poll(first.cursor)
    assert second.changes == ()
    assert second.unchanged == ("github:octo/a", "github:octo/b", "github:octo/c")
    assert second.requests == 3 and gh.not_modified == 3 and gh.rate_used == 0
    assert second.cursor == first.cursor  # nothing new to record


async def test_edits_closes_and_unlabelling_show_up_in_a_delta(
    gh: GitHubStandIn, clock: FakeClock
) -> None:
    fill(gh, "octo/app", 5)
    gh.add_issue("octo/app", "later labelled", "", [])
    clock.advance(10)
    source = source_of(gh, clock, ["octo/app"])
    first = await source.poll(None)
    clock.advance(10)
    gh.edit_issue("octo/app", 1, title="renamed")
    gh.close_issue("octo/app", 2)
    gh.set_labels("octo/app", 3, ["priority-2"])
    gh.set_labels("octo/app", 6, [LABEL])
    gh.add_issue("octo/app", "new", "", [LABEL])
    gh.add_issue("octo/app", "new pr", "", [LABEL], pull_request=True)
    clock.advance(10)
    delta = await source.poll(first.cursor)
    (change,) = delta.changes
    assert not change.complete and delta.requests == 1
    assert {s.id: s.title for s in change.specs} == {
        "github:octo/app#1": "renamed",
        "github:octo/app#6": "later labelled",
        "github:octo/app#7": "new",
    }
    assert sorted(change.closed) == ["github:octo/app#2", "github:octo/app#3"]
    clock.advance(10)
    again = await source.poll(delta.cursor)  # an empty list, with a new ETag
    assert again.changes == () and again.unchanged == ("github:octo/app",)
    clock.advance(10)
    third = await source.poll(again.cursor)
    assert third.unchanged == ("github:octo/app",) and gh.not_modified == 1


async def test_pagination_over_more_than_100_issues_and_pull_requests_skipped(
    gh: GitHubStandIn, clock: FakeClock
) -> None:
    for i in range(250):
        gh.add_issue("octo/app", f"t{i}", "", [LABEL], pull_request=i % 5 == 0)
    clock.advance(10)
    poll = await source_of(gh, clock, ["octo/app"]).poll(None)
    (change,) = poll.changes
    assert len(change.specs) == 200
    assert len({s.id for s in change.specs}) == 200
    assert gh.by_path["GET /repos/octo/app/issues"] == 4  # 3 pages and the delta


async def test_a_spent_rate_limit_ends_the_round_and_it_resumes_after_the_reset(
    gh: GitHubStandIn, clock: FakeClock
) -> None:
    repos = ["octo/a", "octo/b", "octo/c"]
    for repo in repos:
        fill(gh, repo, 3)
    clock.advance(10)
    reset = int(clock.now) + 600
    gh.set_rate_limit(remaining=2, reset=reset)
    source = source_of(gh, clock, repos)
    poll = await source.poll(None)
    assert [c.scope for c in poll.changes] == ["github:octo/a"]
    assert poll.retry_at_ms == reset * 1000
    assert poll.problems == ()
    assert set(poll.cursor["repos"]) == {"octo/a"}  # type: ignore[index]
    before = gh.requests
    early = await source.poll(poll.cursor)  # too early: not a single request
    assert early.requests == 0 and gh.requests == before and early.retry_at_ms == reset * 1000
    clock.advance(601)
    later = await source.poll(poll.cursor)
    assert later.retry_at_ms is None
    assert later.unchanged == ("github:octo/a",)
    assert [c.scope for c in later.changes] == ["github:octo/b", "github:octo/c"]
    assert set(later.cursor["repos"]) == set(repos)  # type: ignore[index]


async def test_a_403_once_the_limit_is_spent_also_stops_at_the_reset(
    gh: GitHubStandIn, clock: FakeClock
) -> None:
    fill(gh, "octo/a", 1)
    clock.advance(10)
    gh.set_rate_limit(remaining=0, reset=int(clock.now) + 100)
    poll = await source_of(gh, clock, ["octo/a"]).poll(None)
    assert poll.changes == () and poll.retry_at_ms == (int(clock.now) + 100) * 1000
    assert poll.requests == 1


async def test_secondary_limit_retry_after_is_honoured(gh: GitHubStandIn, clock: FakeClock) -> None:
    fill(gh, "octo/a", 2)
    fill(gh, "octo/b", 2)
    clock.advance(10)
    source = source_of(gh, clock, ["octo/a", "octo/b"])
    first = await source.poll(None)
    clock.advance(10)
    gh.edit_issue("octo/b", 1, title="x")
    clock.advance(10)
    gh.secondary_limit(retry_after_s=30)
    poll = await source.poll(first.cursor)
    assert poll.changes == () and poll.retry_at_ms == clock.ms() + 30_000
    assert (await source.poll(first.cursor)).requests == 0
    clock.advance(31)
    after = await source.poll(first.cursor)
    assert after.retry_at_ms is None and [c.scope for c in after.changes] == ["github:octo/b"]


async def test_server_errors_back_off_exponentially_and_never_raise(
    gh: GitHubStandIn, clock: FakeClock
) -> None:
    fill(gh, "octo/a", 2)
    clock.advance(10)
    source = source_of(gh, clock, ["octo/a"])
    waits = []
    for _ in range(4):
        gh.fail_next(1, status=502)
        poll = await source.poll(None)
        assert poll.changes == () and len(poll.problems) == 1 and "502" in poll.problems[0]
        assert poll.retry_at_ms is not None
        waits.append(poll.retry_at_ms - clock.ms())
        clock.advance(waits[-1] / 1000)
    assert waits == [2000, 4000, 8000, 16000]
    poll = await source.poll(None)
    assert poll.problems == () and len(poll.changes) == 1
    gh.fail_next(1, status=503)
    assert (await source.poll(None)).retry_at_ms == clock.ms() + 2000  # the count restarts


async def test_no_server_at_all_is_a_problem_and_a_retry(clock: FakeClock) -> None:
    with GitHubStandIn(token=TOKEN, clock=clock) as gh:
        source = source_of(gh, clock, ["octo/a"])
    poll = await source.poll(None)  # the stand-in is gone: connection refused
    assert poll.changes == () and poll.retry_at_ms == clock.ms() + 2000
    assert "no answer" in poll.problems[0]


async def test_refused_token_raises_a_source_error_without_the_token(
    gh: GitHubStandIn, clock: FakeClock, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    fill(gh, "octo/a", 1)
    gh.refuse_tokens = True
    with pytest.raises(SourceError) as raised:
        await source_of(gh, clock, ["octo/a"]).poll(None)
    message = str(raised.value)
    assert "401" in message and "GITHUB_TOKEN" in message and gh.url in message
    assert TOKEN not in message and TOKEN not in repr(raised.value)
    assert TOKEN not in caplog.text


async def test_a_missing_repository_is_a_problem_and_the_others_sync(
    gh: GitHubStandIn, clock: FakeClock
) -> None:
    fill(gh, "octo/a", 2)
    fill(gh, "octo/c", 2)
    clock.advance(10)
    poll = await source_of(gh, clock, ["octo/a", "octo/gone", "octo/c"]).poll(None)
    assert [c.scope for c in poll.changes] == ["github:octo/a", "github:octo/c"]
    (problem,) = poll.problems
    assert "octo/gone" in problem and "not found" in problem
    assert poll.retry_at_ms is None


async def test_the_token_is_never_logged_nor_in_the_poll_or_cursor(
    gh: GitHubStandIn, clock: FakeClock, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)  # PyGithub's own request log included
    fill(gh, "octo/a", 120)
    clock.advance(10)
    source = source_of(gh, clock, ["octo/a", "octo/gone"])
    gh.fail_next(1)
    polls = [await source.poll(None)]
    clock.advance(5)
    polls.append(await source.poll(None))
    clock.advance(5)
    polls.append(await source.poll(polls[-1].cursor))
    assert len(polls[1].changes) == 1 and polls[2].unchanged == ("github:octo/a",)
    assert all(e.request_headers["authorization"] == f"token {TOKEN}" for e in gh.exchanges)
    assert caplog.text  # something was logged
    assert TOKEN not in caplog.text
    assert all(TOKEN not in repr(p) for p in polls)
    assert TOKEN not in repr(source) and TOKEN not in repr(source.client)
    assert TOKEN not in repr(load_secret("GITHUB_TOKEN", None, Path("/"), {"GITHUB_TOKEN": TOKEN}))


async def test_without_a_token_public_repositories_are_read_and_a_warning_logged(
    clock: FakeClock, caplog: pytest.LogCaptureFixture
) -> None:
    with GitHubStandIn(token=None, clock=clock) as gh:
        fill(gh, "octo/public", 2)
        clock.advance(10)
        config = GitHubSourceConfig.model_validate(
            {"type": "github", "repos": ["octo/public"], "api_url": gh.url, "name": "github:anon"}
        )
        source = github_source_of(config, Path("/nonexistent"), {}, clock.ms)
        poll = await source.poll(None)
        assert len(poll.changes[0].specs) == 2
        assert all("authorization" not in e.request_headers for e in gh.exchanges)
    assert "no token" in caplog.text
    assert not source.mirrors("github:octo/public#1")  # nothing is written without a token


def test_default_name_is_the_api_host(gh: GitHubStandIn, clock: FakeClock) -> None:
    assert source_of(gh, clock, ["octo/a"]).name == "github:127.0.0.1"
    assert source_of(gh, clock, ["octo/a"], name="github:work").name == "github:work"


def test_token_file_must_be_private(tmp_path: Path) -> None:
    path = tmp_path / "github.token"
    path.write_text(TOKEN + "\n")
    os.chmod(path, 0o644)
    with pytest.raises(ConfigError) as raised:
        load_secret("GITHUB_TOKEN", "github.token", tmp_path, {})
    assert str(path) in str(raised.value) and "0644" in str(raised.value)
    assert "chmod 600" in str(raised.value) and TOKEN not in str(raised.value)
    os.chmod(path, 0o600)
    secret = load_secret("GITHUB_TOKEN", "github.token", tmp_path, {"GITHUB_TOKEN": "other"})
    assert secret is not None and secret.reveal() == TOKEN  # the named file wins
    assert str(path) in secret.origin and TOKEN not in repr(secret) + str(secret)


def test_token_file_missing_or_empty_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="missing"):
        load_secret(None, "nope.token", tmp_path, {})
    empty = tmp_path / "empty.token"
    empty.write_text("\n")
    empty.chmod(0o600)
    with pytest.raises(ConfigError, match="empty"):
        load_secret(None, "empty.token", tmp_path, {})
    assert load_secret("GITHUB_TOKEN", None, tmp_path, {}) is None
    with pytest.raises(ConfigError) as raised:
        load_secret("T", None, tmp_path, {"T": "two words"})
    assert "two words" not in str(raised.value)
