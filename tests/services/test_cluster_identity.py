"""A cluster is its founding entry: a forged `cluster.founded` for the same name, in any
order and whoever's key sorts first, never changes who belongs; logs of keys that never
were members are not stored, and `bzzz audit` reports any a store holds."""

from __future__ import annotations

import asyncio
import json
import os
import re
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bzzz.domain import membership as ms
from bzzz.domain.entry import Entry
from bzzz.domain.identity import Ed25519Signer
from bzzz.domain.invite import decode_token, encode_token
from bzzz.domain.membership_audit import audit_membership
from bzzz.errors import PeerRefused
from bzzz.home.config import load_config
from bzzz.home.keys import load_identity
from bzzz.home.node import open_home_store, open_node
from bzzz.home.roles import load_roles
from bzzz.mesh.transport import dial
from bzzz.projections.membership import read_membership
from bzzz.services.bundle_import import import_bundle
from bzzz.store import EventStore
from bzzz.store.bundle import write_bundle
from bzzz.store.urls import resolve_store_url
from tests.support.agents import found, invite_token, join, stop_all, wait_for
from tests.support.cli import bzzz
from tests.support.logs import Logs

ROLES = load_roles(None)


def _signer() -> Ed25519Signer:
    return Ed25519Signer(os.urandom(32))


def _attack(forger_first: bool) -> tuple[Logs, bytes, dict[str, Ed25519Signer]]:
    """The true cluster (F founds it, admits B) and a forger M who founds a cluster of
    the same name, admits N, "removes" F and "admits" B as an admin. With
    `forger_first`, M's entries come first in Lamport order and M's key sorts first."""
    keys = {name: _signer() for name in "FBMN"}
    while (keys["M"].public_key < keys["F"].public_key) != forger_first:
        keys["M"] = _signer()
    logs = Logs()
    f, b, m, n = keys["F"], keys["B"], keys["M"], keys["N"]

    def forge() -> None:
        logs.add(m, ms.FOUNDED, ms.founded_body("c", "m", "admin"))
        logs.admit(m, n.public_key, "n", "admin")
        logs.add(m, ms.REMOVED, ms.removed_body(f.public_key, "mine now"))
        logs.admit(m, b.public_key, "b2", "admin")
        logs.add(n, "task.note", {"text": "hello from a non-member"})

    if forger_first:
        forge()
    founding = logs.add(f, ms.FOUNDED, ms.founded_body("c", "f", "admin"))
    logs.admit(f, b.public_key, "b", "developer")
    logs.add(b, "task.note", {"text": "hello"})
    if not forger_first:
        forge()
    return logs, founding.hash, keys


@pytest.mark.parametrize("forger_first", [True, False])
def test_a_forged_founding_entry_changes_nothing(forger_first: bool) -> None:
    logs, founding, keys = _attack(forger_first)
    acts = [ms.MembershipAct.of(e) for e in logs.entries if e.kind in ms.KINDS]
    state = ms.fold_membership(acts, ROLES, founding)
    assert state.founder == keys["F"].public_key and state.cluster_id == founding
    assert {k: m.role for k, m in state.members.items()} == {
        keys["F"].public_key: "admin",
        keys["B"].public_key: "developer",
    }
    assert not state.ever_member(keys["M"].public_key)
    assert not state.ever_member(keys["N"].public_key)
    # Without the cluster id nobody can tell which founding entry is true: no members.
    unanchored = ms.fold_membership(acts, ROLES)
    assert unanchored.founder is None and not unanchored.members
    findings = audit_membership(acts, ROLES, founding, {e.author for e in logs.entries})
    assert sorted(f.code for f in findings) == ["foreign-founding", "not-member", "not-member"]
    assert {f.author for f in findings if f.code == "not-member"} == {
        keys["M"].public_key.hex(),
        keys["N"].public_key.hex(),
    }


@st.composite
def _bundles(draw: st.DrawFn) -> tuple[Logs, bytes, dict[str, Ed25519Signer], int, list[Entry]]:
    logs, founding, keys = _attack(draw(st.booleans()))
    held = draw(st.integers(min_value=1, max_value=len(logs.of(keys["F"]))))
    picked: list[Entry] = []
    for name in "FBMN":
        log = logs.of(keys[name])
        picked += log[: draw(st.integers(min_value=0, max_value=len(log)))]
    order = draw(st.permutations(picked))
    return logs, founding, keys, held, list(order)


@settings(max_examples=40, deadline=None)
@given(_bundles())
def test_importing_any_bundle_changes_membership_only_by_valid_acts(
    case: tuple[Logs, bytes, dict[str, Ed25519Signer], int, list[Entry]],
) -> None:
    """The founder's node holds a prefix of its own log; a bundle holds any prefixes of
    every log, the forger's included, in any order. Afterwards the node's membership is
    what the true cluster's acts it now holds decide, and no forged log is stored."""
    logs, founding, keys, held, bundle = case
    genuine = {keys[n].public_key for n in "FB"}
    with tempfile.TemporaryDirectory() as tmp:
        store = EventStore(resolve_store_url(f"sqlite:///{tmp}/store.db"))
        with store:
            report = store.ingest([e.raw for e in logs.of(keys["F"])[:held]])
            assert not report.refused
            path = Path(tmp) / "bundle"
            write_bundle(path, [e.raw for e in bundle], founding)
            result = import_bundle(store, ROLES, founding, path)
            stored = set(store.heads())
            state = read_membership(store, ROLES, founding)
            kept = [
                e
                for e in logs.entries
                if e.author in genuine and e.seq <= (h.seq if (h := store.head(e.author)) else 0)
            ]
    assert stored <= genuine, "a log of a key that never was a member was stored"
    expected = ms.fold_membership(
        [ms.MembershipAct.of(e) for e in kept if e.kind in ms.KINDS], ROLES, founding
    )
    assert {k: m.role for k, m in state.members.items()} == {
        k: m.role for k, m in expected.members.items()
    }
    assert state.founder == keys["F"].public_key
    assert set(state.members) <= genuine
    assert all(r.code == "not-member" for r in result.refused), result.refused
    bundled_f = max((e.seq for e in bundle if e.author == keys["F"].public_key), default=0)
    if max(held, bundled_f) >= 3:  # B's admission is held: B's log is taken, whole
        bundled_b = max((e.seq for e in bundle if e.author == keys["B"].public_key), default=0)
        assert (store_b := [e for e in kept if e.author == keys["B"].public_key]) or not bundled_b
        assert len(store_b) == bundled_b


# Through the command line and real daemons


def _cluster_id(home: Path) -> bytes:
    found_id = load_config(home).mesh.cluster_id
    assert found_id is not None
    return bytes.fromhex(found_id)


def _forger(tmp_path: Path, below: bytes | None = None) -> Path:
    """A node that founds its own cluster named `test`, with a key sorting below
    `below` when given, and a note in its log."""
    while True:
        home = tmp_path / f"forger-{os.urandom(3).hex()}"
        assert bzzz("init", "--home", str(home), "--new-cluster", "test").code == 0
        if below is None or load_identity(home).public_key < below:
            break
    assert bzzz("log", "append", "--home", str(home), "--kind", "task.note").code == 0
    return home


def test_import_refuses_a_forged_cluster_and_audit_reports_what_slipped_in(
    tmp_path: Path,
) -> None:
    home = found(tmp_path, "a").home
    me = load_identity(home).public_key
    forger = _forger(tmp_path, below=me)
    bundle = tmp_path / "forged.bundle"
    assert bzzz("log", "export", str(bundle), "--home", str(forger)).code == 0
    # The bundle names the forger's cluster: refused whole, with the reason.
    result = bzzz("log", "import", str(bundle), "--home", str(home))
    assert result.code == 2 and "nothing imported" in result.err, result
    # The same logs in a bundle that claims our cluster: each log refused as not-member.
    raws = bundle.read_bytes()
    relabelled = tmp_path / "relabelled.bundle"
    relabelled.write_bytes(raws[:12] + _cluster_id(home) + raws[44:])
    result = bzzz("log", "import", str(relabelled), "--home", str(home), "--json")
    assert result.code == 1, result
    summary = json.loads(result.out)
    assert summary["accepted"] == 0 and {r["code"] for r in summary["refused"]} == {"not-member"}
    listed = json.loads(bzzz("member", "list", "--home", str(home), "--json").out)
    assert [m["agent_id"] for m in listed["members"]] == [me.hex()]
    assert bzzz("audit", "--home", str(home)).code == 0
    # A store that holds the forged log anyway (an older bzzz took it): membership stays
    # anchored, and the audit reports the log and its founding entry.
    with open_home_store(home) as store, open_home_store(forger) as theirs:
        store.ingest(s.raw for s in theirs.notifications(after=0))
    with open_node(home) as node:
        state = read_membership(node.store, node.roles, _cluster_id(home))
    assert set(state.members) == {me}
    audit = bzzz("audit", "--home", str(home), "--json")
    assert audit.code == 1
    codes = sorted(f["code"] for f in json.loads(audit.out)["findings"])
    assert codes == ["foreign-founding", "not-member"]


def test_a_forged_founding_in_a_running_nodes_store_does_not_let_the_forger_in(
    tmp_path: Path,
) -> None:
    a = found(tmp_path, "a").start()
    agents = [a]
    try:
        b = join(tmp_path, "b", a).start()
        agents.append(b)
        wait_for(lambda: a.connected(), what="a and b connected")
        forger = _forger(tmp_path, below=load_identity(a.home).public_key)
        with open_home_store(a.home) as store, open_home_store(forger) as theirs:
            store.ingest(s.raw for s in theirs.notifications(after=0))
        time.sleep(1.5)  # the agent re-reads its store once a second
        mallory = load_identity(forger)

        async def forger_dials() -> str:
            try:
                conn, _, _ = await dial(mallory, "127.0.0.1", a.port, lambda _: True)
            except PeerRefused:
                return "refused"
            conn.close()
            return "let in"

        assert asyncio.run(forger_dials()) == "refused"
        seq = b.append(text="the true members still replicate")
        wait_for(lambda: a.heads().get(b.agent_id, 0) >= seq, what="b's entry at a")
        assert b.agent_id in a.connected()
    finally:
        stop_all(list(reversed(agents)))


def test_a_tampered_invite_spends_nothing_and_leaves_nothing(tmp_path: Path) -> None:
    a = found(tmp_path, "a").start()
    try:
        token = decode_token(invite_token(a))
        ids = token.cluster_id
        forged = encode_token(replace(token, cluster_id=bytes([ids[0] ^ 1]) + ids[1:]))
        joiner = tmp_path / "b"
        result = bzzz("join", forged, "--home", str(joiner), "--name", "b")
        assert result.code == 2, result
        assert "ask the inviter for a new one" in result.err, result.err
        assert "Traceback" not in result.err
        assert not joiner.exists(), "a failed join left files behind"
        listed = json.loads(bzzz("member", "list", "--home", str(a.home), "--json").out)
        assert len(listed["members"]) == 1
        genuine = bzzz("join", encode_token(token), "--home", str(joiner), "--name", "b")
        assert genuine.code == 0, genuine.err
        listed = json.loads(bzzz("member", "list", "--home", str(a.home), "--json").out)
        assert len(listed["members"]) == 2
        assert load_config(joiner).mesh.cluster_id == token.cluster_id.hex()
    finally:
        stop_all([a])


def test_a_home_from_before_cluster_ids_is_pinned_only_when_unambiguous(tmp_path: Path) -> None:
    home = found(tmp_path, "a").home
    cluster_id = _cluster_id(home)
    config = home / "config.yaml"
    unpinned = re.sub(r"\n +cluster_id: [0-9a-f]+", "", config.read_text())
    config.write_text(unpinned)
    with open_node(home) as node:
        assert node.config.mesh.cluster_id == cluster_id.hex()
    assert _cluster_id(home) == cluster_id  # written back
    forger = _forger(tmp_path)
    with open_home_store(home) as store, open_home_store(forger) as theirs:
        store.ingest(s.raw for s in theirs.notifications(after=0))
    config.write_text(unpinned)
    result = bzzz("member", "list", "--home", str(home))
    assert result.code == 2 and "2 founding entries" in result.err, result


def test_a_join_that_cannot_reach_its_inviter_leaves_nothing(tmp_path: Path) -> None:
    a = found(tmp_path, "a")  # its agent is not running
    joiner = tmp_path / "b"
    result = bzzz("join", invite_token(a), "--home", str(joiner), "--name", "b")
    assert result.code == 2 and "cannot reach the inviter" in result.err, result
    assert not joiner.exists()
    joiner.mkdir()  # an empty folder given as the home stays, empty
    result = bzzz("join", invite_token(a), "--home", str(joiner), "--name", "b")
    assert result.code == 2 and list(joiner.iterdir()) == []


def test_a_join_completes_when_the_inviter_holds_a_log_that_does_not_belong(
    tmp_path: Path,
) -> None:
    """An older bzzz may have stored a non-member's log: it is neither sent nor waited
    for, and the newcomer is admitted and caught up as usual."""
    a = found(tmp_path, "a")
    stranger = _signer()
    with open_home_store(a.home) as store:
        store.ingest([_note(stranger).raw])
    a.start()
    try:
        began = time.monotonic()
        b = join(tmp_path, "b", a)
        assert time.monotonic() - began < 20
        with open_home_store(b.home) as store:
            assert store.head(stranger.public_key) is None
            assert store.head(load_identity(a.home).public_key) is not None
    finally:
        stop_all([a])


def _note(signer: Ed25519Signer) -> Entry:
    logs = Logs()
    return logs.add(signer, "task.note", {"text": "a log that does not belong here"})
