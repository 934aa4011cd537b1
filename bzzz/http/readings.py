"""What the health, metrics and dashboard endpoints read of a running node: one
`Snapshot`, taken at request time from the node's parts through read-only protocols (the
runtime's mesh, election runner, claim service, board and HMMM service satisfy them as
they are), with the dashboard's rows (`Detail`) when asked, and the readiness checks
made from it. Nothing in the services counts for this: the counts
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
from bzzz.domain.leadership import MISSING_VOTE, Leadership
from bzzz.domain.membership import Membership
from bzzz.domain.presence import Availability
from bzzz.domain.tasks import TaskState

# A node is caught up while no connected peer holds more than this many entries it lacks.
DEFAULT_READY_LAG = 1000

# Where the node is in its life: its steps starting, all started, stopping.
STARTING, RUNNING, STOPPING = "starting", "running", "stopping"

# What the dashboard shows at most, and of each text (titles, messages: hostile data).
MAX_TASK_ROWS = 200
MAX_THREAD_ROWS = 100
MAX_TEXT = 300
# Task states that are over: shown after the others, and only while rows are left.
_OVER = frozenset({TaskState.DONE, TaskState.FAILED, TaskState.CLOSED})
_ACTIVE = frozenset({TaskState.CLAIMED, TaskState.PLANNING, TaskState.WORKING, TaskState.REVIEW})

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

    @property
    def availability(self) -> Availability | None:
        """The peer's latest availability message (ready, working, busy), if any."""
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


@dataclass(frozen=True, slots=True)
class AgentRow:
    """A member as this node sees it."""

    agent_id: bytes
    name: str
    role: str
    me: bool
    connected: bool  # a live session (always True for this node)
    leader: bool  # the leader this node follows
    head: int  # its log's length as held here
    state: str | None  # ready, working, busy: its availability (None: not heard)
    tasks: tuple[str, ...]  # tasks it holds now
    we_lack: int | None  # entries it holds that this node does not (connected peers)
    they_lack: int | None


@dataclass(frozen=True, slots=True)
class TaskRow:
    id: str
    title: str
    state: str
    holder: bytes | None
    holder_name: str | None
    priority: int
    url: str | None


@dataclass(frozen=True, slots=True)
class ThreadRow:
    id: str
    task: str | None
    state: str
    why: str
    messages: int
    participants: tuple[str, ...]  # names (the agent id's start when not a member)
    last_author: str | None
    last_kind: str | None
    last_text: str


@dataclass(frozen=True, slots=True)
class Detail:
    """What the dashboard shows beyond the counts: members, tasks (active first, at most
    `MAX_TASK_ROWS`), live HMMM threads (not resolved; at most `MAX_THREAD_ROWS`), and
    the held logs' heads."""

    agents: tuple[AgentRow, ...]
    tasks: tuple[TaskRow, ...]
    tasks_total: int
    threads: tuple[ThreadRow, ...]
    threads_live: int
    heads: tuple[tuple[bytes, str, int], ...]  # author, name ("" if not a member), seq


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
    # What the leadership audit's rules find in the logs held now, by check.
    findings: Mapping[str, int] = field(default_factory=dict)
    phase: str = RUNNING
    detail: Detail | None = None


def peer_lag(peer: PeerStatus) -> PeerLag:
    """How far apart we and a peer are, in entries (as `bzzz agent status` shows it)."""
    ours, theirs = peer.ours, peer.theirs
    return PeerLag(
        peer.agent_id,
        peer.name,
        we_lack=sum(max(0, s - ours.get(a, 0)) for a, s in theirs.items()),
        they_lack=sum(max(0, s - theirs.get(a, 0)) for a, s in ours.items()),
    )


def leadership_findings(proof: Leadership) -> dict[str, int]:
    """What `bzzz audit` would report of leadership from the same logs (its rules,
    `domain/leadership_audit.py`), by check: a claim waiting for votes not held yet is
    no finding."""
    return {
        "split-brain": len(proof.split_brain),
        "double-vote": len(set(proof.double_votes)),
        "unproven-leader": sum(1 for _, why in proof.unproven if why != MISSING_VOTE),
    }


def _cut(text: str) -> str:
    return text if len(text) <= MAX_TEXT else text[: MAX_TEXT - 1] + "\u2026"


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
    """What the endpoints are given: a snapshot on request (with the dashboard's rows
    when `detail`), and where the node is in its life (`phase`, set by the runtime)."""

    phase: str

    async def snapshot(self, detail: bool = False) -> Snapshot: ...


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
        self.phase = STARTING

    async def _count_alerts(self) -> Mapping[str, int]:
        async with self._reading:
            for entry in await self._alerts_feed.fresh():
                self._alerts[entry.kind] += 1
            return {kind.removeprefix("alert."): n for kind, n in self._alerts.items()}

    async def snapshot(self, detail: bool = False) -> Snapshot:
        found_alerts = await self._count_alerts()
        proof = await self.election.leadership()
        # Everything below is read without a pause: one consistent moment.
        now = now_ms()
        view = self.mesh.view()
        names = {m.agent_id: m.name for m in self.mesh.membership.members.values()}
        e = self.election.election
        proven = proof.proven.get(e.term)
        book = self.claims.book
        task_views = self.board.views(now)
        tasks = Counter({state.value: 0 for state in TaskState})
        tasks.update(v.state.value for v in task_views)
        threads = Counter({state.value: 0 for state in hm.ThreadState})
        escalations = 0
        limits = self.hmmm.limits
        thread_views = [hm.view(thread, now, limits) for thread in self.hmmm.threads.values()]
        for thread_view in thread_views:
            threads[thread_view.state.value] += 1
            escalations += sum(1 for m in thread_view.thread.messages if m.kind == hm.ESCALATION)
        heads = view.heads
        appended = heads.get(view.agent_id, 0)
        rows = self._detail(view, names, e.leader, task_views, thread_views) if detail else None
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
            findings=leadership_findings(proof),
            phase=self.phase,
            detail=rows,
        )

    def _detail(
        self,
        view: MeshStatus,
        names: Mapping[bytes, str],
        leader: bytes | None,
        task_views: Sequence[TaskView],
        thread_views: Sequence[hm.ThreadView],
    ) -> Detail:
        def name(key: bytes) -> str:
            return names.get(key) or key.hex()[:12]

        held: dict[bytes, list[str]] = {}
        for t in task_views:
            if t.holder is not None and t.state in _ACTIVE:
                held.setdefault(t.holder, []).append(t.id)
        peers = {p.agent_id: p for p in view.peers}
        agents = []
        for member in sorted(self.mesh.membership.members.values(), key=lambda m: m.name):
            key = member.agent_id
            peer = peers.get(key)
            lag = peer_lag(peer) if peer is not None else None
            availability = peer.availability if peer is not None else None
            agents.append(
                AgentRow(
                    agent_id=key,
                    name=member.name,
                    role=member.role,
                    me=key == view.agent_id,
                    connected=key == view.agent_id or peer is not None,
                    leader=key == leader,
                    head=view.heads.get(key, 0),
                    state=availability.state if availability is not None else None,
                    tasks=tuple(sorted(held.get(key, []))),
                    we_lack=lag.we_lack if lag else None,
                    they_lack=lag.they_lack if lag else None,
                )
            )
        order = {state: n for n, state in enumerate(TaskState)}
        shown = sorted(
            task_views,
            key=lambda t: (
                t.state in _OVER,
                order[t.state],
                -t.task.spec.priority,
                -t.task.opened_ts,
                t.id,
            ),
        )[:MAX_TASK_ROWS]
        task_rows = tuple(
            TaskRow(
                id=t.id,
                title=_cut(t.task.spec.title),
                state=t.state.value,
                holder=t.holder,
                holder_name=name(t.holder) if t.holder is not None else None,
                priority=t.task.spec.priority,
                url=t.task.spec.url,
            )
            for t in shown
        )
        live = [v for v in thread_views if v.state != hm.ThreadState.RESOLVED]
        live.sort(key=lambda v: -(v.thread.messages[-1].ts if v.thread.messages else 0))
        thread_rows = []
        for v in live[:MAX_THREAD_ROWS]:
            last = v.thread.messages[-1] if v.thread.messages else None
            thread_rows.append(
                ThreadRow(
                    id=v.thread.id,
                    task=v.thread.task,
                    state=v.state.value,
                    why=_cut(v.why),
                    messages=len(v.thread.messages),
                    participants=tuple(name(p) for p in v.thread.participants),
                    last_author=name(last.author) if last else None,
                    last_kind=last.kind if last else None,
                    last_text=_cut(last.text) if last else "",
                )
            )
        heads = tuple(
            (author, names.get(author, ""), seq)
            for author, seq in sorted(
                view.heads.items(), key=lambda h: (names.get(h[0], "~"), h[0])
            )
        )
        return Detail(
            agents=tuple(agents),
            tasks=task_rows,
            tasks_total=len(task_views),
            threads=tuple(thread_rows),
            threads_live=len(live),
            heads=heads,
        )


# Readiness


@dataclass(frozen=True, slots=True)
class Check:
    name: str
    ok: bool
    detail: str


def readiness(s: Snapshot, max_lag: int = DEFAULT_READY_LAG) -> list[Check]:
    """Whether the node is ready to take work, check by check: its steps all started
    (until then, and once it stops, that is the only check: what it holds is not read
    yet), a member, connected to a peer (or the cluster's only member), lacking no more
    than `max_lag` entries from any connected peer, and following a leader its logs
    prove."""
    if s.phase != RUNNING:
        why = (
            "stopping: the node is shutting down"
            if s.phase == STOPPING
            else "starting: the mesh and services are not all started yet"
        )
        return [Check("running", False, why)]
    checks = [
        Check("running", True, "the mesh and services are started"),
        Check(
            "member",
            s.member,
            f"a member of cluster {s.cluster}"
            if s.member
            else "not a member of the cluster: not joined yet, or removed",
        ),
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
