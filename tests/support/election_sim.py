"""A simulated network and clock for the election state machine: message delay, loss,
duplication and reordering, partitions, pauses and crash-restarts, all drawn from one
seed, so any run can be replayed exactly from its seed."""

from __future__ import annotations

import heapq
import random
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from bzzz.domain.election import (
    Action,
    BecameLeader,
    Election,
    Message,
    PersistVote,
    Send,
    Settings,
    Trigger,
)


@dataclass(frozen=True)
class Faults:
    loss: float = 0.0
    duplicate: float = 0.0
    max_delay_ms: int = 5
    partitions: bool = False
    pauses: bool = False
    crashes: bool = False
    transfers: bool = False  # leaders are asked to hand over to a random voter

    @classmethod
    def all(cls) -> Faults:
        return cls(0.1, 0.05, 60, True, True, True, True)


@dataclass
class Sim:
    seed: int
    size: int
    faults: Faults
    duration_ms: int = 8000
    settings: Settings = field(default_factory=Settings)
    on_action: Callable[[bytes, Action, int], None] | None = None

    def __post_init__(self) -> None:
        self.rng = random.Random(self.seed)
        self.ids = [bytes([i + 1]) * 32 for i in range(self.size)]
        self.voters = frozenset(self.ids)
        self.persisted: dict[bytes, tuple[int, bytes | None]] = dict.fromkeys(self.ids, (0, None))
        self.nodes: dict[bytes, Election] = {}
        self.down: set[bytes] = set()
        self.paused: dict[bytes, int] = {}
        self.groups: list[frozenset[bytes]] | None = None
        self.leaders: dict[int, set[bytes]] = {}
        self.highest_elected = 0
        self.leased_checks = 0
        self.transfers = 0  # elections won by a leadership transfer
        # Claims: a leased leader grants tasks, token (term, number in its term). Every
        # grant must outrank every earlier grant of its task, in real time: then a holder
        # whose token is stale is refused by whoever has seen the newer grant.
        self.grants = 0
        self._latest_token: dict[str, tuple[int, int]] = {}
        self._numbers: dict[tuple[bytes, int], int] = {}
        self.first_leader_ms: int | None = None
        self.now = 0
        self._queue: list[tuple[int, int, str, Any]] = []
        self._order = 0
        self._timer_gen: dict[bytes, int] = dict.fromkeys(self.ids, 0)

    def _at(self, when: int, kind: str, payload: Any) -> None:
        self._order += 1
        heapq.heappush(self._queue, (when, self._order, kind, payload))

    def _boot(self, node_id: bytes) -> None:
        term, voted = self.persisted[node_id]
        node = Election(node_id, self.voters, self.settings, term=term, voted_for=voted)
        node.start(self.now, self.rng)
        self.nodes[node_id] = node
        self._arm(node_id)

    def _arm(self, node_id: bytes) -> None:
        self._timer_gen[node_id] += 1
        node = self.nodes[node_id]
        # An overdue timer (the node was paused) fires now, never in the past.
        when = max(self.now, node.next_timer())
        self._at(when, "timer", (node_id, self._timer_gen[node_id]))

    def _linked(self, a: bytes, b: bytes) -> bool:
        return self.groups is None or any(a in g and b in g for g in self.groups)

    def _apply(self, node_id: bytes, actions: list[Action]) -> None:
        for action in actions:
            if self.on_action is not None:
                self.on_action(node_id, action, self.now)
            if isinstance(action, PersistVote):
                self.persisted[node_id] = (action.term, action.candidate)
            elif isinstance(action, BecameLeader):
                self.transfers += action.trigger == Trigger.TRANSFER
                winners = self.leaders.setdefault(action.term, set())
                winners.add(node_id)
                self.highest_elected = max(self.highest_elected, action.term)
                if self.first_leader_ms is None:
                    self.first_leader_ms = self.now
                assert len(winners) == 1, (
                    f"seed {self.seed}: two leaders in term {action.term}: "
                    f"{sorted(w[0] for w in winners)} (replay: Sim({self.seed}, {self.size}, "
                    f"{self.faults}))"
                )
            elif isinstance(action, Send):
                for dst in action.recipients:
                    self._send(action.message, dst)
        if node_id in self.nodes:
            self._arm(node_id)
            self._check_lease(node_id)

    def _check_lease(self, node_id: bytes) -> None:
        """A leader that may act alone (grant claims) must be the newest: no later term
        may have elected anyone yet."""
        node = self.nodes[node_id]
        if node.has_lease(self.now):
            self.leased_checks += 1
            assert self.highest_elected <= node.term, (
                f"seed {self.seed}: leader of term {node.term} holds a lease at "
                f"{self.now} ms, but term {self.highest_elected} already has a leader"
            )
            self._grant(node_id, node.term)

    def _grant(self, node_id: bytes, term: int) -> None:
        task = f"#{self.rng.randint(1, 4)}"
        number = self._numbers.get((node_id, term), 0) + 1
        self._numbers[(node_id, term)] = number
        token, latest = (term, number), self._latest_token.get(task, (0, 0))
        assert token > latest, (
            f"seed {self.seed}: at {self.now} ms term {term}'s leader granted {task} with "
            f"token {token}, below the earlier grant {latest}: two live grants"
        )
        self._latest_token[task] = token
        self.grants += 1

    def _send(self, msg: Message, dst: bytes) -> None:
        f = self.faults
        copies = 2 if self.rng.random() < f.duplicate else 1
        for _ in range(copies):
            if self.rng.random() < f.loss or not self._linked(msg.src, dst):
                continue
            self._at(self.now + self.rng.randint(1, f.max_delay_ms), "deliver", (dst, msg))

    def _schedule_faults(self) -> None:
        f, end, rng = self.faults, self.duration_ms, self.rng
        for _ in range(rng.randint(1, 4) if f.partitions else 0):
            start = rng.randint(0, end)
            self._at(start, "partition", None)
            self._at(start + rng.randint(200, 3000), "heal", None)
        for _ in range(rng.randint(1, 3) if f.pauses else 0):
            self._at(rng.randint(0, end), "pause", rng.choice(self.ids))
        for _ in range(rng.randint(1, 3) if f.crashes else 0):
            victim, when = rng.choice(self.ids), rng.randint(0, end)
            self._at(when, "crash", victim)
            self._at(when + rng.randint(50, 2500), "restart", victim)
        for _ in range(rng.randint(1, 4) if f.partitions else 0):
            # A connection drops and is redialled while both ends live (messages flow).
            a, b = rng.sample(self.ids, 2)
            self._at(rng.randint(0, end), "link_lost", (a, b))
        for _ in range(rng.randint(2, 6) if f.transfers else 0):
            self._at(rng.randint(0, end), "transfer", rng.choice(self.ids))

    def run(self) -> Sim:
        for node_id in self.ids:
            self._boot(node_id)
        self._schedule_faults()
        return self.advance(self.duration_ms)

    def advance(self, until_ms: int) -> Sim:
        """Process events up to `until_ms` (a test may change the network in between)."""
        while self._queue and self._queue[0][0] <= until_ms:
            when, _, kind, payload = heapq.heappop(self._queue)
            assert when >= self.now, f"seed {self.seed}: simulated time went back"
            self.now = when
            self._event(kind, payload)
        self.now = until_ms
        return self

    def _event(self, kind: str, payload: Any) -> None:
        if kind == "partition":
            shuffled = self.rng.sample(self.ids, len(self.ids))
            cut = self.rng.randint(1, len(shuffled) - 1)
            self.groups = [frozenset(shuffled[:cut]), frozenset(shuffled[cut:])]
            for a in shuffled[:cut]:
                for b in shuffled[cut:]:
                    self._lose_link(a, b)
                    self._lose_link(b, a)
        elif kind == "heal":
            self.groups = None
        elif kind == "crash" and payload in self.nodes:
            del self.nodes[payload]
            for other in self.ids:
                if other != payload:
                    self._lose_link(other, payload)
        elif kind == "link_lost":
            node_id, peer = payload
            if node_id in self.nodes and not self._held(node_id, kind, payload):
                self.nodes[node_id].link_lost(peer, self.now, self.rng)
                self._apply(node_id, [])
        elif kind == "restart" and payload not in self.nodes:
            self._boot(payload)
        elif kind == "pause" and payload in self.nodes:
            self.paused[payload] = self.now + self.rng.randint(100, 3000)
        elif kind == "transfer":
            for node_id in self.current_leaders():
                if not self._held(node_id, kind, payload):
                    self._apply(node_id, self.nodes[node_id].transfer(payload, self.now))
        elif kind == "timer":
            node_id, gen = payload
            if node_id in self.nodes and gen == self._timer_gen[node_id]:
                if self._held(node_id, kind, payload):
                    return
                self._apply(node_id, self.nodes[node_id].tick(self.now, self.rng))
        elif kind == "deliver":
            node_id, msg = payload
            if node_id in self.nodes and not self._held(node_id, kind, payload):
                self._apply(node_id, self.nodes[node_id].receive(msg, self.now, self.rng))

    def _lose_link(self, node_id: bytes, peer: bytes) -> None:
        """`node_id` sees its connection to `peer` close after what was in flight on it,
        or never (a cut cable may go unnoticed until the timeouts find it)."""
        if self.rng.random() < 0.8:
            delay = self.faults.max_delay_ms + self.rng.randint(0, self.faults.max_delay_ms)
            self._at(self.now + delay, "link_lost", (node_id, peer))

    def _held(self, node_id: bytes, kind: str, payload: Any) -> bool:
        """A paused node handles nothing until it resumes; what arrived waits (reordered)."""
        until = self.paused.get(node_id)
        if until is None or self.now >= until:
            self.paused.pop(node_id, None)
            return False
        self._at(until + self.rng.randint(0, 5), kind, payload)
        return True

    def current_leaders(self) -> set[bytes]:
        return {i for i, n in self.nodes.items() if n.role == "leader"}
