"""The election service: runs the election state machine (`bzzz.domain.election`) on a
`Replica`: time, messages to and from the peers, votes made durable as `election.vote`
entries before they are answered, and the winner's `election.leader` entry citing the
votes that elected it."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from bzzz.clock import now_ms
from bzzz.domain import alerts
from bzzz.domain import leadership as lead
from bzzz.domain import membership as ms
from bzzz.domain.election import (
    LEADER,
    Action,
    BecameLeader,
    Election,
    ElectionStarted,
    Message,
    PersistVote,
    Send,
    Settings,
    SteppedDown,
    TransferAborted,
    TransferStarted,
)
from bzzz.domain.entry import Entry
from bzzz.domain.standing import TransferPolicy, Watch, candidate_score, pick_successor
from bzzz.errors import EntryError, StoreError
from bzzz.projections.leadership import ElectionView, VoterView
from bzzz.services.ports import Replica

log = logging.getLogger("bzzz.election")

INBOX = 1024
VOTERS_CHECK_S = 0.5  # the longest the loop sleeps: how soon a voter change is taken
TRANSFER_CHECK_S = 1.0  # how often a leader looks for a markedly better candidate
# How long a new leader gathers its voters' vote entries before it settles for a
# majority of them (a voter's entry can be late), and how often it warns after that.
PROOF_WAIT_S = 3.0
AdminSwitch = Callable[[bool], Awaitable[None]]


@dataclass(frozen=True, slots=True)
class LinkLost:
    peer: bytes


class ElectionRunner:
    def __init__(
        self,
        replica: Replica,
        settings: Settings,
        transfer: TransferPolicy | None = None,
        on_admin: AdminSwitch | None = None,
    ):
        self.replica = replica
        self.settings = settings
        self.transfer = transfer
        self.on_admin = on_admin
        self._watch: Watch | None = None
        self._voters: tuple[ms.Membership, frozenset[bytes]] | None = None
        self._next_transfer_check = 0.0
        self.rng = random.SystemRandom()
        self.election = Election(replica.me, self.voters(), settings)
        self._inbox: asyncio.Queue[Message | LinkLost] = asyncio.Queue(INBOX)
        self._leaderless_since: int | None = now_ms()
        self._task: asyncio.Task[None] | None = None
        self._votes: list[lead.Vote] = []
        self._claims: list[lead.LeaderClaim] = []
        self._feed = replica.feed(lead.KINDS)
        self._reading = asyncio.Lock()  # one reader of the feed at a time: no entry twice
        self._proof: tuple[frozenset[bytes], lead.Leadership] | None = None
        self._alerted_terms: set[int] = set()
        self._proving: set[asyncio.Task[None]] = set()

    def voters(self) -> frozenset[bytes]:
        """Asked on every message; recomputed only when the replica folds a new membership."""
        membership = self.replica.membership
        if self._voters is None or self._voters[0] is not membership:
            self._voters = (membership, ms.voters_of(membership, self.replica.roles))
        return self._voters[1]

    async def start(self) -> None:
        term, voted = await asyncio.to_thread(self._persisted)
        self.election.term, self.election.voted_for = term, voted
        self.election.start(now_ms(), self.rng)
        self.replica.handle_election(self._deliver, self._deliver_link_lost)
        self._task = asyncio.create_task(self._loop())

    async def stop(self) -> None:
        self.replica.handle_election(None, None)
        tasks = [*self._proving, *([self._task] if self._task else [])]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        if self.election.role == LEADER and self.on_admin is not None:
            await self.on_admin(False)

    def _persisted(self) -> tuple[int, bytes | None]:
        """Where to start: the highest term any vote in the store names (a node that
        joined late must not re-run terms the cluster already used), and our own vote in
        it, if any. Votes are entries, so this survives restarts."""
        term, voted = 0, None
        after = 0
        while page := self.replica.store.notifications(after=after, kinds=[lead.VOTE]):
            for stored in page:
                try:
                    entry = stored.decode()
                except EntryError:
                    continue
                vote = lead.parse_vote(entry.author, entry.body, entry.hash, entry.ts)
                if vote is None or vote.term < term:
                    continue
                if vote.term > term:
                    term, voted = vote.term, None
                if vote.voter == self.replica.me:
                    voted = vote.candidate
            after = page[-1].position
        return term, voted

    def _deliver(self, message: Message | LinkLost) -> None:
        with contextlib.suppress(asyncio.QueueFull):  # a flood only loses election chatter
            self._inbox.put_nowait(message)

    def _deliver_link_lost(self, peer: bytes) -> None:
        self._deliver(LinkLost(peer))

    async def _loop(self) -> None:
        while True:
            voters = self.voters()
            changed = self.election.set_voters(voters, now_ms(), self.rng)
            if changed:
                await self._apply(changed)
            connected = self.replica.connected()
            self.election.reachable = any(v in connected for v in voters)
            if self.transfer is not None and time.monotonic() >= self._next_transfer_check:
                self._next_transfer_check = time.monotonic() + TRANSFER_CHECK_S
                await self._apply(self._consider_transfer(self.transfer))
            # Sleep until the next timer; a message or a voter change wakes us sooner.
            wait = max(0, self.election.next_timer() - now_ms()) / 1000
            try:
                # asyncio.timeout, not wait_for: on 3.11 wait_for can swallow a cancellation
                # that arrives as its timeout fires, and this loop would then run on.
                async with asyncio.timeout(min(wait, VOTERS_CHECK_S)):
                    message = await self._inbox.get()
            except TimeoutError:
                actions = self.election.tick(now_ms(), self.rng)
            else:
                if isinstance(message, LinkLost):
                    self.election.link_lost(message.peer, now_ms(), self.rng)
                    actions = []
                else:
                    actions = self.election.receive(message, now_ms(), self.rng)
            try:
                await self._apply(actions)
            except StoreError as error:
                log.error("election: cannot record a vote: %s", error)
            self._track_leaderless()

    def _consider_transfer(self, policy: TransferPolicy) -> list[Action]:
        """As leader: hand over to a markedly better voter that is healthy now."""
        e, now = self.election, now_ms()
        if e.role != LEADER or e.transferring_to is not None:
            self._watch = None
            return []
        others = {
            peer: candidate_score(standing)
            for peer in self.replica.connected()
            if peer in e.voters
            and e.answered_recently(peer, now)
            and (standing := self.replica.peer_standing(peer)) is not None
        }
        mine = candidate_score(self.replica.standing())
        target, self._watch = pick_successor(policy, mine, others, self._watch, now, e.elected_at)
        if target is None:
            return []
        log.info(
            "transferring leadership to %s (score %.1f against our %.1f)",
            target.hex()[:12],
            others[target],
            mine,
        )
        return e.transfer(target, now)

    def _track_leaderless(self) -> None:
        """Remember when we last heard a leader: the time without one is from then."""
        e = self.election
        if e.leader is not None:
            self._leaderless_since = e.leader_seen if e.role != LEADER else None
        elif self._leaderless_since is None:
            self._leaderless_since = now_ms()

    async def _apply(self, actions: list[Action]) -> None:
        for action in actions:
            if isinstance(action, PersistVote):
                await self.replica.append(lead.VOTE, lead.vote_body(action.term, action.candidate))
            elif isinstance(action, Send):
                self.replica.send_election(action.message, action.recipients)
            elif isinstance(action, ElectionStarted):
                log.info("election for term %d: %s", action.term, action.trigger.value)
            elif isinstance(action, TransferStarted):
                log.info("term %d: lease given up for the transfer", action.term)
            elif isinstance(action, TransferAborted):
                log.warning(
                    "term %d: transfer to %s did not happen in time; leading on",
                    action.term,
                    action.target.hex()[:12],
                )
            elif isinstance(action, BecameLeader):
                since = self._leaderless_since
                leaderless = now_ms() - since if since is not None else 0
                log.info("elected leader of term %d (%s)", action.term, action.trigger.value)
                task = asyncio.create_task(self._prove(action, leaderless))
                self._proving.add(task)
                task.add_done_callback(self._proving.discard)
                if self.on_admin is not None:
                    await self.on_admin(True)
            elif isinstance(action, SteppedDown):
                log.warning("stepped down in term %d: %s", action.term, action.reason)
                if self.on_admin is not None:
                    await self.on_admin(False)

    async def _prove(self, won: BecameLeader, leaderless_ms: int) -> None:
        """Publish `election.leader` citing the vote entries that elected us, once we
        hold them (they travel by replication; the replies were only messages)."""
        warn_at = time.monotonic() + PROOF_WAIT_S
        while True:
            if self.election.term != won.term or self.election.role != LEADER:
                return
            cited = await asyncio.to_thread(self._vote_hashes, won.term, won.voters)
            if len(cited) == len(won.voters):
                break
            if time.monotonic() > warn_at:
                if len(cited) >= self.election.majority:
                    break  # a voter's entry is late; a majority proves it
                log.warning("term %d: still gathering the votes that elected us", won.term)
                warn_at = time.monotonic() + 10 * PROOF_WAIT_S
            await asyncio.sleep(0.02)
        # Name the membership we counted our voters in. If it has changed the voters since
        # we won, the loop steps us down; never claim a term under voters we did not face.
        while self.voters() != self.election.voters:
            if self.election.term != won.term or self.election.role != LEADER:
                return
            await asyncio.sleep(0.02)
        cut = self.replica.membership.cut
        body = lead.leader_body(
            won.term, sorted(cited.values()), won.trigger.value, leaderless_ms, cut
        )
        await self.replica.append(lead.LEADER, body)

    def _vote_hashes(self, term: int, voters: frozenset[bytes]) -> dict[bytes, bytes]:
        found: dict[bytes, bytes] = {}
        for voter in voters:
            for stored in self.replica.store.latest(10, kinds=[lead.VOTE], author=voter):
                try:
                    entry = stored.decode()
                except EntryError:
                    continue
                vote = lead.parse_vote(entry.author, entry.body, entry.hash, entry.ts)
                if vote and vote.term == term and vote.candidate == self.replica.me:
                    found[voter] = vote.hash
        return found

    # Reading the logs

    async def leadership(self) -> lead.Leadership:
        """Leadership as the logs prove it; raises a split-brain alert once per term.
        Asked on every change, so it reads and folds only when votes or claims came."""
        voters = self.voters()
        async with self._reading:
            fresh = await self._feed.fresh()
            if not fresh and self._proof is not None and self._proof[0] == voters:
                return self._proof[1]
            self._note_proofs(fresh)
        result = lead.prove_leadership(self._votes, self._claims, voters)
        self._proof = (voters, result)
        for term, leaders in result.split_brain.items():
            if term not in self._alerted_terms:
                self._alerted_terms.add(term)
                log.error("split brain: %d proven leaders in term %d", len(leaders), term)
                body = alerts.split_brain_body(term, sorted(leaders))
                await self.replica.append(alerts.SPLIT_BRAIN, body)
                await self._apply(self.election.split_brain(term, now_ms(), self.rng))
        return result

    def _note_proofs(self, entries: list[Entry]) -> None:
        for entry in entries:
            if entry.kind == lead.VOTE:
                vote = lead.parse_vote(entry.author, entry.body, entry.hash, entry.ts)
                if vote is not None:
                    self._votes.append(vote)
            else:
                claim = lead.parse_leader(
                    entry.author, entry.body, entry.ts, entry.lamport, entry.seq
                )
                if claim is not None:
                    self._claims.append(claim)

    async def proven_leader(self) -> bytes | None:
        """The leader we follow (or are), if the logs we hold prove it for its term."""
        leader, term = self.election.leader, self.election.term
        if leader is None:
            return None
        proof = (await self.leadership()).proven.get(term)
        return leader if proof is not None and proof.leader == leader else None

    async def wait_leader(self, other_than: bytes | None, timeout: float) -> bytes | None:
        """Wait until we follow a proven leader other than `other_than`."""
        deadline = time.monotonic() + timeout
        while True:
            leader = await self.proven_leader()
            if leader is not None and leader != other_than:
                return leader
            left = deadline - time.monotonic()
            if left <= 0:
                return None
            self.replica.changed.clear()
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(min(left, 0.02)):
                    await self.replica.changed.wait()

    async def view(self) -> ElectionView:
        """The election as this node runs it and the logs it holds prove it."""
        proof = await self.leadership()
        names = {m.agent_id: m.name for m in self.replica.membership.members.values()}
        reachable = self.replica.connected() | {self.replica.me}
        e = self.election
        return ElectionView(
            term=e.term,
            role=e.role,
            leader=e.leader,
            leader_proven=bool(e.leader and proof.proven.get(e.term, None)),
            voters=[
                VoterView(v, names.get(v), v in reachable, self._score(v))
                for v in sorted(self.voters())
            ],
            transferring_to=e.transferring_to,
            proof=proof,
            names=names,
        )

    def _score(self, agent: bytes) -> float | None:
        """A voter's candidate score as we know it (ours now, a peer's from its latest
        availability message)."""
        if agent == self.replica.me:
            return candidate_score(self.replica.standing())
        standing = self.replica.peer_standing(agent)
        return candidate_score(standing) if standing is not None else None
