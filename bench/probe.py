"""How fast the machine is right now, in the unit that matters most to the mesh: the CPU
one single-entry ingest takes (decode, signature check, insert, head move, commit) in a
store of its own. These machines' speed swings by half within the hour, so a bench that
reports a latency reports this beside it, taken before and after its run.
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

from bzzz.domain.identity import Ed25519Signer
from bzzz.store import EventStore
from bzzz.store.urls import resolve_store_url
from tests.support.builders import build_chain


def ingest_us(entries: int = 400) -> float:
    """CPU microseconds per single-entry ingest, the least disturbed of three rounds."""
    raws = [e.raw for e in build_chain(Ed25519Signer(b"p" * 32), 3 * entries)]
    rounds = []
    with tempfile.TemporaryDirectory(prefix="bzzz-probe-") as folder:
        store = EventStore(resolve_store_url(f"sqlite:///{Path(folder) / 'probe.db'}"))
        try:
            for start in range(0, len(raws), entries):
                began = time.process_time()
                for raw in raws[start : start + entries]:
                    store.ingest([raw])
                rounds.append((time.process_time() - began) / entries * 1e6)
        finally:
            store.close()
    return round(min(rounds), 1)
