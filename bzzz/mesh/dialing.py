"""The dial loops: one per address this node keeps a link to (from config, `--peer`,
mDNS, the listen address a member's hello names, and every address each member
announced), with backoff, and their bookkeeping (what each address last failed with).

A loop accepts only its member's host key at its address (any member's, for an address
whose owner we do not know yet), so a wrong or stale address costs a failed dial, never a
wrong peer. It ends when its member is removed from the cluster or no longer announces
that address. The sessions themselves are the mesh's (`mesh.py`): a loop hands each
connection it makes to the `link` it was given, and dials again once that ends.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import Awaitable, Callable, Coroutine, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from bzzz.clock import sleep_to_tick
from bzzz.domain import addresses as ad
from bzzz.domain.addresses import parse_address
from bzzz.domain.membership import Membership
from bzzz.errors import PeerError
from bzzz.home.keys import Identity
from bzzz.mesh.address_book import AddressBook
from bzzz.mesh.session import PeerSession
from bzzz.mesh.transport import Streams, dial
from bzzz.mesh.views import DialedView

log = logging.getLogger("bzzz.mesh")

DIAL_CHECK_S = 1.0  # how often a target connected the other way round is looked at
BACKOFF_MIN_S = 0.2
BACKOFF_MAX_S = 2.0
STABLE_S = 5.0
_LOCAL = {"127.0.0.1", "localhost", "0.0.0.0", "::1", "::"}
_ANY = {"0.0.0.0", "::"}

# Runs an outbound session with a peer (its key, address, streams, and how to close
# the connection) until it ends.
Link = Callable[[bytes, str, Streams, Callable[[], None]], Awaitable[None]]
# Runs a task for as long as the node does.
Spawn = Callable[[Coroutine[Any, Any, None]], object]


@dataclass
class Dialed:
    """A static or discovered address we keep a connection to."""

    host: str
    port: int
    expected: bytes | None = None
    peer: bytes | None = None
    last_error: str | None = None
    announced: bool = False  # dialed because `expected` announced it (not config or mDNS)

    @property
    def address(self) -> str:
        return ad.format_address(self.host, self.port)


class DialHost(Protocol):
    """What the dial loops read of the node they dial for (the `Mesh`)."""

    @property
    def identity(self) -> Identity: ...

    @property
    def me(self) -> bytes: ...

    @property
    def membership(self) -> Membership: ...

    @property
    def sessions(self) -> Mapping[bytes, object]: ...

    @property
    def bound(self) -> tuple[str, int] | None: ...

    def is_member(self, key: bytes) -> bool: ...


class Dialer:
    """Every address this node dials (`dialed`, by address), each with its loop."""

    def __init__(self, host: DialHost, book: AddressBook, spawn: Spawn, link: Link) -> None:
        self._host = host
        self._book = book
        self._spawn = spawn
        self._link = link
        self.dialed: dict[str, Dialed] = {}

    def add_peer(
        self, address: str, expected: bytes | None = None, announced: bool = False
    ) -> None:
        host, port = parse_address(address)
        key = ad.format_address(host, port)
        bound = self._host.bound
        if key in self.dialed or (bound and port == bound[1] and host in _LOCAL):
            return
        target = Dialed(host, port, expected, announced=announced)
        self.dialed[key] = target
        self._spawn(self._dial_loop(target))

    def dial_members(self) -> None:
        """Dial every member at every address it announced (one seed is enough: the
        others' addresses come with their logs). A target whose member no longer
        announces it ends its dial loop itself."""
        if self._host.bound is None:  # not started (a `bzzz join` copying logs): no dialing
            return
        me, membership = self._host.me, self._host.membership
        for member, addresses in self._book.directory.members().items():
            if member != me and membership.is_member(member):
                for address in addresses:
                    self.add_peer(address, expected=member, announced=True)

    def dial_back(self, session: PeerSession) -> None:
        """A member that dialed us says where it listens: dial it there from now on, so
        that the link comes back when it restarts without naming us as a peer. Only
        that member's key is accepted at that address."""
        listen = session.hello.listen if session.hello else ""
        try:
            host, port = parse_address(listen)
            if host in _ANY:  # it listens everywhere: reach it where it came from
                host = parse_address(session.address)[0]
        except ValueError:
            return
        if port == 0:
            return
        self.add_peer(f"{host}:{port}", expected=session.peer)

    def unreached(self, names: Mapping[bytes, str]) -> list[DialedView]:
        """For status: each address dialed in vain (its member, if known, `names` it),
        and each other member of `names` with no address to dial."""
        connected = set(self._host.sessions)
        unreached = [
            DialedView(known, target.address, target.last_error, names.get(known or b""))
            for target in self.dialed.values()
            if (known := target.expected or target.peer) is None or known not in connected
        ]
        dialed = {t.expected or t.peer for t in self.dialed.values()}
        unreached += [
            DialedView(key, "", "no address known (it has not announced one yet)", name)
            for key, name in names.items()
            if key != self._host.me and key not in connected and key not in dialed
        ]
        return unreached

    def _still_announced(self, target: Dialed) -> bool:
        if not target.announced or target.expected is None:
            return True
        announced = self._book.directory.of(target.expected)
        return any(ad.format_address(*parse_address(a)) == target.address for a in announced)

    def _accept_host(self, target: Dialed) -> Callable[[bytes], bool]:
        def accept(key: bytes) -> bool:
            if target.expected is not None and key != target.expected:
                return False
            return self._host.is_member(key)

        return accept

    async def _dial_loop(self, target: Dialed) -> None:
        delay = BACKOFF_MIN_S
        while True:
            known = target.expected or target.peer
            if known is not None and known in self._host.membership.removed:
                log.info("no longer dialing %s: removed from the cluster", target.address)
                self.dialed.pop(target.address, None)
                return
            if not self._still_announced(target):
                log.info("no longer dialing %s: its member announced others", target.address)
                self.dialed.pop(target.address, None)
                return
            if known is not None and known in self._host.sessions:
                await sleep_to_tick(DIAL_CHECK_S)  # connected the other way round
                continue
            began = time.monotonic()
            try:
                conn, peer, streams = await dial(
                    self._host.identity, target.host, target.port, self._accept_host(target)
                )
            except PeerError as error:
                target.last_error = str(error)
                log.debug("cannot reach %s: %s", target.address, target.last_error)
            else:
                target.peer, target.last_error = peer, None
                async with conn:
                    await self._link(peer, target.address, streams, conn.close)
            if time.monotonic() - began > STABLE_S:
                delay = BACKOFF_MIN_S
            await asyncio.sleep(random.uniform(delay / 2, delay))
            delay = min(delay * 2, BACKOFF_MAX_S)
