"""A partition between real daemons: three hosts on a LAN (network namespaces on a
bridge); the leader's switch port goes down, then up again."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from bzzz.agent.control import ask
from bzzz.domain import claims as cl
from bzzz.domain.payload import decode_payload
from bzzz.home.config import load_config, write_config
from bzzz.home.node import init_node, open_home_store
from tests.support.agents import (
    Agent,
    claim,
    claims_of,
    converged,
    join_in,
    proven_leader,
    stop_all,
    wait_for,
)
from tests.support.netns import Lan, lan

pytestmark = pytest.mark.slow


def test_a_cut_off_leader_loses_its_lease_and_healing_converges(tmp_path: Path) -> None:
    with lan(3) as net, _lan_agents(net, tmp_path) as agents:
        leader_id = wait_for(lambda: proven_leader(agents), timeout=30, what="a leader")
        leader = next(a for a in agents if a.agent_id == leader_id)
        majority = [a for a in agents if a is not leader]
        assert claim(majority[0], "#1")["status"] == "granted"
        old_term = leader.election()["term"]

        net.cut(next(h for h in net.hosts if h.address == leader.host))
        new_id = wait_for(
            lambda: proven_leader(majority) not in (None, leader_id) and proven_leader(majority),
            timeout=30,
            what="the majority to elect a new leader",
        )
        wait_for(lambda: leader.election()["role"] != "leader", what="the old leader to step down")
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


@contextmanager
def _lan_agents(
    net: Lan, root: Path, configure: Callable[[Path], None] = lambda home: None
) -> Iterator[list[Agent]]:
    """A daemon on each host, the first founding the cluster, all linked to each other;
    all stopped on the way out."""
    first, *others = net.hosts
    init_node(
        root / "n1", name="n1", role="admin", cluster="lan", listen=f"{first.address}:7420"
    ).close()
    configure(root / "n1")
    agents = [Agent(root / "n1", 7420, host=first.address, wrap=first.wrap)]
    try:
        agents[0].start()
        for n, host in enumerate(others, start=2):
            node = join_in(host.wrap, host.address, root, f"n{n}", agents[0])
            configure(node.home)
            node.peers = [a.address for a in agents[1:]]
            agents.append(node.start())
        yield agents
    finally:
        stop_all(agents)


def _long_lease_and_room(home: Path) -> None:
    """An election timeout (and so a leader's lease) of 3 s, so that a leader just cut
    off still holds its lease while it is asked; and room for several tasks an agent."""
    config = load_config(home)
    election = config.election.model_copy(update={"election_min_ms": 3000, "election_max_ms": 4500})
    agent = config.agent.model_copy(update={"max_tasks": 5})
    write_config(home, config.model_copy(update={"election": election, "agent": agent}))


def _grants_by(agent: Agent, task: str) -> list[tuple[int, int]]:
    """The tokens of the grants of `task` in `agent`'s own log."""
    store = open_home_store(agent.home)
    try:
        rows = store.entries(bytes.fromhex(agent.agent_id))
    finally:
        store.close()
    tokens = []
    for row in rows:
        entry = row.decode()
        body = decode_payload(entry.body) if entry.kind == cl.GRANTED else None
        grants = cl.grant_maps(body) if isinstance(body, dict) else None
        for grant in grants or []:
            if grant.get("task") == task:
                tokens.append((grant["term"], grant["grant"]))
    return tokens


def test_grants_a_cut_off_leader_made_are_carried_forward_once_when_they_arrive_late(
    tmp_path: Path,
) -> None:
    """The leader is cut off from three of five nodes, but still linked to a relay that
    is cut off from them too. In what is left of its lease it grants the relay two
    tasks. The three elect a new leader, which grants one of those tasks to one of them,
    knowing nothing of the old grants. When the relay reaches the new leader the old
    grants arrive: the task nobody else holds is carried forward into the new term, once
    and to the same agent; the other stays with the new leader's own grant."""
    with lan(5) as net, _lan_agents(net, tmp_path, _long_lease_and_room) as agents:
        host = {a.agent_id: next(h for h in net.hosts if h.address == a.host) for a in agents}
        old_id = wait_for(lambda: proven_leader(agents), timeout=60, what="a leader")
        old = next(a for a in agents if a.agent_id == old_id)
        relay, *majority = [a for a in agents if a is not old]
        wait_for(lambda: converged(agents), what="the logs to settle before the cut")

        for other in majority:
            net.cut_between(host[old.agent_id], host[other.agent_id])
            net.cut_between(host[relay.agent_id], host[other.agent_id])
        late, both = claim(relay, "#late"), claim(relay, "#both")
        assert late["status"] == both["status"] == "granted", (late, both)
        old_term = late["token"][0]

        new_id = wait_for(
            lambda: proven_leader(majority) not in (None, old_id) and proven_leader(majority),
            timeout=60,
            what="the three to elect a new leader",
        )
        new = next(a for a in majority if a.agent_id == new_id)
        new_term = new.election()["term"]
        taker = next(a for a in majority if a is not new)
        taken = claim(taker, "#both")
        assert taken["status"] == "granted" and taken["token"][0] == new_term, taken
        assert "#late" not in claims_of(new)

        net.heal_between(host[relay.agent_id], host[new.agent_id])
        wait_for(
            lambda: claims_of(new).get("#late", {}).get("token", [0])[0] == new_term,
            timeout=60,
            what="the new leader to carry the late grant forward",
        )
        book = claims_of(new)
        assert book["#late"]["holder"] == relay.agent_id and book["#late"]["live"]
        assert book["#both"]["holder"] == taker.agent_id
        assert book["#both"]["token"] == taken["token"]
        wait_for(
            lambda: (
                claims_of(relay).get("#late", {}).get("token") == book["#late"]["token"]
                and claims_of(relay)["#both"]["holder"] == taker.agent_id
            ),
            what="the relay's book to agree with the new leader's",
        )
        assert [t for t, _ in _grants_by(old, "#late")] == [old_term]
        wait_for(lambda: converged([relay, new]), what="the relay and the leader to settle")
        assert [t for t, _ in _grants_by(new, "#late")] == [new_term]  # carried once
        assert [t for t, _ in _grants_by(new, "#both")] == [new_term]  # not carried
