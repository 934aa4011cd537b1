"""Checking one stretch of one stored log; runs in worker processes.

Each worker process opens the store once and keeps it for every chunk it is given.
"""

from __future__ import annotations

from dataclasses import dataclass
from uuid import UUID

from bzzz.audit.reader import scan
from bzzz.domain.audit_rules import ChunkResult, Finding, LogChecker, Row
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
    try:
        for seq, kind, raw, position in scan(
            _store(url), chunk.originator, chunk.after, chunk.upto
        ):
            if type(seq) is not int or type(position) is not int or type(kind) is not str:
                checker.result.findings.append(
                    Finding(
                        chunk.author.hex(),
                        seq if type(seq) is int else None,
                        "metadata-mismatch",
                        "a stored row has a malformed seq, kind or position",
                    )
                )
                continue
            feed(Row(raw, seq, kind, position))
    except Exception as exc:  # a damaged store must give findings, never a crash
        checker.result.findings.append(
            Finding(
                chunk.author.hex(),
                chunk.after + 1,
                "unreadable",
                f"seq {chunk.after + 1} to {chunk.upto} could not be read: {exc}".splitlines()[0],
            )
        )
    return checker.result


def close_worker_stores() -> None:
    for store in _stores.values():
        store.close()
    _stores.clear()
