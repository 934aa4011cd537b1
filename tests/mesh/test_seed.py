"""One seed is enough: members announce where they listen in signed entries, so a node
that started with one seed's address dials every member, and losing any one node (the
seed included) leaves the rest connected and able to elect. Real daemons, no mDNS."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from bzzz.domain.addresses import ANNOUNCED
from bzzz.domain.payload import decode_payload
from bzzz.home.node import init_node, open_home_store
from tests.support.agents import (
    Agent,
    audit_clean,
    converged,
    found,
    join,
    join_in,
    proven_leader,
    stop_all,
    wait_for,
)
from tests.support.netns import two_lans

pytestmark = pytest.mark.slow


@pytest.fixture
def agents() -> Iterator[list[Agent]]:
    started: list[Agent] = []
    yield started
    stop_all(started)


def _full_mesh(agents: list[Agent]) -> bool:
    ids = {a.agent_id for a in agents}
    return all(a.connected() == ids - {a.agent_id} for a in agents)


def test_killing_the_seed_leaves_the_others_linked_and_electing(
    tmp_path: Path, agents: list[Agent]
) -> None:
    seed = found(tmp_path)
    agents.append(seed.start())
    wait_for(lambda: proven_leader([seed]), what="the founder to lead alone")
    for name in ("b", "c"):
        agents.append(join(tmp_path, name, seed).start())  # its config names only the seed
    wait_for(lambda: _full_mesh(agents), what="a full mesh from one seed")
    # Mostly the seed leads; when b was elected while c joined, b must keep its quorum
    # through c once the seed is gone (without announcements they never meet).
    wait_for(lambda: proven_leader(agents), what="one leader")

    seed_id = seed.agent_id
    seed.kill()
    killed = time.monotonic()
    survivors = agents[1:]
    new = wait_for(
        lambda: proven_leader(survivors) not in (None, seed_id) and proven_leader(survivors),
        timeout=15,
        what="a new leader",
    )
    took = time.monotonic() - killed
    print(f"a leader proven {took:.2f} s after the seed died")
    assert new != seed_id
    assert took < 3.0, f"a leader took {took:.2f} s to be proven after the seed died"
    b, c = survivors
    assert b.connected() == {c.agent_id} and c.connected() == {b.agent_id}
    seq = b.append(text="after the seed")
    wait_for(lambda: c.heads().get(b.agent_id, 0) >= seq, what="b's entry at c")
    down = wait_for(
        lambda: [p for p in b.status()["peers"] if p["agent_id"] == seed_id and p["last_error"]],
        what="b to say why the seed is unreachable",
    )
    assert not down[0]["connected"] and down[0]["name"] == "n0", down


def test_a_chain_of_seeds_forms_a_full_mesh(tmp_path: Path, agents: list[Agent]) -> None:
    """Each node joins through the one before it and knows only that one's address."""
    agents.append(found(tmp_path).start())
    for n in range(1, 5):
        agents.append(join(tmp_path, f"n{n}", agents[-1]).start())
    wait_for(lambda: _full_mesh(agents), timeout=45, what="a full mesh of five")
    for n, agent in enumerate(agents):
        agent.append(text=f"from {n}")
    wait_for(lambda: converged(agents), what="every log everywhere")
    audit_clean(agents[-1])


def test_a_node_on_another_network_gets_every_log_relayed(tmp_path: Path) -> None:
    """West and east are on two LANs that only the founder (listening on every
    interface) is on: each learns the other's announced address, cannot reach it, says
    so in its status, and still gets the other's log through the founder."""
    with two_lans(1, 1) as net:
        init_node(
            tmp_path / "mid", name="mid", role="admin", cluster="split", listen="0.0.0.0:7420"
        )
        mid = Agent(tmp_path / "mid", 7420, host="0.0.0.0", wrap=net.middle.wrap)
        agents = [mid]
        try:
            mid.start()
            west_host, east_host = net.left.hosts[0], net.right.hosts[0]
            west = join_in(
                west_host.wrap,
                west_host.address,
                tmp_path,
                "west",
                mid,
                f"{net.middle.address}:7420",
            )
            agents.append(west.start())
            east = join_in(
                east_host.wrap, east_host.address, tmp_path, "east", mid, f"{net.middle_right}:7420"
            )
            agents.append(east.start())
            wait_for(lambda: len(mid.connected()) == 2, what="the founder to hear both sides")

            seq = west.append(text="from the west")
            wait_for(lambda: east.heads().get(west.agent_id, 0) >= seq, what="west's entry east")
            seq = east.append(text="from the east")
            wait_for(lambda: west.heads().get(east.agent_id, 0) >= seq, what="east's entry west")
            for here, there in ((west, east), (east, west)):
                assert here.connected() == {mid.agent_id}
                lost = wait_for(
                    lambda here=here, there=there: [
                        p
                        for p in here.status()["peers"]
                        if p["agent_id"] == there.agent_id and p["last_error"]
                    ],
                    what="the other side reported unreachable",
                )
                assert lost[0]["address"] == f"{there.host}:7420", lost
            wait_for(lambda: converged(agents), what="every log everywhere")
            store = open_home_store(west.home)
            try:
                said = [
                    decode_payload(row.decode().body)["at"]
                    for row in store.entries(bytes.fromhex(mid.agent_id))
                    if row.decode().kind == ANNOUNCED
                ]
            finally:
                store.close()
            assert said[-1] == [f"{net.middle.address}:7420", f"{net.middle_right}:7420"], said
        finally:
            stop_all(agents)
