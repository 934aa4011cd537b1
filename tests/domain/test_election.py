"""The election state machine under a simulated network: thousands of seeded runs with
partitions, pauses, crashes, loss, duplication and reordering never elect two leaders in
one term. A failing run names its seed; BZZZ_SIM_SEED=N replays just that one."""

from __future__ import annotations

import itertools
import os
import random

import pytest

from bzzz.domain import leadership as lead
from bzzz.domain.election import (
    EVERY_VOTER,
    LEADER,
    Action,
    BecameLeader,
    Election,
    ElectionStarted,
    Kind,
    Message,
    PersistVote,
    Send,
    Settings,
    Trigger,
)
from bzzz.domain.payload import encode_payload
from tests.support.election_sim import Faults, Sim

RUNS = int(os.environ.get("BZZZ_SIM_RUNS", "1500"))


def _seeds(offset: int) -> list[int]:
    one = os.environ.get("BZZZ_SIM_SEED")
    return [int(one)] if one else [offset + n for n in range(RUNS)]


@pytest.mark.parametrize("size", [3, 5])
def test_never_two_leaders_in_a_term_a_stale_lease_or_an_outranked_grant(size: int) -> None:
    elected = leased = transfers = grants = 0
    for seed in _seeds(size * 1_000_000):
        sim = Sim(seed, size, Faults.all()).run()
        elected += bool(sim.leaders)
        leased += sim.leased_checks
        transfers += sim.transfers
        grants += sim.grants
    assert elected > 0.9 * len(_seeds(0))  # the runs did elect: the checks were exercised
    assert leased > 10 * len(_seeds(0))
    assert transfers > 0.2 * len(_seeds(0))  # and leadership did change hands on request
    assert grants > 10 * len(_seeds(0))  # and leased leaders granted claims throughout


@pytest.mark.parametrize("size", [3, 5])
def test_a_healthy_cluster_elects_one_leader_quickly_and_keeps_it(size: int) -> None:
    for seed in range(200):
        sim = Sim(seed, size, Faults()).run()
        assert sim.first_leader_ms is not None and sim.first_leader_ms < 2500, seed
        assert len(sim.leaders) == 1, f"seed {seed}: leadership changed without a fault"
        assert len(sim.current_leaders()) == 1


def test_a_minority_partition_never_has_a_leader() -> None:
    sim = Sim(7, 5, Faults(), duration_ms=3000).run()
    (leader,) = sim.current_leaders()
    minority = frozenset([leader, next(i for i in sim.ids if i != leader)])
    sim.groups = [minority, frozenset(sim.ids) - minority]
    sim.advance(9000)
    leaders = sim.current_leaders()
    assert len(leaders) == 1 and not leaders & minority  # deposed by CheckQuorum
    assert sim.nodes[leader].trigger == Trigger.QUORUM_LOSS


def test_votes_are_persisted_before_they_are_sent() -> None:
    a, b, c = (bytes([n]) * 32 for n in (1, 2, 3))
    rng = random.Random(1)
    node = Election(b, frozenset([a, b, c]))
    node.start(0, rng)
    actions = node.receive(Message(Kind.VOTE, 1, a, b), 5000, rng)
    assert isinstance(actions[0], PersistVote) and actions[0] == PersistVote(1, a)
    assert isinstance(actions[1], Send) and actions[1].message.granted
    again = node.receive(Message(Kind.VOTE, 1, c, b), 5001, rng)
    assert isinstance(again[0], Send) and not again[0].message.granted


def test_a_live_leader_is_not_unseated_by_a_rejoining_node() -> None:
    # PreVote and stickiness: a node cut off for long has a high timer but cannot win.
    sim = Sim(3, 3, Faults(), duration_ms=3000).run()
    (leader,) = sim.current_leaders()
    term = sim.nodes[leader].term
    other, rejoining = (i for i in sim.ids if i != leader)
    rng = random.Random(0)
    node = sim.nodes[other]
    for kind in (Kind.PRE_VOTE, Kind.VOTE):
        replies = node.receive(Message(kind, term + 5, rejoining, other), sim.now, rng)
        assert not any(isinstance(r, Send) and r.message.granted for r in replies)
    assert sim.nodes[leader].role == LEADER and node.term == term


def test_the_winner_reports_who_elected_it() -> None:
    seen: list[BecameLeader] = []
    Sim(
        11,
        5,
        Faults(),
        on_action=lambda _, a, __: seen.append(a) if isinstance(a, BecameLeader) else None,
    ).run()
    assert seen and len(seen[0].voters) >= 3 and seen[0].trigger == Trigger.NO_LEADER


def _vote(voter: bytes, term: int, candidate: bytes) -> lead.Vote:
    digest = (bytes([voter[0], term, candidate[0]]) * 11)[:32]
    return lead.Vote(voter, term, candidate, digest, 0)


def test_leadership_is_proven_by_a_majority_of_cited_votes() -> None:
    a, b, c = (bytes([n]) * 32 for n in (1, 2, 3))
    voters = frozenset([a, b, c])
    votes = [_vote(a, 1, a), _vote(b, 1, a), _vote(c, 2, c), _vote(b, 2, c)]
    claims = [
        lead.LeaderClaim(a, 1, (votes[0].hash, votes[1].hash), "no-leader", 0, 1),
        lead.LeaderClaim(c, 2, (votes[2].hash,), "heartbeat-timeout", 5, 2),  # one vote
        lead.LeaderClaim(b, 1, (votes[1].hash,), "no-leader", 0, 3),  # a vote for a
    ]
    proof = lead.prove_leadership(votes, claims, voters)
    assert set(proof.proven) == {1} and proof.proven[1].leader == a
    assert [why for _, why in proof.unproven] == [
        "cites a vote for another term or candidate",
        "votes of 1 of 3 voters cited; need 2",
    ]
    proof = lead.prove_leadership(
        votes,
        [*claims[:1], lead.LeaderClaim(c, 2, (votes[2].hash, votes[3].hash), "x", 0, 4)],
        voters,
    )
    assert proof.latest is not None and proof.latest.leader == c and not proof.split_brain


def test_two_proven_leaders_in_a_term_is_split_brain_and_double_votes_are_found() -> None:
    a, b, c = (bytes([n]) * 32 for n in (1, 2, 3))
    votes = [_vote(a, 3, a), _vote(b, 3, a), _vote(b, 3, c), _vote(c, 3, c)]
    claims = [
        lead.LeaderClaim(a, 3, (votes[0].hash, votes[1].hash), "t", 0, 1),
        lead.LeaderClaim(c, 3, (votes[2].hash, votes[3].hash), "t", 0, 2),
    ]
    proof = lead.prove_leadership(votes, claims, frozenset([a, b, c]))
    assert proof.split_brain == {3: {a, c}}
    assert proof.double_votes == [(b, 3)]


def test_vote_and_leader_bodies_parse_and_garbage_does_not() -> None:
    a = bytes([1]) * 32
    body = encode_payload(lead.vote_body(4, a))
    assert lead.parse_vote(a, body, b"h" * 32, 9) == lead.Vote(a, 4, a, b"h" * 32, 9)
    b = bytes([2]) * 32
    body = lead.leader_body(4, [b"h" * 32], "no-leader", 12, {b: 3, a: 7})
    parsed = lead.parse_leader(a, encode_payload(body), 9)
    assert parsed is not None and parsed.votes == (b"h" * 32,)
    assert parsed.membership == ((a, 7), (b, 3))
    for junk in (b"\xff", encode_payload({"term": -1, "candidate": a}), encode_payload({})):
        assert lead.parse_vote(a, junk, b"h" * 32, 0) is None
        assert lead.parse_leader(a, junk, 0) is None
    bad_cuts = ([], [[b, 3], [a, 7]], [[a, 1], [a, 2]], [[a, 0]], [[a[:5], 1]], [[a, "1"]], "x")
    for cut in bad_cuts:
        assert lead.parse_leader(a, encode_payload({**body, "membership": cut}), 9) is None
    del body["membership"]  # written before leaders named their membership
    older = lead.parse_leader(a, encode_payload(body), 9)
    assert older is not None and older.membership is None


def test_a_restarted_voter_does_not_help_unseat_a_leased_leader() -> None:
    # a leads 5 voters; b and c answered its beat at t=0, then crashed and came back at
    # t=20 remembering only their term and vote. e, cut off from a, times out at t=500.
    # If b and c voted for e, e would lead term 2 while a still holds its lease.
    a, b, c, d, e = (bytes([n]) * 32 for n in range(1, 6))
    voters = frozenset([a, b, c, d, e])
    rng = random.Random(5)
    restarted = []
    for node_id in (b, c):
        node = Election(node_id, voters, term=1, voted_for=a)
        node.start(20, rng)
        restarted.append(node)
    for node in restarted:
        replies = node.receive(Message(Kind.PRE_VOTE, 2, e, node.me), 500, rng)
        replies += node.receive(Message(Kind.VOTE, 2, e, node.me), 501, rng)
        assert not any(isinstance(r, Send) and r.message.granted for r in replies)
    # Once a minimum election timeout has passed without a leader, they may.
    late = restarted[0].receive(Message(Kind.PRE_VOTE, 2, e, b), 1100, rng)
    assert any(isinstance(r, Send) and r.message.granted for r in late)


def test_a_voter_change_makes_the_leader_stand_again_under_the_new_set() -> None:
    sim = Sim(21, 3, Faults(), duration_ms=3000).run()
    (leader,) = sim.current_leaders()
    node, term = sim.nodes[leader], sim.nodes[leader].term
    newcomers = frozenset([bytes([7]) * 32, bytes([8]) * 32])
    rng = random.Random(2)
    actions = node.set_voters(sim.voters | newcomers, sim.now, rng)
    kinds = [type(a).__name__ for a in actions]
    assert kinds[:2] == ["SteppedDown", "PersistVote"] and node.term == term + 1
    asks = [a.message for a in actions if isinstance(a, Send)]
    assert len(asks) == 4 and all(m.kind == Kind.VOTE for m in asks)
    follower = next(n for i, n in sim.nodes.items() if i != leader)
    follower.set_voters(sim.voters | newcomers, sim.now, rng)
    (reply,) = follower.receive(next(m for m in asks if m.dst == follower.me), sim.now + 1, rng)[
        -1:
    ]
    assert isinstance(reply, Send) and reply.message.granted  # no stickiness against its leader
    assert node.trigger == Trigger.MEMBERSHIP


def _granted(actions: list[Action]) -> bool:
    return any(isinstance(a, Send) and a.message.granted for a in actions)


def test_a_transfer_hands_leadership_to_the_target_in_the_next_term() -> None:
    sim = Sim(21, 3, Faults(), duration_ms=3000).run()
    (leader,) = sim.current_leaders()
    target = min(i for i in sim.ids if i != leader)
    term = sim.nodes[leader].term
    sim._apply(leader, sim.nodes[leader].transfer(target, sim.now))
    assert not sim.nodes[leader].has_lease(sim.now)  # the lease ends before anyone is told
    sim.advance(sim.now + 500)
    assert sim.current_leaders() == {target}
    assert sim.nodes[target].term == term + 1 and sim.nodes[target].trigger == Trigger.TRANSFER
    assert sim.transfers == 1


def test_a_dropped_transfer_counts_only_beats_sent_after_it_for_the_lease() -> None:
    sim = Sim(21, 3, Faults(), duration_ms=3000).run()
    (a,) = sim.current_leaders()
    b, c = sorted(i for i in sim.ids if i != a)
    leader, t, rng = sim.nodes[a], sim.now, random.Random(3)
    leader.transfer(b, t)
    # c answers every beat that names b (it may have voted for b since); the last
    # answer arrives only after the transfer was dropped.
    for at in range(t + 100, t + 1000, 100):
        leader.tick(at, rng)
        leader.receive(Message(Kind.BEAT_REPLY, leader.term, c, a, True, stamp=at), at + 1, rng)
    leader.tick(t + 1000, rng)
    assert leader.role == LEADER and leader.transferring_to is None
    late = Message(Kind.BEAT_REPLY, leader.term, c, a, True, stamp=t + 900)
    leader.receive(late, t + 1001, rng)
    assert not leader.has_lease(t + 1001)
    fresh = Message(Kind.BEAT_REPLY, leader.term, c, a, True, stamp=t + 1000)
    leader.receive(fresh, t + 1002, rng)
    assert leader.has_lease(t + 1002)


def test_only_the_newest_beat_says_whom_a_voter_may_elect_past_its_leader() -> None:
    a, b, c = (bytes([n]) * 32 for n in range(1, 4))
    rng = random.Random(4)
    voter = Election(c, frozenset([a, b, c]), term=1)
    voter.start(0, rng)
    marked = Message(Kind.BEAT, 1, a, c, stamp=100, target=b)
    voter.receive(marked, 100, rng)
    voter.receive(Message(Kind.BEAT, 1, a, c, stamp=200), 200, rng)  # the transfer was dropped
    voter.receive(marked, 210, rng)  # a late copy of the marked beat
    assert not _granted(voter.receive(Message(Kind.VOTE, 2, b, c), 220, rng))
    voter.receive(Message(Kind.BEAT, 1, a, c, stamp=300, target=b), 300, rng)
    assert _granted(voter.receive(Message(Kind.VOTE, 2, b, c), 310, rng))
    assert not _granted(voter.receive(Message(Kind.VOTE, 3, a, c), 320, rng))


ABC = tuple(bytes([n]) * 32 for n in range(1, 4))


def _following_a(me: bytes, seed: int, at: int) -> tuple[Election, random.Random]:
    """A voter of {a, b, c} in term 1 that heard a's beat at `at`."""
    rng = random.Random(seed)
    node = Election(me, frozenset(ABC), term=1)
    node.start(0, rng)
    node.receive(Message(Kind.BEAT, 1, ABC[0], me, stamp=at), at, rng)
    return node, rng


def test_a_stale_timeout_now_does_not_make_a_node_stand() -> None:
    a, b, c = ABC
    node, rng = _following_a(b, 6, 500)
    assert node.receive(Message(Kind.TIMEOUT_NOW, 1, a, b, stamp=400), 510, rng) == []
    assert node.receive(Message(Kind.TIMEOUT_NOW, 1, c, b, stamp=600), 510, rng) == []
    stood = node.receive(Message(Kind.TIMEOUT_NOW, 1, a, b, stamp=600), 610, rng)
    assert node.role == "candidate" and node.term == 2
    assert [type(x).__name__ for x in stood][:2] == ["ElectionStarted", "PersistVote"]


def test_election_triggers_discovery_failure_and_split_brain() -> None:
    a, b, c = (bytes([n]) * 32 for n in range(1, 4))
    rng = random.Random(7)
    lonely = Election(a, frozenset([a, b, c]))
    lonely.start(0, rng)
    lonely.reachable = False
    (started, *_) = lonely.tick(5000, rng)
    assert isinstance(started, ElectionStarted) and started.trigger == Trigger.DISCOVERY_FAILURE
    sim = Sim(22, 3, Faults(), duration_ms=3000).run()
    (leader,) = sim.current_leaders()
    term = sim.nodes[leader].term
    for node_id, node in sim.nodes.items():
        sim._apply(node_id, node.split_brain(term, sim.now, sim.rng))
    assert sim.current_leaders() == set()
    sim.advance(sim.now + 3000)
    (again,) = sim.current_leaders()
    assert sim.nodes[again].term > term and sim.nodes[again].trigger == Trigger.SPLIT_BRAIN


def test_a_follower_answers_a_new_leader_at_once_then_every_beat_reply_ms() -> None:
    a, b, c = (bytes([n]) * 32 for n in range(1, 4))
    rng = random.Random(8)
    voter = Election(c, frozenset([a, b, c]), term=1)
    voter.start(0, rng)
    every = voter.settings.beat_reply_ms
    assert 100 < every <= voter.settings.election_min_ms // 4

    def answered(term: int, leader: bytes, at: int, target: bytes = b"") -> bool:
        beat = Message(Kind.BEAT, term, leader, c, stamp=at, target=target)
        return any(
            isinstance(x, Send) and x.message.kind == Kind.BEAT_REPLY
            for x in voter.receive(beat, at, rng)
        )

    assert answered(1, a, 100)
    assert not answered(1, a, 200)
    assert answered(1, a, 100 + every)
    assert answered(1, a, 110 + every, target=b)  # a transfer beat, always
    assert answered(2, a, 120 + every)  # a new term of the same leader
    assert answered(3, b, 130 + every)  # a new leader


def test_followers_answer_the_same_beats_whenever_they_joined() -> None:
    # The leader then takes their answers in one wake-up, not one each.
    a, b, c, d = (bytes([n]) * 32 for n in range(1, 5))
    rng = random.Random(10)
    voters = frozenset([a, b, c, d])
    answers: dict[bytes, list[int]] = {}
    for follower, first in ((b, 0), (c, 100), (d, 700)):
        voter = Election(follower, voters, term=1)
        voter.start(0, rng)
        answers[follower] = [
            at
            for at in range(first, 3000, 100)
            if any(
                isinstance(x, Send) and x.message.kind == Kind.BEAT_REPLY
                for x in voter.receive(Message(Kind.BEAT, 1, a, EVERY_VOTER, stamp=at), at, rng)
            )
        ]
    # Once each has answered its first beat, all answer the same ones.
    since = [[at for at in ats if at >= 800] for ats in answers.values()]
    assert since[0] == since[1] == since[2] and len(since[0]) >= 8, answers
    every = Settings().beat_reply_ms
    assert all(later - at <= every + 100 for at, later in itertools.pairwise(since[0]))


def test_a_leader_answered_every_beat_reply_ms_keeps_its_lease_and_its_quorum() -> None:
    a, b, c = (bytes([n]) * 32 for n in range(1, 4))
    rng = random.Random(9)
    nodes = {n: Election(n, frozenset([a, b, c])) for n in (a, b, c)}
    for node in nodes.values():
        node.start(0, rng)
    leader = nodes[a]
    inbox = leader.tick(leader.deadline, rng)  # a stands
    start, leased_since = leader.deadline, None
    for now in range(start, start + 10_000, 10):
        actions = [*inbox, *leader.tick(now, rng)]
        inbox = []
        for action in actions:
            for dst in action.recipients if isinstance(action, Send) else ():
                for back in nodes[dst].receive(action.message, now, rng):
                    if isinstance(back, Send):
                        inbox += leader.receive(back.message, now, rng)
        if leader.has_lease(now) and leased_since is None:
            leased_since = now
        if leased_since is not None:
            assert leader.role == LEADER and leader.has_lease(now), now
    assert leased_since is not None


def test_a_follower_that_loses_its_link_to_the_leader_stands_once_stickiness_ends() -> None:
    settings = Settings()
    low, high = settings.lost_leader_jitter_ms
    retry = settings.contested_retry_ms[1]
    lost = prompt = 0
    for seed in range(200):
        sim = Sim(seed, 3, Faults(), duration_ms=3000).run()
        (leader,) = sim.current_leaders()
        term = sim.nodes[leader].term
        del sim.nodes[leader]  # killed: its sockets close, its followers notice at once
        followers = list(sim.nodes)
        for follower in followers:  # after the beats that were on the way
            sim._at(sim.now + sim.faults.max_delay_ms, "link_lost", (follower, leader))
        seen = {f: sim.nodes[f].leader_seen or 0 for f in followers}
        last_beat = max(seen.values())
        # Standing, PreVote and vote round trips take at most 4 delays of 5 ms.
        sim.advance(last_beat + settings.election_min_ms + high + 20)
        prompt += len(sim.current_leaders()) == 1
        # Two that stood at once split the vote, meet as rivals, and retry soon.
        sim.advance(sim.now + retry + 40)
        (new,) = sim.current_leaders()
        assert sim.nodes[new].term in (term + 1, term + 2), seed
        # (unless its random timeout, drawn at the last beat, came sooner anyway)
        assert sim.nodes[new].trigger in (Trigger.LEADER_LOST, Trigger.HEARTBEAT_TIMEOUT)
        early = sim.nodes[new].trigger == Trigger.LEADER_LOST
        lost += early
        # Standing never comes before stickiness ends (plus the floor, when early).
        waited = sim.nodes[new].elected_at - seen[new]
        assert waited >= settings.election_min_ms + (low if early else 0), seed
    assert lost > 150 and prompt > 180


def test_a_lost_link_to_anyone_but_the_leader_changes_nothing() -> None:
    a, b, c = ABC
    node, rng = _following_a(c, 10, 100)
    deadline = node.deadline
    node.link_lost(b, 150, rng)
    assert node.deadline == deadline
    node.link_lost(a, 150, rng)
    low, high = node.settings.lost_leader_jitter_ms
    assert 100 + 1000 + low <= node.deadline <= min(deadline, 100 + 1000 + high)
    node.receive(Message(Kind.BEAT, 1, a, c, stamp=200), 200, rng)  # redialled, beats again
    (started, *_) = node.tick(node.deadline, rng)
    assert isinstance(started, ElectionStarted) and started.trigger == Trigger.HEARTBEAT_TIMEOUT


def test_a_non_voter_without_a_leader_is_not_due_again_at_once() -> None:
    a, b, c = ABC
    rng = random.Random(11)
    watcher = Election(c, frozenset([a, b]))  # read_only: not among the voters
    watcher.start(0, rng)
    for _ in range(5):
        now = watcher.next_timer()
        assert watcher.tick(now, rng) == []
        assert watcher.next_timer() >= now + watcher.settings.election_min_ms


def test_a_beat_is_one_message_for_every_other_voter_and_only_a_beat_may_be() -> None:
    a, b, c = ABC
    rng = random.Random(12)
    nodes = {n: Election(n, frozenset(ABC)) for n in ABC}
    for node in nodes.values():
        node.start(0, rng)
    leader = nodes[a]
    now = max(n.deadline for n in nodes.values())  # everyone's stickiness is over
    pending = leader.tick(now, rng)  # a stands
    while pending:
        action = pending.pop()
        for dst in action.recipients if isinstance(action, Send) else ():
            pending += nodes[dst].receive(action.message, now, rng)
    assert leader.role == LEADER
    (send,) = [x for x in leader.tick(leader.next_beat, rng) if isinstance(x, Send)]
    assert send.message.kind == Kind.BEAT and send.message.dst == EVERY_VOTER
    assert send.recipients == tuple(sorted([b, c]))
    follower = Election(b, frozenset(ABC), term=leader.term)
    follower.start(0, rng)
    follower.receive(send.message, now + 10, rng)
    assert follower.leader == a
    stray = Message(Kind.VOTE, leader.term + 1, c, EVERY_VOTER)
    assert follower.receive(stray, now + 20, rng) == [] and follower.term == leader.term
