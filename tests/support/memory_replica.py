"""An in-memory stand-in for the mesh behind the services' `Replica` port: replicas in
one process, each with its own real store, joined by a `Hub` that hands every stored
entry to the others at once and delivers election messages over links that a test can
cut. Services run on it exactly as on the mesh, without SSH, sockets or processes."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterable
from typing import Any

from bzzz.clock import now_ms
from bzzz.domain import membership as ms
from bzzz.domain.election import Message as ElectionMessage
from bzzz.domain.entry import Entry
from bzzz.domain.identity import Signer
from bzzz.domain.payload import encode_payload
from bzzz.domain.roles import Roles
from bzzz.domain.standing import Standing
from bzzz.projections.membership import read_membership
from bzzz.store import EventStore
from bzzz.store.feed import Arrivals, Feed


class Hub:
    def __init__(self) -> None:
        self.replicas: dict[bytes, MemoryReplica] = {}
        self.down: set[frozenset[bytes]] = set()

    def linked(self, a: bytes, b: bytes) -> bool:
        return a != b and frozenset((a, b)) not in self.down

    def cut(self, a: bytes, b: bytes) -> None:
        self.down.add(frozenset((a, b)))
        for x, y in ((a, b), (b, a)):
            if (handler := self.replicas[x]._link_lost) is not None:
                handler(y)

    def spread(self, source: MemoryReplica, raws: list[bytes]) -> None:
        for key, replica in self.replicas.items():
            if self.linked(source.me, key):
                replica.receive(raws)


class MemoryReplica:
    def __init__(
        self, hub: Hub, store: EventStore, signer: Signer, roles: Roles, cluster_id: bytes
    ) -> None:
        self.hub, self.store, self.signer, self.roles = hub, store, signer, roles
        self.me = signer.public_key
        self.cluster_id = cluster_id
        self.heads: dict[bytes, int] = {a: h.seq for a, h in store.heads().items()}
        self.changed = asyncio.Event()
        self.membership = read_membership(store, roles, cluster_id)
        self.arrivals = Arrivals(store)
        store.on_write(self.arrivals.note)
        self.started = time.monotonic()
        self._on_election: Callable[[ElectionMessage], None] | None = None
        self._link_lost: Callable[[bytes], None] | None = None
        hub.replicas[self.me] = self

    async def append(
        self, kind: str, payload: dict[str, Any], first: Iterable[bytes] = ()
    ) -> Entry:
        return (await self.append_many([(kind, payload)], first))[0]

    async def append_many(
        self, items: list[tuple[str, dict[str, Any]]], first: Iterable[bytes] = ()
    ) -> list[Entry]:
        bodies = [(kind, encode_payload(payload)) for kind, payload in items]
        entries = self.store.append_batch(self.signer, bodies, now_ms())
        self._stored(entries)
        self.hub.spread(self, [e.raw for e in entries])
        return entries

    def receive(self, raws: list[bytes]) -> None:
        self._stored(self.store.ingest(raws).accepted)

    def _stored(self, entries: list[Entry]) -> None:
        for entry in entries:
            self.heads[entry.author] = max(self.heads.get(entry.author, 0), entry.seq)
        if any(e.kind in ms.KINDS for e in entries):
            self.membership = read_membership(self.store, self.roles, self.cluster_id)
        self.changed.set()

    def feed(self, kinds: Iterable[str]) -> Feed:
        return self.arrivals.feed(kinds)

    def watch(self, kinds: Iterable[str]) -> asyncio.Event:
        return self.arrivals.watch(kinds)

    async def wait_for_head(self, author: bytes, seq: int, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while self.heads.get(author, 0) < seq:
            if time.monotonic() > deadline:
                return False
            await asyncio.sleep(0.005)
        return True

    def send_election(self, message: ElectionMessage, recipients: tuple[bytes, ...]) -> None:
        loop = asyncio.get_running_loop()
        for key in recipients:
            other = self.hub.replicas.get(key)
            if other is not None and self.hub.linked(self.me, key):
                loop.call_soon(other.deliver, message)

    def deliver(self, message: ElectionMessage) -> None:
        if self._on_election is not None:
            self._on_election(message)

    def handle_election(
        self,
        on_message: Callable[[ElectionMessage], None] | None,
        on_link_lost: Callable[[bytes], None] | None,
    ) -> None:
        self._on_election, self._link_lost = on_message, on_link_lost

    def connected(self) -> frozenset[bytes]:
        return frozenset(k for k in self.hub.replicas if self.hub.linked(self.me, k))

    def standing(self) -> Standing:
        return Standing(int(time.monotonic() - self.started), 0, 100, 1024, 500)

    def peer_standing(self, peer: bytes) -> Standing | None:
        other = self.hub.replicas.get(peer)
        return other.standing() if other and self.hub.linked(self.me, peer) else None
