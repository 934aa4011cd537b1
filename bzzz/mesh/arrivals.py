"""Which kinds of entry this node stored lately, so that a reader of the store (claims,
leadership) skips its query when nothing of its kinds arrived. On a busy mesh most
entries are of kinds a given reader ignores, and every query costs a thread hop and a
round trip to the database."""

from __future__ import annotations

import asyncio
from collections.abc import Iterable


class Arrivals:
    def __init__(self) -> None:
        self.stamp = 0
        self._by_kind: dict[str, int] = {}
        self._anything = 0
        self._watches: list[tuple[frozenset[str], asyncio.Event]] = []

    def watch(self, kinds: Iterable[str]) -> asyncio.Event:
        """An event set whenever entries of these kinds (or of unknown kinds) arrive;
        its one reader clears it."""
        event = asyncio.Event()
        self._watches.append((frozenset(kinds), event))
        return event

    def note(self, kinds: Iterable[str]) -> None:
        """Entries of these kinds were just stored."""
        self.stamp += 1
        seen = set(kinds)
        for kind in seen:
            self._by_kind[kind] = self.stamp
        for watched, event in self._watches:
            if not watched.isdisjoint(seen):
                event.set()

    def note_unknown(self) -> None:
        """Something was stored that this process did not see (another process wrote)."""
        self.stamp += 1
        self._anything = self.stamp
        for _, event in self._watches:
            event.set()

    def since(self, kinds: Iterable[str], stamp: int) -> bool:
        """Whether any of `kinds` may have arrived after `stamp`. A reader takes `stamp`
        before it reads, so what lands during its read is caught the next time."""
        return self._anything > stamp or any(self._by_kind.get(k, 0) > stamp for k in kinds)
