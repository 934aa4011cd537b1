"""The entry format against the published vectors, and against hostile bytes."""

from __future__ import annotations

import contextlib
import json
import subprocess
import sys
from pathlib import Path

import cbor2
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bzzz.domain.chain import Head, check_links
from bzzz.domain.entry import create_entry, decode_entry, decode_signed_entry, entry_hash
from bzzz.domain.identity import Ed25519Signer
from bzzz.domain.limits import MAX_ENTRY_BYTES
from bzzz.errors import EntryError
from tests.support.builders import build_chain

VECTORS_DIR = Path(__file__).resolve().parents[2] / "fixtures" / "entries"
VECTORS = json.loads((VECTORS_DIR / "vectors.json").read_text())


def test_vectors_are_what_the_generator_makes() -> None:
    result = subprocess.run(
        [sys.executable, str(VECTORS_DIR / "generate.py"), "--check"], capture_output=True
    )
    assert result.returncode == 0, (
        "fixtures/entries/vectors.json is out of date: the format drifted"
    )


def test_valid_chain_decodes_verifies_and_links() -> None:
    entries = []
    for item in VECTORS["valid_chain"]:
        raw = bytes.fromhex(item["raw_hex"])
        entry = decode_signed_entry(raw)
        fields = item["fields"]
        assert entry.hash.hex() == item["hash_hex"] == entry_hash(raw).hex()
        assert entry.signing_bytes().hex() == item["signing_input_hex"]
        assert entry.author.hex() == fields["author_hex"]
        assert (entry.seq, entry.lamport, entry.ts, entry.kind) == (
            fields["seq"],
            fields["lamport"],
            fields["ts"],
            fields["kind"],
        )
        assert (entry.prev.hex() if entry.prev else None) == fields["prev_hex"]
        assert entry.body.hex() == fields["body_hex"]
        entries.append(entry)
    check_links(None, entries)


def test_our_signer_reproduces_the_vectors() -> None:
    seed = bytes.fromhex(VECTORS["keys"][0]["seed_hex"])
    first = decode_entry(bytes.fromhex(VECTORS["valid_chain"][0]["raw_hex"]))
    again = create_entry(
        Ed25519Signer(seed),
        seq=1,
        prev=None,
        lamport=first.lamport,
        ts=first.ts,
        kind=first.kind,
        body=first.body,
    )
    assert again.raw == first.raw


@pytest.mark.parametrize("case", VECTORS["invalid_entries"], ids=lambda c: c["case"])
def test_invalid_entry_vectors_are_refused_with_their_code(case: dict[str, str]) -> None:
    with pytest.raises(EntryError) as caught:
        decode_signed_entry(bytes.fromhex(case["raw_hex"]))
    assert caught.value.code == case["code"]


@pytest.mark.parametrize("case", VECTORS["invalid_chains"], ids=lambda c: c["case"])
def test_invalid_chain_vectors_break_their_rule(case: dict[str, object]) -> None:
    entries = [decode_signed_entry(bytes.fromhex(h)) for h in case["raws_hex"]]  # type: ignore[attr-defined]
    check_links(None, entries[:-1])
    head = Head.of(entries[-2])
    with pytest.raises(EntryError) as caught:
        check_links(head, entries[-1:])
    assert caught.value.code == case["code"]


def test_oversized_input_is_refused_before_parsing() -> None:
    with pytest.raises(EntryError) as caught:
        decode_entry(b"\x89" + b"\x00" * MAX_ENTRY_BYTES)
    assert caught.value.code == "too-large"


def test_deep_nesting_is_refused_not_a_crash() -> None:
    raw = b"\x89" + b"\x81" * 5000 + b"\x00"
    with pytest.raises(EntryError):
        decode_entry(raw)


@settings(max_examples=400, deadline=None)
@given(st.binary(max_size=400))
def test_arbitrary_bytes_raise_only_entry_error(data: bytes) -> None:
    with contextlib.suppress(EntryError):
        decode_entry(data)


@settings(max_examples=300, deadline=None)
@given(st.data())
def test_any_mutation_of_a_valid_entry_is_refused_or_detected(data: st.DataObject) -> None:
    entry = build_chain(Ed25519Signer(b"\x07" * 32), 1)[0]
    raw = bytearray(entry.raw)
    index = data.draw(st.integers(0, len(raw) - 1))
    raw[index] ^= data.draw(st.integers(1, 255))
    try:
        mutated = decode_entry(bytes(raw))
    except EntryError:
        return
    assert mutated.hash != entry.hash
    assert not mutated.signature_ok()


@settings(max_examples=200, deadline=None)
@given(
    seq=st.integers(1, 2**63 - 1),
    lamport=st.integers(1, 2**63 - 1),
    ts=st.integers(0, 2**63 - 1),
    body=st.binary(max_size=200),
)
def test_round_trip(seq: int, lamport: int, ts: int, body: bytes) -> None:
    signer = Ed25519Signer(b"\x09" * 32)
    prev = None if seq == 1 else b"\x01" * 32
    entry = create_entry(signer, seq=seq, prev=prev, lamport=lamport, ts=ts, kind="a.b", body=body)
    again = decode_signed_entry(entry.raw)
    assert again == entry
    assert cbor2.loads(entry.raw)[2] == seq


def test_create_refuses_what_decode_would_refuse() -> None:
    signer = Ed25519Signer(b"\x09" * 32)
    with pytest.raises(EntryError) as caught:
        create_entry(signer, seq=1, prev=None, lamport=1, ts=0, kind="NoDots", body=b"")
    assert caught.value.code == "bad-kind"
    with pytest.raises(EntryError) as caught:
        create_entry(signer, seq=2, prev=None, lamport=1, ts=0, kind="a.b", body=b"")
    assert caught.value.code == "bad-prev"


@settings(max_examples=300, deadline=None)
@given(
    head=st.sampled_from([0x18, 0x19, 0x1A, 0x1B]),
    field=st.integers(0, 8),
    seq=st.integers(2, 2**40),
    tail=st.binary(max_size=3),
)
def test_every_longer_encoding_of_an_entry_is_refused(
    head: int, field: int, seq: int, tail: bytes
) -> None:
    """Re-encode one field with a longer head (and maybe trailing bytes): never accepted,
    and the length check agrees with re-encoding on every input that decodes."""
    signer = Ed25519Signer(b"\x0b" * 32)
    entry = create_entry(
        signer, seq=seq, prev=b"\x02" * 32, lamport=seq, ts=seq, kind="a.b", body=b"x"
    )
    items = cbor2.loads(entry.raw)
    encoded = [cbor2.dumps(item) for item in items]
    first = encoded[field][0]
    major, value = first & 0xE0, first & 0x1F
    if value < 24 and major in (0x00, 0x40, 0x60):
        width = {0x18: 1, 0x19: 2, 0x1A: 4, 0x1B: 8}[head]
        encoded[field] = bytes([major | head]) + value.to_bytes(width, "big") + encoded[field][1:]
    raw = b"\x89" + b"".join(encoded) + tail
    if raw == entry.raw:
        return
    with pytest.raises(EntryError):
        decode_entry(raw)


@settings(max_examples=300, deadline=None)
@given(st.data())
def test_length_check_matches_reencoding(data: st.DataObject) -> None:
    from bzzz.domain.entry import canonical_length

    entry = build_chain(Ed25519Signer(b"\x0c" * 32), 3)[data.draw(st.integers(0, 2))]
    items = cbor2.loads(entry.raw)
    assert canonical_length(items) == len(cbor2.dumps(items)) == len(entry.raw)


_HEAD_EDGES = [0, 1, 23, 24, 255, 256, 65535, 65536, 2**32 - 1, 2**32, 2**63 - 1]


@settings(max_examples=500, deadline=None)
@given(
    seq=st.sampled_from(_HEAD_EDGES[1:]) | st.integers(1, 2**63 - 1),
    first=st.booleans(),
    lamport=st.sampled_from(_HEAD_EDGES[1:]) | st.integers(1, 2**63 - 1),
    ts=st.sampled_from(_HEAD_EDGES) | st.integers(0, 2**63 - 1),
    kind=st.from_regex(r"[a-z][a-z0-9_]{0,30}(\.[a-z][a-z0-9_]{0,30}){1,3}", fullmatch=True),
    body_size=st.sampled_from([0, 1, 23, 24, 255, 256, 65535]) | st.integers(0, 70_000),
)
def test_length_of_any_well_typed_entry_matches_its_canonical_encoding(
    seq: int, first: bool, lamport: int, ts: int, kind: str, body_size: int
) -> None:
    """Every head-length boundary of every variable field, and both shapes of prev."""
    from bzzz.domain.entry import canonical_length

    prev = None if first else b"\x01" * 32
    items = [1, b"\x02" * 32, seq, prev, lamport, ts, kind, b"\x03" * body_size, b"\x04" * 64]
    assert canonical_length(items) == len(cbor2.dumps(items, canonical=True))
