"""The entries this node stored lately, kept in memory for the two hot paths every live
entry takes: the hashes, so that duplicates (a full mesh forwards every entry to peers
that already have it) are dropped before any store work; and the raw entries by
(author, seq), so that a live push to peers does not read back what was just written.
The mesh (`mesh.py`) remembers what each write stores and asks here first."""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Iterable

from bzzz.domain.entry import Entry, entry_hash

RECENT_HASHES = 65_536
RECENT_RAWS = 16_384


class RecentEntries:
    """The latest entries stored, bounded: the oldest are forgotten first."""

    def __init__(self, hashes: int = RECENT_HASHES, raws: int = RECENT_RAWS) -> None:
        self._max_hashes = hashes
        self._max_raws = raws
        self._hashes: OrderedDict[bytes, None] = OrderedDict()
        self._raws: OrderedDict[tuple[bytes, int], bytes] = OrderedDict()

    def remember(self, entries: Iterable[Entry]) -> None:
        for entry in entries:
            self._hashes[entry.hash] = None
            self._raws[(entry.author, entry.seq)] = entry.raw
        while len(self._hashes) > self._max_hashes:
            self._hashes.popitem(last=False)
        while len(self._raws) > self._max_raws:
            self._raws.popitem(last=False)

    def unseen(self, raws: list[bytes]) -> list[bytes]:
        """The entries of `raws` not stored lately."""
        return [raw for raw in raws if entry_hash(raw) not in self._hashes]

    def run(self, author: bytes, after: int, count: int) -> list[tuple[int, bytes]]:
        """`author`'s entries after seq `after`, as (seq, raw), up to `count` of them:
        as far as they are held here without a gap (fewer, or none, if not)."""
        held = []
        for seq in range(after + 1, after + 1 + count):
            raw = self._raws.get((author, seq))
            if raw is None:
                break
            held.append((seq, raw))
        return held
