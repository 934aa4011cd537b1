"""Sealing entries for a role (issue 21): what BZZZ's envelope costs over age itself.

For a 1 KiB payload (a map with one text field), in this process, interleaved in rounds
so both see the same machine:

- age alone: `pyrage.encrypt(plaintext, [role recipient])` and `pyrage.decrypt(ct,
  [role identity])` of the same 1 KiB;
- BZZZ: what `Keyring.seal` and `Keyring.open` do per entry: the inner plaintext (author,
  kind, role, payload as canonical CBOR), age to the role's recipient, the envelope as
  the entry's CBOR body; then parsing the envelope, decrypting, and checking that author,
  kind and role match the entry (`check_opened`).

Figures: operations per second each way, and BZZZ's time per operation over age's
(`seal_overhead`, `open_overhead`: 1.0 means no overhead). One JSON line.

    .venv/bin/python -m bench.context [--rounds 20] [--per-round 100]
"""

from __future__ import annotations

import argparse
import json
import os
import time
from dataclasses import dataclass
from typing import Any

import pyrage

from bzzz.domain.payload import encode_payload
from bzzz.domain.sealing import (
    Envelope,
    check_opened,
    envelope_body,
    inner_plaintext,
    parse_envelope,
)
from bzzz.projections.keyring import new_role_key, seal_to_recipient

KIND = "task.note"
ROLE = "developer"


@dataclass(frozen=True)
class _Entry:
    """What opening reads of an entry."""

    author: bytes
    kind: str
    body: bytes


def _payload() -> dict[str, Any]:
    return {"text": os.urandom(512).hex()}  # 1 KiB of text


def _age_round(n: int, identity: Any, recipient: Any, plaintext: bytes) -> tuple[float, float]:
    began = time.perf_counter()
    cts = [pyrage.encrypt(plaintext, [recipient]) for _ in range(n)]
    sealed = time.perf_counter()
    for ct in cts:
        pyrage.decrypt(ct, [identity])
    return sealed - began, time.perf_counter() - sealed


def _bzzz_round(
    n: int, identity: Any, recipient: str, author: bytes, payload: dict[str, Any]
) -> tuple[float, float]:
    began = time.perf_counter()
    bodies = []
    for _ in range(n):
        inner = inner_plaintext(author, KIND, ROLE, payload)
        ct = seal_to_recipient(recipient, inner)
        bodies.append(encode_payload(envelope_body(Envelope(ROLE, 1, recipient, ct))))
    sealed = time.perf_counter()
    for body in bodies:
        envelope = parse_envelope(body)
        assert envelope is not None
        opened = check_opened(
            pyrage.decrypt(envelope.ciphertext, [identity]), author, KIND, envelope
        )
        assert opened.readable
    return sealed - began, time.perf_counter() - sealed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rounds", type=int, default=20)
    parser.add_argument("--per-round", type=int, default=100)
    args = parser.parse_args()
    identity, recipient = new_role_key()
    age_recipient = pyrage.x25519.Recipient.from_str(recipient)
    author, payload = os.urandom(32), _payload()
    plaintext = encode_payload(payload)
    n = args.per_round
    _age_round(20, identity, age_recipient, plaintext)  # warm up
    _bzzz_round(20, identity, recipient, author, payload)
    age = [0.0, 0.0]
    ours = [0.0, 0.0]
    for i in range(args.rounds):
        order = [0, 1] if i % 2 == 0 else [1, 0]  # alternate which goes first
        for which in order:
            if which == 0:
                s, o = _age_round(n, identity, age_recipient, plaintext)
                age[0] += s
                age[1] += o
            else:
                s, o = _bzzz_round(n, identity, recipient, author, payload)
                ours[0] += s
                ours[1] += o
    total = args.rounds * n
    print(
        json.dumps(
            {
                "bench": "context",
                "payload_bytes": len(plaintext),
                "operations": total,
                "age_seal_per_s": round(total / age[0]),
                "age_open_per_s": round(total / age[1]),
                "bzzz_seal_per_s": round(total / ours[0]),
                "bzzz_open_per_s": round(total / ours[1]),
                "seal_overhead": round(ours[0] / age[0], 3),
                "open_overhead": round(ours[1] / age[1], 3),
                "sealed_body_bytes": len(
                    encode_payload(
                        envelope_body(
                            Envelope(
                                ROLE,
                                1,
                                recipient,
                                seal_to_recipient(
                                    recipient, inner_plaintext(author, KIND, ROLE, payload)
                                ),
                            )
                        )
                    )
                ),
            }
        )
    )


if __name__ == "__main__":
    main()
