"""Whatever a peer or a bundle sends, in whatever order and chunks, ingest never stores
anything invalid: afterwards a full audit finds nothing but genuine forks."""

from __future__ import annotations

from pathlib import Path
from random import Random

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bzzz.audit import audit_store
from bzzz.domain.entry import create_entry
from bzzz.store import EventStore
from bzzz.store.urls import resolve_store_url
from tests.conftest import make_signer
from tests.support.builders import build_chain

ALICE, BOB = make_signer(21), make_signer(22)
CHAIN = build_chain(ALICE, 8)
OTHER = build_chain(BOB, 4)
RIVAL = create_entry(ALICE, seq=4, prev=CHAIN[2].hash, lamport=90, ts=0, kind="x.y", body=b"")


@st.composite
def deliveries(draw: st.DrawFn) -> list[list[bytes]]:
    pool = [e.raw for e in CHAIN + OTHER] + [RIVAL.raw]
    items: list[bytes] = []
    for _ in range(draw(st.integers(1, 30))):
        choice = draw(st.integers(0, 9))
        if choice < 6:
            items.append(draw(st.sampled_from(pool)))
        elif choice < 8:
            raw = bytearray(draw(st.sampled_from(pool)))
            raw[draw(st.integers(0, len(raw) - 1))] ^= draw(st.integers(1, 255))
            items.append(bytes(raw))
        elif choice == 8:
            items.append(RIVAL.raw if draw(st.booleans()) else draw(st.sampled_from(pool)))
        else:
            items.append(draw(st.binary(max_size=300)))
    cuts = sorted(draw(st.lists(st.integers(0, len(items)), max_size=4)))
    chunks, start = [], 0
    for cut in [*cuts, len(items)]:
        chunks.append(items[start:cut])
        start = cut
    return chunks


@settings(
    max_examples=80, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(chunks=deliveries())
def test_hostile_deliveries_never_leave_invalid_data(
    tmp_path: Path, chunks: list[list[bytes]]
) -> None:
    url = resolve_store_url(f"sqlite:///{tmp_path / f'{abs(hash(tuple(map(tuple, chunks))))}.db'}")
    with EventStore(url) as store:
        for chunk in chunks:
            store.ingest(chunk)
        heads = store.heads()
        forks = store.forks()
    report = audit_store(url, full=True)
    assert {f.code for f in report.findings} <= {"fork"}, report.findings
    assert all(h.forked_seq is not None for a, h in heads.items() if any(f[0] == a for f in forks))
    for author, head in heads.items():
        chain = CHAIN if author == ALICE.public_key else OTHER
        signed = {chain[head.seq - 1].hash}
        if author == ALICE.public_key and head.seq == RIVAL.seq:
            signed.add(RIVAL.hash)  # whichever copy of seq 4 came first is the log
        assert head.hash in signed  # only entries the author really signed are stored


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    held=st.integers(0, 8),
    relayed=st.integers(4, 8),
    order=st.randoms(use_true_random=False),
)
def test_an_honest_relay_of_a_fork_is_never_an_offence(
    tmp_path: Path, held: int, relayed: int, order: Random
) -> None:
    """A node that holds alice's log up to `relayed` and the evidence of her fork at seq
    4 passes both on, in any order, to one that holds her log up to `held`: nothing it
    sends is refused as hostile, and the receiver learns of the fork at seq 4."""
    url = resolve_store_url(f"sqlite:///{tmp_path / f'relay-{held}-{relayed}-{order.random()}.db'}")
    delivery = [RIVAL.raw, *(e.raw for e in CHAIN[held:relayed])]
    order.shuffle(delivery)
    with EventStore(url) as store:
        store.ingest(e.raw for e in CHAIN[:held])
        report = store.ingest(delivery)
        head = store.head(ALICE.public_key)
    assert {r.code for r in report.refused} <= {"frozen"}, report.refused
    assert head is not None and head.forked_seq == RIVAL.seq
    # A forked log stops where the evidence found it; at seq 4 either copy may be the log.
    assert head.hash in {CHAIN[head.seq - 1].hash, *([RIVAL.hash] * (head.seq == 4))}
