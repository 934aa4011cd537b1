"""Keys through real `bzzz agent` processes: the admin's daemon grants role keys, a
developer's daemon seals through the control socket and opens what its role may read,
the admin key is split among members and reconstructed with the holders' consents."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from bzzz.agent.control import ask
from tests.support.agents import Agent, found, join, proven_leader, stop_all, wait_for
from tests.support.cli import bzzz

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def pair(tmp_path_factory: pytest.TempPathFactory) -> Iterator[list[Agent]]:
    root = tmp_path_factory.mktemp("keyd")
    admin = found(root).start()
    dev = join(root, "dev", admin).start()
    agents = [admin, dev]
    try:
        yield agents
    finally:
        stop_all(agents)


def _status(agent: Agent) -> dict[str, object]:
    answer = ask(agent.home, {"op": "keys_status"}, timeout=10)
    assert answer is not None and answer["ok"], answer
    return dict(answer["keys"])


def _holds(agent: Agent, role: str) -> bool:
    rows = _status(agent)["role_keys"]
    assert isinstance(rows, list)
    return any(r["role"] == role and r["held"] for r in rows)


def test_the_admin_grants_and_a_developer_seals_through_its_agent(pair: list[Agent]) -> None:
    admin, dev = pair
    wait_for(lambda: _holds(dev, "developer"), timeout=30, what="the developer key")
    assert not _holds(dev, "architect")
    answer = ask(
        dev.home,
        {"op": "append", "kind": "task.note", "data": {"text": "sealed"}, "seal_for": "developer"},
    )
    assert answer is not None and answer["ok"] and answer["sealed_for"] == "developer", answer
    architect = ask(
        dev.home,
        {"op": "append", "kind": "task.note", "data": {"text": "x"}, "seal_for": "architect"},
    )
    assert architect is not None and architect["ok"], architect  # sealing needs no secret
    wait_for(lambda: dev.agent_id in admin.heads(), what="the developer's log at the admin")

    def shown(agent: Agent) -> list[dict[str, object]]:
        run = bzzz("log", "show", "--kind", "task.note", "--json", "--home", str(agent.home))
        assert run.code == 0, run
        return [row for row in run.lines() if "sealed_for" in row]

    wait_for(lambda: len(shown(admin)) == 2, what="both sealed notes at the admin")
    assert [r["opened"] for r in shown(admin)] == [True, True]
    assert [r["opened"] for r in shown(dev)] == [True, False]
    assert shown(dev)[1]["sealed"] == "sealed for architect"


def test_split_and_reconstruct_through_the_agents(pair: list[Agent]) -> None:
    # Either of two voters may lead: the split is asked of the one that does not, then
    # of the one that does.
    leader_id = wait_for(lambda: proven_leader(pair), timeout=30, what="a leader")
    admin = next(a for a in pair if a.agent_id == leader_id)
    dev = next(a for a in pair if a is not admin)
    refused = bzzz(
        "keys",
        "split",
        "--holders",
        f"{admin.agent_id},{dev.agent_id}",
        "--threshold",
        "2",
        "--home",
        str(dev.home),
    )
    assert refused.code == 2 and "not the admin" in refused.err, refused
    made = bzzz(
        "keys",
        "split",
        "--holders",
        f"{pair[0].agent_id},{pair[1].agent_id}",
        "--threshold",
        "2",
        "--json",
        "--home",
        str(admin.home),
    )
    assert made.code == 0, made
    wait_for(lambda: _status(dev)["split"] is not None, what="the split at the developer")
    asked = bzzz("keys", "reconstruct", "--reason", "drill", "--json", "--home", str(dev.home))
    assert asked.code == 0, asked
    request = json.loads(asked.out)["request"]
    wait_for(
        lambda: any(c["entry"] == request for c in _status(admin)["ceremonies"]),  # type: ignore[attr-defined]
        what="the request at the admin",
    )
    for agent in (admin, dev):
        released = bzzz("keys", "release", request[:16], "--home", str(agent.home))
        assert released.code == 0, released
    wait_for(lambda: _status(dev)["master_in_memory"], timeout=30, what="the reconstruction")
    assert _holds(dev, "architect")  # the master opens every role key
    wait_for(
        lambda: any(
            c["status"] == "reconstructed"
            for c in json.loads(bzzz("audit", "--json", "--home", str(admin.home)).out)[
                "ceremonies"
            ]
            if c["ceremony"] == "reconstruct"
        ),
        what="the audit entry at the admin",
    )
    text = "".join(p.read_text(errors="replace") for p in Path(dev.home).parent.glob("*.log"))
    assert "AGE-SECRET-KEY-1" not in text
