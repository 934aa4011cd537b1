"""The task board between real daemons on 127.0.0.1: a local task folder, the admin
polling it, agents choosing tasks with auto-claim, holders reporting, failover."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from bzzz.agent.control import ask
from bzzz.tasks.local import write_task
from tests.support.agents import Agent, found, join, proven_leader, stop_all, wait_for
from tests.support.cli import bzzz

pytestmark = pytest.mark.slow


def configure(node: Agent, **sections: dict[str, Any]) -> None:
    """Merge sections into the node's config.yaml (before it starts)."""
    path = node.home / "config.yaml"
    data = yaml.safe_load(path.read_text())
    for key, value in sections.items():
        data.setdefault(key, {}).update(value)
    path.write_text(yaml.safe_dump(data))


def board(agent: Agent) -> dict[str, dict[str, Any]]:
    answer = ask(agent.home, {"op": "tasks"}, timeout=10)
    assert answer is not None and answer["ok"], answer
    return {row["id"]: row for row in answer["tasks"]}


def cli_json(*args: str) -> Any:
    return json.loads(bzzz(*args).out)


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[tuple[list[Agent], Path]]:
    """Three nodes sharing one task folder; the two developers take tasks themselves."""
    folder = tmp_path / "shared-tasks"
    folder.mkdir()
    tasks = {"poll_s": 1.0, "sources": [{"type": "local", "path": str(folder), "name": "team"}]}
    a = found(tmp_path)
    configure(a, tasks=tasks)
    agents = [a.start()]
    try:
        for name in ("b", "c"):
            node = join(tmp_path, name, a)
            node.peers = [x.address for x in agents]
            configure(node, tasks=tasks, agent={"auto_claim": True, "max_tasks": 2})
            agents.append(node.start())
        yield agents, folder
    finally:
        stop_all(agents)


def test_tasks_from_a_folder_are_chosen_spread_and_reported_on_every_node(
    cluster: tuple[list[Agent], Path],
) -> None:
    agents, folder = cluster
    home = str(agents[0].home)
    bzzz("task", "add", "--home", home, "--title", "Go work", "--needs", "golang")
    staged = folder.parent / "staged"  # written at once: the admin sees all five together
    for n in range(5):
        write_task(staged, f"Task {n}", priority=n % 2)
    for path in staged.iterdir():
        path.rename(folder / path.name)
    wait_for(lambda: proven_leader(agents), timeout=30, what="a proven leader")
    synced = cli_json("task", "sync", "--home", str(agents[1].home), "--json")
    assert [s["source"] for s in synced["synced"]] == ["team"]

    def spread() -> dict[str, dict[str, Any]] | None:
        boards = [board(a) for a in agents]
        if any(b != boards[0] for b in boards[1:]) or len(boards[0]) != 6:
            return None
        held = [row for row in boards[0].values() if row["holder"]]
        return boards[0] if len(held) == 4 else None

    rows = wait_for(spread, timeout=40, what="four tasks held and the boards converged")
    holders = [row["holder"] for row in rows.values() if row["holder"]]
    developers = {agents[1].agent_id, agents[2].agent_id}
    assert set(holders) == developers and all(holders.count(d) == 2 for d in developers)
    assert rows["local:go-work"]["state"] == "open"  # nobody has golang
    # the most urgent first: the three priority-0 tasks are all taken
    assert all(r["holder"] for r in rows.values() if r["priority"] == 0)
    assert all(r["token"] for r in rows.values() if r["holder"])

    # a holder reports; the others see it; its freed slot takes the last open fitting task
    b = agents[1]
    mine = sorted(t for t, r in rows.items() if r["holder"] == b.agent_id)
    home_b = str(b.home)
    bzzz("task", "progress", mine[0], "--phase", "planning", "--home", home_b)
    bzzz("task", "progress", mine[0], "--phase", "working", "--home", home_b)
    bzzz(
        "task",
        "done",
        mine[0],
        "--result",
        "done and tested",
        "--link",
        "http://pr/1",
        "--home",
        home_b,
    )
    failed = bzzz("task", "progress", mine[1], "--phase", "review", "--home", home_b)
    assert failed.code == 2 and "cannot be review" in failed.err
    wait_for(
        lambda: all(board(a)[mine[0]]["state"] == "done" for a in agents),
        timeout=20,
        what="the completion on every board",
    )
    shown = cli_json("task", "show", mine[0], "--home", str(agents[2].home), "--json")
    assert shown["result"] == "done and tested" and shown["done_by"] == b.agent_id
    assert [h["what"] for h in shown["history"]][-3:] == ["planning", "working", "completed"]
    wait_for(
        lambda: sum(1 for r in board(b).values() if r["holder"] == b.agent_id) == 2,
        timeout=30,
        what="the freed slot to take another task",
    )

    # a file removed closes its task; its holder lets go of the claim
    held_by_c = sorted(t for t, r in board(agents[2]).items() if r["holder"] == agents[2].agent_id)
    (folder / f"{held_by_c[0].removeprefix('local:')}.md").unlink()
    bzzz("task", "sync", "--home", home)
    wait_for(
        lambda: board(agents[2])[held_by_c[0]]["state"] == "closed",
        timeout=20,
        what="the closed task",
    )
    claims = ask(agents[2].home, {"op": "claims"})
    assert claims is not None
    row = next(r for r in claims["claims"] if r["task"] == held_by_c[0])
    wait_for(
        lambda: (
            not next(
                r
                for r in ask(agents[2].home, {"op": "claims"})["claims"]  # type: ignore[index]
                if r["task"] == held_by_c[0]
            )["live"]
        ),
        timeout=20,
        what="the claim on the closed task to be released",
    )
    assert row["holder"] == agents[2].agent_id

    # the board reads the same from the store alone
    agents[2].stop()
    offline = cli_json("task", "list", "--home", str(agents[2].home), "--json")
    assert not offline["running"] and len(offline["tasks"]) == 6
    audited = cli_json("audit", "--home", str(agents[2].home), "--json")
    assert audited["ok"], audited["findings"]


def test_a_new_admin_resumes_without_listing_a_task_twice(
    cluster: tuple[list[Agent], Path],
) -> None:
    agents, _ = cluster
    for n in range(3):
        bzzz("task", "add", "--home", str(agents[0].home), "--title", f"Early {n}")
    first = wait_for(lambda: proven_leader(agents), timeout=30, what="a proven leader")
    wait_for(lambda: len(board(agents[1])) == 3, timeout=30, what="three tasks listed")
    old = next(a for a in agents if a.agent_id == first)
    old.kill()
    rest = [a for a in agents if a is not old]
    wait_for(
        lambda: (leader := proven_leader(rest)) not in (None, first) and leader,
        timeout=30,
        what="a new admin",
    )
    bzzz("task", "add", "--home", str(rest[0].home), "--title", "Late")
    bzzz("task", "sync", "--home", str(rest[0].home))
    wait_for(lambda: len(board(rest[1])) == 4, timeout=30, what="the late task")
    shown = bzzz("log", "show", "--kind", "task.opened", "--home", str(rest[0].home), "--json")
    opened = [e["data"]["spec"]["id"] for e in shown.lines()]
    assert sorted(opened) == sorted(board(rest[0])), opened  # once each, across two admins
