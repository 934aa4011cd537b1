"""The admin election between real daemons on 127.0.0.1."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.agents import Agent, found, join, stop_all, wait_for
from tests.test_mesh import bzzz

pytestmark = pytest.mark.slow


@pytest.fixture
def trio(tmp_path: Path) -> Iterator[list[Agent]]:
    a = found(tmp_path).start()
    agents = [a]
    try:
        for name in ("b", "c"):
            node = join(tmp_path, name, a)
            node.peers = [x.address for x in agents[1:]]
            agents.append(node.start())
        yield agents
    finally:
        stop_all(agents)


def proven_leader(agents: list[Agent]) -> str | None:
    """The leader every running agent agrees on and can prove from its logs."""
    views = [a.election() for a in agents if a.running()]
    leaders = {v["leader"] for v in views}
    if len(leaders) == 1 and None not in leaders and all(v["leader_proven"] for v in views):
        return leaders.pop()
    return None


def test_leader_kill_gives_a_new_proven_leader(trio: list[Agent]) -> None:
    first = wait_for(lambda: proven_leader(trio), timeout=30, what="a proven leader")
    term = trio[0].election()["term"]
    old = next(a for a in trio if a.agent_id == first)
    old.kill()
    rest = [a for a in trio if a is not old]
    second = wait_for(
        lambda: (leader := proven_leader(rest)) != first and leader,
        timeout=30,
        what="a new proven leader",
    )
    assert rest[0].election()["term"] > term
    history = rest[0].election()["history"]
    assert history[-1]["leader"] == second and history[-1]["trigger"] == "heartbeat-timeout"
    assert all(h["votes"] >= 2 for h in history)
    old.start()  # the old leader comes back as a follower of the new one
    wait_for(lambda: proven_leader(trio) == second, timeout=30, what="the old leader to follow")
    assert old.election()["role"] == "follower"
    for agent in trio:
        assert not agent.election()["split_brain"]
    offline = json.loads(bzzz("election", "status", "--home", str(old.home), "--json").stdout)
    assert offline["running"] and offline["leader"] == second
    assert {"term", "leader", "voters", "history"} <= set(offline)
