"""The claim book as a projection: every node folds the claim entries and the agents'
profiles it stores into a `ClaimBook` (`bzzz.domain.claims`), with the leaders the logs
prove. It starts from the store and then takes what the node stores as it comes; a
change in the proven leaders (which grants count) folds every entry again."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from bzzz.domain import claims as cl
from bzzz.domain.entry import Entry
from bzzz.domain.profile import PROFILE, max_tasks_of

KINDS = (*cl.KINDS, PROFILE)


class ClaimBookProjection:
    def __init__(self, fresh: Callable[[], Awaitable[list[Entry]]]) -> None:
        """`fresh`: the entries of `KINDS` stored since the last call (a feed)."""
        self._fresh = fresh
        self.book = cl.ClaimBook()
        self.max_tasks: dict[bytes, int] = {}  # per agent, from its latest profile
        self._entries: list[cl.ClaimEntry] = []
        self._leaders: dict[int, bytes] = {}

    async def read(self) -> list[cl.ClaimEntry]:
        """Take what arrived; the claim entries among it (profiles are noted)."""
        new: list[cl.ClaimEntry] = []
        for entry in await self._fresh():
            if entry.kind == PROFILE:
                count = max_tasks_of(entry.body)
                if count is not None:
                    self.max_tasks[entry.author] = count
            else:
                new.append(
                    cl.ClaimEntry(
                        entry.author, entry.kind, entry.body, entry.hash, entry.ts, entry.lamport
                    )
                )
        self._entries += new
        return new

    def fold(self, new: list[cl.ClaimEntry], leaders: dict[int, bytes]) -> bool:
        """Bring the book up to date with `new` under the proven `leaders`; True when
        the leaders changed and every entry was folded again."""
        if leaders != self._leaders:
            self._leaders = leaders
            self.book = cl.fold_claims(self._entries, leaders, max(leaders, default=0))
            return True
        if new:
            cl.apply_claims(self.book, new, leaders)
        return False

    def invalidate(self) -> None:
        """The book holds decisions that were never written: fold it again next time."""
        self._leaders = {}
