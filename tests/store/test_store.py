"""The event store on SQLite and on a real PostgreSQL server."""

from __future__ import annotations

import threading
import time

import pytest
from sqlalchemy import event

from bzzz.domain.entry import create_entry
from bzzz.domain.identity import Ed25519Signer
from bzzz.domain.payload import encode_payload
from bzzz.errors import EntryError, StoreError
from bzzz.store import EventStore
from bzzz.store.urls import StoreUrl, resolve_store_url
from tests.conftest import make_signer
from tests.support.builders import build_chain, run_in_threads

BODY = encode_payload({"k": "v"})


def test_append_builds_a_chain_with_heads_and_lamport(
    store: EventStore, alice: Ed25519Signer
) -> None:
    first = store.append(alice, "task.created", BODY, 10)
    batch = store.append_batch(alice, [("task.note", BODY)] * 3, 11)
    assert [e.seq for e in [first, *batch]] == [1, 2, 3, 4]
    assert batch[0].prev == first.hash
    assert [e.lamport for e in batch] == [2, 3, 4]
    head = store.head(alice.public_key)
    assert head is not None and (head.seq, head.hash) == (4, batch[-1].hash)
    assert store.count() == 4
    assert [s.decode() for s in store.entries(alice.public_key)] == [first, *batch]


def test_lamport_moves_past_every_log_seen(
    store: EventStore, alice: Ed25519Signer, bob: Ed25519Signer
) -> None:
    store.ingest([e.raw for e in build_chain(bob, 3, start_lamport=100)])
    mine = store.append(alice, "task.note", BODY, 1)
    assert mine.lamport == 103


def test_reads_by_author_range_kind_and_arrival(
    store: EventStore, alice: Ed25519Signer, bob: Ed25519Signer
) -> None:
    store.append_batch(alice, [("task.a", BODY), ("task.b", BODY), ("task.a", BODY)], 1)
    store.append_batch(bob, [("task.b", BODY)], 2)
    assert [s.seq for s in store.entries(alice.public_key, after=1, upto=2)] == [2]
    arrivals = store.notifications(after=0)
    assert [s.position for s in arrivals] == sorted(s.position for s in arrivals)
    assert [s.kind for s in store.notifications(kinds=["task.b"])] == ["task.b", "task.b"]
    assert len(store.notifications(author=bob.public_key)) == 1
    assert [s.seq for s in store.latest(2, author=alice.public_key)] == [2, 3]
    assert store.notifications(after=arrivals[-1].position) == []


def test_foreign_writes_move_for_other_writers_only(
    store: EventStore, store_url: StoreUrl, alice: Ed25519Signer
) -> None:
    before = store.foreign_writes()
    if not store_url.is_sqlite:
        assert before is None  # PostgreSQL: the poller always reads
        return
    store.append(alice, "task.note", b"", 0)
    assert store.foreign_writes() == before  # our own write
    with EventStore(store_url) as other:
        other.append(make_signer(5), "task.note", b"", 0)
    assert store.foreign_writes() != before


def test_an_empty_batch_writes_nothing(store: EventStore, alice: Ed25519Signer) -> None:
    assert store.append_batch(alice, [], 1) == []
    assert store.count() == 0


def test_a_batch_with_a_bad_entry_is_refused_whole(store: EventStore, alice: Ed25519Signer) -> None:
    store.append(alice, "task.note", BODY, 1)
    with pytest.raises(EntryError):
        store.append_batch(alice, [("task.note", BODY), ("Bad Kind", BODY)], 2)
    assert store.count() == 1


def test_large_batches_are_signed_while_stored_and_stay_atomic(
    store: EventStore, alice: Ed25519Signer
) -> None:
    store.append(alice, "task.note", BODY, 1)
    batch = store.append_batch(alice, [("task.note", BODY)] * 250, 2)  # pipelined
    stored = [s.decode() for s in store.entries(alice.public_key)]
    assert [e.seq for e in stored] == list(range(1, 252))
    assert stored[1:] == batch and batch[0].prev == stored[0].hash
    items = [("task.note", BODY)] * 120 + [("Not A Kind", BODY)] + [("task.note", BODY)] * 10
    with pytest.raises(EntryError):
        store.append_batch(alice, items, 3)
    assert store.count() == 251
    assert store.append(alice, "task.note", BODY, 4).seq == 252


def test_ingest_accepts_verified_runs_and_counts_duplicates(
    store: EventStore, alice: Ed25519Signer
) -> None:
    chain = build_chain(alice, 20)
    report = store.ingest(e.raw for e in chain[:12])
    assert len(report.accepted) == 12 and not report.refused
    report = store.ingest(e.raw for e in reversed(chain))  # any order, overlapping
    assert len(report.accepted) == 8 and report.duplicates == 12 and not report.refused
    assert store.head(alice.public_key).seq == 20  # type: ignore[union-attr]


def test_ingest_refuses_gaps_garbage_and_forgeries(store: EventStore, alice: Ed25519Signer) -> None:
    chain = build_chain(alice, 6)
    forged = bytearray(chain[5].raw)
    forged[-1] ^= 1
    report = store.ingest([b"garbage", chain[0].raw, chain[1].raw, chain[3].raw])
    assert [r.code for r in report.refused] == ["undecodable", "gap"]
    assert len(report.accepted) == 2
    report = store.ingest([chain[2].raw, chain[3].raw, chain[4].raw, bytes(forged)])
    assert [e.seq for e in report.accepted] == [3, 4, 5]
    assert [(r.seq, r.code) for r in report.refused] == [(6, "bad-signature")]
    assert store.head(alice.public_key).seq == 5  # type: ignore[union-attr]


def test_a_second_valid_entry_at_a_seq_is_kept_as_evidence_and_freezes_the_author(
    store: EventStore, alice: Ed25519Signer
) -> None:
    chain = build_chain(alice, 4)
    store.ingest(e.raw for e in chain)
    rival = create_entry(
        alice, seq=3, prev=chain[1].hash, lamport=77, ts=0, kind="task.note", body=b""
    )
    report = store.ingest([rival.raw])
    assert [e.hash for e in report.forks] == [rival.hash]
    head = store.head(alice.public_key)
    assert head is not None and head.forked_seq == 3 and head.seq == 4
    assert store.entry_at(alice.public_key, 3) == chain[2]  # neither copy dropped
    assert [(a, s, r) for a, s, r in store.forks()] == [(alice.public_key, 3, rival.raw)]
    after = build_chain(alice, 5)[4]
    assert [r.code for r in store.ingest([after.raw]).refused] == ["frozen"]
    assert store.ingest([rival.raw]).refused[0].code == "frozen"
    assert len(store.forks()) == 1


def test_an_entry_naming_another_predecessor_is_fork_evidence(
    store: EventStore, alice: Ed25519Signer
) -> None:
    chain = build_chain(alice, 3)
    store.ingest(e.raw for e in chain)
    other = build_chain(alice, 4, start_lamport=500)
    report = store.ingest([other[3].raw])
    assert [e.seq for e in report.forks] == [4]
    assert store.head(alice.public_key).forked_seq == 3  # type: ignore[union-attr]


def test_two_rivals_in_one_delivery_are_one_entry_and_one_evidence(
    store: EventStore, alice: Ed25519Signer
) -> None:
    a = build_chain(alice, 2)
    rival = create_entry(alice, seq=2, prev=a[0].hash, lamport=9, ts=0, kind="x.y", body=b"")
    report = store.ingest([a[0].raw, a[1].raw, rival.raw])
    assert len(report.accepted) == 2 and [e.hash for e in report.forks] == [rival.hash]


def test_evidence_passed_on_with_the_log_it_contradicts_is_taken_in_any_order(
    store: EventStore, alice: Ed25519Signer
) -> None:
    # A peer that learnt of a fork sends the evidence first, then the log it holds.
    chain = build_chain(alice, 3)
    rival = build_chain(alice, 2, start_lamport=500)[1]
    report = store.ingest([rival.raw, *(e.raw for e in chain)])
    assert [e.seq for e in report.accepted] == [1, 2, 3]
    assert [e.hash for e in report.forks] == [rival.hash] and report.refused == []
    assert store.head(alice.public_key).forked_seq == 2  # type: ignore[union-attr]


def test_the_rest_of_another_branch_is_frozen_not_an_offence(
    store: EventStore, alice: Ed25519Signer
) -> None:
    # An honest peer that stored the other branch of a fork passes it on whole.
    store.ingest([build_chain(alice, 1)[0].raw])
    branch = build_chain(alice, 3, start_lamport=500)
    report = store.ingest([branch[1].raw, branch[2].raw])
    assert [e.hash for e in report.forks] == [branch[1].hash]
    assert [(r.seq, r.code) for r in report.refused] == [(3, "frozen")]
    assert store.head(alice.public_key).forked_seq == 1  # type: ignore[union-attr]


def test_forged_fork_evidence_is_refused_not_stored(
    store: EventStore, alice: Ed25519Signer
) -> None:
    chain = build_chain(alice, 3)
    store.ingest(e.raw for e in chain)
    rival = bytearray(
        create_entry(alice, seq=2, prev=chain[0].hash, lamport=9, ts=0, kind="x.y", body=b"").raw
    )
    rival[-3] ^= 0xFF
    report = store.ingest([bytes(rival)])
    assert [r.code for r in report.refused] == ["bad-signature"]
    assert store.forks() == [] and store.head(alice.public_key).forked_seq is None  # type: ignore[union-attr]


def test_concurrent_writers_never_fork_our_own_log(
    store_url: StoreUrl, alice: Ed25519Signer
) -> None:
    stores = [EventStore(store_url) for _ in range(4)]

    def write(s: EventStore) -> None:
        for _ in range(15):
            s.append_batch(alice, [("task.note", BODY)] * 3, 1)

    run_in_threads(write, stores)
    seqs = [s.seq for s in stores[0].entries(alice.public_key)]
    assert seqs == list(range(1, 181))
    for s in stores:
        s.close()


def test_a_writer_whose_heads_went_stale_reads_afresh_and_stays_correct(
    store_url: StoreUrl, alice: Ed25519Signer
) -> None:
    """Each store object keeps the heads it wrote; another writer on the same database
    makes that copy stale, and the guarded head write turns it into a retry."""
    first, second = EventStore(store_url), EventStore(store_url)
    chain = build_chain(alice, 8)
    assert len(first.ingest(e.raw for e in chain[:3]).accepted) == 3
    assert len(second.ingest(e.raw for e in chain[3:6]).accepted) == 3
    report = first.ingest(e.raw for e in chain[3:7])  # 4-6 are there now, from `second`
    assert [e.seq for e in report.accepted] == [7] and report.duplicates == 3
    rival = create_entry(
        alice, seq=5, prev=chain[3].hash, lamport=99, ts=0, kind="task.note", body=b""
    )
    assert [e.hash for e in second.ingest([rival.raw]).forks] == [rival.hash]
    # `first` last saw alice unforked at seq 7: the freeze must still hold for it.
    assert [r.code for r in first.ingest([chain[7].raw]).refused] == ["frozen"]
    assert first.head(alice.public_key).seq == 7  # type: ignore[union-attr]
    first.close()
    second.close()


def test_own_entries_are_fsynced_and_peer_entries_are_not(tmp_path, alice) -> None:  # type: ignore[no-untyped-def]
    """SQLite's synchronous level as each kind of write leaves the connection."""
    store = EventStore(resolve_store_url(f"sqlite:///{tmp_path / 's.db'}"))
    pragmas: list[str] = []
    event.listen(
        store.engine,
        "before_cursor_execute",
        lambda _c, _cur, stmt, *_: pragmas.append(stmt) if stmt.startswith("PRAGMA sync") else None,
    )
    store.append(alice, "task.note", BODY, 1)
    chain = build_chain(make_signer(9), 3)
    store.ingest(e.raw for e in chain[:2])
    store.ingest([chain[2].raw])  # the kept connection is already at NORMAL
    store.append(alice, "task.note", BODY, 2)
    assert pragmas == [
        "PRAGMA synchronous=FULL",
        "PRAGMA synchronous=NORMAL",
        "PRAGMA synchronous=FULL",
    ]
    store.close()


@pytest.mark.postgres
def test_a_write_connection_the_server_dropped_is_replaced(postgres_url: str, alice) -> None:  # type: ignore[no-untyped-def]
    store = EventStore(resolve_store_url(postgres_url))
    store.append(alice, "task.note", BODY, 1)
    with store.engine.connect() as admin:
        admin.exec_driver_sql(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
            "WHERE datname = current_database() AND pid <> pg_backend_pid()"
        )
    with pytest.raises(StoreError, match="could not write"):
        store.append(alice, "task.note", BODY, 2)  # on the connection the server dropped
    store.append(alice, "task.note", BODY, 3)
    assert [e.seq for e in store.entries(alice.public_key)] == [1, 2]
    store.close()


def test_opening_garbage_or_a_missing_store_is_a_clear_error(tmp_path) -> None:  # type: ignore[no-untyped-def]
    junk = tmp_path / "junk.db"
    junk.write_bytes(b"this is not a database" * 100)
    with pytest.raises(StoreError, match="cannot open store"):
        EventStore(resolve_store_url(f"sqlite:///{junk}"))
    with pytest.raises(StoreError, match="no BZZZ store"):
        EventStore(resolve_store_url(f"sqlite:///{tmp_path / 'none.db'}"), create=False)


def test_unreachable_postgres_is_a_clear_error() -> None:
    with pytest.raises(StoreError, match="cannot open store"):
        EventStore(resolve_store_url("postgresql://nobody@127.0.0.1:1/none"))


def test_many_authors(store: EventStore) -> None:
    for n in range(3, 13):
        store.ingest(e.raw for e in build_chain(make_signer(n), 5))
    assert len(store.heads()) == 10 and store.count() == 50


def test_a_large_own_batch_completes_while_other_logs_keep_arriving(
    store: EventStore, alice: Ed25519Signer, bob: Ed25519Signer
) -> None:
    """Another process ingesting others' logs (with ever later clocks) must not make an
    own batch conflict: its clock need only exceed what was stored when it was read."""
    first = build_chain(bob, 1, start_lamport=1_000)[0]
    store.ingest([first.raw])
    done = threading.Event()
    daemon = EventStore(store.url)  # the daemon's own connection, as another process has

    def keep_ingesting() -> None:  # until the batch is stored, entries keep arriving
        prev = first
        while not done.is_set():
            prev = create_entry(
                bob,
                seq=prev.seq + 1,
                prev=prev.hash,
                lamport=prev.lamport + 1_000,
                ts=1,
                kind="task.note",
                body=BODY,
            )
            daemon.ingest([prev.raw])

    ingester = threading.Thread(target=keep_ingesting)
    ingester.start()
    try:
        began = time.monotonic()
        batch = store.append_batch(alice, [("task.note", BODY)] * 5_000, 1)
        took = time.monotonic() - began
    finally:
        done.set()
        ingester.join()
        daemon.close()
    assert len(batch) == 5_000 and batch[0].lamport > 1_000
    assert took < 30, f"the batch took {took:.1f} s: it kept conflicting with the ingests"
    again = store.append(alice, "task.note", BODY, 2)  # the cached clock still guards
    assert again.lamport > max(s.decode().lamport for s in store.entries(bob.public_key))
