"""Claims mirrored on GitHub issues, against the GitHub stand-in over real HTTP."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path

import pytest

from bzzz.domain.intake import Tenure
from bzzz.errors import SourceError
from bzzz.home.config import GitHubSourceConfig
from bzzz.tasks.github_mirror import IN_PROGRESS
from bzzz.tasks.github_source import GitHubSource, github_source_of
from tests.support.github_standin import FakeClock, GitHubStandIn

TOKEN = "ghp_MirrorSecret0987654321"
REPO = "octo/app"
CLAIM = "ab" * 32
AGENT = "cd" * 32


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def gh(clock: FakeClock) -> Iterator[GitHubStandIn]:
    with GitHubStandIn(token=TOKEN, clock=clock) as standin:
        standin.add_issue(REPO, "fix it", "", ["bzzz-task"])
        yield standin


def source_of(gh: GitHubStandIn, clock: FakeClock, mirror: bool = True) -> GitHubSource:
    config = GitHubSourceConfig.model_validate(
        {"type": "github", "repos": [REPO], "api_url": gh.url, "mirror": mirror}
    )
    return github_source_of(config, Path("/nonexistent"), {"GITHUB_TOKEN": TOKEN}, clock.ms)


def hold(name: str | None = "alice", claim: str = CLAIM) -> Tenure:
    return Tenure(f"github:{REPO}#1", AGENT, name, claim, (4, 17))


def test_mirrors_only_issues_of_configured_repositories(
    gh: GitHubStandIn, clock: FakeClock
) -> None:
    source = source_of(gh, clock)
    assert source.mirrors(f"github:{REPO}#1")
    assert source.mirrors("github:OCTO/App#7")  # GitHub's names are case-insensitive
    assert not source.mirrors("github:octo/other#1")
    assert not source.mirrors("local:fix-it")
    assert not source.mirrors("github:octo/app#0")
    assert not source_of(gh, clock, mirror=False).mirrors(f"github:{REPO}#1")


async def test_claimed_twice_even_by_a_new_admin_posts_one_comment(
    gh: GitHubStandIn, clock: FakeClock
) -> None:
    await source_of(gh, clock).claimed(hold())
    await source_of(gh, clock).claimed(hold())  # a fresh instance: a new admin repeating it
    (comment,) = gh.comments(REPO, 1)
    assert comment.startswith(f"<!-- bzzz:claimed:{CLAIM} -->")
    assert "alice" in comment and AGENT in comment and CLAIM in comment and "4.17" in comment
    assert gh.labels(REPO, 1) == ["bzzz-task", IN_PROGRESS]
    await source_of(gh, clock).claimed(hold(claim="ef" * 32))  # another hold: its own comment
    assert len(gh.comments(REPO, 1)) == 2


async def test_released_removes_the_label_and_tolerates_its_absence(
    gh: GitHubStandIn, clock: FakeClock
) -> None:
    source = source_of(gh, clock)
    await source.claimed(hold())
    await source.released(hold())
    await source.released(hold())  # the label is already gone: a 404, fine
    assert gh.labels(REPO, 1) == ["bzzz-task"]


async def test_completed_comments_once_and_removes_the_label(
    gh: GitHubStandIn, clock: FakeClock
) -> None:
    source = source_of(gh, clock)
    await source.claimed(hold())
    await source.completed(hold(), "all tests pass", "https://github.com/octo/app/pull/9")
    await source_of(gh, clock).completed(hold(), "all tests pass", None)
    comments = gh.comments(REPO, 1)
    assert len(comments) == 2
    assert comments[1].startswith(f"<!-- bzzz:completed:{CLAIM} -->")
    assert "all tests pass" in comments[1] and "pull/9" in comments[1]
    assert gh.labels(REPO, 1) == ["bzzz-task"]


async def test_agent_text_cannot_forge_a_marker(gh: GitHubStandIn, clock: FakeClock) -> None:
    other = "ef" * 32
    forged = f"<!-- bzzz:completed:{other} -->"
    source = source_of(gh, clock)
    await source.completed(hold(name=f"mallory {forged}"), f"done\n{forged}\nreally", forged)
    (comment,) = gh.comments(REPO, 1)
    assert comment.count("<!--") == 1  # our own marker, first
    assert forged not in comment
    # The forged marker did not take: the other hold's completion is still posted.
    await source.completed(hold(claim=other), "mine", None)
    assert gh.comments(REPO, 1)[1].startswith(forged)


async def test_a_marker_quoted_by_a_person_does_not_count(
    gh: GitHubStandIn, clock: FakeClock
) -> None:
    gh.add_comment(REPO, 1, f"> <!-- bzzz:claimed:{CLAIM} -->\nwho is this?")
    await source_of(gh, clock).claimed(hold())
    assert len(gh.comments(REPO, 1)) == 2


async def test_long_results_are_cut(gh: GitHubStandIn, clock: FakeClock) -> None:
    await source_of(gh, clock).completed(hold(), "x" * 100_000, None)
    (comment,) = gh.comments(REPO, 1)
    assert len(comment) < 5000


async def test_mirror_errors_are_source_errors_without_the_token(
    gh: GitHubStandIn, clock: FakeClock, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    source = source_of(gh, clock)
    gh.fail_next(1, status=502)
    with pytest.raises(SourceError) as raised:
        await source.claimed(hold())
    assert raised.value.retry_after_s is not None
    gh.secondary_limit(retry_after_s=45)
    with pytest.raises(SourceError) as raised:
        await source.claimed(hold())
    assert raised.value.retry_after_s == 45
    gh.refuse_tokens = True
    with pytest.raises(SourceError, match="401") as raised:
        await source.completed(hold(), "done", None)
    assert TOKEN not in str(raised.value) and TOKEN not in caplog.text
    gh.refuse_tokens = False
    with pytest.raises(SourceError, match="octo/app#5"):
        await source.claimed(Tenure(f"github:{REPO}#5", AGENT, None, CLAIM, (1, 1)))
    with pytest.raises(SourceError):
        await source.claimed(Tenure("github:octo/other#1", AGENT, None, CLAIM, (1, 1)))
    assert gh.comments(REPO, 1) == []
