"""HMMM threads as a projection: every node folds the HMMM entries it stores into
threads (`bzzz.domain.hmmm`), with the task board saying who held which task with which
tokens. Threads are small (a limit caps each) and independent, so a thread is simply
folded again when its entries or its task's holds change."""

from __future__ import annotations

import contextlib
from collections.abc import Awaitable, Callable, Iterable

from bzzz.domain import board as bd
from bzzz.domain import claims as cl
from bzzz.domain import hmmm as hm
from bzzz.domain.claims import ClaimEntry, Token
from bzzz.domain.entry import Entry
from bzzz.domain.payload import payload_map
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


def thread_of(entry: ClaimEntry) -> str | None:
    """The thread an HMMM entry names, if it names a valid one."""
    data = payload_map(entry.body)
    thread = data.get("thread") if data is not None else None
    return thread if isinstance(thread, str) and hm.thread_id_problem(thread) is None else None


def _holds_key(board: bd.Board, task: str) -> tuple[tuple[bytes, tuple[cl.Token, ...]], ...]:
    """What a thread's fold reads of the board: the holds of its task."""
    found = board.tasks.get(task)
    if found is None:
        return ()
    every = [*found.ended, *([found.hold] if found.hold else [])]
    return tuple((h.holder, tuple(h.tokens)) for h in every)


class ThreadsProjection:
    """Threads are folded one by one: an entry refolds only its own thread, and a
    change of the board only the threads whose task's holds changed. A node's cost per
    message stays that of one small thread however long the cluster's history."""

    def __init__(self, fresh: Callable[[], Awaitable[list[Entry]]], limits: hm.Limits) -> None:
        self._fresh = fresh
        self.limits = limits
        self._by_thread: dict[str, list[ClaimEntry]] = {}
        self._holds: dict[str, tuple[tuple[bytes, tuple[cl.Token, ...]], ...]] = {}
        self._ignored: dict[str, list[str]] = {}
        self._admins: frozenset[bytes] = frozenset()
        self._bad: list[str] = []  # entries that name no valid thread
        self.threads = hm.Threads()

    async def update(self, board: bd.Board, admins: Iterable[bytes]) -> None:
        """Take what arrived and fold again the threads it (or the board) changed."""
        dirty: set[str] = set()
        for e in await self._fresh():
            entry = ClaimEntry(e.author, e.kind, e.body, e.hash, e.ts, e.lamport)
            thread = thread_of(entry)
            if thread is None:
                folded = hm.fold_threads([entry], self.limits, holds_on(board), ())
                self._bad = [*self._bad, *folded.ignored][-hm.MAX_REPORTED :]
                continue
            self._by_thread.setdefault(thread, []).append(entry)
            dirty.add(thread)
        chosen = frozenset(admins)
        if chosen != self._admins:
            self._admins = chosen
            dirty |= set(self._by_thread)
        for thread in self._by_thread:
            holds = _holds_key(board, thread)
            if holds != self._holds.get(thread):
                self._holds[thread] = holds
                dirty.add(thread)
        for thread in dirty:
            folded = hm.fold_threads(
                self._by_thread[thread], self.limits, holds_on(board), self._admins
            )
            found = folded.threads.get(thread)
            if found is None:
                self.threads.threads.pop(thread, None)
            else:
                self.threads.threads[thread] = found
            self._ignored[thread] = folded.ignored
        if dirty or self._bad:
            lines = [*self._bad, *(line for t in self._ignored.values() for line in t)]
            self.threads.ignored = lines[-hm.MAX_REPORTED :]

    def would_take(self, board: bd.Board, admins: Iterable[bytes], entry: ClaimEntry) -> str | None:
        """Why the fold would leave `entry` out, or None: checked before it is written."""
        thread = thread_of(entry)
        entries = self._by_thread.get(thread, []) if thread is not None else []
        folded = hm.fold_threads([*entries, entry], self.limits, holds_on(board), admins)
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
