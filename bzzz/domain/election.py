"""Raft leader election, as a state machine with no I/O, no clock and no randomness of
its own: the caller passes the time and a random source, delivers messages, and carries
out the actions it returns (persist a vote before answering, send, report leadership).

Terms, randomized election timeouts, PreVote (a node that cannot win does not disturb
the cluster by raising terms), CheckQuorum (a leader that has not heard from a majority
within an election timeout steps down), leader stickiness (a voter that heard from a live
leader within the minimum election timeout refuses to help unseat it), and step-down on
any higher term. At most one leader per term follows from each voter voting at most once
a term (the vote is persisted first) and majorities intersecting.

Leadership transfer (Raft's TimeoutNow): the leader gives up its lease, names the target
in its beats (a voter lets that one candidate past stickiness only after such a beat, and
only until a newer plain beat), then tells the target to stand at once. A transfer that
has not ended in an election timeout is dropped, and the lease counts only beats sent
after that.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from enum import StrEnum

FOLLOWER = "follower"
PRE_CANDIDATE = "pre_candidate"
CANDIDATE = "candidate"
LEADER = "leader"


class Kind(StrEnum):
    PRE_VOTE = "pre_vote"
    PRE_VOTE_REPLY = "pre_vote_reply"
    VOTE = "vote"
    VOTE_REPLY = "vote_reply"
    BEAT = "beat"
    BEAT_REPLY = "beat_reply"
    TIMEOUT_NOW = "timeout_now"


class Trigger(StrEnum):
    """Why an election started."""

    NO_LEADER = "no-leader"  # never heard of one: start-up, or no peers reachable
    HEARTBEAT_TIMEOUT = "heartbeat-timeout"
    LEADER_LOST = "leader-link-lost"  # the connection to the leader closed, then a timeout
    QUORUM_LOSS = "quorum-loss"
    DISCOVERY_FAILURE = "discovery-failure"  # no other voter reachable when it timed out
    SPLIT_BRAIN = "split-brain"  # two proven leaders in one term: everyone starts over
    TRANSFER = "leadership-transfer"
    MEMBERSHIP = "membership-change"  # the voters changed: re-elect under the new set


@dataclass(frozen=True, slots=True)
class Settings:
    heartbeat_ms: int = 100
    election_min_ms: int = 1000
    election_max_ms: int = 2000

    @property
    def beat_reply_ms(self) -> int:
        """How often a follower answers its leader's beats. Answers keep the lease
        and CheckQuorum, which look back one minimum election timeout: one answer in a
        quarter of that keeps both with room for three lost in a row, at a third of
        the messages a leader handles when every beat is answered."""
        return min(3 * self.heartbeat_ms, self.election_min_ms // 4)

    @property
    def lost_leader_jitter_ms(self) -> tuple[int, int]:
        """How long after stickiness ends a follower that lost its link to the leader
        stands. The floor lets the other followers' stickiness (from the same last beat,
        heard a little later or earlier) end first; the spread keeps two of them from
        standing in the same round trip and splitting the vote."""
        return self.heartbeat_ms // 10, 2 * self.heartbeat_ms

    @property
    def contested_retry_ms(self) -> tuple[int, int]:
        """How soon a candidate that met a rival in its term stands again: time for
        the rival's first beat if it won, and a spread against a second split."""
        return self.heartbeat_ms, 3 * self.heartbeat_ms


# A beat's destination: every follower gets the same beat, so the leader signs it once.
# It can be no other voter's: the mesh takes an election message only from its signer's
# own connection, so a member cannot pass the leader's beat on as if the leader sent it.
EVERY_VOTER = b""


@dataclass(frozen=True, slots=True)
class Message:
    kind: Kind
    term: int
    src: bytes
    dst: bytes
    granted: bool = False
    # A beat carries the leader's clock when it was sent, and its reply echoes it: the
    # leader's lease counts from when it sent, never from when the answer happened to arrive.
    stamp: int = 0
    target: bytes = b""  # a beat during a leadership transfer names whom it goes to


@dataclass(frozen=True, slots=True)
class Send:
    message: Message
    to: tuple[bytes, ...] = ()  # the voters a message to EVERY_VOTER goes to

    @property
    def recipients(self) -> tuple[bytes, ...]:
        return self.to if self.message.dst == EVERY_VOTER else (self.message.dst,)


@dataclass(frozen=True, slots=True)
class PersistVote:
    """Make the vote durable before the Send that follows it leaves the node."""

    term: int
    candidate: bytes


@dataclass(frozen=True, slots=True)
class BecameLeader:
    term: int
    voters: frozenset[bytes]  # whose votes elected us, ourselves included
    trigger: Trigger


@dataclass(frozen=True, slots=True)
class SteppedDown:
    term: int
    reason: str


@dataclass(frozen=True, slots=True)
class TransferStarted:
    term: int
    target: bytes


@dataclass(frozen=True, slots=True)
class TransferAborted:
    term: int
    target: bytes


@dataclass(frozen=True, slots=True)
class ElectionStarted:
    term: int  # the term it will ask for
    trigger: Trigger


Action = (
    Send
    | PersistVote
    | BecameLeader
    | SteppedDown
    | ElectionStarted
    | TransferStarted
    | TransferAborted
)


@dataclass
class Election:
    me: bytes
    voters: frozenset[bytes]
    settings: Settings = field(default_factory=Settings)
    term: int = 0
    voted_for: bytes | None = None
    role: str = FOLLOWER
    leader: bytes | None = None
    deadline: int = 0
    leader_seen: int | None = None
    next_beat: int = 0
    trigger: Trigger = Trigger.NO_LEADER
    elected_at: int = 0
    # Whether any other voter is reachable (the caller knows its connections): an
    # election that times out without one is a discovery failure.
    reachable: bool = True
    _granted: set[bytes] = field(default_factory=set)
    _acked: dict[bytes, int] = field(default_factory=dict)
    _quorum_check: int = 0
    _lease_floor: int = 0  # only beats sent from then on count for the lease
    _transfer: bytes | None = None
    _transfer_until: int = 0
    _beat_stamp: int = 0  # the newest beat's stamp from the leader we follow
    _transfer_ok: tuple[int, bytes] | None = None  # (term, candidate) a beat named
    _answered: tuple[int, bytes, int] | None = None  # (term, leader, window) of our last answer
    _lost_leader: bool = False  # the link to the leader we follow closed

    @property
    def transferring_to(self) -> bytes | None:
        return self._transfer

    @property
    def majority(self) -> int:
        return len(self.voters) // 2 + 1

    @property
    def is_voter(self) -> bool:
        return self.me in self.voters

    def start(self, now: int, rng: random.Random) -> None:
        """After a (re)start: a follower with what was persisted (term, voted_for). It
        may have answered a leader's beat just before it went down and forgotten it, so
        it helps no election for one minimum election timeout (else that leader's lease
        would count on a vote cast elsewhere)."""
        self.role, self.leader, self.leader_seen = FOLLOWER, None, now
        self._reset_deadline(now, rng)

    def next_timer(self) -> int:
        return self.next_beat if self.role == LEADER else self.deadline

    def _reset_deadline(self, now: int, rng: random.Random) -> None:
        s = self.settings
        self.deadline = now + rng.randint(s.election_min_ms, s.election_max_ms)

    def _recent_leader(self, now: int) -> bool:
        if self.role == LEADER:
            return True
        seen = self.leader_seen
        return seen is not None and now - seen < self.settings.election_min_ms

    # Time

    def tick(self, now: int, rng: random.Random) -> list[Action]:
        if self.role == LEADER:
            return self._lead(now)
        if now >= self.deadline and not self.is_voter:
            # A non-voter never stands; it only waits on. Without a later deadline its
            # timer would be due at once, again and again, while no leader beats.
            self._reset_deadline(now, rng)
            return []
        if now >= self.deadline:
            if not self.reachable:
                trigger = Trigger.DISCOVERY_FAILURE
            elif self._lost_leader and self.leader is not None:
                trigger = Trigger.LEADER_LOST
            elif self.leader is not None:
                trigger = Trigger.HEARTBEAT_TIMEOUT
            else:
                trigger = self.trigger
            return self._pre_vote(now, rng, trigger)
        return []

    def _lead(self, now: int) -> list[Action]:
        actions: list[Action] = []
        if self._transfer is not None and now >= self._transfer_until:
            actions.append(TransferAborted(self.term, self._transfer))
            self._transfer = None
            self._acked, self._lease_floor = {}, now
            self._quorum_check = now + self.settings.election_min_ms
        if now >= self._quorum_check:
            if not self._majority_answered(now):
                return self._step_down(self.term, "lost contact with a majority")
            self._quorum_check = now + self.settings.election_min_ms
        if now >= self.next_beat:
            actions += self._beat(now)
            if self._transfer is not None:
                target = self._transfer
                actions.append(
                    Send(Message(Kind.TIMEOUT_NOW, self.term, self.me, target, stamp=now))
                )
        return actions

    def _beat(self, now: int) -> list[Action]:
        self.next_beat = now + self.settings.heartbeat_ms
        beat = Message(
            Kind.BEAT, self.term, self.me, EVERY_VOTER, stamp=now, target=self._transfer or b""
        )
        return [Send(beat, tuple(v for v in sorted(self.voters) if v != self.me))]

    def transfer(self, target: bytes, now: int) -> list[Action]:
        """Hand leadership to `target`. The lease ends here, before any voter is told it
        may elect the target; the target is told to stand at the next beat, when the
        voters have had the beat that names it."""
        if self.role != LEADER or self._transfer is not None:
            return []
        if target == self.me or target not in self.voters:
            return []
        self._transfer, self._transfer_until = target, now + self.settings.election_min_ms
        self._acked, self._lease_floor = {}, now
        return [TransferStarted(self.term, target), *self._beat(now)]

    def link_lost(self, peer: bytes, now: int, rng: random.Random) -> None:
        """The connection to `peer` closed. If it is our leader (a crashed process closes
        its sockets at once), stand as soon as stickiness allows rather than after a
        full random timeout. Safe as any timeout is: standing still waits out the
        minimum election timeout from the last beat, and every voter still refuses
        while it heard a leader within its own."""
        if self.role != FOLLOWER or peer != self.leader or self.leader_seen is None:
            return
        low, high = self.settings.lost_leader_jitter_ms
        at = self.leader_seen + self.settings.election_min_ms + rng.randint(low, high)
        if at < self.deadline:
            self.deadline, self._lost_leader = max(at, now), True

    def split_brain(self, term: int, now: int, rng: random.Random) -> list[Action]:
        """The logs prove two leaders in `term`. It must not happen; if it does, every
        node of that term forgets its leader and the cluster elects afresh."""
        if term != self.term:
            return []
        actions = self._step_down(self.term, "split brain in this term")
        self.leader, self.leader_seen, self.trigger = None, None, Trigger.SPLIT_BRAIN
        self._transfer_ok = None
        self._reset_deadline(now, rng)
        return actions

    def set_voters(self, voters: frozenset[bytes], now: int, rng: random.Random) -> list[Action]:
        """Take a new voter set. Majorities of the old and new sets need not meet, so a
        leader (or candidate) stands again at once in a new term under the new set; its
        followers let it (stickiness does not guard a leader against itself)."""
        if voters == self.voters:
            return []
        was = self.role
        self.voters = voters
        if was not in (LEADER, CANDIDATE) or not self.is_voter:
            if was in (LEADER, CANDIDATE):
                return self._step_down(self.term, "no longer a voter")
            return []
        actions = self._step_down(self.term, "the voters changed")
        return actions + self._campaign(now, rng, Trigger.MEMBERSHIP)

    # Elections

    def _pre_vote(self, now: int, rng: random.Random, trigger: Trigger) -> list[Action]:
        self.role, self.leader, self.trigger = PRE_CANDIDATE, None, trigger
        self._lost_leader = False
        self._granted = {self.me}
        self._reset_deadline(now, rng)
        if len(self._granted) >= self.majority:
            return self._campaign(now, rng, trigger)
        started: list[Action] = [ElectionStarted(self.term + 1, trigger)]
        return started + self._broadcast(Kind.PRE_VOTE, term=self.term + 1)

    def _campaign(self, now: int, rng: random.Random, trigger: Trigger) -> list[Action]:
        self.term += 1
        self.role, self.leader, self.voted_for, self.trigger = CANDIDATE, None, self.me, trigger
        self._granted = {self.me}
        self._reset_deadline(now, rng)
        actions: list[Action] = [PersistVote(self.term, self.me)]
        if len(self._granted) >= self.majority:
            return actions + self._become_leader(now)
        return actions + self._broadcast(Kind.VOTE)

    def _become_leader(self, now: int) -> list[Action]:
        self.role, self.leader, self.leader_seen = LEADER, self.me, now
        self.elected_at = now
        # No lease yet: a vote does not stop its voter from joining a later election, an
        # answered beat does (stickiness). The first beats go out now.
        self._acked, self._lease_floor, self._transfer = {}, now, None
        self._quorum_check = now + self.settings.election_min_ms
        won: list[Action] = [BecameLeader(self.term, frozenset(self._granted), self.trigger)]
        return won + self._beat(now)

    def _step_down(self, term: int, reason: str) -> list[Action]:
        was_leader = self.role == LEADER
        if term > self.term:
            self.term, self.voted_for = term, None
        self.role, self.leader, self._transfer = FOLLOWER, None, None
        if reason == "lost contact with a majority":
            self.trigger = Trigger.QUORUM_LOSS
        return [SteppedDown(self.term, reason)] if was_leader else []

    def _broadcast(
        self, kind: Kind, term: int | None = None, stamp: int = 0, target: bytes = b""
    ) -> list[Action]:
        t = self.term if term is None else term
        return [
            Send(Message(kind, t, self.me, v, stamp=stamp, target=target))
            for v in sorted(self.voters)
            if v != self.me
        ]

    def _reply(self, to: Message, kind: Kind, granted: bool, term: int | None = None) -> Send:
        t = self.term if term is None else term
        return Send(Message(kind, t, self.me, to.src, granted, stamp=to.stamp))

    def has_lease(self, now: int) -> bool:
        """Whether this leader may act alone now (grant claims): a majority answered beats
        sent less than the minimum election timeout ago, so none of them can have helped
        elect anyone else yet (voters refuse for that long after hearing a leader)."""
        return self.role == LEADER and self._transfer is None and self._majority_answered(now)

    def _majority_answered(self, now: int) -> bool:
        window = self.settings.election_min_ms
        fresh = 1 + sum(1 for v, t in self._acked.items() if v != self.me and now - t < window)
        return fresh >= self.majority

    def answered_recently(self, voter: bytes, now: int) -> bool:
        """Whether `voter` answered one of our beats within an election timeout."""
        at = self._acked.get(voter)
        return at is not None and now - at < self.settings.election_min_ms

    # Messages

    def receive(self, msg: Message, now: int, rng: random.Random) -> list[Action]:
        to_us = msg.dst == self.me or (msg.dst == EVERY_VOTER and msg.kind == Kind.BEAT)
        if not to_us or msg.src == self.me:
            return []
        if msg.kind == Kind.PRE_VOTE:
            return [self._answer_pre_vote(msg, now)]
        if msg.kind == Kind.PRE_VOTE_REPLY:
            return self._count_pre_vote(msg, now, rng)
        actions: list[Action] = []
        if msg.term > self.term:
            stray = msg.src != self.leader
            named = self._transfer_ok == (self.term, msg.src) and msg.term == self.term + 1
            if (
                msg.kind == Kind.VOTE
                and stray
                and not named
                and self._recent_leader(now)
                and self.role != LEADER
            ):
                # Stickiness: a live leader is not unseated by a stray candidate.
                return []
            actions += self._step_down(msg.term, f"saw term {msg.term}")
        if msg.kind == Kind.VOTE:
            return actions + self._answer_vote(msg, now, rng)
        if msg.kind == Kind.VOTE_REPLY:
            return actions + self._count_vote(msg, now, rng)
        if msg.kind == Kind.BEAT:
            return actions + self._follow(msg, now, rng)
        if msg.kind == Kind.TIMEOUT_NOW:
            return actions + self._stand_now(msg, now, rng)
        answered = (
            msg.kind == Kind.BEAT_REPLY and msg.granted and self._lease_floor <= msg.stamp <= now
        )
        if answered and self.role == LEADER and msg.term == self.term:
            self._acked[msg.src] = max(self._acked.get(msg.src, 0), msg.stamp)
        return actions

    def _answer_pre_vote(self, msg: Message, now: int) -> Send:
        if msg.src not in self.voters:
            return self._reply(msg, Kind.PRE_VOTE_REPLY, False)
        granted = msg.term > self.term and not self._recent_leader(now)
        return self._reply(msg, Kind.PRE_VOTE_REPLY, granted, term=msg.term if granted else None)

    def _count_pre_vote(self, msg: Message, now: int, rng: random.Random) -> list[Action]:
        if self.role != PRE_CANDIDATE:
            return []
        if msg.term > self.term + 1 and not msg.granted:
            return self._step_down(msg.term, f"saw term {msg.term}")
        if msg.granted and msg.term == self.term + 1 and msg.src in self.voters:
            self._granted.add(msg.src)
            if len(self._granted) >= self.majority:
                return self._campaign(now, rng, self.trigger)
        return []

    def _contested(self, now: int, rng: random.Random) -> None:
        """A rival stands in our term, or a voter chose one: the vote may be split, and
        with a voter down nobody may win it. Stand again soon rather than after a whole
        timeout, through PreVote, so a rival that did win is not disturbed (its voters
        heard it and refuse)."""
        if self.role == CANDIDATE:
            low, high = self.settings.contested_retry_ms
            self.deadline = min(self.deadline, now + rng.randint(low, high))

    def _answer_vote(self, msg: Message, now: int, rng: random.Random) -> list[Action]:
        if msg.term == self.term and self.voted_for == self.me:
            self._contested(now, rng)
        if msg.term < self.term or msg.src not in self.voters or not self.is_voter:
            return [self._reply(msg, Kind.VOTE_REPLY, False)]
        if self.voted_for not in (None, msg.src):
            return [self._reply(msg, Kind.VOTE_REPLY, False)]
        first = self.voted_for is None
        self.voted_for = msg.src
        self._reset_deadline(now, rng)
        reply = self._reply(msg, Kind.VOTE_REPLY, True)
        return [PersistVote(self.term, msg.src), reply] if first else [reply]

    def _count_vote(self, msg: Message, now: int, rng: random.Random) -> list[Action]:
        if self.role != CANDIDATE or msg.term != self.term or msg.src not in self.voters:
            return []
        if not msg.granted:
            self._contested(now, rng)
            return []
        self._granted.add(msg.src)
        if len(self._granted) >= self.majority:
            return self._become_leader(now)
        return []

    def _follow(self, msg: Message, now: int, rng: random.Random) -> list[Action]:
        if msg.term < self.term:
            return [self._reply(msg, Kind.BEAT_REPLY, False)]
        actions: list[Action] = []
        if self.role == LEADER:  # same term, two leaders: impossible; refuse loudly
            actions.append(SteppedDown(self.term, "another leader in this term"))
        if msg.src != self.leader:
            self._beat_stamp = 0
        self.role, self.leader, self.leader_seen = FOLLOWER, msg.src, now
        self._lost_leader = False
        if msg.stamp >= self._beat_stamp:  # a late, reordered beat changes nothing
            self._beat_stamp = msg.stamp
            self._transfer_ok = (msg.term, msg.target) if msg.target else None
        self._reset_deadline(now, rng)
        # A new leader or term is answered at once (its lease starts from nothing), then
        # the first beat of each `beat_reply_ms` window of the leader's clock; a transfer
        # beat always, so the leader sees it was heard. The windows are the leader's, so
        # every follower answers the same beats and the answers reach the leader together,
        # where they cost it one wake-up instead of one each.
        last = self._answered
        window = msg.stamp // self.settings.beat_reply_ms
        if last is None or last[:2] != (msg.term, msg.src) or msg.target or window > last[2]:
            self._answered = (msg.term, msg.src, window)
            actions.append(self._reply(msg, Kind.BEAT_REPLY, True))
        return actions

    def _stand_now(self, msg: Message, now: int, rng: random.Random) -> list[Action]:
        """The leader hands over to us: stand at once, no PreVote (the voters let us
        past stickiness). A TimeoutNow older than the leader's latest beat is stale."""
        current = msg.src == self.leader and msg.term == self.term and self.role == FOLLOWER
        if not current or not self.is_voter or msg.stamp < self._beat_stamp:
            return []
        started = ElectionStarted(self.term + 1, Trigger.TRANSFER)
        return [started, *self._campaign(now, rng, Trigger.TRANSFER)]
