"""The entry: BZZZ's one wire and storage format.

An entry is the deterministic CBOR (RFC 8949 §4.2) encoding of a 9-element array::

    [version, author, seq, prev, lamport, ts, kind, body, signature]

The signature is Ed25519 by `author` over ``SIGNING_PREFIX`` followed by the encoding of
the first eight elements as an 8-element array. The entry's hash (its id) is SHA-256 of
the whole encoding, signature included. `fixtures/entries/README.md` specifies it in full.

Because only one encoding of a given entry is accepted, bytes are never re-serialised to
check a signature: what was signed is recovered from the stored bytes themselves.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any

import cbor2

from bzzz.domain.identity import Signer, verify_signature
from bzzz.domain.kinds import kind_problem
from bzzz.domain.limits import (
    FORMAT_VERSION,
    HASH_BYTES,
    KEY_BYTES,
    MAX_BODY_BYTES,
    MAX_ENTRY_BYTES,
    MAX_UINT,
    SIGNATURE_BYTES,
)
from bzzz.errors import EntryError

SIGNING_PREFIX = b"bzzz/entry/v1\n"
_ARRAY9 = 0x89
_ARRAY8 = b"\x88"
# A 64-byte byte string is encoded as 0x58 0x40 followed by the bytes.
_SIGNATURE_HEAD = b"\x58\x40"
_SIGNATURE_TAIL = len(_SIGNATURE_HEAD) + SIGNATURE_BYTES


@dataclass(slots=True)
class Entry:
    """A decoded, well-formed entry. Its signature is not checked by decoding.

    Treat it as immutable. Not frozen only because frozen dataclasses cost 3 µs more to
    build, a tenth of an append's overhead."""

    author: bytes
    seq: int
    prev: bytes | None
    lamport: int
    ts: int
    kind: str
    body: bytes
    signature: bytes
    raw: bytes
    hash: bytes

    def signing_bytes(self) -> bytes:
        return signing_bytes_of(self.raw)

    def signature_ok(self) -> bool:
        return verify_signature(self.author, self.signing_bytes(), self.signature)


def signing_bytes_of(raw: bytes) -> bytes:
    """What the author signed, taken from a canonical encoding without re-encoding it."""
    return SIGNING_PREFIX + _ARRAY8 + raw[1:-_SIGNATURE_TAIL]


def entry_hash(raw: bytes) -> bytes:
    return hashlib.sha256(raw).digest()


def _fields_problem(
    author: object,
    seq: object,
    prev: object,
    lamport: object,
    ts: object,
    kind: object,
    body: object,
) -> tuple[str, str] | None:
    """The first (code, message) that makes these fields unacceptable, or None."""
    if type(author) is not bytes or len(author) != KEY_BYTES:
        return "bad-author", "author must be a 32-byte Ed25519 public key"
    if type(seq) is not int or not 1 <= seq <= MAX_UINT:
        return "bad-seq", f"seq must be a whole number from 1 to {MAX_UINT}"
    if seq == 1 and prev is not None:
        return "bad-prev", "seq 1 starts a log and must have no prev"
    if seq != 1 and (type(prev) is not bytes or len(prev) != HASH_BYTES):
        return "bad-prev", f"seq {seq} must name the 32-byte hash of seq {seq - 1} as prev"
    if type(lamport) is not int or not 1 <= lamport <= MAX_UINT:
        return "bad-lamport", f"lamport must be a whole number from 1 to {MAX_UINT}"
    if type(ts) is not int or not 0 <= ts <= MAX_UINT:
        return "bad-ts", "ts must be milliseconds since the Unix epoch, not negative"
    problem = kind_problem(kind)
    if problem is not None:
        return "bad-kind", problem
    if type(body) is not bytes:
        return "bad-body", "body must be a byte string"
    if len(body) > MAX_BODY_BYTES:
        return "too-large", f"body is {len(body)} bytes; the limit is {MAX_BODY_BYTES}"
    return None


def create_entry(
    signer: Signer,
    *,
    seq: int,
    prev: bytes | None,
    lamport: int,
    ts: int,
    kind: str,
    body: bytes,
) -> Entry:
    """Sign a new entry. Raises EntryError for fields no node would accept."""
    author = signer.public_key
    problem = _fields_problem(author, seq, prev, lamport, ts, kind, body)
    if problem is not None:
        raise EntryError(*problem)
    unsigned = cbor2.dumps([FORMAT_VERSION, author, seq, prev, lamport, ts, kind, body])
    signature = signer.sign(SIGNING_PREFIX + unsigned)
    # The 9-item array is the 8-item one with its head byte changed and the signature
    # (0x58 0x40 + 64 bytes) appended: the inverse of `signing_bytes_of`.
    raw = bytes([_ARRAY9]) + unsigned[1:] + _SIGNATURE_HEAD + signature
    return Entry(author, seq, prev, lamport, ts, kind, body, signature, raw, entry_hash(raw))


def _head_length(value: int) -> int:
    if value < 24:
        return 1
    if value < 0x100:
        return 2
    if value < 0x10000:
        return 3
    return 5 if value < 0x100000000 else 9


def canonical_length(items: list[Any]) -> int:
    """The length of the canonical encoding of a well-typed 9-item entry array.

    Every other encoding of the same values is longer (longer heads, indefinite lengths,
    tags, trailing bytes), so comparing lengths is comparing with the re-encoding, at a
    fraction of its cost. Only valid once each item has been checked for its exact type:
    the key, hash and signature then have fixed sizes, so only the rest is measured
    (a third of the cost of measuring every item, and catch-up decodes every entry).
    """
    version, _, seq, prev, lamport, ts, kind, body, _ = items
    kind_bytes = len(kind) if kind.isascii() else len(kind.encode())
    return (
        _FIXED_LENGTH
        + _head_length(version)
        + _head_length(seq)
        + (1 if prev is None else _HASH_LENGTH)
        + _head_length(lamport)
        + _head_length(ts)
        + _head_length(kind_bytes)
        + kind_bytes
        + _head_length(len(body))
        + len(body)
    )


# The array head, and the author and the signature with their byte-string heads.
_FIXED_LENGTH = 1 + (2 + KEY_BYTES) + (2 + SIGNATURE_BYTES)
_HASH_LENGTH = 2 + HASH_BYTES


def decode_entry(raw: bytes) -> Entry:
    """Parse untrusted bytes into an Entry, or raise EntryError saying what is wrong.

    Accepts exactly the canonical encoding: cbor2 alone would ignore trailing bytes and
    accept longer encodings of the same values, which would give one entry many hashes.
    """
    if type(raw) is not bytes:
        raw = bytes(raw)
    if len(raw) > MAX_ENTRY_BYTES:
        raise EntryError("too-large", f"entry is {len(raw)} bytes; the limit is {MAX_ENTRY_BYTES}")
    if not raw or raw[0] != _ARRAY9:
        raise EntryError("undecodable", "not an entry: expected a CBOR array of 9 items")
    try:
        items: Any = cbor2.loads(raw)
    except Exception as exc:  # cbor2 raises several types on hostile input
        raise EntryError("undecodable", f"not valid CBOR: {exc}") from None
    version, author, seq, prev, lamport, ts, kind, body, signature = items
    if type(version) is not int or version != FORMAT_VERSION:
        raise EntryError("bad-version", f"unsupported entry format version {version!r}")
    problem = _fields_problem(author, seq, prev, lamport, ts, kind, body)
    if problem is not None:
        raise EntryError(*problem)
    if type(signature) is not bytes or len(signature) != SIGNATURE_BYTES:
        raise EntryError("bad-signature", "signature must be 64 bytes")
    if len(raw) != canonical_length(items):
        raise EntryError(
            "not-canonical",
            "entry is not in deterministic CBOR encoding (extra bytes or a longer form)",
        )
    return Entry(author, seq, prev, lamport, ts, kind, body, signature, raw, entry_hash(raw))


def decode_signed_entry(raw: bytes) -> Entry:
    """Decode and check the signature: for an entry that nothing else vouches for."""
    entry = decode_entry(raw)
    if not entry.signature_ok():
        raise EntryError("bad-signature", f"seq {entry.seq}: signature does not verify")
    return entry
