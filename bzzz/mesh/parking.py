"""Entries refused as not-member, kept until the fold admits their authors.

A member's log can reach us before the entry that admitted it (two peers' views of
membership differ for a moment). Its sender has marked it sent and will not send it
again on that link, so the mesh keeps it here, within a byte budget (the oldest dropped
first: a hostile peer cannot grow it), and stores it once its author is admitted."""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable, Iterable

from bzzz.domain.entry import Entry

PARKED_BYTES = 8 * 1024 * 1024


class Parking:
    def __init__(self, budget: int = PARKED_BYTES) -> None:
        self.budget = budget
        self._entries: OrderedDict[bytes, Entry] = OrderedDict()  # by hash
        self._bytes = 0

    def __bool__(self) -> bool:
        return bool(self._entries)

    def add(self, entries: Iterable[Entry]) -> None:
        for entry in entries:
            if entry.hash not in self._entries:
                self._entries[entry.hash] = entry
                self._bytes += len(entry.raw)
        while self._bytes > self.budget:
            _, dropped = self._entries.popitem(last=False)
            self._bytes -= len(dropped.raw)

    def take(self, admitted: Callable[[bytes], bool]) -> list[Entry]:
        """The entries whose authors are `admitted` now, no longer kept."""
        ready = [e for e in self._entries.values() if admitted(e.author)]
        for entry in ready:
            del self._entries[entry.hash]
            self._bytes -= len(entry.raw)
        return ready
