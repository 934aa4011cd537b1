"""GitHub issues as tasks between real daemons: three nodes poll the GitHub stand-in
(through the elected admin only), mirror claims once, survive the admin's death and a
spent rate limit."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.services.test_task_daemons import board, configure
from tests.support.agents import Agent, found, join, proven_leader, stop_all, wait_for
from tests.support.cli import bzzz
from tests.support.github_standin import GitHubStandIn

pytestmark = pytest.mark.slow
TOKEN = "ghp_standin_secret_0123456789"
REPO = "octo/app"


@pytest.fixture
def github() -> Iterator[GitHubStandIn]:
    with GitHubStandIn(token=TOKEN) as gh:
        gh.add_repo(REPO)
        for n in range(3):
            gh.add_issue(REPO, f"Issue {n}", f"Body {n}", labels=["bzzz-task", "priority-1"])
        gh.add_issue(REPO, "Not for agents", "", labels=["question"])
        yield gh


@pytest.fixture
def trio(
    tmp_path: Path, github: GitHubStandIn, monkeypatch: pytest.MonkeyPatch
) -> Iterator[list[Agent]]:
    monkeypatch.setenv("GH_STANDIN_TOKEN", TOKEN)  # the agents inherit it
    source = {
        "type": "github",
        "repos": [REPO],
        "api_url": github.url,
        "token_env": "GH_STANDIN_TOKEN",
        "name": "github",
    }
    tasks = {"poll_s": 1.0, "sources": [source]}
    a = found(tmp_path)
    configure(a, tasks=tasks)
    agents = [a.start()]
    try:
        for name in ("b", "c"):
            node = join(tmp_path, name, a)
            node.peers = [x.address for x in agents]
            configure(node, tasks=tasks, agent={"auto_claim": True, "max_tasks": 1})
            agents.append(node.start())
        yield agents
    finally:
        stop_all(agents)


def claimed_comments(gh: GitHubStandIn, number: int) -> list[str]:
    return [c for c in gh.comments(REPO, number) if c.startswith("<!-- bzzz:claimed:")]


def test_issues_become_tasks_claims_are_mirrored_once_across_an_admin_change(
    trio: list[Agent], github: GitHubStandIn
) -> None:
    first = wait_for(lambda: proven_leader(trio), timeout=30, what="a proven leader")

    def two_held() -> dict[str, dict[str, Any]] | None:
        boards = [board(a) for a in trio]
        if any(b != boards[0] for b in boards[1:]) or len(boards[0]) != 3:
            return None
        return boards[0] if sum(1 for r in boards[0].values() if r["holder"]) == 2 else None

    rows = wait_for(two_held, timeout=40, what="three issues listed and two held")
    assert set(rows) == {f"github:{REPO}#{n}" for n in (1, 2, 3)}
    assert all(r["url"].endswith(f"/issues/{r['id'].rsplit('#')[1]}") for r in rows.values())
    held = {int(t.rsplit("#")[1]) for t, r in rows.items() if r["holder"]}

    def mirrored() -> bool:
        return all(
            len(claimed_comments(github, n)) == 1 and "bzzz-in-progress" in github.labels(REPO, n)
            for n in held
        )

    wait_for(mirrored, timeout=30, what="each claim mirrored on its issue")

    # The admin dies; the survivors elect another, which resumes from the log's cursor.
    old = next(a for a in trio if a.agent_id == first)
    old.kill()
    rest = [a for a in trio if a is not old]
    github.add_issue(REPO, "Late issue", "", labels=["bzzz-task"])
    wait_for(
        lambda: (leader := proven_leader(rest)) not in (None, first) and leader,
        timeout=30,
        what="a new admin",
    )
    wait_for(lambda: len(board(rest[0])) == 4, timeout=30, what="the late issue listed")
    time.sleep(2)  # a few polls and mirror passes of the new admin
    for n in held:
        assert len(claimed_comments(github, n)) == 1, github.comments(REPO, n)
    shown = bzzz("log", "show", "--kind", "task.opened", "--home", str(rest[0].home), "--json")
    opened = [e["data"]["spec"]["id"] for e in shown.lines()]
    assert sorted(opened) == sorted(board(rest[0])), opened  # each issue listed once

    # An unchanged repository costs no rate limit: every poll is a 304. The cluster's own
    # mirror writes (the dead admin's lapsed claim shown released) change the issues, and
    # the next poll rightly reads them; so measure once a whole window wrote nothing.
    for _ in range(8):
        github.reset_counters()
        time.sleep(2.5)
        if not [p for p in github.by_path if not p.startswith("GET ")]:
            break
    github.reset_counters()
    time.sleep(2.5)
    assert github.requests >= 1 and github.rate_used == 0, (github.requests, github.by_path)

    # The holder finishes: one completion comment, the label comes off.
    holder = next(a for a in rest if any(r["holder"] == a.agent_id for r in board(a).values()))
    task = next(t for t, r in board(holder).items() if r["holder"] == holder.agent_id)
    number = int(task.rsplit("#")[1])
    bzzz(
        "task",
        "done",
        task,
        "--result",
        "fixed it",
        "--link",
        "https://pr/9",
        "--home",
        str(holder.home),
    )
    wait_for(
        lambda: (
            any(c.startswith("<!-- bzzz:completed:") for c in github.comments(REPO, number))
            and "bzzz-in-progress" not in github.labels(REPO, number)
        ),
        timeout=30,
        what="the completion mirrored",
    )
    # The token was never written to a log or an entry.
    for agent in trio:
        assert TOKEN not in agent.log_text()
    dump = bzzz("log", "show", "--home", str(rest[0].home), "--json").out
    assert TOKEN not in dump and json.loads(dump.splitlines()[0])


def test_a_spent_rate_limit_pauses_the_sync_until_the_reset(
    trio: list[Agent], github: GitHubStandIn
) -> None:
    wait_for(lambda: proven_leader(trio), timeout=30, what="a proven leader")
    wait_for(lambda: len(board(trio[1])) == 3, timeout=30, what="the issues listed")
    reset = int(time.time()) + 6
    github.set_rate_limit(remaining=0, reset=reset)
    github.add_issue(REPO, "While limited", "", labels=["bzzz-task"])
    time.sleep(3)
    assert len(board(trio[1])) == 3  # nothing can be read before the reset
    during = github.requests
    time.sleep(2)
    assert github.requests - during <= 1  # paused, not hammering the API
    wait_for(lambda: len(board(trio[1])) == 4, timeout=30, what="the sync after the reset")
    synced = json.loads(bzzz("task", "list", "--home", str(trio[1].home), "--json").out)
    assert [s["source"] for s in synced["sources"]] == ["github"]
