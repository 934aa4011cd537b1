"""`bzzz log append --seal-for`, `bzzz log show`, `bzzz keys status` and `bzzz audit`
as a person runs them, on a real node home whose admin duties (grants, a split) were
carried out by the key service in process: no daemon is needed for these paths."""

from __future__ import annotations

import asyncio
import json
import os
from pathlib import Path

import pytest

from bzzz.domain import keys as kk
from bzzz.domain import membership as ms
from bzzz.domain.election import Settings
from bzzz.domain.invite import secret_hash
from bzzz.domain.payload import encode_payload
from bzzz.domain.sealing import Envelope, envelope_body
from bzzz.home.node import cluster_id_of, open_node
from bzzz.projections.keyring import Keyring, new_role_key, seal_to_recipient
from bzzz.services.election import ElectionRunner
from bzzz.services.keys import KeyService
from tests.support.agents import found
from tests.support.cli import assert_one_line_error, bzzz
from tests.support.memory_replica import Hub, MemoryReplica

FAST = Settings(heartbeat_ms=20, election_min_ms=150, election_max_ms=300)
OTHER = bytes(range(32))  # an observer (no vote) with no home here: it holds a share


async def _admin_duties(home: Path) -> None:
    """The admin's key service runs once on the home: grants every role key, splits."""
    with open_node(home) as node:
        cluster = cluster_id_of(node.config)
        assert cluster is not None
        token = secret_hash(b"t" * 16)
        signer = node.identity.signer
        node.store.append(
            signer, ms.INVITED, encode_payload(ms.invited_body(token, "observer", 10**13)), 2
        )
        body = ms.admitted_body(OTHER, "other", "observer", token)
        node.store.append(signer, ms.ADMITTED, encode_payload(body), 3)
        replica = MemoryReplica(Hub(), node.store, signer, node.roles, cluster)
        election = ElectionRunner(replica, FAST)
        keyring = Keyring(node.identity.public_key, node.identity.ssh_private_pem(), node.roles)
        keys = KeyService(replica, election, keyring)
        election.on_admin = keys.set_admin
        await keys.start()
        await election.start()
        try:
            async with asyncio.timeout(10):
                while len(keyring.held()) < len(node.roles.by_name):
                    await asyncio.sleep(0.05)
            await keys.split([node.identity.public_key, OTHER], 2)
        finally:
            await election.stop()
            await keys.stop()


@pytest.fixture(scope="module")
def home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("keys")
    agent = found(root)
    asyncio.run(_admin_duties(agent.home))
    return agent.home


def test_a_sealed_append_is_shown_opened_here_and_holds_no_plaintext(home: Path) -> None:
    appended = bzzz(
        "log",
        "append",
        "--kind",
        "task.note",
        "--data",
        '{"text": "secret plan"}',
        "--seal-for",
        "developer",
        "--json",
        "--home",
        str(home),
    )
    assert appended.code == 0, appended
    raw = json.loads(appended.out)
    assert set(raw["data"]) == {"sealed_for", "generation", "recipient", "age"}
    assert "secret plan" not in appended.out
    shown = bzzz("log", "show", "--kind", "task.note", "--json", "--home", str(home))
    assert shown.code == 0, shown
    last = shown.lines()[-1]
    assert last["sealed_for"] == "developer" and last["opened"] is True
    assert last["data"] == {"text": "secret plan"}
    text = bzzz("log", "show", "--kind", "task.note", "--home", str(home))
    assert "sealed for developer, opened" in text.out and "secret plan" in text.out
    store_bytes = b"".join(p.read_bytes() for p in home.rglob("*.db*") if p.is_file())
    assert b"secret plan" not in store_bytes


def test_a_sealed_entry_this_node_holds_no_key_for_shows_as_sealed(home: Path) -> None:
    _, recipient = new_role_key()  # a key nobody granted this node
    envelope = Envelope("developer", 9, recipient, seal_to_recipient(recipient, b"x"))
    with open_node(home) as node:
        node.store.append(
            node.identity.signer, "task.other", encode_payload(envelope_body(envelope)), 4
        )
    shown = bzzz("log", "show", "--kind", "task.other", "--json", "--home", str(home))
    assert shown.code == 0 and "Traceback" not in shown.err, shown
    row = shown.lines()[-1]
    assert row["opened"] is False and row["sealed"] == "sealed for developer"
    assert row["data"] is None
    text = bzzz("log", "show", "--kind", "task.other", "--home", str(home))
    assert "(sealed for developer)" in text.out


def test_bad_seal_requests_are_one_line_errors(home: Path) -> None:
    nobody = bzzz("log", "append", "-k", "task.note", "--seal-for", "nobody", "--home", str(home))
    assert_one_line_error(nobody, "no such role", "nobody")
    posing = bzzz(
        "log",
        "append",
        "-k",
        "task.note",
        "--home",
        str(home),
        "--data",
        '{"sealed_for": "developer", "generation": 1, "recipient": "age1x", "age": "x"}',
    )
    assert_one_line_error(posing, "sealed envelope", "--seal-for")
    forged = bzzz("log", "append", "-k", "key.granted", "--home", str(home))
    assert_one_line_error(forged, "service")
    no_agent = bzzz("keys", "split", "--holders", "a,b", "--home", str(home))
    assert_one_line_error(no_agent, "no agent is running")


def test_keys_status_offline_and_the_audit_lists_the_ceremony(home: Path) -> None:
    status = bzzz("keys", "status", "--json", "--home", str(home))
    assert status.code == 0, status
    found_status = json.loads(status.out)
    assert found_status["running"] is False
    held = {(r["role"], r["held"]) for r in found_status["role_keys"]}
    assert held == {(r, True) for r in ("admin", "architect", "developer", "observer", "reviewer")}
    assert found_status["split"]["threshold"] == 2 and len(found_status["split"]["holders"]) == 2
    text = bzzz("keys", "status", "--home", str(home))
    assert "Admin key: split" in text.out and "2 of 2 shares" in text.out
    audit = bzzz("audit", "--json", "--home", str(home))
    assert audit.code == 0, audit
    report = json.loads(audit.out)
    assert report["ok"] is True, report["findings"]
    assert [c["ceremony"] for c in report["ceremonies"]] == ["split"]
    plain = bzzz("audit", "--home", str(home))
    assert "key ceremony: split" in plain.out
    # Nothing secret in the home in the clear: no role key's secret half.
    secrets = [b"AGE-SECRET-KEY-1"]
    own_age_key = (home / "age.key").read_bytes()
    assert own_age_key.startswith(b"AGE-SECRET-KEY-1")  # the node's own file, as before
    files = [p for p in home.rglob("*") if p.is_file() and p.name != "age.key"]
    assert not any(s in p.read_bytes() for p in files for s in secrets)


def test_a_grant_by_someone_else_than_the_admin_is_an_audit_finding(tmp_path: Path) -> None:
    agent = found(tmp_path)
    asyncio.run(_admin_duties(agent.home))
    with open_node(agent.home) as node:
        # The admin's own log, but naming a term nobody proved: as if forged.
        body = kk.grant_body(999, "developer", 7, "age1forged", OTHER, os.urandom(40))
        node.store.append(node.identity.signer, kk.GRANTED, encode_payload(body), 5)
    audit = bzzz("audit", "--json", "--home", str(agent.home))
    assert audit.code == 1, audit
    codes = [f["code"] for f in json.loads(audit.out)["findings"]]
    assert codes == ["key-not-admin"]
