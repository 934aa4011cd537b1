"""Agent identity: an Ed25519 key pair. The agent id is the public key in hex.

Signing is deterministic computation, so it lives here; generating and storing keys
needs entropy and a disk, so that lives in `bzzz.home.keys`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol

from nacl.bindings import crypto_sign, crypto_sign_open, crypto_sign_seed_keypair
from nacl.exceptions import CryptoError

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
    _public: bytes = field(init=False, repr=False, compare=False)
    _secret: bytes = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if len(self.seed) != KEY_BYTES:
            raise ValueError("an Ed25519 seed is 32 bytes")
        public, secret = crypto_sign_seed_keypair(self.seed)
        object.__setattr__(self, "_public", public)
        object.__setattr__(self, "_secret", secret)

    @property
    def public_key(self) -> bytes:
        return self._public

    def sign(self, message: bytes) -> bytes:
        # libsodium's combined form is signature || message; the binding avoids
        # PyNaCl's wrapper objects on the append hot path.
        return bytes(crypto_sign(message, self._secret)[:SIGNATURE_BYTES])


def verify_signature(public_key: bytes, message: bytes, signature: bytes) -> bool:
    """True when `signature` is `public_key`'s signature of `message`; never raises."""
    if len(public_key) != KEY_BYTES or len(signature) != SIGNATURE_BYTES:
        return False
    try:
        crypto_sign_open(signature + message, public_key)
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
