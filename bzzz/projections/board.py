"""The task board as a projection: every node folds the task and claim entries it stores
into a `Board` (`bzzz.domain.board`) under the leaders the logs prove. New entries that
come after everything folded so far are applied in place; one that sorts earlier (a
peer's log arriving late) or a change of the proven leaders folds everything again,
so the board never depends on the order in which logs arrived."""

from __future__ import annotations

import contextlib
from collections.abc import Awaitable, Callable

from bzzz.domain import board as bd
from bzzz.domain import claims as cl
from bzzz.domain.entry import Entry
from bzzz.errors import EntryError
from bzzz.store import EventStore

KINDS = bd.KINDS


class BoardProjection:
    def __init__(self, fresh: Callable[[], Awaitable[list[Entry]]]) -> None:
        """`fresh`: the entries of `KINDS` stored since the last call (a feed)."""
        self._fresh = fresh
        self.board = bd.Board()
        self._entries: list[bd.BoardEntry] = []
        self._leaders: dict[int, bytes] = {}
        self._ends: dict[int, int] = {}
        self.refolds = 0  # how often everything was folded again (for status and tests)

    async def update(self, leaders: dict[int, bytes], ends: dict[int, int]) -> bool:
        """Take what arrived and fold it; True when the board may have changed."""
        new = sorted(
            (
                bd.BoardEntry(e.author, e.kind, e.body, e.hash, e.ts, e.lamport)
                for e in await self._fresh()
                # A renewal without a phase changes nothing on the board, and renewals
                # are most of a busy cluster's entries: not kept, not folded again.
                if not (e.kind == cl.PROGRESS and b"phase" not in e.body)
            ),
            key=lambda e: e.order,
        )
        self._entries += new
        last = self.board.last
        changed = leaders != self._leaders or ends != self._ends
        if changed or (new and last is not None and new[0].order < last):
            self._leaders, self._ends = dict(leaders), dict(ends)
            self._entries.sort(key=lambda e: e.order)
            self.board = bd.fold_board(self._entries, leaders, ends)
            self.refolds += 1
            return True
        bd.apply_board(self.board, new, leaders, ends)
        return bool(new)


def offline_board(
    store: EventStore, leaders: dict[int, bytes], ends: dict[int, int]
) -> tuple[bd.Board, cl.ClaimBook]:
    """The board and the claim book from the store alone (no agent running)."""
    entries: list[Entry] = []
    after = 0
    kinds = sorted({*KINDS, *cl.KINDS})
    while page := store.notifications(after=after, kinds=kinds):
        for stored in page:
            with contextlib.suppress(EntryError):
                entries.append(stored.decode())
        after = page[-1].position
    board = bd.fold_board(
        (bd.BoardEntry(e.author, e.kind, e.body, e.hash, e.ts, e.lamport) for e in entries),
        leaders,
        ends,
    )
    book = cl.fold_claims(
        (
            cl.ClaimEntry(e.author, e.kind, e.body, e.hash, e.ts, e.lamport)
            for e in entries
            if e.kind in cl.KINDS
        ),
        leaders,
        max(leaders, default=0),
    )
    return board, book
