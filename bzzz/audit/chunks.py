"""Checking one stretch of one stored log; runs in worker processes.

Each worker process opens the store once and keeps it for every chunk it is given.
"""

from __future__ import annotations

from dataclasses import dataclass
from uuid import UUID

from bzzz.domain.audit_rules import ChunkResult, LogChecker, Row
from bzzz.store import EventStore
from bzzz.store.urls import StoreUrl


@dataclass(frozen=True)
class Chunk:
    """Seqs (after, upto] of the stream `originator`, whose author is `author`."""

    originator: UUID
    author: bytes
    after: int
    upto: int


_stores: dict[str, EventStore] = {}


def _store(url: StoreUrl) -> EventStore:
    key = url.url.render_as_string(hide_password=False)
    store = _stores.get(key)
    if store is None:
        store = _stores[key] = EventStore(url, create=False)
    return store


def check_chunk(url: StoreUrl, chunk: Chunk, full: bool) -> ChunkResult:
    checker = LogChecker(chunk.author, start=chunk.after + 1, full=full)
    feed = checker.feed
    for seq, kind, raw, position in _store(url).scan(chunk.originator, chunk.after, chunk.upto):
        feed(Row(raw, seq, kind, position))
    return checker.result


def close_worker_stores() -> None:
    for store in _stores.values():
        store.close()
    _stores.clear()
