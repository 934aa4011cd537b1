"""Who led which term, proven from log entries alone.

A voter's `election.vote` entry says it voted for a candidate in a term; a leader's
`election.leader` entry cites, by hash, the votes that elected it. A leader is proven for
a term when the cited votes are held, are for it in that term, and come from a majority
of the voters. The voters are those of the membership the leader had folded when it
won: its entry names that cut of the logs (per author, the seq of the latest membership
act it had), because a leader cannot count voters it has not heard of yet, and Lamport
order alone cannot tell which acts it had. Two proven leaders in one term is split
brain; a voter with two votes in one term has broken the rules its node enforces.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from bzzz.domain.limits import HASH_BYTES, KEY_BYTES
from bzzz.domain.payload import payload_map

VOTE = "election.vote"
LEADER = "election.leader"
KINDS = (VOTE, LEADER)
MAX_CITED = 1024
# A claim citing votes not (yet) here: logs replicate independently, so this is a wait,
# not evidence of anything.
MISSING_VOTE = "cites a vote entry this node does not hold"


@dataclass(frozen=True, slots=True)
class Vote:
    voter: bytes
    term: int
    candidate: bytes
    hash: bytes
    ts: int


@dataclass(frozen=True, slots=True)
class LeaderClaim:
    leader: bytes
    term: int
    votes: tuple[bytes, ...]
    trigger: str
    leaderless_ms: int
    ts: int
    lamport: int = 0
    seq: int = 0  # of the entry in its leader's log
    # The membership cut the leader counted its voters in, sorted by author; None in
    # entries written before leaders named it.
    membership: tuple[tuple[bytes, int], ...] | None = None


@dataclass(frozen=True, slots=True)
class ProvenLeader:
    term: int
    leader: bytes
    voters: frozenset[bytes]
    trigger: str
    leaderless_ms: int
    ts: int
    lamport: int = 0  # of its `election.leader` entry


@dataclass
class Leadership:
    proven: dict[int, ProvenLeader] = field(default_factory=dict)
    unproven: list[tuple[LeaderClaim, str]] = field(default_factory=list)
    split_brain: dict[int, set[bytes]] = field(default_factory=dict)
    double_votes: list[tuple[bytes, int]] = field(default_factory=list)

    @property
    def latest(self) -> ProvenLeader | None:
        return self.proven[max(self.proven)] if self.proven else None

    def ends(self) -> dict[int, int]:
        """Per proven term, the Lamport clock of the first proof of a newer term: an
        admin's entry of that term written after it (in causal order) is not its
        term's any more."""
        out: dict[int, int] = {}
        later: int | None = None
        for term in sorted(self.proven, reverse=True):
            if later is not None:
                out[term] = later
            lamport = self.proven[term].lamport
            later = lamport if later is None else min(later, lamport)
        return out


def vote_body(term: int, candidate: bytes) -> dict[str, Any]:
    return {"term": term, "candidate": candidate}


def leader_body(
    term: int, votes: list[bytes], trigger: str, leaderless_ms: int, membership: dict[bytes, int]
) -> dict[str, Any]:
    return {
        "term": term,
        "votes": votes,
        "trigger": trigger,
        "leaderless_ms": leaderless_ms,
        "membership": [[author, seq] for author, seq in sorted(membership.items())],
    }


def _count(value: Any) -> int | None:
    return value if type(value) is int and value >= 0 else None


def parse_vote(author: bytes, body: bytes, entry_hash: bytes, ts: int) -> Vote | None:
    data = payload_map(body)
    if data is None:
        return None
    term, candidate = _count(data.get("term")), data.get("candidate")
    if term is None or not isinstance(candidate, bytes) or len(candidate) != KEY_BYTES:
        return None
    return Vote(author, term, candidate, entry_hash, ts)


def parse_leader(
    author: bytes, body: bytes, ts: int, lamport: int = 0, seq: int = 0
) -> LeaderClaim | None:
    data = payload_map(body)
    if data is None:
        return None
    term, votes = _count(data.get("term")), data.get("votes")
    trigger, leaderless = data.get("trigger"), _count(data.get("leaderless_ms"))
    if term is None or leaderless is None or not isinstance(trigger, str) or len(trigger) > 64:
        return None
    if not isinstance(votes, list) or len(votes) > MAX_CITED:
        return None
    if not all(isinstance(h, bytes) and len(h) == HASH_BYTES for h in votes):
        return None
    cut = data.get("membership")
    membership = None if cut is None else _cut(cut)
    if cut is not None and membership is None:
        return None
    return LeaderClaim(
        author, term, tuple(votes), trigger, leaderless, ts, lamport, seq, membership
    )


def _cut(value: Any) -> tuple[tuple[bytes, int], ...] | None:
    """A membership cut: distinct authors in order, each with a positive seq."""
    if not isinstance(value, list) or not value or len(value) > MAX_CITED:
        return None
    pairs: list[tuple[bytes, int]] = []
    for item in value:
        if not isinstance(item, list) or len(item) != 2:
            return None
        author, seq = item
        if not isinstance(author, bytes) or len(author) != KEY_BYTES or type(seq) is not int:
            return None
        if seq < 1 or (pairs and author <= pairs[-1][0]):
            return None
        pairs.append((author, seq))
    return tuple(pairs)


def prove_leadership(
    votes: Iterable[Vote],
    claims: Iterable[LeaderClaim],
    voters: frozenset[bytes] | Callable[[LeaderClaim], frozenset[bytes]],
) -> Leadership:
    """Which claims of leadership cite a majority of votes for their leader in their
    term. `voters` is one set, or the set that applied when each claim was made."""
    voters_of = voters if callable(voters) else (lambda _claim: voters)
    result = Leadership()
    by_hash: dict[bytes, Vote] = {}
    cast: dict[tuple[bytes, int], bytes] = {}
    for vote in votes:
        by_hash[vote.hash] = vote
        earlier = cast.setdefault((vote.voter, vote.term), vote.candidate)
        if earlier != vote.candidate:
            result.double_votes.append((vote.voter, vote.term))
    for claim in sorted(claims, key=lambda c: (c.term, c.ts)):
        electorate = voters_of(claim)
        majority = len(electorate) // 2 + 1
        problem, backers = _backers(claim, by_hash, electorate)
        if problem is None and len(backers) < majority:
            problem = f"votes of {len(backers)} of {len(electorate)} voters cited; need {majority}"
        if problem is not None:
            result.unproven.append((claim, problem))
            continue
        held = result.proven.get(claim.term)
        if held is not None and held.leader != claim.leader:
            result.split_brain.setdefault(claim.term, {held.leader}).add(claim.leader)
            continue
        if held is None:
            result.proven[claim.term] = ProvenLeader(
                claim.term,
                claim.leader,
                backers,
                claim.trigger,
                claim.leaderless_ms,
                claim.ts,
                claim.lamport,
            )
    return result


def _backers(
    claim: LeaderClaim, by_hash: dict[bytes, Vote], voters: frozenset[bytes]
) -> tuple[str | None, frozenset[bytes]]:
    backers: set[bytes] = set()
    for cited in claim.votes:
        vote = by_hash.get(cited)
        if vote is None:
            return MISSING_VOTE, frozenset()
        if vote.term != claim.term or vote.candidate != claim.leader:
            return "cites a vote for another term or candidate", frozenset()
        if vote.voter in voters:
            backers.add(vote.voter)
    return None, frozenset(backers)
