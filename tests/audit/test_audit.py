"""`audit_store` and `audit_bundle` find every kind of damage, and name where it is."""

from __future__ import annotations

from pathlib import Path

import pytest

from bzzz.audit import audit_bundle, audit_store
from bzzz.audit import runner as audit_runner
from bzzz.audit.runner import bundle_reference, compare_against, store_reference
from bzzz.domain.entry import create_entry
from bzzz.domain.identity import Ed25519Signer
from bzzz.store import EventStore
from bzzz.store.bundle import write_bundle
from bzzz.store.urls import StoreUrl, resolve_store_url
from tests.support import tamper
from tests.support.builders import build_chain


def _fill(store: EventStore, *signers: Ed25519Signer, n: int = 10) -> None:
    for signer in signers:
        store.ingest(e.raw for e in build_chain(signer, n))


def _found(report, author: bytes | None = None) -> set[tuple[int | None, str]]:  # type: ignore[no-untyped-def]
    return {(f.seq, f.code) for f in report.findings if author is None or f.author == author.hex()}


def test_a_clean_store_audits_clean_in_both_modes(
    store: EventStore, store_url: StoreUrl, alice, bob
) -> None:  # type: ignore[no-untyped-def]
    _fill(store, alice, bob)
    for full in (False, True):
        report = audit_store(store_url, full=full)
        assert report.ok, report.findings
        assert (report.logs, report.entries) == (2, 20)


@pytest.mark.parametrize("seq", [1, 5, 10])
@pytest.mark.parametrize("full", [False, True])
def test_a_changed_byte_is_found_at_its_seq(
    store: EventStore, store_url: StoreUrl, alice, seq: int, full: bool
) -> None:  # type: ignore[no-untyped-def]
    _fill(store, alice)
    tamper.flip_byte(store, alice.public_key, seq, index=-5)  # inside the signature
    report = audit_store(store_url, full=full)
    assert _found(report) == {(seq, "bad-signature")}


def test_a_changed_byte_in_the_body_is_found(store: EventStore, store_url: StoreUrl, alice) -> None:  # type: ignore[no-untyped-def]
    _fill(store, alice)
    tamper.flip_byte(store, alice.public_key, 4, index=-70)
    assert (4, "bad-signature") in _found(audit_store(store_url))


def test_a_deleted_entry_is_found(store: EventStore, store_url: StoreUrl, alice) -> None:  # type: ignore[no-untyped-def]
    _fill(store, alice)
    tamper.delete_entry(store, alice.public_key, 4)
    assert _found(audit_store(store_url)) == {(4, "missing")}


def test_deleting_the_first_and_the_last_entry_is_found(
    store: EventStore, store_url: StoreUrl, alice
) -> None:  # type: ignore[no-untyped-def]
    _fill(store, alice)
    tamper.delete_entry(store, alice.public_key, 1)
    tamper.delete_entry(store, alice.public_key, 10)
    assert _found(audit_store(store_url)) == {(1, "missing"), (10, "missing")}


def test_reordered_entries_are_found(store: EventStore, store_url: StoreUrl, alice) -> None:  # type: ignore[no-untyped-def]
    _fill(store, alice)
    tamper.swap_states(store, (alice.public_key, 3), (alice.public_key, 7))
    assert {(3, "misplaced"), (7, "misplaced")} <= _found(audit_store(store_url))


def test_a_reordered_notification_log_is_found(
    store: EventStore, store_url: StoreUrl, alice
) -> None:  # type: ignore[no-untyped-def]
    _fill(store, alice)
    tamper.swap_positions(store, alice.public_key, 2, 3)
    assert (3, "arrival-order") in _found(audit_store(store_url))


def test_an_entry_moved_to_another_authors_stream_is_found(
    store: EventStore, store_url: StoreUrl, alice, bob
) -> None:  # type: ignore[no-untyped-def]
    _fill(store, alice, bob)
    tamper.move_entry(store, alice.public_key, 10, bob.public_key, 11)
    found = audit_store(store_url)
    assert (11, "wrong-author") in _found(found, bob.public_key)
    assert (10, "missing") in _found(found, alice.public_key)


def test_a_whole_log_deleted_is_found(store: EventStore, store_url: StoreUrl, alice, bob) -> None:  # type: ignore[no-untyped-def]
    _fill(store, alice, bob)
    for seq in range(1, 11):
        tamper.delete_entry(store, bob.public_key, seq)
    assert _found(audit_store(store_url), bob.public_key) == {(1, "missing")}


def test_forks_are_reported(store: EventStore, store_url: StoreUrl, alice) -> None:  # type: ignore[no-untyped-def]
    chain = build_chain(alice, 5)
    store.ingest(e.raw for e in chain)
    rival = create_entry(alice, seq=3, prev=chain[1].hash, lamport=99, ts=0, kind="x.y", body=b"")
    store.ingest([rival.raw])
    assert _found(audit_store(store_url)) == {(3, "fork")}


def test_a_tail_deleted_with_its_head_is_found_against_another_copy(
    store: EventStore,
    store_url: StoreUrl,
    alice,
    tmp_path: Path,  # type: ignore[no-untyped-def]
) -> None:
    chain = build_chain(alice, 10)
    store.ingest(e.raw for e in chain)
    reference = EventStore(resolve_store_url(f"sqlite:///{tmp_path / 'ref.db'}"))
    reference.ingest(e.raw for e in chain)
    for seq in (9, 10):
        tamper.delete_entry(store, alice.public_key, seq)
    tamper.set_head(store, alice.public_key, 8, chain[7].hash, chain[7].lamport)
    report = audit_store(store_url)
    assert report.ok  # undetectable from the store alone...
    compare_against(report, store_reference(store), store_reference(reference))
    assert _found(report) == {(9, "cut-short")}  # ...but not against a copy
    reference.close()


def test_a_rolled_back_log_is_found_against_a_bundle(
    store: EventStore, store_url: StoreUrl, alice, tmp_path: Path
) -> None:  # type: ignore[no-untyped-def]
    chain = build_chain(alice, 10)
    bundle = tmp_path / "ref.bundle"
    write_bundle(bundle, (e.raw for e in chain))
    rewritten = chain[:6] + build_chain(alice, 8, start_lamport=40)[6:]
    rewritten_fixed = []
    prev = rewritten[5].hash
    for old in rewritten[6:]:
        new = create_entry(
            alice,
            seq=old.seq,
            prev=prev,
            lamport=old.lamport,
            ts=old.ts,
            kind=old.kind,
            body=old.body,
        )
        rewritten_fixed.append(new)
        prev = new.hash
    store.ingest(e.raw for e in chain[:6] + rewritten_fixed)
    report = audit_store(store_url)
    assert report.ok
    compare_against(report, store_reference(store), bundle_reference(bundle))
    assert _found(report) == {(8, "rolled-back")}


def test_the_parallel_path_finds_the_same_as_the_inline_one(
    tmp_path: Path,
    alice,
    bob,
    monkeypatch: pytest.MonkeyPatch,  # type: ignore[no-untyped-def]
) -> None:
    url = resolve_store_url(f"sqlite:///{tmp_path / 's.db'}")
    with EventStore(url) as store:
        _fill(store, alice, bob, n=300)
        tamper.flip_byte(store, alice.public_key, 64, index=-3)  # last of a chunk
        tamper.flip_byte(store, alice.public_key, 129, index=-3)  # first of a chunk
        tamper.delete_entry(store, bob.public_key, 65)  # at a seam
    monkeypatch.setattr(audit_runner, "CHUNK_ENTRIES", 64)
    monkeypatch.setattr(audit_runner, "PARALLEL_FROM", 0)
    parallel = audit_store(url, workers=2)
    inline = audit_store(url, workers=1)
    full = audit_store(url, workers=2, full=True)
    expected = {(64, "bad-signature"), (129, "bad-signature"), (65, "missing")}
    assert _found(parallel) == _found(inline) == _found(full) == expected
    assert parallel.entries == 599


def test_audit_filtered_by_author(store: EventStore, store_url: StoreUrl, alice, bob) -> None:  # type: ignore[no-untyped-def]
    _fill(store, alice, bob)
    tamper.flip_byte(store, bob.public_key, 2, index=-2)
    assert audit_store(store_url, authors={alice.public_key}).ok
    assert not audit_store(store_url, authors={bob.public_key}).ok


def test_bundle_audit_finds_damage_forks_and_gaps(tmp_path: Path, alice, bob) -> None:  # type: ignore[no-untyped-def]
    chain = build_chain(alice, 6)
    rival = create_entry(alice, seq=2, prev=chain[0].hash, lamport=50, ts=0, kind="x.y", body=b"")
    damaged = bytearray(chain[4].raw)
    damaged[-1] ^= 1
    other = build_chain(bob, 3)
    raws = [e.raw for e in chain[:4]] + [bytes(damaged), chain[5].raw, rival.raw, b"junk"]
    raws += [other[0].raw, other[2].raw]
    path = tmp_path / "b.bundle"
    write_bundle(path, raws)
    report = audit_bundle(path)
    assert _found(report, alice.public_key) == {(5, "bad-signature"), (2, "fork")}
    assert _found(report, bob.public_key) == {(2, "missing")}
    assert (None, "undecodable") in _found(report)


def test_a_truncated_bundle_is_a_finding_not_a_crash(tmp_path: Path, alice) -> None:  # type: ignore[no-untyped-def]
    path = tmp_path / "b.bundle"
    write_bundle(path, (e.raw for e in build_chain(alice, 3)))
    path.write_bytes(path.read_bytes()[:-10])
    report = audit_bundle(path)
    assert (None, "bundle-damaged") in _found(report)
    assert (3, "missing") not in _found(report)  # the audit says what it could read


@pytest.mark.postgres
def test_parallel_audit_and_against_on_postgres(
    postgres_url: str,
    alice,
    bob,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,  # type: ignore[no-untyped-def]
) -> None:
    url = resolve_store_url(postgres_url)
    with EventStore(url) as store:
        _fill(store, alice, bob, n=200)
        tamper.flip_byte(store, bob.public_key, 77, index=-9)
    monkeypatch.setattr(audit_runner, "CHUNK_ENTRIES", 50)
    monkeypatch.setattr(audit_runner, "PARALLEL_FROM", 0)
    report = audit_store(url, workers=2)
    assert _found(report) == {(77, "bad-signature")} and report.entries == 400
    bundle = tmp_path / "ref.bundle"
    write_bundle(bundle, (e.raw for e in build_chain(alice, 201)))
    with EventStore(url) as store:
        compare_against(report, store_reference(store), bundle_reference(bundle))
    assert (201, "cut-short") in _found(report, alice.public_key)
