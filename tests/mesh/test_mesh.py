"""Real daemons in separate processes on 127.0.0.1, talking SSH."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from pathlib import Path

import pyrage
import pytest

from bzzz.agent.control import Control
from bzzz.domain.identity import Ed25519Signer
from bzzz.domain.payload import encode_payload
from bzzz.errors import PeerRefused, UsageError
from bzzz.home.keys import Identity
from bzzz.home.node import open_node
from bzzz.mesh.transport import dial
from tests.support.agents import (
    Agent,
    audit_clean,
    converged,
    found,
    invite_token,
    join,
    stop_all,
    wait_for,
)
from tests.support.cli import bzzz

pytestmark = pytest.mark.slow


@pytest.fixture
def agents() -> Iterator[list[Agent]]:
    started: list[Agent] = []
    yield started
    stop_all(started)


def test_full_mesh_of_four_converges_and_audits_clean(tmp_path: Path, agents: list[Agent]) -> None:
    a = found(tmp_path)
    agents.append(a.start())
    for n in range(1, 4):
        node = join(tmp_path, f"n{n}", a)
        node.peers = [other.address for other in agents[1:]]
        agents.append(node.start())
    ids = {x.agent_id for x in agents}
    for x in agents:
        wait_for(lambda x=x: x.connected() == ids - {x.agent_id}, what="a full mesh")
    for i, x in enumerate(agents):
        for k in range(5):
            x.append(text=f"from {i}", k=k)
    wait_for(lambda: converged(agents), what="all logs everywhere")
    assert len(agents[0].heads()) == 4
    for x in agents:
        audit_clean(x)


def test_a_line_forwards_entries_end_to_end(tmp_path: Path, agents: list[Agent]) -> None:
    # a - b - c: c was invited by b and only ever dials b; a dials nobody. a and c
    # announce an address where nobody listens (as behind NAT), so they never meet.
    nowhere = {"BZZZ_MESH_ADVERTISE": "127.0.0.1:9"}
    a = found(tmp_path)
    a.env = nowhere
    agents.append(a.start())
    b = join(tmp_path, "b", a)
    agents.append(b.start())
    c = join(tmp_path, "c", b)
    c.env = nowhere
    agents.append(c.start())
    wait_for(lambda: len(b.connected()) == 2, what="b to hear a and c")
    assert a.connected() == {b.agent_id} and c.connected() == {b.agent_id}
    unreached = wait_for(
        lambda: [p for p in a.status()["peers"] if p["agent_id"] == c.agent_id and p["last_error"]],
        what="a to report c unreachable",
    )
    assert unreached[0]["address"] == "127.0.0.1:9" and unreached[0]["name"] == "c"
    seq = a.append(text="to the end of the line")
    wait_for(lambda: c.heads().get(a.agent_id, 0) >= seq, what="a's entry at c")
    seq = c.append(text="and back")
    wait_for(lambda: a.heads().get(c.agent_id, 0) >= seq, what="c's entry at a")


def test_a_write_by_another_process_that_does_not_poke_the_agent_is_still_sent(
    tmp_path: Path, agents: list[Agent]
) -> None:
    a = found(tmp_path)
    agents.append(a.start())
    b = join(tmp_path, "b", a)
    agents.append(b.start())
    wait_for(lambda: all(x.election()["leader_proven"] for x in agents), what="a proven leader")
    wait_for(lambda: converged(agents), what="the election's entries everywhere")
    with open_node(a.home) as node:  # as `bzzz log append` writes, minus its poke
        entry = node.store.append(node.identity.signer, "task.note", encode_payload({}), 1)
    wait_for(lambda: b.heads().get(a.agent_id, 0) >= entry.seq, 10, "the poll to find it")


def test_late_joiner_catches_up_and_restart_resumes_after_kill_9(
    tmp_path: Path, agents: list[Agent]
) -> None:
    a = found(tmp_path)
    agents.append(a.start())
    batch = tmp_path / "batch.jsonl"
    batch.write_text(
        "".join(json.dumps({"kind": "task.note", "data": {"n": i}}) + "\n" for i in range(30_000))
    )
    b = join(tmp_path, "b", a)
    assert bzzz("log", "append", "--home", str(a.home), "--batch", str(batch)).code == 0
    total = a.heads()[a.agent_id]
    agents.append(b.start())
    wait_for(lambda: b.heads().get(a.agent_id, 0) > 1000, what="catch-up to begin")
    b.kill()  # in the middle of the catch-up
    agents.remove(b)
    with open_node(b.home) as node:
        held = node.store.head(bytes.fromhex(a.agent_id))
    assert held is not None and held.seq < total, "the catch-up was over before the kill"
    agents.append(b.start())
    wait_for(
        lambda: b.heads().get(a.agent_id, 0) >= total, timeout=60, what="catch-up after restart"
    )
    audit_clean(b)


def test_a_node_that_was_dialed_redials_its_peer_after_that_peer_restarts(
    tmp_path: Path, agents: list[Agent]
) -> None:
    """c dials b only because it was told to once (--peer); restarted without it, c still
    gets its link to b back, because b learned where c listens and dials it."""
    a = found(tmp_path)
    agents.append(a.start())
    b = join(tmp_path, "b", a)
    agents.append(b.start())
    c = join(tmp_path, "c", a)
    c.peers = [b.address]
    agents.append(c.start())
    ids = {x.agent_id for x in (a, b)}
    wait_for(lambda: c.connected() == ids, what="c linked to a and b")
    c.kill()
    agents.remove(c)
    c.peers = []  # its config names only its inviter, a
    agents.append(c.start())
    wait_for(lambda: c.connected() == ids, timeout=30, what="b to redial c")
    wait_for(lambda: c.agent_id in b.connected(), what="b to see c")


def test_a_removed_member_is_cut_off_everywhere(tmp_path: Path, agents: list[Agent]) -> None:
    a = found(tmp_path)
    agents.append(a.start())
    b = join(tmp_path, "b", a)
    c = join(tmp_path, "c", a)
    b.peers = [c.address]
    agents += [c.start(), b.start()]
    wait_for(lambda: len(c.connected()) == 2, what="c connected to a and b")
    c_id = c.agent_id
    refused = bzzz("member", "remove", c_id[:8], "--home", str(b.home))  # b: a developer
    assert refused.code == 2 and "a developer may not remove a developer" in refused.err
    promoted = bzzz("member", "role", b.agent_id[:8], "architect", "--home", str(a.home))
    assert promoted.code == 0, promoted.err
    listed = json.loads(bzzz("member", "list", "--home", str(a.home), "--json").out)
    assert {m["name"]: m["role"] for m in listed["members"]}["b"] == "architect"
    result = bzzz("member", "remove", c_id[:8], "--home", str(a.home))
    assert result.code == 0, result.err
    wait_for(lambda: c_id not in a.connected() and c_id not in b.connected(), what="c cut off")
    seq = c.append(text="after removal")
    for _ in range(20):  # c keeps redialing; nobody lets it in
        assert c.connected() == set()
        assert a.heads().get(c_id, 0) < seq and b.heads().get(c_id, 0) < seq
        wait_for(lambda: True)
    wait_for(lambda: "not a member" in a.log_text(), what="a to refuse c, which keeps trying")
    wait_for(lambda: "no longer dialing" in a.log_text() + b.log_text(), what="c's dialers to stop")


def test_unknown_keys_and_spent_tokens_are_refused(tmp_path: Path, agents: list[Agent]) -> None:
    a = found(tmp_path)
    agents.append(a.start())
    stranger = Identity(Ed25519Signer(bytes(range(32))), _age())

    async def try_dial() -> None:
        await dial(stranger, "127.0.0.1", a.port, lambda _: True)

    with pytest.raises(PeerRefused):
        asyncio.run(try_dial())
    token = invite_token(a)
    join(tmp_path, "b", a, token)
    with pytest.raises(UsageError, match="refused the token"):
        join(tmp_path, "c", a, token)
    assert "refused ssh login" in a.log_text()


def test_status_lock_and_clean_shutdown(tmp_path: Path, agents: list[Agent]) -> None:
    a = found(tmp_path)
    agents.append(a.start())
    b = join(tmp_path, "b", a)
    agents.append(b.start())
    wait_for(lambda: a.connected(), what="a connection")
    status = json.loads(bzzz("status", "--home", str(a.home), "--json").out)
    assert status["running"] and status["listen"] == a.address
    (peer,) = status["peers"]
    assert peer["agent_id"] == b.agent_id and peer["connected"]
    assert set(peer["heads"]) == {"ours", "theirs"} and peer["last_heard"] > 0
    second = bzzz("agent", "--home", str(a.home), "--no-mdns", "--listen", "127.0.0.1:0")
    assert second.code == 2 and f"pid {a.proc.pid}" in second.err  # type: ignore[union-attr]
    held = Control.connect(a.home)  # a client that keeps its connection open
    assert held is not None and held.ask({"op": "status"})["ok"]  # type: ignore[index]
    assert a.stop(timeout=5) == 0
    held.close()
    assert "Traceback" not in a.log_text()  # the held connection was hung up on, not cut
    agents.remove(a)
    assert not (a.home / "agent.sock").exists()
    offline = json.loads(bzzz("status", "--home", str(a.home), "--json").out)
    assert offline["running"] is False and offline["store"]["entries"] > 0


def _age() -> pyrage.x25519.Identity:
    return pyrage.x25519.Identity.generate()
