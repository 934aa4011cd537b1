"""Chain rules, run checks, payloads and kinds: pure functions, no disk."""

from __future__ import annotations

import math

import pytest

from bzzz.domain.chain import Head, check_run, conflicts, valid_prefix
from bzzz.domain.entry import create_entry
from bzzz.domain.kinds import kind_problem
from bzzz.domain.payload import decode_payload, encode_payload
from bzzz.errors import EntryError
from tests.conftest import make_signer
from tests.support.builders import build_chain


def test_a_run_is_trusted_on_its_last_signature() -> None:
    entries = build_chain(make_signer(1), 10)
    check_run(None, entries)
    check_run(Head.of(entries[4]), entries[5:])


def test_a_run_whose_last_signature_fails_is_refused_and_the_good_prefix_found() -> None:
    entries = build_chain(make_signer(1), 5)
    forged = create_entry(
        make_signer(2), seq=5, prev=entries[3].hash, lamport=5, ts=0, kind="a.b", body=b""
    )
    with pytest.raises(EntryError):
        check_run(None, [*entries[:4], forged])
    good, error = valid_prefix(None, [*entries[:4], forged])
    assert good == 4
    assert error is not None and error.code == "wrong-author"


def test_conflicts_are_same_seq_different_hash_or_a_different_predecessor() -> None:
    a = build_chain(make_signer(1), 3)
    b = build_chain(make_signer(1), 3, start_lamport=50)
    assert conflicts(a[1], b[1])
    assert not conflicts(a[1], a[1])
    assert conflicts(a[1], b[2])
    assert not conflicts(a[1], a[2])
    assert not conflicts(a[0], build_chain(make_signer(2), 1)[0])


@pytest.mark.parametrize(
    ("kind", "ok"),
    [
        ("task.claim_requested", True),
        ("a.b.c", True),
        ("a1.b_2", True),
        ("task", False),
        ("Task.note", False),
        ("task.", False),
        (".task", False),
        ("task..note", False),
        ("task.1note", False),
        ("tâsk.note", False),
        ("a." + "b" * 62, True),
        ("a." + "b" * 63, False),
    ],
)
def test_kind_grammar(kind: str, ok: bool) -> None:
    assert (kind_problem(kind) is None) is ok


def test_payload_is_canonical_whatever_the_key_order() -> None:
    assert encode_payload({"b": 1, "a": [1, 2.5]}) == encode_payload({"a": [1, 2.5], "b": 1})


@pytest.mark.parametrize(
    "data",
    [[1], "text", {"x": math.nan}, {"x": math.inf}, {"x": 2**64}, {1: 2}, {"x": {1.5}}],
)
def test_payload_refuses_what_json_cannot_mean(data: object) -> None:
    with pytest.raises(EntryError):
        encode_payload(data)


def test_payload_carries_bytes_for_keys_and_hashes() -> None:
    # BZZZ's own entries name keys and hashes as bytes; JSON input can never hold any.
    body = encode_payload({"member": b"\x01" * 32})
    assert decode_payload(body) == {
        "member": {"$base64": "AQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQE="}
    }


def test_payload_depth_and_size_limits() -> None:
    deep: dict[str, object] = {}
    node = deep
    for _ in range(40):
        node["x"] = {}
        node = node["x"]  # type: ignore[assignment]
    with pytest.raises(EntryError, match="nested"):
        encode_payload(deep)
    with pytest.raises(EntryError) as caught:
        encode_payload({"x": "y" * 70_000})
    assert caught.value.code == "too-large"


def test_decode_payload_never_fails() -> None:
    assert decode_payload(encode_payload({"a": 1})) == {"a": 1}
    assert "$undecodable" in decode_payload(b"\xff\x00")
    import cbor2

    assert decode_payload(cbor2.dumps({"b": b"\x01", 3: cbor2.CBORTag(999, "x")})) == {
        "b": {"$base64": "AQ=="},
        "3": {"$tag": 999, "value": "x"},
    }
