"""Sealing and role-key rules, pure: the envelope and its checks, who is entitled to
which role key, what the admin owes (first keys, rotations, grants), the ceremonies'
fold, and the text age writes identities in. No disk, no keys on file."""

from __future__ import annotations

import os
from typing import Any

import bech32  # type: ignore[import-untyped,unused-ignore]
import cbor2
import pyrage
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey
from hypothesis import given, settings
from hypothesis import strategies as st

from bzzz.domain import key_ceremony as kc
from bzzz.domain import keys as kk
from bzzz.domain.age_identity import age_identity_text
from bzzz.domain.entry import Entry, create_entry
from bzzz.domain.membership import Member, Membership
from bzzz.domain.payload import encode_payload
from bzzz.domain.sealing import (
    DAMAGED,
    MISMATCH,
    OPEN,
    Envelope,
    check_opened,
    envelope_body,
    inner_plaintext,
    looks_sealed,
    parse_envelope,
)
from bzzz.home.roles import load_roles
from tests.conftest import make_signer

ROLES = load_roles(None)
ADMIN, ARCH, DEV, DEV2, REV = (make_signer(n).public_key for n in range(1, 6))


def _members(**roles: str) -> Membership:
    keys = {"admin": ADMIN, "arch": ARCH, "dev": DEV, "dev2": DEV2, "rev": REV}
    state = Membership()
    for name, role in roles.items():
        state.members[keys[name]] = Member(keys[name], role, name, None, 1)
    return state


# The envelope


def test_an_envelope_round_trips_and_a_plain_payload_is_not_one() -> None:
    envelope = Envelope("developer", 2, "age1xyz", b"\x01\x02")
    body = encode_payload(envelope_body(envelope))
    assert parse_envelope(body) == envelope
    assert parse_envelope(encode_payload({"text": "hello"})) is None
    assert looks_sealed(envelope_body(envelope))
    assert not looks_sealed({"sealed_for": "developer"})


@settings(max_examples=300, deadline=None)
@given(
    st.one_of(
        st.binary(max_size=200),
        st.dictionaries(
            st.sampled_from(["sealed_for", "generation", "recipient", "age", "x"]),
            st.one_of(
                st.none(),
                st.integers(),
                st.text(max_size=80),
                st.binary(max_size=40),
                st.lists(st.integers(), max_size=3),
                st.floats(allow_nan=True),
            ),
            max_size=5,
        ).map(lambda d: cbor2.dumps(d)),
    )
)
def test_hostile_bodies_never_raise(body: bytes) -> None:
    envelope = parse_envelope(body)
    if envelope is not None:
        assert isinstance(envelope.ciphertext, bytes) and envelope.generation >= 1
        opened = check_opened(body, ADMIN, "task.note", envelope)
        assert opened.state in (DAMAGED, MISMATCH, OPEN)


def _inner(author: bytes, kind: str, role: str, body: Any) -> bytes:
    return cbor2.dumps({"author": author, "kind": kind, "sealed_for": role, "body": body})


def test_an_opened_plaintext_counts_only_for_its_own_author_kind_and_role() -> None:
    envelope = Envelope("developer", 1, "age1xyz", b"c")
    plaintext = inner_plaintext(DEV, "task.note", "developer", {"secret": "plan"})
    opened = check_opened(plaintext, DEV, "task.note", envelope)
    assert opened.state == OPEN and opened.payload == {"secret": "plan"}
    replayed = check_opened(plaintext, REV, "task.note", envelope)
    assert replayed.state == MISMATCH and replayed.payload is None
    assert "another author" in replayed.label()
    assert check_opened(plaintext, DEV, "hmmm.msg", envelope).state == MISMATCH
    other_role = Envelope("architect", 1, "age1xyz", b"c")
    assert check_opened(plaintext, DEV, "task.note", other_role).state == MISMATCH
    for bad in (b"", b"\xff", cbor2.dumps([1]), _inner(b"short", "task.note", "developer", {})):
        assert check_opened(bad, DEV, "task.note", envelope).state == DAMAGED
    not_a_map = _inner(DEV, "task.note", "developer", [1, 2])
    assert check_opened(not_a_map, DEV, "task.note", envelope).state == DAMAGED


# Entitlements and the admin's plan


def test_entitlement_follows_roles_yaml_can_read_and_master_reads_all() -> None:
    state = _members(admin="admin", arch="architect", dev="developer", rev="reviewer")
    assert kk.entitled(state, ROLES, "developer") == sorted([ADMIN, ARCH, DEV])
    assert kk.entitled(state, ROLES, "reviewer") == sorted([ADMIN, ARCH, DEV, REV])
    assert kk.entitled(state, ROLES, "architect") == sorted([ADMIN, ARCH])
    assert kk.entitled(state, ROLES, "observer") == [ADMIN]


_hashes = iter(range(1, 10**6))


def _grant(role: str, gen: int, recipient: str, to: bytes | None, term: int = 1) -> kk.Grant:
    n = next(_hashes)
    split = None if to is not None else b"s" * 32
    return kk.Grant(ADMIN, term, role, gen, recipient, to, split, b"x", n.to_bytes(32), n, n)


LEADERS = {1: ADMIN, 2: ADMIN}


def _granted(role: str, gen: int, recipient: str, *to: bytes) -> list[kk.Grant]:
    return [_grant(role, gen, recipient, member) for member in to]


def test_the_first_admin_round_gives_each_role_a_key_for_its_entitled_members() -> None:
    state = _members(admin="admin", dev="developer")
    plan = kk.plan_keys(kk.KeyBook(), state, ROLES, held=set())
    by_role = {r.role: r for r in plan.rotations}
    assert set(by_role) == set(ROLES.by_name)  # the admin reads every role
    assert by_role["developer"].to == tuple(sorted([ADMIN, DEV]))
    assert by_role["developer"].generation == 1 and by_role["developer"].reason == kk.FIRST_KEY
    assert plan.grants == []


def test_removal_or_a_role_change_rotates_and_a_newcomer_gets_the_history() -> None:
    grants = _granted("developer", 1, "age1dev1", ADMIN, DEV, DEV2)
    book = kk.fold_grants(grants, LEADERS, {})
    # Nothing owed while everyone who holds it is still entitled.
    same = _members(admin="admin", dev="developer", dev2="developer")
    plan = kk.plan_keys(book, same, ROLES, held={"age1dev1"})
    assert [r for r in plan.rotations if r.role == "developer"] == []
    # dev2 is removed: the developer key rotates to the two still entitled.
    removed = _members(admin="admin", dev="developer")
    rotation = next(
        r
        for r in kk.plan_keys(book, removed, ROLES, {"age1dev1"}).rotations
        if r.role == "developer"
    )
    assert rotation.generation == 2 and rotation.reason == kk.LOST_ACCESS
    assert rotation.to == tuple(sorted([ADMIN, DEV]))
    # dev2 becomes an observer: the same.
    moved = _members(admin="admin", dev="developer", dev2="observer")
    assert any(
        r.role == "developer" and r.reason == kk.LOST_ACCESS
        for r in kk.plan_keys(book, moved, ROLES, {"age1dev1"}).rotations
    )
    # After the rotation is granted, nothing more is owed for developer.
    book = kk.fold_grants([*grants, *_granted("developer", 2, "age1dev2", ADMIN, DEV)], LEADERS, {})
    after = kk.plan_keys(book, removed, ROLES, {"age1dev1", "age1dev2"})
    assert [r for r in after.rotations if r.role == "developer"] == []
    assert [g for g in after.grants if g.role == "developer"] == []
    # A newcomer architect (reads developer) is owed both generations the admin holds.
    newcomer = _members(admin="admin", dev="developer", arch="architect")
    owed = [
        g
        for g in kk.plan_keys(book, newcomer, ROLES, {"age1dev1", "age1dev2"}).grants
        if g.role == "developer"
    ]
    assert {(g.generation, g.to) for g in owed} == {(1, ARCH), (2, ARCH)}


def test_an_admin_without_the_latest_key_rotates_rather_than_leave_a_member_out() -> None:
    book = kk.fold_grants(_granted("architect", 1, "age1arch1", ADMIN, ARCH), LEADERS, {})
    state = _members(admin="admin", arch="architect", dev="architect")
    plan = kk.plan_keys(book, state, ROLES, held=set())
    rotation = next(r for r in plan.rotations if r.role == "architect")
    assert rotation.reason == kk.NOT_HELD and rotation.generation == 2
    held = kk.plan_keys(book, state, ROLES, held={"age1arch1"})
    assert [r for r in held.rotations if r.role == "architect"] == []
    assert [(g.role, g.to) for g in held.grants if g.role == "architect"] == [("architect", DEV)]


def test_the_master_is_owed_every_held_generation_once_a_split_exists() -> None:
    split = b"s" * 32
    book = kk.fold_grants(_granted("developer", 1, "age1dev1", ADMIN, DEV), LEADERS, {})
    state = _members(admin="admin", dev="developer")
    plan = kk.plan_keys(book, state, ROLES, {"age1dev1"}, master_split=split)
    assert [(g.recipient, g.to, g.split) for g in plan.grants] == [("age1dev1", None, split)]
    book = kk.fold_grants(
        [
            *_granted("developer", 1, "age1dev1", ADMIN, DEV),
            _grant("developer", 1, "age1dev1", None),
        ],
        LEADERS,
        {},
    )
    assert kk.plan_keys(book, state, ROLES, {"age1dev1"}, master_split=split).grants == []


def test_only_grants_by_the_proven_leader_of_their_term_count() -> None:
    forged = kk.Grant(DEV, 1, "developer", 1, "age1evil", DEV, None, b"x", b"h" * 32, 5, 1)
    late = _grant("developer", 1, "age1late", DEV, term=1)
    book = kk.fold_grants([forged, late], LEADERS, {1: late.lamport - 1})
    assert book.generations == {}
    assert [why for _, why in book.ignored] == [
        "not written by the proven leader of term 1",
        "written after a newer term than 1 was proven",
    ]
    clash = [_grant("developer", 1, "age1k", DEV), _grant("architect", 1, "age1k", ARCH)]
    book = kk.fold_grants(clash, LEADERS, {})
    assert book.latest("architect") is None and len(book.ignored) == 1


def test_grant_entries_parse_strictly_and_their_plaintext_binds_them() -> None:
    signer = make_signer(1)

    def entry(body: dict[str, Any]) -> Entry:
        return create_entry(
            signer, seq=1, prev=None, lamport=1, ts=1, kind=kk.GRANTED, body=encode_payload(body)
        )

    good = kk.grant_body(3, "developer", 1, "age1abc", DEV, b"sealed")
    grant = kk.parse_grant(entry(good))
    assert grant is not None and grant.to == DEV and grant.term == 3
    master = kk.grant_body(3, "developer", 1, "age1abc", None, b"sealed", b"s" * 32)
    assert kk.parse_grant(entry(master)) is not None
    for broken in (
        {**good, "to": b"short"},
        {**good, "generation": 0},
        {**good, "sealed": "text"},
        {**master, "split": None},
        {**good, "split": b"s" * 32},
    ):
        assert kk.parse_grant(entry(broken)) is None
    plaintext = kk.grant_plaintext(ADMIN, "developer", 1, "age1abc", DEV, "AGE-SECRET-KEY-1X")
    assert grant is not None
    assert kk.secret_of_grant(grant, plaintext) == "AGE-SECRET-KEY-1X"
    other = kk.grant_plaintext(ADMIN, "developer", 1, "age1abc", REV, "AGE-SECRET-KEY-1X")
    assert kk.secret_of_grant(grant, other) is None


# The ceremonies


def _entry(signer_n: int, seq: int, lamport: int, kind: str, body: dict[str, Any]) -> Entry:
    return create_entry(
        make_signer(signer_n),
        seq=seq,
        prev=None if seq == 1 else b"p" * 32,
        lamport=lamport,
        ts=lamport,
        kind=kind,
        body=encode_payload(body),
    )


def test_the_ceremony_fold_counts_holders_consents_and_refuses_strangers() -> None:
    holders = [ARCH, DEV, DEV2]
    split = _entry(1, 1, 10, kc.SPLIT, kc.split_body(1, 2, holders, "age1m", [b"a", b"b", b"c"]))
    request = _entry(5, 1, 20, kc.REQUESTED, kc.request_body(split.hash, "lost the admin"))
    by_holder = _entry(2, 1, 30, kc.RELEASED, kc.release_body(request.hash, split.hash, b"s"))
    again = _entry(2, 2, 31, kc.RELEASED, kc.release_body(request.hash, split.hash, b"t"))
    stranger = _entry(5, 2, 32, kc.RELEASED, kc.release_body(request.hash, split.hash, b"u"))
    short = _entry(
        5,
        3,
        40,
        kc.RECONSTRUCTED,
        kc.outcome_body(request.hash, split.hash, "lost", True, [ARCH], ""),
    )
    forged_split = _entry(3, 1, 11, kc.SPLIT, kc.split_body(1, 2, holders, "age1x", [b"a"] * 3))
    state = kc.fold_ceremonies(
        [short, stranger, again, by_holder, request, split, forged_split],
        {1: ADMIN},
        {},
        members=[ADMIN, ARCH, DEV, DEV2, REV],
    )
    assert list(state.splits) == [split.hash] and state.current is not None
    asked = state.requests[request.hash]
    assert list(asked.releases) == [ARCH] and asked.releases[ARCH].hash == by_holder.hash
    assert not asked.done and asked.outcomes == []
    codes = sorted(p.code for p in state.problems)
    assert codes == ["key-not-admin", "key-not-holder", "key-short-consent"]
    rows = kc.ceremony_json(state, {ARCH: "arch"})
    assert [r["ceremony"] for r in rows] == ["split", "reconstruct"]
    assert rows[1]["status"] == "waiting (1 of 2 consents)"


def test_split_requests_are_checked_before_anything_is_made() -> None:
    members = [ADMIN, ARCH, DEV]
    assert kc.check_split_request([ARCH, DEV], 2, members) is None
    assert "twice" in (kc.check_split_request([ARCH, ARCH], 2, members) or "")
    assert "threshold" in (kc.check_split_request([ARCH, DEV], 3, members) or "")
    assert "threshold" in (kc.check_split_request([ARCH, DEV], 1, members) or "")
    assert "not a member" in (kc.check_split_request([ARCH, REV], 2, members) or "")


def test_share_plaintexts_bind_kind_author_and_recipient() -> None:
    plaintext = kc.share_plaintext(kc.SPLIT, ADMIN, DEV, "age1m", "words words")
    assert kc.share_of(plaintext, kc.SPLIT, ADMIN, DEV, "age1m") == "words words"
    assert kc.share_of(plaintext, kc.RELEASED, ADMIN, DEV, "age1m") is None
    assert kc.share_of(plaintext, kc.SPLIT, ADMIN, REV, "age1m") is None
    assert kc.share_of({**plaintext, "extra": 1}, kc.SPLIT, ADMIN, DEV, "age1m") is None


def test_bech32_gives_the_identity_age_itself_derives() -> None:
    secret = os.urandom(32)
    identity = pyrage.x25519.Identity.from_str(age_identity_text(secret))
    public = X25519PrivateKey.from_private_bytes(secret).public_key().public_bytes_raw()
    assert str(identity.to_public()) == bech32.bech32_encode(
        "age", bech32.convertbits(public, 8, 5)
    )
