"""age's text for an X25519 identity: ``AGE-SECRET-KEY-1...`` is the bech32 (BIP 173)
text of the 32-byte secret. The master key of a split is 32 random bytes; this names
them as age does."""

from __future__ import annotations

import bech32

AGE_SECRET_HRP = "age-secret-key-"


def age_identity_text(secret: bytes) -> str:
    """The age X25519 identity whose secret scalar is `secret` (32 bytes)."""
    if len(secret) != 32:
        raise ValueError("an age X25519 identity is 32 bytes")
    groups = bech32.convertbits(secret, 8, 5)
    assert groups is not None  # eight-bit bytes always regroup into five bits
    return str(bech32.bech32_encode(AGE_SECRET_HRP, groups)).upper()
