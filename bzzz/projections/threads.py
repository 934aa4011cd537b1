"""HMMM threads as a projection: every node folds the HMMM entries it stores into
threads (`bzzz.domain.hmmm`), with the task board saying who held which task with which
tokens. Threads are small (a limit caps each), so the fold is simply done again when
entries arrive or the holds change."""

from __future__ import annotations

import contextlib
from collections.abc import Awaitable, Callable, Iterable

from bzzz.domain import board as bd
from bzzz.domain import hmmm as hm
from bzzz.domain.claims import ClaimEntry, Token
from bzzz.domain.entry import Entry
from bzzz.errors import EntryError
from bzzz.store import EventStore

KINDS = hm.KINDS


def holds_on(board: bd.Board) -> hm.Holds:
    """Whether `author` held `task` with `token`, now or in an earlier hold."""

    def holds(task: str, author: bytes, token: Token) -> bool:
        found = board.tasks.get(task)
        if found is None:
            return False
        every = [*found.ended, *([found.hold] if found.hold else [])]
        return any(h.holder == author and token in h.tokens for h in every)

    return holds


class ThreadsProjection:
    def __init__(self, fresh: Callable[[], Awaitable[list[Entry]]], limits: hm.Limits) -> None:
        self._fresh = fresh
        self.limits = limits
        self._entries: list[ClaimEntry] = []
        self.threads = hm.Threads()

    async def update(self, board: bd.Board, admins: Iterable[bytes]) -> None:
        """Take what arrived and fold every thread again."""
        self._entries += [
            ClaimEntry(e.author, e.kind, e.body, e.hash, e.ts, e.lamport)
            for e in await self._fresh()
        ]
        self.threads = hm.fold_threads(self._entries, self.limits, holds_on(board), admins)

    def would_take(self, board: bd.Board, admins: Iterable[bytes], entry: ClaimEntry) -> str | None:
        """Why the fold would leave `entry` out, or None: checked before it is written."""
        folded = hm.fold_threads([*self._entries, entry], self.limits, holds_on(board), admins)
        mine = [line for line in folded.ignored if entry.hash.hex()[:12] in line]
        return mine[0].split(": ", 1)[1] if mine else None


def hmmm_entries(store: EventStore) -> list[Entry]:
    entries: list[Entry] = []
    after = 0
    while page := store.notifications(after=after, kinds=list(KINDS)):
        for stored in page:
            with contextlib.suppress(EntryError):
                entries.append(stored.decode())
        after = page[-1].position
    return entries


def offline_threads(
    store: EventStore, board: bd.Board, deciders: Iterable[bytes], limits: hm.Limits
) -> hm.Threads:
    """The threads from the store alone (no agent running)."""
    entries = [
        ClaimEntry(e.author, e.kind, e.body, e.hash, e.ts, e.lamport) for e in hmmm_entries(store)
    ]
    return hm.fold_threads(entries, limits, holds_on(board), deciders)


def verify_messages(store: EventStore, messages: Iterable[tuple[str, str, int]]) -> list[str]:
    """Check (entry hash, author, ts) of transcript messages against the logs: each is an
    entry of its author's log, where its seq says, with a valid signature. What is wrong,
    one line each; empty when every message checks out."""
    held = {e.hash: e for e in hmmm_entries(store)}
    problems: list[str] = []
    for entry_hex, author_hex, ts in messages:
        entry = held.get(bytes.fromhex(entry_hex))
        if entry is None:
            problems.append(f"{entry_hex[:12]}: not in this node's logs")
            continue
        in_log = store.entry_at(entry.author, entry.seq)
        if in_log is None or in_log.hash != entry.hash:
            problems.append(f"{entry_hex[:12]}: not at seq {entry.seq} of its author's log")
        elif entry.author.hex() != author_hex or entry.ts != ts:
            problems.append(f"{entry_hex[:12]}: author or time differ from the log")
        elif not entry.signature_ok():
            problems.append(f"{entry_hex[:12]}: the signature does not verify")
    return problems
