"""The mesh's pure rules: membership, invite tokens, wire messages and presence."""

from __future__ import annotations

import contextlib
import re

import cbor2
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bzzz.domain import membership as ms
from bzzz.domain.election import EVERY_VOTER, Kind, Message
from bzzz.domain.invite import (
    InviteToken,
    decode_token,
    encode_token,
    join_username,
    parse_join_username,
    secret_hash,
)
from bzzz.domain.payload import encode_payload
from bzzz.domain.presence import (
    Availability,
    ElectionMessage,
    Heartbeat,
    open_presence,
    sign_presence,
)
from bzzz.domain.roles import (
    can_decrypt,
    can_make_decisions,
    is_admin_role,
    may_vote,
    parse_roles,
)
from bzzz.domain.standing import Standing, TransferPolicy, Watch, candidate_score, pick_successor
from bzzz.domain.wire import (
    MAX_FRAME_BYTES,
    Entries,
    Ephemeral,
    Have,
    Hello,
    decode_message,
    encode_message,
    frame_length,
)
from bzzz.errors import ConfigError, ProtocolError, UsageError
from tests.conftest import make_signer

A, B, C = (make_signer(n).public_key for n in (1, 2, 3))
SECRET = b"s" * 16


class Log:
    """Builds membership acts with increasing Lamport clocks, per author seqs."""

    def __init__(self) -> None:
        self.lamport = 0
        self.seqs: dict[bytes, int] = {}
        self.acts: list[ms.MembershipAct] = []

    def add(self, author: bytes, kind: str, body: dict[str, object], ts: int = 0) -> None:
        self.lamport += 1
        self.seqs[author] = self.seqs.get(author, 0) + 1
        self.acts.append(
            ms.MembershipAct(
                author, self.seqs[author], self.lamport, ts, kind, encode_payload(body)
            )
        )

    def fold(self) -> ms.Membership:
        return ms.fold_membership(self.acts, ROLES)


ROLES = parse_roles(
    {
        "roles": {
            "admin": {"authority": "master"},
            "lead": {"authority": "decision", "can_read": ["developer"]},
            "developer": {"authority": "coordination"},
            "reviewer": {"authority": "suggestion"},
            "observer": {"authority": "read_only"},
        }
    },
    "test roles",
)


def founded() -> Log:
    log = Log()
    log.add(A, ms.FOUNDED, ms.founded_body("c", "alpha", "admin"))
    return log


def invite_and_admit(
    log: Log, inviter: bytes, member: bytes, secret: bytes = SECRET, role: str = "developer"
) -> None:
    log.add(inviter, ms.INVITED, ms.invited_body(secret_hash(secret), role, 1000))
    log.add(inviter, ms.ADMITTED, ms.admitted_body(member, "b", role, secret_hash(secret)))


def test_authority_limits_invites_removals_and_role_changes() -> None:
    log = founded()
    invite_and_admit(log, A, B)  # a developer
    log.add(B, ms.REMOVED, ms.removed_body(A, "coup"))  # coordination may not remove
    log.add(B, ms.INVITED, ms.invited_body(secret_hash(b"x" * 16), "admin", 1000))
    invite_and_admit(log, B, C, secret=b"y" * 16, role="reviewer")  # may invite below
    state = log.fold()
    assert set(state.members) == {A, B, C} and state.members[C].role == "reviewer"
    reasons = [reason for _, reason in state.ignored]
    assert "a developer may not remove a admin" in reasons
    assert "a developer may not invite a admin" in reasons
    log.add(A, ms.ROLE_CHANGED, ms.role_changed_body(B, "lead"))
    log.add(B, ms.ROLE_CHANGED, ms.role_changed_body(A, "reviewer"))  # lead < admin
    log.add(B, ms.REMOVED, ms.removed_body(C, "done"))
    state = log.fold()
    assert state.members[B].role == "lead" and state.members[A].role == "admin"
    assert set(state.members) == {A, B}


def test_role_rules() -> None:
    admin, lead, dev, obs = (ROLES.get(n) for n in ("admin", "lead", "developer", "observer"))
    assert admin and lead and dev and obs
    assert can_decrypt(lead, "developer") and not can_decrypt(dev, "lead")
    assert can_decrypt(admin, "anything") and can_decrypt(dev, "developer")
    assert can_make_decisions(lead) and not can_make_decisions(dev)
    assert is_admin_role(admin) and not is_admin_role(lead)
    assert may_vote(dev) and not may_vote(obs)


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ({"roles": {"x": {"authority": "boss"}}}, "role 'x': authority: must be one of master"),
        ({"roles": {"x": {"authority": "master", "colour": 1}}}, "role 'x': colour: unknown"),
        ({"roles": {"x": {"authority": "master", "can_read": ["y"]}}}, "can_read: no role"),
        ({"roles": {"x": {"authority": "read_only", "votes": True}}}, "read_only role never"),
        ({"roles": {"X": {"authority": "master"}}}, "role name 'X'"),
        ({"roles": {}}, "no roles defined"),
        ([], "top-level 'roles:'"),
    ],
)
def test_roles_file_errors_name_the_role_and_field(spec: object, message: str) -> None:
    with pytest.raises(ConfigError, match=re.escape(message)):
        parse_roles(spec, "roles.yaml")


def test_founder_admits_and_removes() -> None:
    log = founded()
    invite_and_admit(log, A, B, role="admin")
    state = log.fold()
    assert state.cluster == "c" and state.founder == A
    assert set(state.members) == {A, B} and state.members[B].admitted_by == A
    log.add(B, ms.REMOVED, ms.removed_body(A, "bye"))
    state = log.fold()
    assert set(state.members) == {B} and A in state.removed


def test_acts_of_non_members_and_reused_or_expired_invites_are_ignored() -> None:
    log = founded()
    invite_and_admit(log, C, B)  # C is no member: ignored
    assert set(log.fold().members) == {A}
    invite_and_admit(log, A, B)
    log.add(A, ms.ADMITTED, ms.admitted_body(C, "c", "developer", secret_hash(SECRET)))
    assert C not in log.fold().members  # the invite was used
    log.add(A, ms.INVITED, ms.invited_body(secret_hash(b"t" * 16), "developer", 5))
    log.add(A, ms.ADMITTED, ms.admitted_body(C, "c", "developer", secret_hash(b"t" * 16)), ts=6)
    state = log.fold()
    assert C not in state.members
    assert [reason for _, reason in state.ignored][-1] == "the invite had expired"


def test_only_the_first_entry_of_a_log_founds_and_only_once() -> None:
    log = Log()
    log.add(A, "task.note", {})
    log.add(A, ms.FOUNDED, ms.founded_body("c", "alpha", "developer"))
    assert log.fold().founder is None
    log = founded()
    log.add(B, ms.FOUNDED, ms.founded_body("other", "beta", "developer"))
    assert log.fold().founder == A


def test_membership_is_the_same_whatever_order_acts_arrive_in() -> None:
    log = founded()
    invite_and_admit(log, A, B)
    log.add(B, ms.REMOVED, ms.removed_body(A, "x"))
    forward = log.fold()
    backward = ms.fold_membership(reversed(log.acts), ROLES)
    assert forward.members == backward.members


def test_open_invite_checks_inviter_use_and_expiry() -> None:
    log = founded()
    log.add(A, ms.INVITED, ms.invited_body(secret_hash(SECRET), "developer", 1000))
    state = log.fold()
    assert state.open_invite(secret_hash(SECRET), A, 999) is not None
    assert state.open_invite(secret_hash(SECRET), B, 999) is None
    assert state.open_invite(secret_hash(SECRET), A, 1001) is None


def test_garbage_bodies_are_ignored_not_fatal() -> None:
    log = founded()
    log.acts.append(ms.MembershipAct(A, 9, 99, 0, ms.ADMITTED, b"\xff\xfe"))
    log.acts.append(ms.MembershipAct(A, 10, 100, 0, ms.REMOVED, cbor2.dumps({"member": 5})))
    state = log.fold()
    assert set(state.members) == {A} and len(state.ignored) == 2


def test_invite_token_round_trip_and_damage() -> None:
    token = InviteToken("c", bytes(32), "127.0.0.1", 7420, A, SECRET, "developer", 123)
    text = encode_token(token)
    assert decode_token(text) == token and decode_token(f"  {text}\n") == token
    with pytest.raises(UsageError, match="not an invite token"):
        decode_token("hello")
    with pytest.raises(UsageError, match="damaged"):
        decode_token(text[:-5])
    assert parse_join_username(join_username(SECRET, "beta.one")) == (SECRET, "beta.one")
    assert parse_join_username("bzzz") is None and parse_join_username("join.zz.x") is None


def test_wire_round_trip() -> None:
    for message in (
        Hello(A, "alpha", b"c" * 32, "127.0.0.1:1", {B: 3}),
        Hello(A, "alpha", b"", "127.0.0.1:1", {}),
        Entries([b"x" * 10]),
        Have({A: 1}),
        Ephemeral(b"sig"),
    ):
        frame = encode_message(message)
        assert frame_length(frame[:4]) == len(frame) - 4
        assert decode_message(frame[4:]) == message


def test_wire_refuses_oversized_and_malformed() -> None:
    with pytest.raises(ProtocolError) as caught:
        frame_length((MAX_FRAME_BYTES + 1).to_bytes(4, "big"))
    assert caught.value.code == "oversized-frame"
    for body in (
        ["hello", [b"short", "n", b"", "l", {}]],
        ["hello", [A, "n", "c", "l", {}]],
        ["hello", [A, "n", b"short", "l", {}]],
        ["entries", []],
        ["entries", ["text"]],
        ["have", {A: -1}],
        ["nope", 1],
        [1, 2, 3],
    ):
        with pytest.raises(ProtocolError):
            decode_message(cbor2.dumps(body))


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=600))
def test_random_frames_only_ever_raise_protocol_errors(data: bytes) -> None:
    with contextlib.suppress(ProtocolError):
        decode_message(data)


def test_presence_is_signed_and_checked() -> None:
    signer = make_signer(1)
    beat = Heartbeat(signer.public_key, 5, 1, echo=4, held_us=250)
    assert open_presence(sign_presence(signer, beat)) == beat
    standing = Standing(120, 1, 350, 2048, 800)
    offer = Availability(signer.public_key, 5, "ready", 0, 2, ("python",), ("llama3",), standing)
    assert open_presence(sign_presence(signer, offer)) == offer
    unmeasured = Availability(
        signer.public_key, 5, "ready", 0, 2, (), (), Standing(1, 0, 0, 0, None)
    )
    assert open_presence(sign_presence(signer, unmeasured)) == unmeasured
    signed = bytearray(sign_presence(signer, beat))
    signed[-1] ^= 1
    with pytest.raises(ProtocolError) as caught:
        open_presence(bytes(signed))
    assert caught.value.code == "bad-signature"
    with pytest.raises(ProtocolError):
        open_presence(b"\x00garbage")


def test_only_a_beat_may_go_to_every_voter() -> None:
    signer = make_signer(1)
    beat = ElectionMessage(Message(Kind.BEAT, 3, signer.public_key, EVERY_VOTER, stamp=7))
    assert open_presence(sign_presence(signer, beat)) == beat
    for kind in set(Kind) - {Kind.BEAT}:
        vote = ElectionMessage(Message(kind, 3, signer.public_key, EVERY_VOTER))
        with pytest.raises(ProtocolError) as caught:
            open_presence(sign_presence(signer, vote))
        assert caught.value.code == "malformed"


def test_candidate_score_rewards_uptime_capabilities_headroom_and_a_near_network() -> None:
    settled = Standing(3600, 8, 0, 8192, 100)
    assert candidate_score(settled) > 95
    assert candidate_score(Standing(10, 8, 0, 8192, 100)) < candidate_score(settled)
    assert candidate_score(Standing(3600, 0, 0, 8192, 100)) == pytest.approx(
        candidate_score(settled) - 20, abs=0.01
    )
    assert candidate_score(Standing(3600, 8, 2000, 8192, 100)) < candidate_score(settled) - 19
    far = Standing(3600, 8, 0, 8192, 200_000)
    assert candidate_score(far) < candidate_score(settled) - 15
    assert 0 <= candidate_score(Standing(0, 0, 5000, 0, None)) <= 100


def test_leadership_moves_only_to_a_markedly_better_node_that_stays_better() -> None:
    policy = TransferPolicy(margin=15, sustain_ms=30_000, min_tenure_ms=60_000)
    b, c = b"b" * 32, b"c" * 32
    # Not better by the margin: nothing to watch.
    assert pick_successor(policy, 60, {b: 74}, None, 100_000, 0) == (None, None)
    # Better: watched first, handed over only once it stayed better for 30 s.
    target, watch = pick_successor(policy, 60, {b: 80, c: 70}, None, 100_000, 0)
    assert target is None and watch == Watch(b, 100_000)
    assert pick_successor(policy, 60, {b: 80}, watch, 129_999, 0)[0] is None
    assert pick_successor(policy, 60, {b: 80}, watch, 130_000, 0) == (b, None)
    # A dip below the margin starts the wait over.
    assert pick_successor(policy, 60, {b: 70}, watch, 120_000, 0) == (None, None)
    # A new leader keeps the lead for its minimum tenure even against a better node.
    assert pick_successor(policy, 60, {b: 80}, watch, 130_000, 110_000)[0] is None
    assert pick_successor(policy, 60, {}, watch, 130_000, 0) == (None, None)
