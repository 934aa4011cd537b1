"""A process that appends until killed, reporting each write as it returns.

    python -m tests.support.append_worker STORE_URL BATCH_SIZE MAX_BATCHES

Prints ``writing`` before each batch and ``done N`` (entries so far) after it returns.
Stops by itself after MAX_BATCHES, so a test that fails to kill it cannot hang.
"""

from __future__ import annotations

import sys

from bzzz.domain.identity import Ed25519Signer
from bzzz.domain.payload import encode_payload
from bzzz.store import EventStore
from bzzz.store.urls import resolve_store_url

SIGNER = Ed25519Signer(b"\x05" * 32)


def main() -> None:
    url, batch, batches = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    body = encode_payload({"padding": "x" * 2000})
    store = EventStore(resolve_store_url(url))
    total = 0
    for _ in range(batches):
        print("writing", flush=True)
        store.append_batch(SIGNER, [("task.note", body)] * batch, 1)
        total += batch
        print(f"done {total}", flush=True)


if __name__ == "__main__":
    main()
