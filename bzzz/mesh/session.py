"""One authenticated connection to a peer: the replication exchange and presence.

On connect both sides send `Hello` with their heads; then each side's sender streams
what the other lacks, reading from the store (the store is the buffer, so a slow peer
costs no memory: its sender just waits on the SSH window). Received batches go through
a queue of two to one ingester; while it is busy the reader stops reading, the SSH
window closes, and the peer's sender waits. After each batch the receiver acknowledges
with `Have`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol

from bzzz.clock import sleep_to_tick
from bzzz.domain.election import Message as ElectionMsg
from bzzz.domain.membership import Membership
from bzzz.domain.presence import Availability, ElectionMessage, Heartbeat, open_presence
from bzzz.domain.wire import (
    BATCH_TARGET_BYTES,
    MAX_BATCH_ENTRIES,
    Entries,
    Ephemeral,
    Have,
    Hello,
    Links,
    Message,
    encode_message,
)
from bzzz.errors import PeerDown, ProtocolError
from bzzz.home.config import MeshConfig
from bzzz.mesh.framing import ByteReader, ByteWriter, read_message, write_message
from bzzz.mesh.views import PeerView

log = logging.getLogger("bzzz.mesh")

HELLO_TIMEOUT_S = 10.0
# Ephemeral messages a peer may send: a burst, then this many a second. Election traffic
# (a leader's 10 beats a second and the replies) stays well inside it.
EPHEMERAL_BURST = 100
EPHEMERAL_RATE = 50.0
# What we stored is told to a peer at most this often, in one `Have`: acknowledgements
# and forwarding hints are not urgent, and sending one per entry to every peer cost as
# much CPU as storing the entry, on the path every live entry takes.
HAVE_DELAY_S = 0.05
RTT_PENDING = 8  # heartbeats we remember sending, to time the peer's echo of them


@dataclass
class _Bucket:
    """A token bucket: how many ephemeral messages a peer may still send."""

    tokens: float = EPHEMERAL_BURST
    at: float = field(default_factory=time.monotonic)

    def take(self) -> bool:
        now = time.monotonic()
        self.tokens = min(EPHEMERAL_BURST, self.tokens + (now - self.at) * EPHEMERAL_RATE)
        self.at = now
        if self.tokens < 1:
            return False
        self.tokens -= 1
        return True


class SessionHost(Protocol):
    """What a session needs from the node it belongs to (the `Mesh`, or a joiner)."""

    me: bytes
    cluster_id: bytes | None
    settings: MeshConfig
    heads: dict[bytes, int]
    membership: Membership

    def hello(self) -> Hello: ...

    def heartbeat(self, counter: int, echo: int, held_us: int) -> bytes: ...

    def availability(self) -> bytes: ...

    def on_election(self, message: ElectionMsg) -> None: ...

    async def ingest_from(self, session: PeerSession, raws: list[bytes]) -> dict[bytes, int]: ...

    async def missing_forks(self, sent: set[bytes]) -> list[bytes]: ...

    async def read_entries(
        self, author: bytes, after: int, limit: int
    ) -> list[tuple[int, bytes]]: ...


class PeerSession:
    def __init__(
        self,
        mesh: SessionHost,
        peer: bytes,
        address: str,
        outbound: bool,
        streams: tuple[ByteReader, ByteWriter],
        close: Callable[[], None],
    ) -> None:
        self.mesh = mesh
        self.peer = peer
        self.address = address
        self.outbound = outbound
        self.dialer = mesh.me if outbound else peer
        self.reader, self.writer = streams
        self.close_transport = close
        self.hello: Hello | None = None
        self.their_heads: dict[bytes, int] = {}
        self.sent: dict[bytes, int] = {}
        self.sent_forks: set[bytes] = set()
        self.their_links: frozenset[bytes] = frozenset()
        self.connected_at = time.time()
        self.last_heard = time.monotonic()
        self.last_heard_wall = time.time()
        self.availability: Availability | None = None
        self.wake = asyncio.Event()
        self.wake.set()
        self._inbox: asyncio.Queue[list[bytes]] = asyncio.Queue(maxsize=2)
        self._bucket = _Bucket()
        self._task: asyncio.Task[None] | None = None
        self._have: dict[bytes, int] = {}
        # Round trips: when our recent heartbeats left, and the newest of the peer's.
        self._beats_sent: dict[int, float] = {}
        self._their_beat: tuple[int, float] = (0, 0.0)
        self.rtt_us: int | None = None
        self._have_timer: asyncio.TimerHandle | None = None
        self._waiting_admission = False  # a log held back until its admission is there

    @property
    def name(self) -> str:
        return self.hello.name if self.hello else "?"

    async def open(self) -> None:
        """Exchange hellos; raises ProtocolError for a peer that is not who it logged in as."""
        await write_message(self.writer, self.mesh.hello())
        async with asyncio.timeout(HELLO_TIMEOUT_S):
            message = await read_message(self.reader)
        if not isinstance(message, Hello):
            raise ProtocolError("no-hello", "the first message must be hello")
        if message.agent != self.peer:
            raise ProtocolError("wrong-agent", "hello names another agent than the SSH key")
        ours = self.mesh.cluster_id
        if ours is not None and message.cluster_id != ours:
            theirs = message.cluster_id.hex()[:12] or "none"
            raise ProtocolError(
                "wrong-cluster",
                f"peer is in cluster {theirs}, not ours ({ours.hex()[:12]})",
            )
        self.hello = message
        self.their_heads = dict(message.heads)
        self._heard()

    async def run(self) -> None:
        """Replicate until the connection ends; raises what ended it."""
        tasks = [
            asyncio.create_task(self._read_loop(), name="read"),
            asyncio.create_task(self._ingest_loop(), name="ingest"),
            asyncio.create_task(self._send_loop(), name="send"),
            asyncio.create_task(self._presence_loop(), name="presence"),
        ]
        try:
            done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
        finally:
            if self._have_timer is not None:
                self._have_timer.cancel()
            for task in tasks:
                task.cancel()
            # An ingest in progress finishes its transaction before we go on.
            await asyncio.gather(*tasks, return_exceptions=True)
        for task in done:
            error = task.exception()
            if error is not None:
                raise error

    def _heard(self) -> None:
        self.last_heard = time.monotonic()
        self.last_heard_wall = time.time()

    async def _read_loop(self) -> None:
        while True:
            message = await read_message(self.reader)
            self._heard()
            await self._handle(message)

    async def _handle(self, message: Message) -> None:
        if isinstance(message, Entries):
            await self._inbox.put(message.raws)
        elif isinstance(message, Have):
            for author, seq in message.heads.items():
                if seq > self.their_heads.get(author, 0):
                    self.their_heads[author] = seq
            if self._waiting_admission:
                self._waiting_admission = False
                self.wake.set()
        elif isinstance(message, Links):
            self.their_links = message.peers
            self.wake.set()  # a link that went down may mean we must forward now
        elif isinstance(message, Ephemeral):
            if not self._bucket.take():
                raise ProtocolError("flood", "too many ephemeral messages")
            presence = open_presence(message.signed)
            if presence.agent != self.peer:
                raise ProtocolError("wrong-agent", "an ephemeral message signed by another agent")
            if isinstance(presence, Heartbeat):
                self._on_heartbeat(presence)
            elif isinstance(presence, Availability):
                self.availability = presence
            elif isinstance(presence, ElectionMessage):
                self.mesh.on_election(presence.message)
        else:
            raise ProtocolError("second-hello", "hello may only be sent once")

    def _on_heartbeat(self, beat: Heartbeat) -> None:
        now = time.monotonic()
        if beat.counter > self._their_beat[0]:
            self._their_beat = (beat.counter, now)
        sent = self._beats_sent.pop(beat.echo, None)
        if sent is not None:
            sample = max(1, int((now - sent) * 1e6) - beat.held_us)
            # A moving average: one slow beat (a busy peer) does not rank a node down.
            old = self.rtt_us
            self.rtt_us = sample if old is None else (old * 7 + sample) // 8

    async def _ingest_loop(self) -> None:
        while True:
            raws = await self._inbox.get()
            heads = await self.mesh.ingest_from(self, raws)
            if heads:  # the acknowledgement is for its status only: no hurry
                self.note_have(heads, urgent=False)

    def note_links(self, links: frozenset[bytes]) -> None:
        self._note(Links(links - {self.peer}))

    def send_ephemeral(self, signed: bytes) -> None:
        self._note(Ephemeral(signed))

    def note_have(self, heads: dict[bytes, int], urgent: bool = True) -> None:
        """Tell the peer what we stored: from it (an acknowledgement) or from elsewhere
        (so that it need not forward it). Urgent news goes within HAVE_DELAY_S, the rest
        with our next heartbeat."""
        for author, seq in heads.items():
            if seq > self._have.get(author, 0):
                self._have[author] = seq
        if urgent and self._have_timer is None:
            loop = asyncio.get_running_loop()
            self._have_timer = loop.call_later(HAVE_DELAY_S, self._send_have)

    def _send_have(self) -> None:
        if self._have_timer is not None:
            self._have_timer.cancel()
            self._have_timer = None
        heads, self._have = self._have, {}
        if heads:
            self._note(Have(heads))

    def _note(self, message: Message) -> None:
        """A tiny best-effort frame, written without waiting on the window; a channel
        that is closing is ending this session anyway."""
        if self.hello is not None:
            with contextlib.suppress(BrokenPipeError, ConnectionError):
                self.writer.write(encode_message(message))

    async def _send_loop(self) -> None:
        while True:
            await self.wake.wait()
            self.wake.clear()
            while await self._send_some():
                pass

    def may_lack(self, heads: dict[bytes, int]) -> bool:
        """Whether this peer may lack, and we would send it, any of these logs up to
        these seqs: the rule of `_send_some`, for one batch of news."""
        for author, seq in heads.items():
            if seq <= max(self.their_heads.get(author, 0), self.sent.get(author, 0)):
                continue
            if author == self.mesh.me or author not in self.their_links:
                return True
        return False

    def _known(self, author: bytes) -> int:
        """How far the peer holds `author`'s log, or will once our sends arrive."""
        return max(self.their_heads.get(author, 0), self.sent.get(author, 0))

    async def _send_some(self) -> bool:
        """Send one frame of what the peer lacks; False when it lacks nothing."""
        raws = await self.mesh.missing_forks(self.sent_forks)
        size = sum(len(r) for r in raws)
        membership = self.mesh.membership
        for author, seq in list(self.mesh.heads.items()):
            known = max(self.their_heads.get(author, 0), self.sent.get(author, 0))
            if seq <= known or (author != self.mesh.me and author in self.their_links):
                continue
            # A log the peer has none of goes only if its author is or was a member,
            # and only after the entry that admitted it (the peer would refuse it
            # before); one it holds part of, it took.
            if known == 0 and author != self.mesh.me and self.mesh.cluster_id is not None:
                if not membership.ever_member(author):
                    continue  # a log that does not belong here (an older bzzz kept it)
                admission = membership.admission(author)
                if admission is not None and self._known(admission[0]) < admission[1]:
                    self._waiting_admission = True  # a `Have` of the admitter's wakes us
                    continue
            room = MAX_BATCH_ENTRIES - len(raws)
            if room <= 0 or size >= BATCH_TARGET_BYTES:
                break
            chunk = await self.mesh.read_entries(author, known, min(room, seq - known))
            for entry_seq, raw in chunk:
                raws.append(raw)
                size += len(raw)
                self.sent[author] = entry_seq
                if size >= BATCH_TARGET_BYTES:
                    break
        if not raws:
            return False
        await write_message(self.writer, Entries(raws))
        return True

    async def _presence_loop(self) -> None:
        settings = self.mesh.settings
        counter = 0
        next_availability = 0.0
        measured = False  # whether our last availability carried a measured round trip
        while True:
            now = time.monotonic()
            if now - self.last_heard > settings.heartbeat_s * settings.missed_heartbeats:
                raise PeerDown(f"no heartbeat for {now - self.last_heard:.1f} s")
            counter += 1
            echo, got = self._their_beat
            held_us = int((now - got) * 1e6) if echo else 0
            self._beats_sent[counter] = now
            if len(self._beats_sent) > RTT_PENDING:
                del self._beats_sent[min(self._beats_sent)]
            beat = self.mesh.heartbeat(counter, echo, held_us)
            await write_message(self.writer, Ephemeral(beat))
            self._send_have()
            # The first availability goes out before any round trip is measured; one
            # more follows as soon as one is, so that peers rank us on real figures.
            if now >= next_availability or (not measured and self.rtt_us is not None):
                measured = self.rtt_us is not None
                await write_message(self.writer, Ephemeral(self.mesh.availability()))
                next_availability = now + settings.availability_s
            await sleep_to_tick(settings.heartbeat_s)

    def view(self) -> PeerView:
        return PeerView(
            agent_id=self.peer,
            name=self.name,
            address=self.address,
            listen=self.hello.listen if self.hello else None,
            outbound=self.outbound,
            connected_at_ms=int(self.connected_at * 1000),
            last_heard_ms=int(self.last_heard_wall * 1000),
            ours=dict(self.mesh.heads),
            theirs=dict(self.their_heads),
            availability=self.availability,
        )
