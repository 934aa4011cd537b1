"""The admin election and task claims between real daemons on 127.0.0.1."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from tests.support.agents import (
    Agent,
    claim,
    claims_of,
    found,
    join,
    proven_leader,
    stop_all,
    wait_for,
)
from tests.support.builders import run_in_threads
from tests.support.cli import bzzz

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
    assert history[-1]["leader"] == second
    # The killed leader's sockets closed; a survivor whose random timeout was due sooner
    # anyway stands on that instead.
    assert history[-1]["trigger"] in ("leader-link-lost", "heartbeat-timeout")
    assert all(h["votes"] >= 2 for h in history)
    old.start()  # the old leader comes back as a follower of the new one
    wait_for(lambda: proven_leader(trio) == second, timeout=30, what="the old leader to follow")
    assert old.election()["role"] == "follower"
    for agent in trio:
        assert not agent.election()["split_brain"]
    offline = json.loads(bzzz("election", "status", "--home", str(old.home), "--json").out)
    assert offline["running"] and offline["leader"] == second
    assert {"term", "leader", "voters", "history"} <= set(offline)
    # The audit checks the same proofs from the store alone, while the agent runs.
    audited = json.loads(bzzz("audit", "--home", str(old.home), "--json").out)
    assert audited["ok"], audited["findings"]
    assert audited["leadership"]["proven_terms"] >= 2
    assert audited["leadership"]["latest_leader"] == second


def test_racing_agents_get_one_grant_and_a_new_leader_reissues_it(trio: list[Agent]) -> None:
    leader_id = wait_for(lambda: proven_leader(trio), timeout=30, what="a proven leader")
    followers = [a for a in trio if a.agent_id != leader_id]
    answers: dict[str, dict[str, object]] = {}
    run_in_threads(lambda a: answers.__setitem__(a.agent_id, claim(a, "#7")), followers)
    granted = [k for k, v in answers.items() if v["status"] == "granted"]
    refused = [v for v in answers.values() if v["status"] == "refused"]
    assert len(granted) == 1 and len(refused) == 1, answers
    assert str(refused[0]["reason"]).startswith("already held by")
    holder = granted[0]
    wait_for(
        lambda: all(claims_of(a).get("#7", {}).get("holder") == holder for a in trio),
        what="every node to see the grant",
    )
    # Its own book shows #7 held: the loser is refused at once and writes no request.
    loser = next(a for a in followers if a.agent_id != holder)
    before = loser.heads()[loser.agent_id]
    local = claim(loser, "#7")
    assert local["status"] == "refused" and "not asked" in str(local["reason"]), local
    assert loser.heads()[loser.agent_id] == before
    old = next(a for a in trio if a.agent_id == leader_id)
    term = old.election()["term"]
    old.kill()
    rest = [a for a in trio if a is not old]
    wait_for(
        lambda: proven_leader(rest) not in (None, leader_id),
        timeout=30,
        what="a new leader",
    )

    def reissued() -> bool:
        row = claims_of(rest[0]).get("#7", {})
        token = row.get("token") or [0, 0]
        return bool(row.get("live")) and row.get("holder") == holder and token[0] > term

    wait_for(reissued, timeout=30, what="the live grant re-issued in the new term")
    again = claim(next(a for a in rest if a.agent_id != holder), "#7")
    assert again["status"] == "refused"


def _configure(agent: Agent, section: str, **values: object) -> None:
    path = agent.home / "config.yaml"
    config = yaml.safe_load(path.read_text())
    config.setdefault(section, {}).update(values)
    path.write_text(yaml.safe_dump(config))


def test_the_leader_hands_over_to_a_markedly_better_node_and_it_sticks(tmp_path: Path) -> None:
    quick = {"min_tenure_s": 1, "transfer_sustain_s": 1}
    a = found(tmp_path)
    _configure(a, "election", **quick)
    agents = [a.start()]
    try:
        b = join(tmp_path, "b", a)
        capable = join(tmp_path, "capable", a)
        _configure(b, "election", **quick)
        _configure(capable, "election", **quick)
        _configure(capable, "agent", capabilities=[f"skill-{n}" for n in range(8)])
        b.peers = [a.address]
        agents.append(b.start())
        first = wait_for(lambda: proven_leader(agents), timeout=30, what="a leader of a and b")
        capable.peers = [a.address, b.address]
        agents.append(capable.start())
        want = capable.agent_id
        wait_for(lambda: proven_leader(agents) == want, timeout=30, what="the handover")
        history = a.election()["history"]
        assert history[-1]["leader"] == want and history[-1]["trigger"] == "leadership-transfer"
        assert first != want
        scores = {v["agent_id"]: v["score"] for v in capable.election()["voters"]}
        assert all(scores[want] >= s + 15 for k, s in scores.items() if k != want), scores
        term = capable.election()["term"]
        time.sleep(4)  # hysteresis: the weaker nodes never take it back
        assert proven_leader(agents) == want and capable.election()["term"] == term
        old = next(x for x in agents if x.agent_id == first)
        assert "transferring leadership to" in old.log_text()
    finally:
        stop_all(agents)
