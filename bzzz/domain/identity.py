"""Agent identity: an Ed25519 key pair. The agent id is the public key in hex.

Signing is deterministic computation, so it lives here; generating and storing keys
needs entropy and a disk, so that lives in `bzzz.home.keys`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol

from nacl.exceptions import CryptoError
from nacl.signing import SigningKey, VerifyKey

from bzzz.domain.limits import KEY_BYTES, SIGNATURE_BYTES
from bzzz.errors import UsageError

SHORT_ID_CHARS = 12


class Signer(Protocol):
    @property
    def public_key(self) -> bytes: ...

    def sign(self, message: bytes) -> bytes: ...


@dataclass(frozen=True)
class Ed25519Signer:
    """Signs with an Ed25519 seed (the 32-byte private key)."""

    seed: bytes = field(repr=False)
    _key: SigningKey = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if len(self.seed) != KEY_BYTES:
            raise ValueError("an Ed25519 seed is 32 bytes")
        object.__setattr__(self, "_key", SigningKey(self.seed))

    @property
    def public_key(self) -> bytes:
        return bytes(self._key.verify_key)

    def sign(self, message: bytes) -> bytes:
        return bytes(self._key.sign(message).signature)


def verify_signature(public_key: bytes, message: bytes, signature: bytes) -> bool:
    """True when `signature` is `public_key`'s signature of `message`; never raises."""
    if len(public_key) != KEY_BYTES or len(signature) != SIGNATURE_BYTES:
        return False
    try:
        VerifyKey(public_key).verify(message, signature)
    except (CryptoError, ValueError, TypeError):
        return False
    return True


def agent_id(public_key: bytes) -> str:
    return public_key.hex()


def short_id(public_key: bytes) -> str:
    return public_key.hex()[:SHORT_ID_CHARS]


def parse_agent_id(text: str) -> bytes:
    """The public key named by a full agent id (64 hex digits)."""
    cleaned = text.strip().lower()
    try:
        key = bytes.fromhex(cleaned)
    except ValueError:
        key = b""
    if len(key) != KEY_BYTES:
        raise UsageError(f"{text!r} is not an agent id (64 hex digits, as `bzzz id` prints)")
    return key


def is_id_prefix(text: str) -> bool:
    """Whether `text` could abbreviate an agent id (at least 4 hex digits)."""
    cleaned = text.strip().lower()
    return 4 <= len(cleaned) <= 2 * KEY_BYTES and all(c in "0123456789abcdef" for c in cleaned)
