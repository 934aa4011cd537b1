"""A member that speaks the protocol wrongly: each misdeed is refused and reported, the
honest nodes keep replicating, and their stores audit clean."""

from __future__ import annotations

import asyncio
import base64
import os
import struct
from collections.abc import Iterator

import asyncssh
import pyrage
import pytest

from bzzz.domain.entry import Entry, decode_entry
from bzzz.domain.identity import Ed25519Signer
from bzzz.domain.invite import decode_token, join_username
from bzzz.domain.payload import decode_payload
from bzzz.domain.presence import Heartbeat, sign_presence
from bzzz.domain.wire import Entries, Ephemeral, Hello, Message, encode_message
from bzzz.home.config import load_config
from bzzz.home.keys import Identity
from bzzz.home.node import open_home_store
from bzzz.mesh.transport import dial
from tests.support.agents import (
    Agent,
    audit_findings,
    found,
    invite_token,
    join,
    stop_all,
    wait_for,
)
from tests.support.builders import build_chain

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def honest(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Agent, Agent]]:
    root = tmp_path_factory.mktemp("honest")
    a = found(root).start()
    b = join(root, "b", a).start()
    wait_for(lambda: a.connected(), what="a and b connected")
    yield a, b
    stop_all([b, a])


def mallory() -> Identity:
    return Identity(Ed25519Signer(os.urandom(32)), pyrage.x25519.Identity.generate())


def _hello(me: Identity, cluster_id: bytes) -> Hello:
    return Hello(me.public_key, "mallory", cluster_id, "", {})


async def _misbehave(a: Agent, me: Identity, frames: list[bytes | Message]) -> bool:
    """Join `a` as `me`, send `frames`, and report whether `a` hung up on us."""
    token = decode_token(invite_token(a, role="observer"))  # no vote: the pair keeps quorum
    conn, _, (reader, writer) = await dial(
        me, "127.0.0.1", a.port, lambda _: True, join_username(token.secret, "mallory")
    )
    async with conn:
        for frame in frames:
            writer.write(frame if isinstance(frame, bytes) else encode_message(frame))
        try:
            async with asyncio.timeout(10):
                while await reader.read(65536):
                    pass
        except TimeoutError:
            return False
        except (ConnectionError, asyncssh.Error):  # it hung up while we still wrote
            return True
        return True


def alerts(agent: Agent, kind: str = "alert.peer_refused") -> list[dict[str, object]]:
    with open_home_store(agent.home) as store:
        return [decode_payload(s.decode().body) for s in store.latest(100, kinds=[kind])]


def _forged(entry: Entry) -> bytes:
    raw = bytearray(entry.raw)
    raw[-1] ^= 0x01  # the last signature byte: still canonical, no longer valid
    return bytes(raw)


def _cases(me: Identity, cluster_id: bytes = bytes(32)) -> dict[str, list[bytes | Message]]:
    signer = me.signer
    chain = build_chain(signer, 3, start_lamport=10_000)
    rival = build_chain(signer, 2, start_lamport=20_000)[1]
    beat = Ephemeral(sign_presence(signer, Heartbeat(me.public_key, 1, 1)))
    other = Ed25519Signer(bytes(range(32))).public_key
    return {
        "undecodable": [b"\x00\x00\x00\x05hello"],
        "oversized-frame": [struct.pack(">I", 100 * 1024 * 1024) + b"x" * 1000],
        "bad-signature": [
            _hello(me, cluster_id),
            Entries([e.raw for e in chain[:2]] + [_forged(chain[2])]),
        ],
        "gap": [_hello(me, cluster_id), Entries([chain[2].raw])],
        "forked": [_hello(me, cluster_id), Entries([e.raw for e in chain]), Entries([rival.raw])],
        "flood": [_hello(me, cluster_id), *([beat] * 200)],
        "wrong-agent": [Hello(other, "mallory", cluster_id, "", {})],
        "no-hello": [Entries([chain[0].raw])],
    }


@pytest.mark.parametrize("code", list(_cases(mallory())))
def test_misbehaving_member_is_refused_and_reported(honest: tuple[Agent, Agent], code: str) -> None:
    a, b = honest
    me = mallory()
    hung_up = asyncio.run(_misbehave(a, me, _cases(me, cluster_id_of(a))[code]))
    assert hung_up, "the honest node kept talking to a misbehaving peer"
    found_alert = wait_for(
        lambda: [x for x in alerts(a) if x["peer"] == {"$base64": _b64(me.public_key)}],
        what="an alert entry",
    )
    assert found_alert[-1]["code"] == code
    with open_home_store(a.home) as store:
        head = store.head(me.public_key)
    if code == "bad-signature":
        assert head is not None and head.seq == 2  # the valid prefix, nothing forged
    elif code in ("gap", "undecodable", "oversized-frame", "no-hello", "wrong-agent"):
        assert head is None
    seq = b.append(text=f"still working after {code}")
    wait_for(lambda: a.heads().get(b.agent_id, 0) >= seq, what="honest replication to go on")
    for agent in (a, b):
        # Only the truth about mallory: its forks (from this case or an earlier one).
        for finding in audit_findings(agent):
            assert finding["code"] == "fork", finding
    if code == "forked":
        forks = [f for f in audit_findings(a) if f["author"] == me.public_key.hex()]
        assert len(forks) == 1


def test_fork_evidence_reaches_every_node(honest: tuple[Agent, Agent]) -> None:
    a, b = honest
    me = mallory()
    asyncio.run(_misbehave(a, me, _cases(me, cluster_id_of(a))["forked"]))

    def frozen_at_b() -> bool:
        with open_home_store(b.home) as store:
            head = store.head(me.public_key)
            return head is not None and head.forked_seq == 2 and len(store.forks()) > 0

    wait_for(frozen_at_b, what="b to learn of the fork from a")
    forks = [x for x in alerts(a, "alert.fork") if x["author"] == {"$base64": _b64(me.public_key)}]
    assert forks and forks[0]["seq"] == 2
    with open_home_store(b.home) as store:
        evidence = [
            decode_entry(raw) for author, _, raw in store.forks() if author == me.public_key
        ]
    assert evidence and all(e.signature_ok() for e in evidence)
    assert [f["author"] for f in audit_findings(b) if f["author"] == me.public_key.hex()] == [
        me.public_key.hex()
    ]


def cluster_id_of(agent: Agent) -> bytes:
    found = load_config(agent.home).mesh.cluster_id
    assert found is not None
    return bytes.fromhex(found)


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def test_a_member_cannot_plant_the_log_of_a_key_that_never_was_one(
    honest: tuple[Agent, Agent],
) -> None:
    a, b = honest
    me = mallory()
    stranger = Ed25519Signer(os.urandom(32))
    planted = build_chain(stranger, 3, start_lamport=30_000)
    own = build_chain(me.signer, 1, start_lamport=30_000)
    frames: list[bytes | Message] = [
        _hello(me, cluster_id_of(a)),
        Entries([e.raw for e in planted] + [own[0].raw]),
    ]
    asyncio.run(_misbehave(a, me, frames))
    wait_for(lambda: a.heads().get(me.public_key.hex(), 0) >= 1, what="mallory's own entry")
    with open_home_store(a.home) as store:
        assert store.head(stranger.public_key) is None
    seq = b.append(text="after the planted log")
    wait_for(lambda: a.heads().get(b.agent_id, 0) >= seq, what="honest replication to go on")
    with open_home_store(b.home) as store:
        assert store.head(stranger.public_key) is None
