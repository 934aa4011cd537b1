"""SLURP through a real `bzzz agent`: the elected admin links a decision to its task and
thread and supersedes the older version when a newer one is recorded, each act an entry
that `bzzz ucxl history --json` shows; a sealed decision is context for a reader with
the key, hidden without it, and never curated (its address would leak)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from bzzz.agent.control import ask
from bzzz.cli.keys_cmds import node_keyring
from bzzz.domain import context as cx
from bzzz.domain import slurp as sl
from bzzz.home.node import cluster_id_of, open_node
from bzzz.projections.context import read_context
from bzzz.tasks.local import write_task
from tests.services.test_task_daemons import board, configure
from tests.support.agents import Agent, found, proven_leader, stop_all, wait_for
from tests.support.cli import bzzz

pytestmark = pytest.mark.slow


@pytest.fixture
def admin(tmp_path: Path) -> Iterator[tuple[Agent, str]]:
    folder = tmp_path / "tasks"
    _, spec = write_task(folder, "Login")
    tasks = {"poll_s": 1.0, "sources": [{"type": "local", "path": str(folder), "name": "team"}]}
    node = found(tmp_path, cluster="test")
    configure(node, tasks=tasks)
    node.start()
    try:
        wait_for(lambda: proven_leader([node]), timeout=30, what="a proven leader")
        wait_for(lambda: spec.id in board(node), timeout=30, what="the task listed")
        yield node, spec.id
    finally:
        stop_all([node])


def _decide(agent: Agent, task: str, text: str, seal_for: str | None = None) -> None:
    request: dict[str, Any] = {
        "op": "append",
        "kind": cx.DECISION,
        "data": cx.put_body(task, ("decisions", "auth.md"), text),
    }
    if seal_for is not None:
        request["seal_for"] = seal_for
    answer = ask(agent.home, request, timeout=10)
    assert answer is not None and answer["ok"], answer


def _history(agent: Agent, address: str) -> list[dict[str, Any]]:
    run = bzzz("ucxl", "history", address, "--json", "--home", str(agent.home))
    assert run.code == 0, run
    return list(json.loads(run.out)["versions"])


def _acts(agent: Agent) -> list[str]:
    run = bzzz("log", "show", "--json", "--home", str(agent.home))
    assert run.code == 0, run
    return [row["kind"] for row in run.lines() if row["kind"] in sl.KINDS]


def test_the_admin_links_and_supersedes_decisions(admin: tuple[Agent, str]) -> None:
    node, task = admin
    said = bzzz(
        "hmmm",
        "say",
        task,
        "--type",
        "clarification_needed",
        "--text",
        "tokens or cookies?",
        "--home",
        str(node.home),
    )
    assert said.code == 0, said
    # The admin links to the thread once its HMMM fold shows it: wait, so that the first
    # link names both (else a narrower link comes first, and a second one later).
    wait_for(lambda: _thread_listed(node, task), timeout=30, what="the thread")
    address = f"ucxl://{node.agent_id}:admin@test:{task}/~latest/decisions/auth.md"
    _decide(node, task, "use tokens")
    link = {"task": task, "thread": task}
    wait_for(lambda: _history(node, address)[0]["links"] == [link], what="the first link")
    _decide(node, task, "use short-lived tokens")

    def curated() -> bool:
        versions = _history(node, address)
        return (
            len(versions) == 2
            and versions[0]["superseded_by"] == versions[1]["hash"]
            and versions[1]["superseded_by"] is None
            and all(v["links"] == [link] for v in versions)
        )

    wait_for(curated, timeout=30, what="the second version linked and the first superseded")
    assert sorted(_acts(node)) == [sl.LINKED, sl.LINKED, sl.SUPERSEDED]
    assert all(v["sealed_for"] is None and v["readable"] for v in _history(node, address))

    # A sealed decision: context for a reader with the key, hidden without it, and not
    # curated; a plain version after it supersedes the last plain one.
    wait_for(lambda: _keys_held(node, "admin"), timeout=30, what="the admin role key")
    _decide(node, task, "the secret plan", seal_for="admin")
    _decide(node, task, "use tokens, finally")

    def after_sealed() -> list[dict[str, Any]] | None:
        # The CLI opens the sealed version with the node's keys (it holds admin's).
        versions = _history(node, address)
        done = len(versions) == 4 and versions[1]["superseded_by"] == versions[3]["hash"]
        plain = [v for v in versions if v["sealed_for"] is None]
        return versions if done and all(v["links"] for v in plain) else None

    versions = wait_for(after_sealed, timeout=30, what="the plain versions curated")
    sealed = versions[2]
    assert (sealed["sealed_for"], sealed["text"], sealed["links"]) == (
        "admin",
        "the secret plan",
        [],
    )
    with open_node(node.home) as opened:
        project = cx.project_name(opened.config.mesh.cluster)
        founding = cluster_id_of(opened.config)
        plain = read_context(opened.store, opened.roles, founding, project)
        keyring, _ = node_keyring(opened)
        readable = read_context(opened.store, opened.roles, founding, project, keyring)
    assert [h.version.sealed_for for h in plain.hidden] == ["admin"]
    item = readable.items()[[str(i.address) for i in readable.items()].index(address)]
    shown = [(v.number, v.text, v.sealed_for, v.superseded_by is not None) for v in item.versions]
    assert shown == [
        (1, "use tokens", None, True),
        (2, "use short-lived tokens", None, True),
        (3, "the secret plan", "admin", False),
        (4, "use tokens, finally", None, False),
    ]
    assert item.versions[2].links == ()  # the sealed version's task is not published
    assert sorted(_acts(node)).count(sl.SUPERSEDED) == 2


def _keys_held(agent: Agent, role: str) -> bool:
    answer = ask(agent.home, {"op": "keys_status"}, timeout=10)
    assert answer is not None and answer["ok"], answer
    return any(r["role"] == role and r["held"] for r in answer["keys"]["role_keys"])


def _thread_listed(agent: Agent, task: str) -> bool:
    answer = ask(agent.home, {"op": "thread", "thread": task}, timeout=10)
    return answer is not None and bool(answer.get("ok"))
