"""Pull requests on GitHub (the `PullRequests` port), against the GitHub stand-in over
real HTTP; the credentials `remote` hands to git are read back by real git."""

from __future__ import annotations

import base64
import logging
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from bzzz.errors import SourceError
from bzzz.home.config import GitHubSourceConfig
from bzzz.tasks.github_pulls import GitHubPullRequests, github_pulls_of, web_origin
from bzzz.tasks.token import Secret
from tests.support.github_standin import FakeClock, GitHubStandIn

TOKEN = "ghp_PullSecret1234567890"
REPO = "octo/app"
URL = "https://github.com/octo/app.git"
BRANCH = "bzzz/github-octo-app-1-ab12cd34"
SECRETS = (TOKEN, base64.b64encode(f"x-access-token:{TOKEN}".encode()).decode())


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def gh(clock: FakeClock) -> Iterator[GitHubStandIn]:
    with GitHubStandIn(token=TOKEN, clock=clock) as standin:
        standin.set_repo(REPO, default_branch="trunk")
        yield standin


def pulls_of(
    gh: GitHubStandIn, clock: FakeClock, token: str | None = TOKEN, repos: tuple[str, ...] = (REPO,)
) -> GitHubPullRequests:
    secret = None if token is None else Secret(token, "the environment variable GITHUB_TOKEN")
    return GitHubPullRequests(repos, api_url=gh.url, token=secret, clock=clock.ms)


def web(gh: GitHubStandIn, repo: str = REPO) -> str:
    """A task's repository as the stand-in's web host would name it."""
    return f"{gh.url}/{repo}.git"


def no_secret(*texts: str) -> bool:
    return not any(secret in text for secret in SECRETS for text in texts)


# -- handles --------------------------------------------------------------------------


def test_handles_the_configured_repositories_of_its_own_host() -> None:
    pulls = GitHubPullRequests(["octo/app", "Octo/Lib"])
    assert pulls.handles("https://github.com/octo/app.git")
    assert pulls.handles("https://github.com/octo/app")
    assert pulls.handles("https://GitHub.com/OCTO/App.git")  # names are case-insensitive
    assert pulls.repo_of("https://github.com/octo/lib.git") == "Octo/Lib"
    for other in [
        "https://github.com/octo/other.git",  # not configured
        "https://gitlab.com/octo/app.git",  # another forge
        "https://api.github.com/octo/app.git",  # the API is not where repositories are
        "http://github.com/octo/app.git",  # not GitHub's scheme
        "https://x:y@github.com/octo/app.git",  # credentials in the URL
        "https://github.com/octo/app/tree/main",
        "https://github.com/octo/app.git?x=1",
        "https://github.com/octo",
        "git@github.com:octo/app.git",
        "/srv/git/octo/app.git",
        "",
    ]:
        assert not pulls.handles(other), other


def test_github_enterprise_repositories_are_on_the_apis_host() -> None:
    assert web_origin("https://api.github.com") == "https://github.com"
    assert web_origin("https://ghe.example.com/api/v3") == "https://ghe.example.com"
    assert web_origin("https://api.octo.ghe.com") == "https://octo.ghe.com"
    pulls = GitHubPullRequests([REPO], api_url="https://ghe.example.com/api/v3/")
    assert pulls.handles("https://ghe.example.com/octo/app.git")
    assert not pulls.handles(URL)


# -- remote ---------------------------------------------------------------------------


async def test_remote_without_a_token_is_the_clone_url_alone(
    clock: FakeClock, tmp_path: Path
) -> None:
    with GitHubStandIn(clock=clock) as anonymous:  # a server that asks for no token
        bare = tmp_path / "app.git"
        anonymous.set_repo(REPO, clone_url=str(bare))
        remote = await pulls_of(anonymous, clock, token=None).remote(web(anonymous))
        assert remote.url == str(bare)
        assert remote.env == {}
        assert "authorization" not in anonymous.exchanges[-1].request_headers


async def test_remote_with_a_token_lets_git_in_to_the_clone_urls_origin_only(
    gh: GitHubStandIn, clock: FakeClock, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    pulls = pulls_of(gh, clock)
    remote = await pulls.remote(web(gh))
    assert remote.url == URL  # the stand-in's default: GitHub's own clone URL
    assert remote.env == {
        "GIT_CONFIG_COUNT": "1",
        "GIT_CONFIG_KEY_0": "http.https://github.com/.extraHeader",
        "GIT_CONFIG_VALUE_0": f"Authorization: Basic {SECRETS[1]}",
    }
    assert no_secret(repr(remote), str(remote), repr(pulls), str(pulls), caplog.text)
    if shutil.which("git") is None:
        pytest.skip("no git")
    base = {"PATH": "/usr/bin:/bin", "HOME": "/nonexistent", "GIT_CONFIG_NOSYSTEM": "1"}

    def header_for(url: str) -> str:
        done = subprocess.run(
            ["git", "config", "--get-urlmatch", "http.extraheader", url],
            env={**base, "GIT_CONFIG_GLOBAL": "/dev/null", **remote.env},
            capture_output=True,
            text=True,
            check=False,
        )
        return done.stdout.strip()

    assert header_for(URL) == remote.env["GIT_CONFIG_VALUE_0"]  # git reads it
    assert header_for("https://github.com/other/repo.git") == remote.env["GIT_CONFIG_VALUE_0"]
    assert header_for("https://evil.example/octo/app.git") == ""  # and sends it nowhere else
    assert header_for("http://github.com/octo/app.git") == ""  # nor in the clear


async def test_remote_with_a_token_scopes_the_header_to_another_origin(
    gh: GitHubStandIn, clock: FakeClock, tmp_path: Path
) -> None:
    gh.set_repo(REPO, clone_url="https://git.example.com:8443/octo/app.git")
    remote = await pulls_of(gh, clock).remote(web(gh))
    assert remote.env["GIT_CONFIG_KEY_0"] == "http.https://git.example.com:8443/.extraHeader"
    gh.set_repo(REPO, clone_url=str(tmp_path / "app.git"))  # a path: git uses no HTTP
    remote = await pulls_of(gh, clock).remote(web(gh))
    assert remote == type(remote)(str(tmp_path / "app.git"), {})


@pytest.mark.parametrize(
    "clone_url", ["--upload-pack=touch /tmp/x", "ext::sh -c touch% /tmp/x", "a\nb"]
)
async def test_a_clone_url_git_must_not_be_given_is_refused(
    gh: GitHubStandIn, clock: FakeClock, clone_url: str
) -> None:
    gh.set_repo(REPO, clone_url=clone_url)
    with pytest.raises(SourceError, match="clone_url") as raised:
        await pulls_of(gh, clock).remote(web(gh))
    assert "\n" not in str(raised.value)


async def test_remote_of_a_missing_repository(gh: GitHubStandIn, clock: FakeClock) -> None:
    pulls = pulls_of(gh, clock, repos=(REPO, "octo/gone"))
    with pytest.raises(SourceError, match="octo/gone: not found") as raised:
        await pulls.remote(web(gh, "octo/gone"))
    assert raised.value.retry_after_s is None


async def test_a_repository_it_does_not_handle_is_refused_without_a_request(
    gh: GitHubStandIn, clock: FakeClock
) -> None:
    pulls = pulls_of(gh, clock)
    with pytest.raises(SourceError, match="not a repository of this adapter"):
        await pulls.remote("https://github.com/octo/other.git")
    with pytest.raises(SourceError, match="not a repository of this adapter"):
        await pulls.open(URL, BRANCH, "t", "b")  # the real GitHub, not the stand-in
    assert gh.requests == 0


# -- open -----------------------------------------------------------------------------


async def test_open_creates_one_pull_request_onto_the_default_branch(
    gh: GitHubStandIn, clock: FakeClock
) -> None:
    url = await pulls_of(gh, clock).open(web(gh), BRANCH, "Fix it", "Closes #1.\n\nDone.")
    (pull,) = gh.pulls(REPO)
    assert url == f"https://github.com/{REPO}/pull/{pull.number}"
    assert pull.head == f"octo:{BRANCH}"
    assert pull.base == "trunk"
    assert (pull.title, pull.body, pull.state) == ("Fix it", "Closes #1.\n\nDone.", "open")
    assert pull.user == gh.login
    (listed,) = gh.exchanges_of("GET", r"/repos/octo/app/pulls")
    assert f"head=octo%3A{BRANCH.replace('/', '%2F')}" in listed.query
    assert "state=all" in listed.query


async def test_open_twice_is_one_pull_request(gh: GitHubStandIn, clock: FakeClock) -> None:
    first = await pulls_of(gh, clock).open(web(gh), BRANCH, "Fix it", "body")
    again = await pulls_of(gh, clock).open(web(gh), BRANCH, "Fix it again", "other")
    assert first == again
    assert len(gh.pulls(REPO)) == 1
    assert gh.by_path[f"POST /repos/{REPO}/pulls"] == 1


async def test_a_closed_pull_request_from_the_branch_is_the_answer(
    gh: GitHubStandIn, clock: FakeClock
) -> None:
    gh.add_pull(REPO, "mallory:" + BRANCH, title="a fork's branch of the same name")
    gh.add_pull(REPO, "patch-1", title="another branch")
    closed = gh.add_pull(REPO, BRANCH, title="the first try", state="closed")
    url = await pulls_of(gh, clock).open(web(gh), BRANCH, "Fix it", "body")
    assert url == f"https://github.com/{REPO}/pull/{closed}"
    assert len(gh.pulls(REPO)) == 3
    assert gh.by_path[f"POST /repos/{REPO}/pulls"] == 0


async def test_an_open_pull_request_is_preferred_to_a_closed_one(
    gh: GitHubStandIn, clock: FakeClock
) -> None:
    opened = gh.add_pull(REPO, BRANCH, title="open, older")
    gh.add_pull(REPO, BRANCH, base="release", title="closed, newer", state="closed")
    url = await pulls_of(gh, clock).open(web(gh), BRANCH, "Fix it", "body")
    assert url.endswith(f"/pull/{opened}")


async def test_another_opener_winning_the_race_is_its_pull_request(
    gh: GitHubStandIn, clock: FakeClock
) -> None:
    numbers: list[int] = []
    gh.before_next(
        "POST",
        rf"/repos/{REPO}/pulls",
        lambda: numbers.append(gh.add_pull(REPO, BRANCH, base="trunk", title="the winner's")),
    )
    url = await pulls_of(gh, clock).open(web(gh), BRANCH, "Fix it", "body")
    assert url == f"https://github.com/{REPO}/pull/{numbers[0]}"
    (pull,) = gh.pulls(REPO)
    assert pull.title == "the winner's"
    (post,) = gh.exchanges_of("POST", rf"/repos/{REPO}/pulls")
    assert post.status == 422 and b"already exists" in post.response_body


async def test_a_refused_pull_request_says_why_in_one_line(
    gh: GitHubStandIn, clock: FakeClock
) -> None:
    with pytest.raises(SourceError) as raised:
        await pulls_of(gh, clock).open(web(gh), BRANCH, "", "no title")
    assert (
        str(raised.value)
        == f"github: {REPO}: a pull request from {BRANCH}: 422 title missing_field"
    )
    assert "\n" not in str(raised.value) and raised.value.retry_after_s is None
    assert gh.pulls(REPO) == []


async def test_long_titles_and_bodies_are_cut_to_githubs_limits(
    gh: GitHubStandIn, clock: FakeClock
) -> None:
    await pulls_of(gh, clock).open(web(gh), BRANCH, "t" * 1000, "b" * 100_000)
    (pull,) = gh.pulls(REPO)
    assert len(pull.title) == 256 and pull.title.endswith("…")
    assert pull.body is not None and len(pull.body) == 65_536


@pytest.mark.parametrize("branch", ["", "a b", "octo:x", "a..b", "-x", "x.lock", "x/"])
async def test_a_branch_git_cannot_name_is_refused_without_a_request(
    gh: GitHubStandIn, clock: FakeClock, branch: str
) -> None:
    with pytest.raises(SourceError, match="is not a branch name"):
        await pulls_of(gh, clock).open(web(gh), branch, "t", "b")
    assert gh.requests == 0


# -- failures -------------------------------------------------------------------------


async def test_a_secondary_rate_limit_says_when_to_try_again(
    gh: GitHubStandIn, clock: FakeClock
) -> None:
    gh.secondary_limit(retry_after_s=30)
    with pytest.raises(SourceError, match="rate limit") as raised:
        await pulls_of(gh, clock).open(web(gh), BRANCH, "t", "b")
    assert raised.value.retry_after_s == 30
    assert gh.pulls(REPO) == []


async def test_a_spent_rate_limit_waits_for_its_reset(gh: GitHubStandIn, clock: FakeClock) -> None:
    gh.set_rate_limit(remaining=0, reset=int(clock.now) + 120)
    with pytest.raises(SourceError) as raised:
        await pulls_of(gh, clock).remote(web(gh))
    assert raised.value.retry_after_s == 120


async def test_a_server_error_is_worth_another_try(gh: GitHubStandIn, clock: FakeClock) -> None:
    gh.fail_next(1, status=502)
    with pytest.raises(SourceError, match="502") as raised:
        await pulls_of(gh, clock).open(web(gh), BRANCH, "t", "b")
    assert raised.value.retry_after_s is not None and raised.value.retry_after_s > 0


async def test_a_refused_token_is_one_line_without_the_token(
    gh: GitHubStandIn, clock: FakeClock, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    gh.refuse_tokens = True
    pulls = pulls_of(gh, clock)
    for call in (pulls.remote(web(gh)), pulls.open(web(gh), BRANCH, "t", "b")):
        with pytest.raises(SourceError, match="refused") as raised:
            await call
        text = str(raised.value)
        assert "\n" not in text and "GITHUB_TOKEN" in text
        chained = repr(raised.value.__cause__) + repr(raised.value.__context__)
        assert no_secret(text, repr(raised.value), chained, caplog.text)


async def test_no_token_where_one_is_needed_says_how_to_give_one(
    gh: GitHubStandIn, clock: FakeClock
) -> None:
    with pytest.raises(SourceError, match="asks for a token"):
        await pulls_of(gh, clock, token=None).open(web(gh), BRANCH, "t", "b")


async def test_no_server_is_worth_another_try(clock: FakeClock) -> None:
    with GitHubStandIn(token=TOKEN, clock=clock) as gone:
        url = gone.url
    pulls = GitHubPullRequests([REPO], api_url=url, token=Secret(TOKEN, "a test"))
    with pytest.raises(SourceError, match="no answer") as raised:
        await pulls.remote(f"{url}/{REPO}.git")
    assert raised.value.retry_after_s is not None
    assert no_secret(str(raised.value))


# -- from config ----------------------------------------------------------------------


async def test_built_from_a_github_sources_config(gh: GitHubStandIn, clock: FakeClock) -> None:
    config = GitHubSourceConfig.model_validate(
        {"type": "github", "repos": [REPO, "octo/lib"], "api_url": gh.url}
    )
    pulls = github_pulls_of(config, Path("/nonexistent"), {"GITHUB_TOKEN": TOKEN}, clock.ms)
    assert pulls.handles(web(gh)) and pulls.handles(web(gh, "octo/lib"))
    assert not pulls.handles(URL)  # github.com is not the stand-in
    url = await pulls.open(web(gh), BRANCH, "Fix it", "body")
    assert url.endswith("/pull/1")
    assert no_secret(repr(pulls))


# -- the stand-in ---------------------------------------------------------------------


def test_the_standin_filters_by_head_only_with_its_owner(
    gh: GitHubStandIn, clock: FakeClock
) -> None:
    """As GitHub: ``head=BRANCH`` without ``OWNER:`` filters nothing (a known trap)."""
    gh.add_pull(REPO, "one")
    gh.add_pull(REPO, "two")
    auth = {"Authorization": f"token {TOKEN}"}

    def heads(**params: str) -> list[str]:
        got = requests.get(f"{gh.url}/repos/{REPO}/pulls", params=params, headers=auth, timeout=5)
        return [p["head"]["ref"] for p in got.json()]

    assert heads(head="one") == ["two", "one"]
    assert heads(head="octo:one") == ["one"]
    assert heads(head="OCTO:one", base="trunk") == ["one"]
    assert heads(head="octo:one", base="main") == []
