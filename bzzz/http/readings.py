"""What the health and metrics endpoints read of a running node: one `Snapshot`, taken
at request time from the node's parts through read-only protocols (the runtime's mesh,
election runner, claim service, board and HMMM service satisfy them as they are), and
the readiness checks made from it. Nothing in the services counts for this: the counts
are what the logs held and the folds already say, so every node of a cluster reports
the same cluster-wide totals, and a restart loses none of them."""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Protocol

from bzzz.clock import now_ms
from bzzz.domain import alerts
from bzzz.domain import claims as cl
from bzzz.domain import hmmm as hm
from bzzz.domain.board import TaskView
from bzzz.domain.election import Election
from bzzz.domain.entry import Entry
from bzzz.domain.leadership import Leadership
from bzzz.domain.membership import Membership
from bzzz.domain.tasks import TaskState

# A node is caught up while no connected peer holds more than this many entries it lacks.
DEFAULT_READY_LAG = 1000

# The parts, as the endpoints read them (structural: `bzzz.mesh.Mesh`, the services).


class PeerStatus(Protocol):
    """A connected peer as a session sees it (`bzzz.mesh.views.PeerView`)."""

    @property
    def agent_id(self) -> bytes: ...
    @property
    def name(self) -> str: ...
    @property
    def ours(self) -> Mapping[bytes, int]:
        """Our heads as the peer last heard them."""
        ...

    @property
    def theirs(self) -> Mapping[bytes, int]:
        """The peer's heads as it last announced them."""
        ...


class MeshStatus(Protocol):
    """`bzzz.mesh.views.MeshView`, the part of it read here."""

    @property
    def agent_id(self) -> bytes: ...
    @property
    def name(self) -> str: ...
    @property
    def role(self) -> str: ...
    @property
    def cluster(self) -> str | None: ...
    @property
    def member(self) -> bool: ...
    @property
    def heads(self) -> Mapping[bytes, int]: ...
    @property
    def peers(self) -> Sequence[PeerStatus]: ...


class FeedLike(Protocol):
    async def fresh(self) -> list[Entry]: ...


class MeshLike(Protocol):
    @property
    def membership(self) -> Membership: ...
    def view(self) -> MeshStatus: ...
    def feed(self, kinds: Iterable[str]) -> FeedLike: ...


class ElectionLike(Protocol):
    """`bzzz.services.election.ElectionRunner`."""

    @property
    def election(self) -> Election: ...
    async def leadership(self) -> Leadership: ...


class ClaimsLike(Protocol):
    """`bzzz.services.claims.ClaimService`."""

    @property
    def book(self) -> cl.ClaimBook: ...


class BoardLike(Protocol):
    """`bzzz.services.board.BoardService`."""

    def views(self, now: int | None = None) -> list[TaskView]: ...


class HmmmLike(Protocol):
    """`bzzz.services.hmmm.HmmmService`."""

    @property
    def threads(self) -> dict[str, hm.Thread]: ...
    @property
    def limits(self) -> hm.Limits: ...


# What is read


@dataclass(frozen=True, slots=True)
class PeerLag:
    agent_id: bytes
    name: str
    we_lack: int  # entries the peer holds that we do not
    they_lack: int  # entries we hold that the peer does not


@dataclass(frozen=True)
class Snapshot:
    """One node's state at one moment, as plain values."""

    agent_id: bytes
    name: str
    role: str
    cluster: str | None
    member: bool
    members: int
    logs: int
    appended: int  # our own log's length
    ingested: int  # entries of other members' logs we hold
    peers: tuple[PeerLag, ...]
    term: int
    election_role: str
    leader: bytes | None
    leader_name: str | None
    leader_proven: bool
    proven_terms: int
    leader_changes: int
    grants: int
    refusals: int
    live_claims: int
    pending_requests: int
    tasks: Mapping[str, int] = field(default_factory=dict)  # by state
    threads: Mapping[str, int] = field(default_factory=dict)  # by state
    escalations: int = 0
    alerts: Mapping[str, int] = field(default_factory=dict)  # by kind, `alert.` left off


def peer_lag(peer: PeerStatus) -> PeerLag:
    """How far apart we and a peer are, in entries (as `bzzz agent status` shows it)."""
    ours, theirs = peer.ours, peer.theirs
    return PeerLag(
        peer.agent_id,
        peer.name,
        we_lack=sum(max(0, s - ours.get(a, 0)) for a, s in theirs.items()),
        they_lack=sum(max(0, s - theirs.get(a, 0)) for a, s in ours.items()),
    )


def leader_changes(proof: Leadership) -> int:
    """Proven terms whose leader is not the previous proven term's (the first included:
    a cluster that elected one leader and kept it shows 1)."""
    changes, before = 0, None
    for term in sorted(proof.proven):
        leader = proof.proven[term].leader
        if leader != before:
            changes += 1
        before = leader
    return changes


class NodeReadings(Protocol):
    """What the endpoints are given: a snapshot on request."""

    async def snapshot(self) -> Snapshot: ...


class RuntimeReadings:
    """A node's snapshot, read from its parts. Build it before the node starts (it opens
    a feed of alert entries, counted as they are stored)."""

    def __init__(
        self,
        mesh: MeshLike,
        election: ElectionLike,
        claims: ClaimsLike,
        board: BoardLike,
        hmmm: HmmmLike,
    ) -> None:
        self.mesh, self.election, self.claims = mesh, election, claims
        self.board, self.hmmm = board, hmmm
        self._alerts_feed = mesh.feed(alerts.KINDS)
        self._alerts: Counter[str] = Counter({kind: 0 for kind in alerts.KINDS})
        self._reading = asyncio.Lock()  # a feed has one reader at a time

    async def _count_alerts(self) -> Mapping[str, int]:
        async with self._reading:
            for entry in await self._alerts_feed.fresh():
                self._alerts[entry.kind] += 1
            return {kind.removeprefix("alert."): n for kind, n in self._alerts.items()}

    async def snapshot(self) -> Snapshot:
        found_alerts = await self._count_alerts()
        proof = await self.election.leadership()
        # Everything below is read without a pause: one consistent moment.
        now = now_ms()
        view = self.mesh.view()
        names = {m.agent_id: m.name for m in self.mesh.membership.members.values()}
        e = self.election.election
        proven = proof.proven.get(e.term)
        book = self.claims.book
        tasks = Counter({state.value: 0 for state in TaskState})
        tasks.update(v.state.value for v in self.board.views(now))
        threads = Counter({state.value: 0 for state in hm.ThreadState})
        escalations = 0
        limits = self.hmmm.limits
        for thread in self.hmmm.threads.values():
            threads[hm.view(thread, now, limits).state.value] += 1
            escalations += sum(1 for m in thread.messages if m.kind == hm.ESCALATION)
        heads = view.heads
        appended = heads.get(view.agent_id, 0)
        return Snapshot(
            agent_id=view.agent_id,
            name=view.name,
            role=view.role,
            cluster=view.cluster,
            member=view.member,
            members=len(self.mesh.membership.members),
            logs=len(heads),
            appended=appended,
            ingested=sum(heads.values()) - appended,
            peers=tuple(peer_lag(p) for p in view.peers),
            term=e.term,
            election_role=e.role,
            leader=e.leader,
            leader_name=names.get(e.leader) if e.leader else None,
            leader_proven=e.leader is not None and proven is not None and proven.leader == e.leader,
            proven_terms=len(proof.proven),
            leader_changes=leader_changes(proof),
            grants=len(book.by_request),
            refusals=len(book.refused),
            live_claims=len(book.live_grants(now)),
            pending_requests=len(book.unanswered),
            tasks=dict(tasks),
            threads=dict(threads),
            escalations=escalations,
            alerts=found_alerts,
        )


# Readiness


@dataclass(frozen=True, slots=True)
class Check:
    name: str
    ok: bool
    detail: str


def readiness(s: Snapshot, max_lag: int = DEFAULT_READY_LAG) -> list[Check]:
    """Whether the node is ready to take work, check by check: a member, connected to
    a peer (or the cluster's only member), lacking no more than `max_lag` entries from
    any connected peer, and following a leader its logs prove."""
    checks = [
        Check(
            "member",
            s.member,
            f"a member of cluster {s.cluster}"
            if s.member
            else "not a member of the cluster: not joined yet, or removed",
        )
    ]
    alone = s.member and s.members == 1
    if s.peers:
        checks.append(Check("peers", True, f"{len(s.peers)} peers connected"))
    elif alone:
        checks.append(Check("peers", True, "the cluster's only member"))
    else:
        others = max(0, s.members - 1) if s.member else s.members
        checks.append(Check("peers", False, f"no peer connected (of {others} other members)"))
    behind = sorted((p for p in s.peers if p.we_lack > max_lag), key=lambda p: -p.we_lack)
    if behind:
        worst = behind[0]
        checks.append(
            Check(
                "caught_up",
                False,
                f"lacks {worst.we_lack} entries that {worst.name or worst.agent_id.hex()[:12]}"
                f" holds (more than {max_lag})"
                + (f", and lags {len(behind) - 1} more peers" if len(behind) > 1 else ""),
            )
        )
    else:
        most = max((p.we_lack for p in s.peers), default=0)
        checks.append(
            Check(
                "caught_up",
                True,
                f"lacks at most {most} entries from any peer (allowed: {max_lag})",
            )
        )
    if s.leader is None:
        checks.append(Check("leader", False, f"no leader known in term {s.term}"))
    else:
        who = s.leader_name or s.leader.hex()[:12]
        if s.leader_proven:
            checks.append(Check("leader", True, f"{who} leads term {s.term}"))
        else:
            checks.append(
                Check("leader", False, f"{who} leads term {s.term}, not proven by the logs yet")
            )
    return checks
