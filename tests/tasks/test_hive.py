"""The Hive source and mirror over real HTTP, against a stand-in Hive server."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from pathlib import Path

import pytest

from bzzz.domain import board as bd
from bzzz.domain import task_entries as te
from bzzz.domain.intake import ScopeChanges, Tenure, plan_sync
from bzzz.domain.payload import encode_payload
from bzzz.domain.tasks import MAX_BODY, MAX_TITLE, TaskState, task_id_problem
from bzzz.errors import SourceError, UsageError
from bzzz.home.config import HiveSourceConfig
from bzzz.services.ports import TaskMirror, TaskSource
from bzzz.tasks.hive import DEFAULT_RETRY_S, HiveSource, hive_source_of
from tests.support.hive_standin import HiveStandin

TOKEN = "s3cret-token-value"
AGENT = "ab" * 32
OTHER = "cd" * 32


@pytest.fixture
def hive() -> Iterator[HiveStandin]:
    with HiveStandin(token=TOKEN) as standin:
        yield standin


def source_for(
    hive: HiveStandin, timeout_s: float = 5.0, max_response_bytes: int = 1 << 20
) -> HiveSource:
    return HiveSource(
        hive.url, token=TOKEN, timeout_s=timeout_s, max_response_bytes=max_response_bytes
    )


def tenure(task: str, agent: str = AGENT) -> Tenure:
    return Tenure(task=task, agent_id=agent, agent_name="ada", claim="ee" * 32, token=(3, 1))


def by_scope(changes: tuple[ScopeChanges, ...]) -> dict[str, ScopeChanges]:
    return {change.scope: change for change in changes}


async def test_projects_and_tasks_become_specs(hive: HiveStandin) -> None:
    hive.add_project(1, repository="app", git_url="https://git.example/app.git")
    hive.add_project("tools", repository="tools")
    hive.add_task(
        1,
        15,
        "Fix the login timeout",
        description="It times out.\nAfter 5 s.",
        labels=["bzzz-task", "priority-1", "needs-python", {"name": "backend"}],
        task_type="bug",
        dependencies=[{"repository": "tools", "task_number": 3, "dependency_type": "api"}],
    )
    hive.add_task(1, 16, "Write the docs", task_type="Docs/Guides", priority=7)
    hive.add_task("tools", 3, "Add a linter", labels=["high-priority"], html_url="javascript:x")
    source: TaskSource = source_for(hive)

    poll = await source.poll(None)

    assert poll.problems == ()
    assert poll.requests == 3
    assert poll.cursor == {"projects": ["1", "tools"]}
    scopes = by_scope(poll.changes)
    assert set(scopes) == {"hive:1", "hive:tools"}
    specs = {spec.id: spec for change in poll.changes for spec in change.specs}
    assert all(task_id_problem(task) is None for task in specs)
    fix = specs["hive:1/15"]
    assert fix.title == "Fix the login timeout"
    assert fix.body == "It times out.\nAfter 5 s."
    assert fix.labels == ("bzzz-task", "priority-1", "needs-python", "backend")
    assert (fix.priority, fix.type, fix.needs) == (1, "bug", ("python",))
    assert fix.repo == "https://git.example/app.git"
    assert fix.url == "https://git.example/1/issues/15"
    assert fix.depends_on == ("hive:tools/3",)
    docs = specs["hive:1/16"]
    assert (docs.priority, docs.type) == (7, "docs-guides")
    lint = specs["hive:tools/3"]
    assert (lint.priority, lint.url) == (1, None)
    assert all(change.complete for change in poll.changes)
    # The token is sent as the original client sent it.
    assert {r.headers.get("Authorization") for r in hive.requests} == {f"Bearer {TOKEN}"}
    assert [r.path for r in hive.requests] == [
        "/api/bzzz/active-repos",
        "/api/bzzz/projects/1/tasks",
        "/api/bzzz/projects/tools/tasks",
    ]


async def test_a_removed_task_or_project_leaves_the_complete_scope(hive: HiveStandin) -> None:
    hive.add_project(1)
    hive.add_project(2)
    hive.add_task(1, 1, "One")
    hive.add_task(1, 2, "Two")
    hive.add_task(2, 9, "Nine")
    hive.add_task(2, 10, "Ten", state="closed")
    source = source_for(hive)
    first = await source.poll(None)
    assert [s.id for s in by_scope(first.changes)["hive:2"].specs] == ["hive:2/9"]

    hive.remove_task(1, 2)
    hive.remove_project(2)
    second = await source.poll(first.cursor)

    scopes = by_scope(second.changes)
    one = scopes["hive:1"]
    assert [s.id for s in one.specs] == ["hive:1/1"]
    assert one.complete
    gone = scopes["hive:2"]  # listed before, not now: reported empty, so its tasks close
    assert (gone.specs, gone.complete) == ((), True)
    assert second.cursor == {"projects": ["1"]}
    assert source.mirrors("hive:1/1") and not source.mirrors("hive:2/9")


async def test_polls_open_update_and_close_tasks_on_the_board(hive: HiveStandin) -> None:
    admin = b"\x01" * 32
    board = bd.Board()
    lamport = 0

    def write(entries: list[tuple[str, dict[str, object]]]) -> None:
        nonlocal lamport
        folded = []
        for kind, body in entries:
            lamport += 1
            digest = lamport.to_bytes(32, "big")
            folded.append(
                bd.BoardEntry(admin, kind, encode_payload(body), digest, lamport, lamport)
            )
        bd.apply_board(board, folded, {1: admin})

    hive.add_project(1)
    hive.add_project(2)
    hive.add_task(1, 1, "One", labels=["priority-2"])
    hive.add_task(1, 2, "Two")
    hive.add_task(2, 3, "Three")
    source = source_for(hive)
    first = await source.poll(None)
    plan = plan_sync(board, source.name, first, 1)
    assert [k for k, _ in plan.entries] == [te.OPENED] * 3
    assert plan.synced is not None
    write([*plan.entries, (te.SYNCED, plan.synced)])

    again = plan_sync(board, source.name, await source.poll(first.cursor), 1)
    assert again.entries == [] and again.synced is None  # nothing changed: no entry

    hive.remove_task(1, 2)
    hive.remove_project(2)
    hive.add_task(1, 1, "One, renamed", labels=["priority-2"])
    plan = plan_sync(board, source.name, await source.poll(first.cursor), 1)
    named = sorted((k, b.get("task") or b["spec"]["id"]) for k, b in plan.entries)
    assert named == [
        (te.CLOSED, "hive:1/2"),
        (te.CLOSED, "hive:2/3"),
        (te.UPDATED, "hive:1/1"),
    ]
    write(plan.entries)
    assert board.tasks["hive:1/1"].spec.title == "One, renamed"
    assert board.tasks["hive:2/3"].state is TaskState.CLOSED


async def test_a_disabled_project_is_not_polled(hive: HiveStandin) -> None:
    hive.add_project(1)
    hive.add_project(2, bzzz_enabled=False)
    poll = await source_for(hive).poll({"projects": ["1", "2", "../x", 5]})
    assert [r.path for r in hive.requests][1:] == ["/api/bzzz/projects/1/tasks"]
    assert set(by_scope(poll.changes)) == {"hive:1", "hive:2"}
    assert by_scope(poll.changes)["hive:2"].specs == ()


@pytest.mark.parametrize(
    "body",
    [b"<html>oops</html>", b"\xff\xfe\x00garbage", b"[" * 100_000, b'{"repositories": 3}', b"[]"],
)
async def test_garbage_project_list_is_one_line_source_error(
    hive: HiveStandin, body: bytes
) -> None:
    hive.respond_next(1, 200, body)
    with pytest.raises(SourceError) as caught:
        await source_for(hive).poll(None)
    message = str(caught.value)
    assert "/api/bzzz/active-repos" in message and "\n" not in message
    assert TOKEN not in message
    assert caught.value.retry_after_s is None


async def test_garbage_tasks_of_one_project_is_a_problem_line(hive: HiveStandin) -> None:
    hive.add_project(1)
    hive.add_project(2)
    hive.add_project(3)
    hive.add_project(4)
    hive.add_task(2, 5, "Kept")
    hive.respond_next(1, 404, b"<html>gone</html>", path="/api/bzzz/projects/4/tasks")
    hive.respond_next(1, 200, b"not json at all", path="/api/bzzz/projects/1/tasks")
    hive.respond_next(1, 200, b'{"tasks": []}', path="/api/bzzz/projects/3/tasks")
    poll = await source_for(hive).poll(None)
    assert set(by_scope(poll.changes)) == {"hive:2"}  # 1 and 3 are left as they are
    assert len(poll.problems) == 3
    assert "/api/bzzz/projects/1/tasks: not JSON" in poll.problems[0]
    assert "/api/bzzz/projects/3/tasks: expected a list of tasks, got an object" in poll.problems[1]
    assert (
        poll.problems[2] == "/api/bzzz/projects/4/tasks: HTTP 404; its tasks are left as they are"
    )
    assert poll.cursor == {"projects": ["1", "2", "3", "4"]}  # none of them is closed
    assert all("\n" not in line for line in poll.problems)


async def test_bad_tasks_are_problem_lines_and_the_others_are_kept(hive: HiveStandin) -> None:
    hive.add_project(1)
    hive.add_project("bad id!")
    hive.add_project("..")
    hive.add_task(1, 1, "Good")
    hive.add_task(1, "a/b", "Slash in the number")
    hive.add_task(1, True, "A boolean number")
    hive.add_task(1, 7, 12345)  # a title that is not text: id known, so kept
    hive.add_task(1, 8, "Labels", labels="bzzz-task")
    hive.add_task(1, 9.5, "A fraction")
    hive.add_task(1, "x" * 150, "Too long")
    hive.tasks[1]["junk"] = "not an object"  # type: ignore[assignment]  # the server's word
    poll = await source_for(hive).poll(None)

    one = by_scope(poll.changes)["hive:1"]
    assert [s.id for s in one.specs] == ["hive:1/1"]
    assert set(one.keep) == {"hive:1/7", "hive:1/8"}
    # Entries whose id could not be read: nothing of this scope is closed this time.
    assert not one.complete
    assert "hive:bad id!" not in by_scope(poll.changes)
    text = "\n".join(poll.problems)
    assert "project_id 'bad id!' does not fit" in text
    assert "project_id '..' does not fit" in text
    assert "number 'a/b' does not fit" in text
    assert "number is true or false" in text
    assert "hive:1/7: title: expected text, got a number" in text
    assert "hive:1/8: labels: expected a list of text, got text" in text
    assert "expected an object, got text" in text
    assert "number 9.5 is not a whole number" in text
    assert len(poll.problems) == 9
    assert [r.path for r in hive.requests][1:] == ["/api/bzzz/projects/1/tasks"]


async def test_hostile_fields_are_cut_down(hive: HiveStandin) -> None:
    hive.add_project(1, git_url="file:///etc/passwd")
    hive.add_task(
        1,
        1,
        "A\x00title\r\nwith\tcontrols" + "x" * 1000,
        description="b\x00" * MAX_BODY,
        labels=["l" * 500, 3, None, "ok"] + [f"n{i}" for i in range(100)],
        task_type="?!",
        priority=True,
        dependencies=[{"repository": "nowhere", "task_number": 1}, "junk"],
    )
    poll = await source_for(hive).poll(None)
    spec = poll.changes[0].specs[0]
    assert spec.title.startswith("A title with controls") and len(spec.title) == MAX_TITLE
    assert "\x00" not in spec.body and len(spec.body) <= MAX_BODY
    assert len(spec.labels) == 50 and spec.labels[0] == "l" * 100 and spec.labels[1] == "ok"
    assert (spec.type, spec.priority, spec.repo, spec.depends_on) == (None, 3, None, ())
    assert any("git_url is not a git URL" in line for line in poll.problems)
    assert any("depends on 'nowhere'#1" in line for line in poll.problems)


async def test_a_5xx_is_a_source_error_with_a_retry(hive: HiveStandin) -> None:
    hive.add_project(1)
    source = source_for(hive)
    hive.fail_next(1, 500)
    with pytest.raises(SourceError) as caught:
        await source.poll(None)
    assert caught.value.retry_after_s == DEFAULT_RETRY_S
    assert "GET http://127.0.0.1:" in str(caught.value)
    assert "/api/bzzz/active-repos: HTTP 500" in str(caught.value)

    hive.fail_next(1, 503, retry_after="7")
    with pytest.raises(SourceError) as caught:
        await source.poll(None)
    assert caught.value.retry_after_s == 7.0

    hive.respond_next(1, 502, b"", path="/api/bzzz/projects/1/tasks")  # mid-poll
    with pytest.raises(SourceError) as caught:
        await source.poll(None)
    assert "/api/bzzz/projects/1/tasks: HTTP 502" in str(caught.value)

    hive.fail_next(1, 429, retry_after="Wed, 21 Oct 2015 07:28:00 GMT")
    with pytest.raises(SourceError) as caught:
        await source.poll(None)
    assert caught.value.retry_after_s == DEFAULT_RETRY_S

    poll = await source.poll(None)  # and then it answers again
    assert by_scope(poll.changes).keys() == {"hive:1"}


async def test_an_unreachable_server_is_a_source_error() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    with pytest.raises(UsageError) as refused:
        HiveSource(f"http://user:pw-secret@127.0.0.1:{port}/hive")
    assert "pw-secret" not in str(refused.value)
    source = HiveSource(f"http://127.0.0.1:{port}/hive/", token=TOKEN)
    with pytest.raises(SourceError) as caught:
        await source.poll(None)
    assert str(caught.value) == (
        f"hive:127.0.0.1: GET http://127.0.0.1:{port}/hive/api/bzzz/active-repos: "
        "connection refused"
    )
    with pytest.raises(SourceError, match="connection refused"):
        await source.claimed(tenure("hive:1/2"))


async def test_a_slow_server_times_out(hive: HiveStandin) -> None:
    hive.respond_next(1, 200, b'{"repositories": []}', delay_s=1.0)
    with pytest.raises(SourceError, match="timed out"):
        await source_for(hive, timeout_s=0.2).poll(None)


async def test_a_huge_response_is_refused(hive: HiveStandin) -> None:
    hive.respond_next(1, 200, b'{"repositories": [' + b" " * 5000 + b"]}")
    with pytest.raises(SourceError, match="larger than 4096 bytes"):
        await source_for(hive, max_response_bytes=4096).poll(None)


async def test_the_token_is_never_in_an_error(hive: HiveStandin) -> None:
    wrong = HiveSource(hive.url, token="wrong-" + TOKEN)
    with pytest.raises(SourceError) as caught:
        await wrong.poll(None)
    assert "HTTP 401: the server refused the token" in str(caught.value)
    assert TOKEN not in str(caught.value) and TOKEN not in repr(wrong)
    without = HiveSource(hive.url)
    with pytest.raises(SourceError, match="needs a token"):
        await without.poll(None)
    assert "Authorization" not in hive.requests[-1].headers


async def test_a_redirect_is_not_followed(hive: HiveStandin) -> None:
    with HiveStandin() as elsewhere:
        hive.respond_next(1, 302, b"", {"Location": elsewhere.url + "/api/bzzz/active-repos"})
        with pytest.raises(SourceError, match="HTTP 302: redirects are not followed"):
            await source_for(hive).poll(None)
        assert elsewhere.requests == []


async def test_the_mirror_reports_claims_and_their_ends(hive: HiveStandin) -> None:
    hive.add_project(1)
    hive.add_task(1, 15, "Fix it")
    source = source_for(hive)
    mirror: TaskMirror = source
    assert not mirror.mirrors("hive:1/15")  # not listed yet
    await source.poll(None)
    assert mirror.mirrors("hive:1/15")
    assert not mirror.mirrors("hive:2/15") and not mirror.mirrors("github:o/r#1")

    await mirror.claimed(tenure("hive:1/15"))
    assert hive.claim_of(1, 15) == AGENT
    posted = hive.claim_posts[0]
    assert (posted["task_number"], posted["agent_id"]) == (15, AGENT)
    assert posted["bzzz_claim"] == "ee" * 32 and isinstance(posted["claimed_at"], int)

    await mirror.claimed(tenure("hive:1/15"))  # again (a new admin repeats it): harmless
    assert len(hive.claim_posts) == 2 and hive.claim_of(1, 15) == AGENT

    with pytest.raises(SourceError, match="claimed by 'abab"):
        await mirror.claimed(tenure("hive:1/15", agent=OTHER))

    await mirror.completed(tenure("hive:1/15"), "Fixed the timeout", "https://git.example/pr/4")
    await mirror.completed(tenure("hive:1/15"), "Fixed the timeout", "https://git.example/pr/4")
    report = hive.status_reports[-1]
    assert (report["task_number"], report["status"]) == (15, "completed")
    assert report["metadata"]["result"] == "Fixed the timeout"
    assert report["metadata"]["pull_request_url"] == "https://git.example/pr/4"
    assert hive.claim_of(1, 15) is None

    await mirror.claimed(tenure("hive:1/15", agent=OTHER))
    await mirror.released(tenure("hive:1/15", agent=OTHER))
    assert hive.status_reports[-1]["status"] == "released" and hive.claim_of(1, 15) is None
    assert all(r.headers.get("Authorization") == f"Bearer {TOKEN}" for r in hive.requests)


async def test_a_failed_mirror_call_is_a_source_error(hive: HiveStandin) -> None:
    hive.add_project(1)
    source = source_for(hive)
    await source.poll(None)
    hive.fail_next(1, 500)
    with pytest.raises(SourceError) as caught:
        await source.claimed(tenure("hive:1/4"))
    assert "POST" in str(caught.value) and "/api/bzzz/projects/1/claim: HTTP 500" in str(
        caught.value
    )
    assert caught.value.retry_after_s == DEFAULT_RETRY_S
    hive.respond_next(1, 400, b'{"error": "no"}')
    with pytest.raises(SourceError, match="status: HTTP 400"):
        await source.released(tenure("hive:1/4"))
    with pytest.raises(SourceError, match="not a Hive task"):
        await source.released(tenure("local:x"))


def test_hive_source_of_reads_the_token_from_the_environment(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("HIVE_TOKEN", TOKEN)
    config = HiveSourceConfig(type="hive", url="https://hive.example.org/", token_env="HIVE_TOKEN")
    source = hive_source_of(config, tmp_path)
    assert source.name == "hive:hive.example.org"
    assert source.base == "https://hive.example.org"
    assert source._token == TOKEN
    named = HiveSourceConfig(type="hive", url="http://10.0.0.5:8000", name="hive:lab")
    assert hive_source_of(named, tmp_path).name == "hive:lab"
    assert hive_source_of(named, tmp_path)._token is None
    monkeypatch.setenv("HIVE_TOKEN", "")
    assert hive_source_of(config, tmp_path)._token is None
