"""Readers in the daemon are handed what it stores, and read the store only when they
must: at start, after another process wrote, or when they fell behind."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from bzzz.domain.identity import Ed25519Signer
from bzzz.domain.payload import encode_payload
from bzzz.store import EventStore
from bzzz.store import feed as arrivals_module
from bzzz.store.feed import Arrivals
from bzzz.store.records import StoredEntry
from tests.support.builders import build_chain

BODY = encode_payload({"k": "v"})


def _fresh(feed: arrivals_module.Feed) -> list[str]:
    return [f"{e.kind}@{e.seq}" for e in asyncio.run(feed.fresh())]


def _count_reads(store: EventStore, monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """A list that grows by one at each query of the store's arrivals."""
    reads: list[int] = []
    real = store.notifications

    def counted(**kwargs: Any) -> list[StoredEntry]:
        reads.append(1)
        return real(**kwargs)

    monkeypatch.setattr(store, "notifications", counted)
    return reads


def test_the_write_listener_gets_what_was_stored_at_its_positions(
    store: EventStore, alice: Ed25519Signer, bob: Ed25519Signer
) -> None:
    heard: list[tuple[int, bytes]] = []
    store.on_write(lambda written: heard.extend((p, e.hash) for p, e in written))
    store.append_batch(alice, [("task.a", BODY), ("task.b", BODY)], 1)
    store.ingest([e.raw for e in build_chain(bob, 3)])
    store.append(alice, "task.a", BODY, 2)
    assert heard == [(s.position, s.decode().hash) for s in store.notifications()]


def test_a_feed_hands_over_its_kinds_and_reads_the_store_only_when_it_lost_track(
    store: EventStore, alice: Ed25519Signer, monkeypatch: pytest.MonkeyPatch
) -> None:
    arrivals = Arrivals(store)
    store.on_write(arrivals.note)
    reads = _count_reads(store, monkeypatch)
    store.append_batch(alice, [("task.a", BODY), ("task.b", BODY)], 1)  # before the feed
    feed = arrivals.feed(["task.a"])
    assert _fresh(feed) == ["task.a@1"]  # a new reader starts from the store
    assert reads and (before := len(reads))
    store.append_batch(alice, [("task.b", BODY), ("task.a", BODY)], 2)
    store.append(alice, "task.a", BODY, 3)
    assert _fresh(feed) == ["task.a@4", "task.a@5"]
    assert len(reads) == before  # handed over, not read

    with EventStore(store.url) as other:  # another process: this one cannot hand it over
        other.append(alice, "task.a", BODY, 4)
    arrivals.note_unknown()
    assert feed.take() is None
    store.append(alice, "task.a", BODY, 5)  # stored while the reader reads the store
    assert [e.seq for e in feed.read_store()] == [6, 7]
    assert len(reads) > before
    assert _fresh(feed) == []  # handed over too, but already read: not twice


def test_a_feed_its_reader_leaves_behind_is_dropped_for_a_store_read(
    store: EventStore, alice: Ed25519Signer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(arrivals_module, "MAX_HELD", 3)
    arrivals = Arrivals(store)
    store.on_write(arrivals.note)
    feed = arrivals.feed(["task.a"])
    assert _fresh(feed) == []
    store.append_batch(alice, [("task.a", BODY)] * 2, 1)
    store.append_batch(alice, [("task.a", BODY)] * 2, 2)  # one more than it may hold
    reads = _count_reads(store, monkeypatch)
    assert _fresh(feed) == [f"task.a@{n}" for n in range(1, 5)]
    assert reads


def test_a_watch_wakes_for_its_kinds_and_for_what_another_process_wrote(
    store: EventStore, alice: Ed25519Signer
) -> None:
    arrivals = Arrivals(store)
    store.on_write(arrivals.note)
    votes = arrivals.watch(["election.vote"])
    store.append(alice, "task.note", BODY, 1)
    assert not votes.is_set()
    store.append(alice, "election.vote", BODY, 2)
    assert votes.is_set()
    votes.clear()
    arrivals.note_unknown()
    assert votes.is_set()
