"""Sealed entries: a body only the members of a role can read.

A sealed entry is an ordinary signed entry whose body is an envelope (canonical CBOR)::

    {"sealed_for": ROLE, "generation": G, "recipient": "age1...", "age": CIPHERTEXT}

`recipient` is the public half of the role key (generation G) it is sealed to, and
`age` an age ciphertext for it. The entry is signed over the envelope as always, so
the audit and replication need no key. age does not authenticate senders, so what is
encrypted is signed content's twin: the inner plaintext is the canonical CBOR of::

    {"author": KEY, "kind": KIND, "sealed_for": ROLE, "body": PAYLOAD}

and opening checks that the author and kind are the entry's and the role the
envelope's: a ciphertext copied into another author's entry, or under another kind,
does not open (`Opened.state == MISMATCH`), it is never taken for that entry's content.

Pure rules: the age encryption itself is done by the keyring (`bzzz.projections.keyring`).
Nothing here raises on hostile bytes.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import cbor2

from bzzz.domain.limits import KEY_BYTES, MAX_BODY_BYTES
from bzzz.domain.payload import encode_payload, payload_map
from bzzz.errors import EntryError

MAX_RECIPIENT_CHARS = 128  # an age X25519 recipient is 62 characters
ENVELOPE_FIELDS = frozenset({"sealed_for", "generation", "recipient", "age"})

# How an entry's body stands for a reader (`Opened.state`).
PLAIN = "plain"  # not sealed
OPEN = "open"  # sealed, and opened for this entry
SEALED = "sealed"  # sealed for a role this node holds no key of (that generation)
MISMATCH = "mismatch"  # opened, but made for another entry (author, kind or role differ)
DAMAGED = "damaged"  # sealed to a key this node holds, but it does not decrypt or parse


@dataclass(frozen=True, slots=True)
class Envelope:
    role: str
    generation: int
    recipient: str
    ciphertext: bytes


@dataclass(frozen=True, slots=True)
class Opened:
    """What a reader sees of an entry's body."""

    state: str
    payload: dict[str, Any] | None = None  # PLAIN and OPEN only
    role: str | None = None  # the role it is sealed for, when sealed
    generation: int | None = None
    why: str = ""

    @property
    def readable(self) -> bool:
        return self.payload is not None

    def label(self) -> str:
        """How a person is told about a body that is not readable."""
        if self.state == SEALED:
            return f"sealed for {self.role}"
        if self.state == MISMATCH:
            return f"sealed for {self.role}, does not open for this entry ({self.why})"
        if self.state == DAMAGED:
            return f"sealed for {self.role}, damaged ({self.why})"
        return self.state


def _role_text(value: object) -> str | None:
    return value if isinstance(value, str) and 0 < len(value) <= 64 else None


def parse_envelope(body: bytes) -> Envelope | None:
    """The envelope a body is, or None when it is not one (a plain payload, or bytes
    that are not CBOR). A map with exactly the envelope's fields of the right types is
    an envelope; anything else is plain, which no hostile body can make raise."""
    data = payload_map(body)
    if data is None or set(data) != ENVELOPE_FIELDS:
        return None
    role, generation = _role_text(data["sealed_for"]), data["generation"]
    recipient, ciphertext = data["recipient"], data["age"]
    if role is None or type(generation) is not int or not 1 <= generation < 2**63:
        return None
    if not isinstance(recipient, str) or not 0 < len(recipient) <= MAX_RECIPIENT_CHARS:
        return None
    if not isinstance(ciphertext, bytes) or not ciphertext:
        return None
    return Envelope(role, generation, recipient, ciphertext)


def looks_sealed(payload: dict[str, Any]) -> bool:
    """Whether a payload someone wants written in the clear has the envelope's fields:
    refused, so that no plain entry can pass for a sealed one."""
    return set(payload) == ENVELOPE_FIELDS


def envelope_body(envelope: Envelope) -> dict[str, Any]:
    return {
        "sealed_for": envelope.role,
        "generation": envelope.generation,
        "recipient": envelope.recipient,
        "age": envelope.ciphertext,
    }


def inner_plaintext(author: bytes, kind: str, role: str, payload: dict[str, Any]) -> bytes:
    """What gets encrypted: the payload bound to its author, kind and role. Raises
    `EntryError` (code bad-body / too-large) for a payload no entry could carry."""
    encode_payload(payload)  # the payload's own checks, with their messages
    inner: bytes = cbor2.dumps(
        {"author": author, "kind": kind, "sealed_for": role, "body": payload}, canonical=True
    )
    if len(inner) > MAX_BODY_BYTES:
        raise EntryError(
            "too-large", f"the sealed payload is {len(inner)} bytes; the limit is {MAX_BODY_BYTES}"
        )
    return inner


def not_open(state: str, envelope: Envelope, why: str = "") -> Opened:
    """A sealed body this reader cannot read (SEALED, MISMATCH or DAMAGED)."""
    return Opened(state, None, envelope.role, envelope.generation, why)


def check_opened(plaintext: bytes, author: bytes, kind: str, envelope: Envelope) -> Opened:
    """The reader's view of a decrypted envelope: OPEN with the payload when it was
    made for this entry, MISMATCH or DAMAGED otherwise. Never raises."""
    data = payload_map(plaintext)
    if data is None or set(data) != {"author", "kind", "sealed_for", "body"}:
        return not_open(DAMAGED, envelope, "the plaintext is not a sealed payload")
    inner_author, body = data["author"], data["body"]
    if not isinstance(inner_author, bytes) or len(inner_author) != KEY_BYTES:
        return not_open(DAMAGED, envelope, "the plaintext names no author")
    if not isinstance(body, dict):
        return not_open(DAMAGED, envelope, "the sealed payload is not a map")
    if inner_author != author:
        return not_open(MISMATCH, envelope, "sealed by another author")
    if data["kind"] != kind:
        return not_open(MISMATCH, envelope, "sealed under another kind")
    if data["sealed_for"] != envelope.role:
        return not_open(MISMATCH, envelope, "sealed for another role")
    return Opened(OPEN, body, envelope.role, envelope.generation)


def no_key_message(role: str) -> str:
    return (
        f"no key for role {role!r} yet: the admin grants role keys (`bzzz keys status`); "
        "is the admin running?"
    )
