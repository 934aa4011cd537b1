"""A partition between real daemons: three hosts on a LAN (network namespaces on a
bridge); the leader's switch port goes down, then up again."""

from __future__ import annotations

from pathlib import Path

import pytest

from bzzz.runtime.control import ask
from bzzz.runtime.node import init_node
from tests.agents import Agent, join_in, stop_all, wait_for
from tests.netns import lan
from tests.test_coordination_daemons import claim, claims_of, proven_leader

pytestmark = pytest.mark.slow


def test_a_cut_off_leader_loses_its_lease_and_healing_converges(tmp_path: Path) -> None:
    with lan(3) as net:
        first, *others = net.hosts
        init_node(
            tmp_path / "n1", name="n1", role="admin", cluster="lan", listen=f"{first.address}:7420"
        ).close()
        agents = [Agent(tmp_path / "n1", 7420, host=first.address, wrap=first.wrap)]
        try:
            agents[0].start()
            for n, host in enumerate(others, start=2):
                node = join_in(host.wrap, host.address, tmp_path, f"n{n}", agents[0])
                node.peers = [a.address for a in agents[1:]]
                agents.append(node.start())
            leader_id = wait_for(lambda: proven_leader(agents), timeout=30, what="a leader")
            leader = next(a for a in agents if a.agent_id == leader_id)
            majority = [a for a in agents if a is not leader]
            assert claim(majority[0], "#1")["status"] == "granted"
            old_term = leader.election()["term"]

            net.cut(next(h for h in net.hosts if h.address == leader.host))
            new_id = wait_for(
                lambda: (
                    proven_leader(majority) not in (None, leader_id) and proven_leader(majority)
                ),
                timeout=30,
                what="the majority to elect a new leader",
            )
            wait_for(
                lambda: leader.election()["role"] != "leader", what="the old leader to step down"
            )
            asked = ask(leader.home, {"op": "claim", "task": "#2", "wait": 3}, timeout=10)
            assert asked is not None and asked["status"] == "pending"  # nobody may grant there
            wait_for(
                lambda: (claims_of(majority[0]).get("#1") or {}).get("token", [0])[0] > old_term,
                what="the live claim re-issued by the new leader",
            )

            net.heal(next(h for h in net.hosts if h.address == leader.host))
            wait_for(lambda: proven_leader(agents) == new_id, timeout=60, what="one leader again")
            for agent in agents:
                view = agent.election()
                assert not view["split_brain"] and view["leader"] == new_id
            assert "#2" not in claims_of(leader) or claims_of(leader)["#2"]["token"][0] > old_term
        finally:
            stop_all(agents)
