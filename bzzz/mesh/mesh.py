"""A node's place in the mesh: its SSH server, its sessions with peers, and the
replication state they share (our heads, membership, fork alerts); its appends, the
entries peers send it, and the routing of election messages.

Writes are serialised by one lock. Store work on a few entries of SQLite runs on the
event loop (quicker than a hand-off to a thread); the rest, and all PostgreSQL work,
runs on worker threads.

The mesh owns the parts with a job of their own and delegates to them: the dial loops
(`dialing.py`) and announcing where this node listens (`announcing.py`), which it tells
when to look again; the entries it stored lately (`recent.py`), which it asks before the
store; the waits for its heads (`head_waits.py`), which it tells when they move; and
signing its own presence messages (`presence.py`).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Iterable
from typing import Any, TypeVar

import asyncssh

from bzzz.clock import now_ms, sleep_to_tick
from bzzz.domain import alerts
from bzzz.domain import membership as ms
from bzzz.domain.addresses import parse_address
from bzzz.domain.election import EVERY_VOTER
from bzzz.domain.election import Message as ElectionMsg
from bzzz.domain.entry import Entry
from bzzz.domain.invite import secret_hash
from bzzz.domain.payload import encode_payload
from bzzz.domain.presence import ElectionMessage, sign_presence
from bzzz.domain.profile import Profile
from bzzz.domain.roles import Roles
from bzzz.domain.standing import Standing
from bzzz.domain.wire import Hello
from bzzz.errors import ConnectionClosed, PeerDown, PeerMisbehaved, ProtocolError, StoreError
from bzzz.home.config import MeshConfig
from bzzz.home.keys import Identity
from bzzz.mesh.address_book import AddressBook, Announcement, read_announcements
from bzzz.mesh.announcing import Announcer
from bzzz.mesh.dialing import Dialer
from bzzz.mesh.head_waits import HeadWaits
from bzzz.mesh.parking import Parking
from bzzz.mesh.presence import Presence
from bzzz.mesh.recent import RecentEntries
from bzzz.mesh.session import PeerSession
from bzzz.mesh.transport import Gate, Login, Streams, start_server
from bzzz.mesh.views import MeshView
from bzzz.projections.membership import NOT_MEMBER, ingest_members_only, read_membership
from bzzz.store import EventStore
from bzzz.store.event_store import Written
from bzzz.store.feed import Arrivals, Feed

log = logging.getLogger("bzzz.mesh")

# Refusals an honest peer can cause: it has not heard of a fork yet, or our own store
# is damaged. Anything else from a peer is a protocol violation.
# A member's log that reaches us before its admission is refused as not-member (the
# senders' order, admissions first, makes that rare) and parked (`parking.py`).
BENIGN_REFUSALS = frozenset({"frozen", "store-damaged", NOT_MEMBER})
# Writers in other processes poke the agent (`notify_agent`); polling is the fallback.
POLL_S = 1.0
READ_CHUNK = 4096  # entries of one log read at a time, for a session's sender
# A SQLite write of this many entries or fewer runs on the event loop: it takes a few
# tenths of a millisecond (an fsync included for our own), less than handing it to a
# worker thread, whose two wake-ups cost about that much each on a virtual machine.
INLINE_WRITE = 16
T = TypeVar("T")


class Mesh:
    """Implements the services' `Replica` port (`bzzz.services.ports`), the sessions'
    `SessionHost` (`bzzz.mesh.session`), the dial loops' `DialHost` (`dialing.py`), the
    announcer's `AnnounceHost` (`announcing.py`), the head waits' `HeadsHost`
    (`head_waits.py`) and presence's `PresenceHost` (`presence.py`)."""

    def __init__(
        self,
        store: EventStore,
        identity: Identity,
        roles: Roles,
        settings: MeshConfig,
        *,
        name: str,
        role: str,
        profile: Profile,
        listen: str | None = None,
    ) -> None:
        self.store = store
        self.identity = identity
        self.roles = roles
        self.settings = settings
        self.name = name
        self.role = role  # ours by config, until the logs say otherwise
        self.profile = profile
        self.me = identity.public_key
        self.cluster = settings.cluster  # a label; the cluster is its founding entry:
        self.cluster_id = bytes.fromhex(settings.cluster_id) if settings.cluster_id else None
        self.listen = listen or settings.listen
        self.heads: dict[bytes, int] = {}
        self.membership = ms.Membership()
        self.sessions: dict[bytes, PeerSession] = {}
        self.started = time.time()
        self.position = 0
        self.bound: tuple[str, int] | None = None
        self._write_lock = asyncio.Lock()
        self._server: asyncssh.SSHAcceptor | None = None
        self._tasks: set[asyncio.Task[Any]] = set()
        self._forks: list[tuple[bytes, int, bytes]] = []
        self._alerted_forks: set[bytes] = set()
        self._head_waits = HeadWaits(self)
        self.changed = asyncio.Event()  # set whenever our heads move
        self.arrivals = Arrivals(store)
        self._written: list[Written] = []  # stored by our writes, not yet published
        store.on_write(self._stored)
        self._election_handler: Callable[[ElectionMsg], None] | None = None
        self._link_lost_handler: Callable[[bytes], None] | None = None
        self._recent = RecentEntries()
        self._parked = Parking()  # changed only under the write lock
        # Membership entries stored by this process, counted, and the count the folded
        # membership has seen: the fold is read again only when they differ.
        self._acts_stored = 0
        self._acts_folded = 0
        self._presence = Presence(self)
        self.book = AddressBook()  # where members listen, from their announcements
        self.dialer = Dialer(self, self.book, self._spawn, self._run_outbound)
        self._announcer = Announcer(self, self.book, self._spawn)

    # Life cycle

    async def start(self, peers: Iterable[str] = ()) -> None:
        await self.refresh()
        self._alerted_forks = {author for author, _, _ in self._forks}
        host, port = parse_address(self.listen)
        gate = Gate(self._admits_member, self._admits_newcomer)
        self._server = await start_server(self.identity, host, port, gate, self.serve)
        sockname = self._server.sockets[0].getsockname()
        self.bound = (sockname[0], sockname[1])
        self._spawn(self._poll_loop())
        for address in peers:
            self.add_peer(address)
        self.dialer.dial_members()
        self._announcer.maybe_announce()

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        async with self._write_lock:  # a write in progress finishes first
            pass

    def _spawn(self, coro: Any) -> asyncio.Task[Any]:
        task = asyncio.create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    @property
    def advertised(self) -> str:
        if self.bound is None:
            return self.listen
        host = parse_address(self.listen)[0]
        return f"{host}:{self.bound[1]}"

    # State read from the store

    async def refresh(self) -> None:
        """Re-read heads, fork evidence and membership (after writes by any process)."""
        acts = self._acts_stored
        heads, forks, position, membership, announced = await asyncio.to_thread(self._read_state)
        self._acts_folded = max(self._acts_folded, acts)
        self.arrivals.note_unknown()
        self.heads = heads
        self._forks = forks
        self.position = position
        changed = self._set_membership(membership)
        moved = self.book.take(*announced)
        for session in self.sessions.values():
            session.wake.set()
        if changed:
            self._enforce_membership()
            if self._parked:
                self._spawn(self._unpark())
        if changed or moved:
            self.dialer.dial_members()
        self._announcer.maybe_announce()
        self._heads_moved()

    def _read_state(
        self,
    ) -> tuple[
        dict[bytes, int],
        list[tuple[bytes, int, bytes]],
        int,
        ms.Membership,
        tuple[list[Announcement], int],
    ]:
        position = self.store.max_position()
        heads = {author: head.seq for author, head in self.store.heads().items()}
        announced = read_announcements(self.store, self.book.read_up_to)
        return heads, self.store.forks(), position, self._read_membership(), announced

    def _read_membership(self) -> ms.Membership:
        return read_membership(self.store, self.roles, self.cluster_id)

    def _membership_now(self) -> ms.Membership:
        """The fold as the store has it: read again only if this process stored
        membership entries since it was folded (others' writes come with the poll)."""
        acts = self._acts_stored
        if acts == self._acts_folded:
            return self.membership
        return self._read_membership()

    def _set_membership(self, membership: ms.Membership) -> bool:
        before = set(self.membership.members)
        self.membership = membership
        if self.cluster is None:
            self.cluster = membership.cluster
        return before != set(membership.members)

    def _enforce_membership(self) -> None:
        for peer, session in list(self.sessions.items()):
            if not self.membership.is_member(peer):
                log.warning("closing %s: no longer a member", peer.hex()[:12])
                session.close_transport()

    async def _poll_loop(self) -> None:
        """Notice entries written by other processes on this home (`bzzz log append`,
        `bzzz invite`, `bzzz member remove`)."""
        seen: int | None = None
        while True:
            await sleep_to_tick(POLL_S)
            try:
                version = await self._store_call(1, self.store.foreign_writes)
                if version is not None and version == seen:
                    continue
                seen = version
                position = await self._store_call(1, self.store.max_position)
                if position != self.position:
                    await self.refresh()
            except StoreError as error:
                log.error("cannot read the store: %s", error)

    # What sessions ask

    def is_member(self, key: bytes) -> bool:
        return key != self.me and self.membership.is_member(key)

    def may_join(self, secret: bytes) -> bool:
        return self.membership.open_invite(secret_hash(secret), self.me, now_ms()) is not None

    async def _admits_member(self, key: bytes) -> bool:
        """SSH login of a member. On a miss, re-read the store first: the admission may
        have landed a moment ago (from a peer, or `bzzz invite` in another process)."""
        if not self.is_member(key):
            await self.refresh()
        return self.is_member(key)

    async def _admits_newcomer(self, secret: bytes) -> bool:
        if not self.may_join(secret):
            await self.refresh()
        return self.may_join(secret)

    def hello(self) -> Hello:
        return Hello(self.me, self.name, self.cluster_id or b"", self.advertised, self.heads)

    def on_election(self, message: ElectionMsg) -> None:
        if message.dst in (self.me, EVERY_VOTER) and self._election_handler is not None:
            self._election_handler(message)

    def handle_election(
        self,
        on_message: Callable[[ElectionMsg], None] | None,
        on_link_lost: Callable[[bytes], None] | None,
    ) -> None:
        """Who gets election messages and news of lost links (None: nobody)."""
        self._election_handler, self._link_lost_handler = on_message, on_link_lost

    def feed(self, kinds: Iterable[str]) -> Feed:
        return self.arrivals.feed(kinds)

    def watch(self, kinds: Iterable[str]) -> asyncio.Event:
        return self.arrivals.watch(kinds)

    def connected(self) -> frozenset[bytes]:
        return frozenset(self.sessions)

    def peer_standing(self, peer: bytes) -> Standing | None:
        """A connected peer's standing, from its latest availability message."""
        session = self.sessions.get(peer)
        if session is None or session.availability is None:
            return None
        return session.availability.standing

    def send_election(self, message: ElectionMsg, recipients: tuple[bytes, ...]) -> None:
        """Sign once and send to the recipients we are connected to (election messages
        are not relayed: a voter out of reach misses them, as a lost packet would)."""
        sessions = [s for r in recipients if (s := self.sessions.get(r)) is not None]
        if sessions:
            signed = sign_presence(self.identity.signer, ElectionMessage(message))
            for session in sessions:
                session.send_ephemeral(signed)

    # Presence (`presence.py`)

    def heartbeat(self, counter: int, echo: int, held_us: int) -> bytes:
        return self._presence.heartbeat(counter, echo, held_us)

    def standing(self) -> Standing:
        """This node as a leader candidate: what its availability messages say."""
        return self._presence.standing()

    def availability(self) -> bytes:
        return self._presence.availability()

    async def read_entries(self, author: bytes, after: int, limit: int) -> list[tuple[int, bytes]]:
        """`author`'s entries after `after`, up to `limit` (and `READ_CHUNK`): from those
        stored lately if they are all there, else from the store."""
        cached = self._recent.run(author, after, min(limit, READ_CHUNK))
        if len(cached) == limit:
            return cached
        rows = await asyncio.to_thread(
            self.store.entries, author, after=after, limit=min(limit, READ_CHUNK)
        )
        return [(row.seq, row.raw) for row in rows]

    async def missing_forks(self, sent: set[bytes]) -> list[bytes]:
        """Fork evidence this session has not passed on yet (and marks it passed on)."""
        fresh = [raw for _, _, raw in self._forks if raw not in sent]
        sent.update(fresh)
        return fresh

    # Writes

    async def append_many(
        self, items: list[tuple[str, dict[str, Any]]], first: Iterable[bytes] = ()
    ) -> list[Entry]:
        """Several entries of our own in one atomic batch; sent to the peers `first`
        (those waiting for them) before the others."""
        bodies = [(kind, encode_payload(payload)) for kind, payload in items]
        async with self._write_lock:
            entries = await self._store_call(
                len(bodies), self.store.append_batch, self.identity.signer, bodies, now_ms()
            )
            self._publish()
        self._recent.remember(entries)
        self.book.take_entries(entries)
        if entries:
            self.heads[self.me] = entries[-1].seq
        self._wake_all(first)
        return entries

    async def append(
        self, kind: str, payload: dict[str, Any], first: Iterable[bytes] = ()
    ) -> Entry:
        body = encode_payload(payload)
        async with self._write_lock:
            entry = await self._store_call(
                1, self.store.append, self.identity.signer, kind, body, now_ms()
            )
            self._publish()
        self._recent.remember([entry])
        self.book.take_entries([entry])
        self.heads[entry.author] = entry.seq
        if kind in ms.KINDS:
            await self.refresh()
        self._wake_all(first)
        return entry

    async def _store_call(self, size: int, call: Callable[..., T], *args: Any) -> T:
        """Run store work on `size` entries (a write, or a one-row read): small SQLite
        work inline, the rest (and all PostgreSQL work, a network round trip) in a
        worker thread."""
        if size <= INLINE_WRITE and self.store.url.is_sqlite:
            return call(*args)
        return await asyncio.to_thread(call, *args)

    def _stored(self, written: list[Written]) -> None:
        """The store's write listener; runs where the write ran (the loop or a worker
        thread), under our write lock."""
        self._written += written
        if any(entry.kind in ms.KINDS for _, entry in written):
            self._acts_stored += 1

    def _publish(self) -> None:
        """Hand what our last write stored to the readers in this process. If its
        positions follow ours without a gap, no other process wrote meanwhile, and the
        poll for other writers has nothing to re-read."""
        written, self._written = self._written, []
        if not written:
            return
        first, last = written[0][0], written[-1][0]
        if first == self.position + 1 and last - first == len(written) - 1:
            self.position = last
        self.arrivals.note(written)

    def _wake_all(self, first: Iterable[bytes] = ()) -> None:
        """Wake every session's sender, those of `first` before the rest: senders run
        in the order they are woken, and on a busy node each write takes a while."""
        for peer in first:
            if (session := self.sessions.get(peer)) is not None:
                session.wake.set()
        for session in self.sessions.values():
            session.wake.set()
        self._heads_moved()

    # Head waits (`head_waits.py`)

    def _heads_moved(self) -> None:
        self.changed.set()
        self._head_waits.settle()

    async def wait_for_head(self, author: bytes, seq: int, timeout: float) -> bool:
        """Wait until we hold `author`'s log up to `seq`; False on timeout."""
        return await self._head_waits.wait(author, seq, timeout)

    async def ingest_from(self, session: PeerSession, raws: list[bytes]) -> dict[bytes, int]:
        """Verify and store a batch from a peer; returns our heads for the logs it
        touched, to acknowledge. Raises PeerMisbehaved for anything an honest peer
        would not send (after storing the valid part and recording an alert)."""
        fresh = self._recent.unseen(raws)
        if not fresh:
            return {}
        async with self._write_lock:
            if self.cluster_id is None:
                report = await self._store_call(len(fresh), self.store.ingest, fresh)
            else:
                if self._parked:  # admitted by now: this batch may continue their logs
                    fresh = [e.raw for e in self._take_parked(self.membership)] + fresh
                report = await self._store_call(
                    len(fresh),
                    ingest_members_only,
                    self.store.ingest,
                    fresh,
                    self.cluster_id,
                    self.membership,
                    self._membership_now,
                    self._take_parked,
                )
            self._publish()
            self._park(report.unwanted)
        self._recent.remember(report.accepted)
        if self.book.take_entries(report.accepted):
            self.dialer.dial_members()
        touched: dict[bytes, int] = {}
        for entry in report.accepted:
            if entry.seq > self.heads.get(entry.author, 0):
                self.heads[entry.author] = entry.seq
            touched[entry.author] = self.heads[entry.author]
            if entry.seq > session.their_heads.get(entry.author, 0):
                session.their_heads[entry.author] = entry.seq
        if touched:
            # A peer forwards an author's entries to us only if we are not linked to
            # that author (our Links say so): telling it of those now saves nothing, so
            # they wait for its next heartbeat (for its status), the others go soon.
            for other in self.sessions.values():
                if other is not session:
                    other.note_have(touched, urgent=any(a not in self.sessions for a in touched))
        if report.forks or any(e.kind in ms.KINDS for e in report.accepted):
            await self.refresh()
        elif report.accepted:
            # Only a session that would forward something wakes: in a full mesh every
            # peer has it from its author, and ten needless wake-ups per entry add up.
            for other in self.sessions.values():
                if other.may_lack(touched):
                    other.wake.set()
            self._heads_moved()
        for fork in report.forks:
            if fork.author not in self._alerted_forks:
                self._alerted_forks.add(fork.author)
                log.warning(
                    "fork: %s signed two entries at seq %d", fork.author.hex()[:12], fork.seq
                )
                await self.append(
                    alerts.FORK, alerts.fork_body(fork.author, fork.seq, session.peer)
                )
        hostile = [r for r in report.refused if r.code not in BENIGN_REFUSALS]
        if hostile:
            first = hostile[0]
            raise PeerMisbehaved(first.code, f"sent {len(hostile)} invalid entries: {first.reason}")
        if any(fork.author == session.peer for fork in report.forks):
            raise PeerMisbehaved("forked", "it signed two different entries at one seq")
        return touched

    def _park(self, entries: list[Entry]) -> None:
        """Keep entries refused as not-member (under the write lock)."""
        self._parked.add(entries)
        if any(self.membership.ever_member(e.author) for e in entries):
            self._spawn(self._unpark())  # admitted meanwhile (a refresh came first)

    def _take_parked(self, membership: ms.Membership) -> list[Entry]:
        return self._parked.take(membership.ever_member)

    async def _unpark(self) -> None:
        """Store the parked entries whose authors the fold now admits."""
        async with self._write_lock:
            ready = self._take_parked(self.membership)
            if not ready:
                return
            report = await asyncio.to_thread(self.store.ingest, [e.raw for e in ready])
            self._publish()
        if report.accepted:
            log.info("stored %d entries held back until their authors' admission", len(ready))
            await self.refresh()

    # Sessions

    async def serve(
        self, login: Login, streams: Streams, address: str, close: Callable[[], None]
    ) -> None:
        """An inbound connection that passed SSH login. A newcomer with an invite is
        admitted only after the hellos agree on the cluster: a join that fails there
        leaves the invite unspent."""
        if login.join_secret is not None:
            await self._run_session(
                login.peer, address, False, streams, close, admit=lambda: self._admit(login)
            )
        elif self.is_member(login.peer):
            await self._run_session(login.peer, address, False, streams, close)

    async def _admit(self, login: Login) -> bool:
        assert login.join_secret is not None and login.join_name is not None
        digest = secret_hash(login.join_secret)
        async with self._write_lock:
            membership = await asyncio.to_thread(self._read_membership)
            invite = membership.open_invite(digest, self.me, now_ms())
            if invite is None:  # used meanwhile by another newcomer
                return False
            body = ms.admitted_body(login.peer, login.join_name[:64], invite.role, digest)
            await asyncio.to_thread(
                self.store.append,
                self.identity.signer,
                ms.ADMITTED,
                encode_payload(body),
                now_ms(),
            )
            self._publish()
        await self.refresh()
        log.info("admitted %s (%s) as %s", login.join_name, login.peer.hex()[:12], invite.role)
        return True

    async def _run_session(
        self,
        peer: bytes,
        address: str,
        outbound: bool,
        streams: Streams,
        close: Callable[[], None],
        admit: Callable[[], Awaitable[bool]] | None = None,
    ) -> None:
        session = PeerSession(self, peer, address, outbound, streams, close)
        reason = "closed"
        registered = False
        try:
            await session.open()
            if admit is not None and not await admit():
                return
            registered = self._register(session)
            if not registered:
                return
            self._links_changed()
            if not outbound:
                self.dialer.dial_back(session)
            log.info("connected to %s (%s) at %s", session.name, peer.hex()[:12], address)
            await session.run()
        except ProtocolError as error:
            reason = f"refused: {error}"
            await self._report_peer(session, error.code, str(error))
        except (ConnectionClosed, PeerDown) as error:
            reason = str(error) or "connection closed"
        except TimeoutError:
            reason = "no hello in time"
        except StoreError as error:  # our store (a full disk): drop the link, dial again
            reason = f"our store failed: {error}"
            log.error("link with %s dropped: %s", peer.hex()[:12], reason)
        finally:
            if registered and self.sessions.get(peer) is session:
                del self.sessions[peer]
                log.info("disconnected from %s: %s", peer.hex()[:12], reason)
                self._links_changed()
                self._wake_all()
                if self._link_lost_handler is not None:
                    self._link_lost_handler(peer)
            close()

    def _links_changed(self) -> None:
        links = frozenset(self.sessions)
        for session in self.sessions.values():
            session.note_links(links)

    def _register(self, session: PeerSession) -> bool:
        existing = self.sessions.get(session.peer)
        if existing is not None:
            keep_dialer = min(self.me, session.peer)
            if session.dialer != keep_dialer or existing.dialer == keep_dialer:
                return False
            existing.close_transport()
        self.sessions[session.peer] = session
        return True

    async def _report_peer(self, session: PeerSession, code: str, reason: str) -> None:
        log.warning("refused peer %s at %s: %s", session.peer.hex()[:12], session.address, reason)
        try:
            await self.append(
                alerts.PEER_REFUSED,
                alerts.peer_refused_body(session.peer, session.address, code, reason),
            )
        except StoreError as error:
            log.error("could not record the alert: %s", error)

    async def _run_outbound(
        self, peer: bytes, address: str, streams: Streams, close: Callable[[], None]
    ) -> None:
        """A connection a dial loop made (`dialing.py`)."""
        await self._run_session(peer, address, True, streams, close)

    # Dialing (`dialing.py`)

    def add_peer(
        self, address: str, expected: bytes | None = None, announced: bool = False
    ) -> None:
        """Keep a link to `address` (accepting only `expected`'s key there, if given)."""
        self.dialer.add_peer(address, expected, announced)

    # Status

    def view(self) -> MeshView:
        """What this node knows of itself and its peers, for status."""
        names = {key: member.name for key, member in self.membership.members.items()}
        unreached = self.dialer.unreached(names)
        me = self.membership.members.get(self.me)
        role = me.role if me else self.role
        found = self.roles.get(role)
        return MeshView(
            agent_id=self.me,
            name=self.name,
            role=role,
            authority=found.authority.label if found else None,
            cluster=self.cluster,
            cluster_id=self.cluster_id,
            member=me is not None,
            listen=self.advertised,
            started_ms=int(self.started * 1000),
            store=self.store.url.display(),
            heads=dict(self.heads),
            members=len(self.membership.members),
            peers=[s.view() for s in self.sessions.values()],
            unreached=unreached,
        )
