"""The key service on in-memory replicas (no SSH, no processes): the admin grants role
keys; sealed content opens for the entitled roles and shows "sealed for ROLE" to the
others; a removal rotates the key (new content closed to the removed member, old content
still open to it); the admin key is split 3 of 5 and rebuilt only with 3 consents and
only when the shares match the split's commitment; no secret reaches a store or a log."""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path

import pyrage
import pytest
import shamir_mnemonic

from bzzz.domain import key_ceremony as kc
from bzzz.domain import membership as ms
from bzzz.domain.age_identity import age_identity_text
from bzzz.domain.election import Settings
from bzzz.domain.invite import secret_hash
from bzzz.domain.payload import encode_payload, payload_map
from bzzz.domain.roles import can_decrypt, parse_roles
from bzzz.domain.sealing import OPEN, SEALED
from bzzz.home.keys import Identity, create_identity
from bzzz.projections.keyring import Keyring, seal_to_agent
from bzzz.services.election import ElectionRunner
from bzzz.services.keys import KeyService, rebuild_master
from bzzz.store import EventStore
from bzzz.store.urls import resolve_store_url
from tests.support.memory_replica import Hub, MemoryReplica

# The default roles, but only the admin votes: it leads at once, every time.
ROLES = parse_roles(
    {
        "roles": {
            "admin": {"authority": "master"},
            "architect": {
                "authority": "decision",
                "can_read": ["developer", "reviewer"],
                "votes": False,
            },
            "developer": {"authority": "coordination", "can_read": ["reviewer"], "votes": False},
            "reviewer": {"authority": "suggestion", "votes": False},
            "observer": {"authority": "read_only"},
        }
    },
    "test roles",
)
FAST = Settings(heartbeat_ms=20, election_min_ms=150, election_max_ms=300)
MEMBERS = [
    ("admin", "admin"),
    ("arch", "architect"),
    ("dev", "developer"),
    ("dev2", "developer"),
    ("rev", "reviewer"),
]


@dataclass
class Node:
    name: str
    role: str
    identity: Identity
    replica: MemoryReplica
    election: ElectionRunner
    keys: KeyService

    @property
    def me(self) -> bytes:
        return self.identity.public_key


@dataclass
class Team:
    root: Path
    nodes: dict[str, Node] = field(default_factory=dict)
    stores: list[EventStore] = field(default_factory=list)

    def __getitem__(self, name: str) -> Node:
        return self.nodes[name]

    async def settle(self, check: object, timeout: float = 10.0, what: str = "") -> None:
        async with asyncio.timeout(timeout):
            while True:
                for node in self.nodes.values():
                    await node.keys.refresh()
                assert callable(check)
                if check():
                    return
                await asyncio.sleep(0.05)


@pytest.fixture
async def team(tmp_path: Path) -> AsyncIterator[Team]:
    found = Team(tmp_path)
    identities = []
    for name, _ in MEMBERS:
        (tmp_path / name).mkdir()
        identities.append(create_identity(tmp_path / name))
    stores = [
        EventStore(resolve_store_url(f"sqlite:///{tmp_path / name / 'store.db'}"))
        for name, _ in MEMBERS
    ]
    founder = identities[0].signer
    founding = stores[0].append(
        founder, ms.FOUNDED, encode_payload(ms.founded_body("c", "admin", "admin")), 1
    )
    for n, ((name, role), identity) in enumerate(zip(MEMBERS, identities, strict=True)):
        if n == 0:
            continue
        token = secret_hash(bytes([n]) * 16)
        stores[0].append(
            founder, ms.INVITED, encode_payload(ms.invited_body(token, role, 10**13)), 2
        )
        body = ms.admitted_body(identity.public_key, name, role, token)
        stores[0].append(founder, ms.ADMITTED, encode_payload(body), 3)
    raws = [s.raw for s in stores[0].notifications(after=0)]
    for store in stores[1:]:
        store.ingest(raws)
    hub = Hub()
    for (name, role), identity, store in zip(MEMBERS, identities, stores, strict=True):
        replica = MemoryReplica(hub, store, identity.signer, ROLES, founding.hash)
        election = ElectionRunner(replica, FAST)
        keyring = Keyring(identity.public_key, identity.ssh_private_pem(), ROLES)
        keys = KeyService(replica, election, keyring)
        election.on_admin = keys.set_admin
        found.nodes[name] = Node(name, role, identity, replica, election, keys)
    found.stores = stores
    for node in found.nodes.values():
        await node.keys.start()
        await node.election.start()
    try:
        await found.settle(lambda: _all_hold_their_keys(found), what="first keys")
        yield found
    finally:
        for node in found.nodes.values():
            await node.election.stop()
            await node.keys.stop()
        for store in stores:
            store.close()


def _all_hold_their_keys(team: Team) -> bool:
    """Every member holds the latest key of each role it may read."""
    admin = team["admin"].keys.keyring
    for node in team.nodes.values():
        reader = ROLES.get(node.role)
        assert reader is not None
        for role in ROLES.by_name:
            latest = admin.book.latest(role)
            if can_decrypt(reader, role) and (
                latest is None or node.keys.keyring.key(latest.recipient) is None
            ):
                return False
    return True


async def _sealed_note(node: Node, role: str, text: str) -> bytes:
    entry = await node.keys.append_sealed("task.note", {"text": text}, role)
    return entry.hash


def _open(node: Node, entry_hash: bytes) -> tuple[str, object]:
    for stored in node.replica.store.notifications(after=0, kinds=["task.note"]):
        entry = stored.decode()
        if entry.hash == entry_hash:
            opened = node.keys.open(entry)
            return opened.state, opened.payload or opened.label()
    raise AssertionError("entry not held")


async def test_sealed_content_opens_for_entitled_roles_only(team: Team) -> None:
    sealed = await _sealed_note(team["dev"], "developer", "the plan")
    await team.settle(lambda: all(n.replica.heads.get(team["dev"].me) for n in team.nodes.values()))
    for name in ("admin", "arch", "dev", "dev2"):
        assert _open(team[name], sealed) == (OPEN, {"text": "the plan"}), name
    assert _open(team["rev"], sealed) == (SEALED, "sealed for developer")
    # The entry itself holds no plaintext: replication and the audit see ciphertext only.
    raw = team["rev"].replica.store.notifications(after=0, kinds=["task.note"])[-1].raw
    assert b"the plan" not in raw
    # Anyone can seal for any role that has a key; a role without one is a clear error.
    to_architect = await _sealed_note(team["rev"], "architect", "for architects")
    assert _open(team["arch"], to_architect)[0] == OPEN
    assert _open(team["rev"], to_architect) == (SEALED, "sealed for architect")
    with pytest.raises(Exception, match="no such role"):
        await team["dev"].keys.seal("task.note", {}, "nobody")


async def test_a_replayed_ciphertext_does_not_open_under_another_author(team: Team) -> None:
    original = await _sealed_note(team["dev"], "developer", "mine")
    body = next(
        s.decode().body
        for s in team["dev"].replica.store.notifications(after=0, kinds=["task.note"])
        if s.decode().hash == original
    )
    copied = payload_map(body)
    assert copied is not None
    replay = await team["dev2"].replica.append("task.note", copied)
    other_kind = await team["dev"].replica.append("hmmm.msg", copied)
    state, label = _open(team["admin"], replay.hash)
    assert state == "mismatch" and "another author" in str(label)
    entry = next(
        s.decode()
        for s in team["admin"].replica.store.notifications(after=0, kinds=["hmmm.msg"])
        if s.decode().hash == other_kind.hash
    )
    assert "another kind" in team["admin"].keys.open(entry).label()


async def test_removal_rotates_new_content_closes_old_stays_open(team: Team) -> None:
    old = await _sealed_note(team["dev"], "developer", "before")
    admin = team["admin"]
    first = admin.keys.keyring.book.latest("developer")
    assert first is not None
    await admin.replica.append(ms.REMOVED, ms.removed_body(team["dev2"].me, "left"))
    await team.settle(
        lambda: (
            (g := admin.keys.keyring.book.latest("developer")) is not None
            and g.generation == first.generation + 1
            and team["dev"].keys.keyring.key(g.recipient) is not None
        ),
        what="developer key rotation",
    )
    rotated = admin.keys.keyring.book.latest("developer")
    assert rotated is not None
    assert team["dev2"].keys.keyring.key(rotated.recipient) is None  # never granted
    new = await _sealed_note(team["dev"], "developer", "after")
    await team.settle(lambda: team["dev2"].replica.heads.get(team["dev"].me, 0) >= 2)
    assert _open(team["dev2"], new) == (SEALED, "sealed for developer")
    assert _open(team["dev2"], old) == (OPEN, {"text": "before"})
    for name in ("admin", "arch", "dev"):
        assert _open(team[name], new) == (OPEN, {"text": "after"})
    # A role change that takes away access rotates too; one that adds access only grants.
    await admin.replica.append(ms.ROLE_CHANGED, ms.role_changed_body(team["rev"].me, "architect"))
    await team.settle(
        lambda: (
            (g := admin.keys.keyring.book.latest("architect")) is not None
            and team["rev"].keys.keyring.key(g.recipient) is not None
            and team["rev"].keys.keyring.key(rotated.recipient) is not None
        ),
        what="the promoted reviewer's grants",
    )
    developer = admin.keys.keyring.book.latest("developer")
    assert developer is not None and developer.recipient == rotated.recipient


def _secrets_seen(team: Team, words: list[str], master_text: str) -> list[str]:
    """Where any share or the master secret shows in the clear: the stores' files."""
    found = []
    needles = [master_text.encode(), *(w.encode() for w in words)]
    for node in team.nodes.values():
        for path in (team.root / node.name).rglob("*"):
            if path.is_file():
                data = path.read_bytes()
                found += [f"{path}" for n in needles if n in data]
    return found


async def test_split_three_of_five_and_reconstruct_with_consent(
    team: Team, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    admin, rev = team["admin"], team["rev"]
    holders = [team[n].me for n in ("admin", "arch", "dev", "dev2", "rev")]
    with pytest.raises(Exception, match="not the admin"):
        await rev.keys.split(holders, 3)
    with pytest.raises(Exception, match="threshold"):
        await admin.keys.split(holders, 6)
    made = await admin.keys.split(holders, 3)
    await team.settle(lambda: all(n.keys.keyring.ceremonies.current for n in team.nodes.values()))
    # Each holder opens its own share, and only its own.
    split = rev.keys.keyring.ceremonies.current
    assert split is not None and split.hash.hex() == made["split"]
    words = [
        team[n].keys.keyring.open_share(split) for n in ("admin", "arch", "dev", "dev2", "rev")
    ]
    assert all(words) and len(set(words)) == 5
    # The master grants follow: every role key is also sealed to the master.
    await team.settle(
        lambda: all(
            admin.keys.keyring.book.granted(g.recipient, "master")
            for g in admin.keys.keyring.book.generations.values()
        ),
        what="grants to the master",
    )
    # The reviewer asks; two consents are not enough.
    asked = await rev.keys.request_reconstruct("the admin's disk died")
    request = bytes.fromhex(asked["request"])
    await team.settle(
        lambda: all(request in n.keys.keyring.ceremonies.requests for n in team.nodes.values())
    )
    for name in ("arch", "dev"):
        released = await team[name].keys.release(asked["request"][:12])
        assert released["released"] is True
    await team.settle(lambda: len(rev.keys.keyring.ceremonies.requests[request].releases) == 2)
    assert await rev.keys.reconstruct_owed() == []
    assert not rev.keys.keyring.master_in_memory
    assert rev.keys.keyring.ceremonies.requests[request].outcomes == []
    reviewer_before = {k.recipient for k in rev.keys.keyring.role_keys()}
    # A holder's second consent changes nothing.
    again = await team["arch"].keys.release(asked["request"])
    assert again == {"request": asked["request"], "released": False, "already": True}
    # The third consent: the requester rebuilds the master in memory and says so.
    third = await team["admin"].keys.release(asked["request"])
    assert third["released"] is True
    outcome = await rev.keys.wait_outcome(request, 10)
    assert outcome is not None and outcome["ok"] is True, outcome
    assert len(outcome["used"]) == 3
    assert rev.keys.keyring.master_in_memory
    # What the master is for: every role key, all generations, opens with it.
    every = set(admin.keys.keyring.book.generations)
    assert {k.recipient for k in rev.keys.keyring.role_keys()} == every
    assert reviewer_before < every
    architects_only = await _sealed_note(team["arch"], "architect", "design secret")
    await team.settle(lambda: rev.replica.heads.get(team["arch"].me, 0) >= 1)
    assert _open(rev, architects_only) == (OPEN, {"text": "design secret"})
    # The audit entry is everywhere: who, which request, why.
    await team.settle(
        lambda: admin.keys.keyring.ceremonies.requests[request].done, what="the audit entry"
    )
    row = next(
        r
        for r in kc.ceremony_json(admin.keys.keyring.ceremonies, {})
        if r["ceremony"] == "reconstruct"
    )
    assert row["status"] == "reconstructed" and row["reason"] == "the admin's disk died"
    assert row["by"] == rev.me.hex()
    # The secret is nowhere in the clear: not in any store file, not in any log line.
    master_text = _master_of(words[:3])
    assert str(pyrage.x25519.Identity.from_str(master_text).to_public()) == split.recipient
    assert _secrets_seen(team, [w for w in words if w], master_text) == []
    logged = "\n".join(r.getMessage() for r in caplog.records)
    assert master_text not in logged and not any(w and w in logged for w in words)


def _master_of(words: list[str | None]) -> str:
    secret = shamir_mnemonic.combine_mnemonics([w for w in words if w])
    return age_identity_text(secret)


async def test_shares_that_do_not_match_the_commitment_are_refused(team: Team) -> None:
    admin, rev = team["admin"], team["rev"]
    holders = [team[n].me for n in ("admin", "arch", "dev", "dev2", "rev")]
    await admin.keys.split(holders, 3)
    await team.settle(lambda: rev.keys.keyring.ceremonies.current is not None)
    asked = await rev.keys.request_reconstruct("drill")
    request = bytes.fromhex(asked["request"])
    await team.settle(
        lambda: all(request in n.keys.keyring.ceremonies.requests for n in team.nodes.values())
    )
    # Three colluding holders release shares of another secret: they combine, to a key
    # that is not the one the split committed to.
    forged = shamir_mnemonic.generate_mnemonics(1, [(3, 5)], os.urandom(32))[0]
    split = rev.keys.keyring.ceremonies.current
    assert split is not None
    for name, words in zip(("arch", "dev", "dev2"), forged, strict=False):
        node = team[name]
        sealed = seal_to_agent(
            rev.me, kc.share_plaintext(kc.RELEASED, node.me, rev.me, request, words)
        )
        await node.replica.append(kc.RELEASED, kc.release_body(request, split.hash, sealed))
    outcome = await rev.keys.wait_outcome(request, 10)
    assert outcome is not None and outcome["ok"] is False
    assert "another key than the one the split committed to" in outcome["problem"]
    assert not rev.keys.keyring.master_in_memory
    # Direct: shares from two splits do not combine at all; too few say so.
    other = shamir_mnemonic.generate_mnemonics(1, [(3, 5)], os.urandom(32))[0]
    mixed = {b"a" * 32: forged[0], b"b" * 32: forged[1], b"c" * 32: other[2]}
    assert "do not combine" in str(rebuild_master(mixed, 3, split.recipient))
    assert "only 2" in str(rebuild_master(dict(list(mixed.items())[:2]), 3, split.recipient))
