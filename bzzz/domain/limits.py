"""Hard limits every node enforces on every entry, its own and its peers'.

They bound what a hostile peer can make a node store or parse. Changing them is a
format change: old nodes would refuse the new entries.
"""

from __future__ import annotations

FORMAT_VERSION = 1

MAX_KIND_CHARS = 64
MAX_BODY_BYTES = 64 * 1024
# Everything but the body fits in 234 bytes; the rest is headroom.
MAX_ENTRY_BYTES = MAX_BODY_BYTES + 1024
# seq, lamport and ts are stored in signed 64-bit columns.
MAX_UINT = 2**63 - 1
# Nesting of a payload built from JSON; cbor2 itself refuses past 400.
MAX_PAYLOAD_DEPTH = 32

KEY_BYTES = 32
HASH_BYTES = 32
SIGNATURE_BYTES = 64
