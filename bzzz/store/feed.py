"""The store-level feed: what this process stored lately, handed to the readers in this
process (claims, leadership) by kind as it is stored, so that they do not query the
store for it. On a busy mesh
every reader would otherwise query on every entry of its kinds, and every query costs a
thread hop, a compiled statement and a round trip to the database.

A reader reads the store itself only when it must: at start, when another process wrote
to the store (this one did not see what), or when it fell too far behind.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Iterable

from bzzz.domain.entry import Entry
from bzzz.errors import EntryError
from bzzz.store.event_store import EventStore, Written

# A feed that holds this many entries its reader has not taken is dropped, and the
# reader reads the store instead: a stalled reader must not grow the daemon's memory.
MAX_HELD = 20_000


class Feed:
    """Entries of some kinds, in position order, that one reader has not taken yet."""

    def __init__(self, store: EventStore, kinds: frozenset[str]) -> None:
        self.store = store
        self.kinds = kinds
        self.position = 0  # the reader holds every entry of its kinds up to here
        self._held: list[Written] = []
        self._reread = True

    async def fresh(self) -> list[Entry]:
        """What arrived since the last call: handed over, or read from the store when
        the feed lost track. One caller at a time, or an entry may come twice."""
        taken = self.take()
        if taken is None:
            return await asyncio.to_thread(self.read_store)
        return taken

    def take(self) -> list[Entry] | None:
        """What was handed over since the last take, or None: the reader must read the
        store after `position`."""
        if self._reread:
            self._reread = False
            self._held = []
            return None
        held, self._held = self._held, []
        fresh = [entry for position, entry in held if position > self.position]
        if held:
            self.position = max(self.position, held[-1][0])
        return fresh

    def read_store(self) -> list[Entry]:
        """Entries of our kinds stored after `position`, read from the store."""
        out: list[Entry] = []
        while page := self.store.notifications(
            after=self.position, kinds=sorted(self.kinds), limit=5000
        ):
            for stored in page:
                with contextlib.suppress(EntryError):
                    out.append(stored.decode())
            self.position = page[-1].position
        return out

    def deliver(self, written: list[Written]) -> None:
        mine = [w for w in written if w[1].kind in self.kinds]
        if not mine:
            return
        if len(self._held) + len(mine) > MAX_HELD:
            self._held, self._reread = [], True
        else:
            self._held += mine

    def lose_track(self) -> None:
        self._held, self._reread = [], True


class Arrivals:
    """The feeds and watches of one store's readers in this process. The writer of the
    process hands each write over (`note`); a write it did not see is `note_unknown`."""

    def __init__(self, store: EventStore) -> None:
        self.store = store
        self._feeds: list[Feed] = []
        self._watches: list[tuple[frozenset[str], asyncio.Event]] = []

    def feed(self, kinds: Iterable[str]) -> Feed:
        feed = Feed(self.store, frozenset(kinds))
        self._feeds.append(feed)
        return feed

    def watch(self, kinds: Iterable[str]) -> asyncio.Event:
        """An event set whenever entries of these kinds (or of unknown kinds) arrive;
        its one reader clears it."""
        event = asyncio.Event()
        self._watches.append((frozenset(kinds), event))
        return event

    def note(self, written: list[Written]) -> None:
        """These entries were just stored by this process, in position order."""
        if not written:
            return
        kinds = {entry.kind for _, entry in written}
        for feed in self._feeds:
            feed.deliver(written)
        for watched, event in self._watches:
            if not watched.isdisjoint(kinds):
                event.set()

    def note_unknown(self) -> None:
        """Something was stored that this process did not see (another process wrote)."""
        for feed in self._feeds:
            feed.lose_track()
        for _, event in self._watches:
            event.set()
