"""Signed appends per second, one at a time and in batches of 100, on SQLite and
PostgreSQL, beside eventsourcing's stock recorder inserting the same pre-made bytes (and
the store's own bulk recorder doing the same, for reference).

Target (issue 2): signed batch append >= 70% of the raw recorder's batch rate.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from eventsourcing.persistence import StoredEvent
from eventsourcing_sqlalchemy.recorders import SQLAlchemyProcessRecorder

from bzzz.domain.entry import create_entry
from bzzz.domain.identity import Ed25519Signer
from bzzz.domain.payload import encode_payload
from bzzz.store import EventStore
from bzzz.store.tables import EVENTS_TABLE, TRACKING_TABLE, originator_of
from bzzz.store.urls import resolve_store_url
from tests.support.pg_server import create_database, postgres_cluster

BODY = encode_payload({"task": "#42", "note": "progress report", "percent": 50})


def _rate(count: int, run: Callable[[], None]) -> float:
    started = time.perf_counter()
    run()
    return count / (time.perf_counter() - started)


def _premade(seed: int, n: int) -> list[StoredEvent]:
    signer = Ed25519Signer(bytes([seed]) * 32)
    events, prev = [], None
    for seq in range(1, n + 1):
        entry = create_entry(
            signer, seq=seq, prev=prev, lamport=seq, ts=seq, kind="task.note", body=BODY
        )
        prev = entry.hash
        events.append(StoredEvent(originator_of(entry.author), seq, entry.kind, entry.raw))
    return events


def measure(url: str, singles: int, batches: int, rounds: int) -> dict[str, float]:
    """Interleave raw and signed runs in `rounds` rounds; report median rates and the
    median of the per-round ratios, so a slow moment of the machine hits both sides."""
    store = EventStore(resolve_store_url(url))
    # The baseline is eventsourcing's stock recorder on the same table; the store itself
    # inserts through BulkProcessRecorder, whose raw rate is reported beside it.
    recorder = SQLAlchemyProcessRecorder(
        store.datastore, events_table_name=EVENTS_TABLE, tracking_table_name=TRACKING_TABLE
    )
    bulk = store.recorder
    per_single, per_batch = singles // rounds, batches // rounds
    raw_single = _premade(1, per_single * rounds)
    raw_batch = _premade(2, per_batch * rounds * 100)
    bulk_batch = _premade(5, per_batch * rounds * 100)
    signer_single, signer_batch = Ed25519Signer(b"\x03" * 32), Ed25519Signer(b"\x04" * 32)
    items = [("task.note", BODY)] * 100
    samples: dict[str, list[float]] = {
        k: []
        for k in (
            "raw_single",
            "signed_single",
            "raw_batch100",
            "signed_batch100",
            "bulk_raw_batch100",
        )
    }
    for r in range(rounds):
        singles_now = raw_single[r * per_single : (r + 1) * per_single]
        samples["raw_single"].append(
            _rate(per_single, lambda now=singles_now: [recorder.insert_events([e]) for e in now])
        )
        samples["signed_single"].append(
            _rate(
                per_single,
                lambda: [
                    store.append(signer_single, "task.note", BODY, 1) for _ in range(per_single)
                ],
            )
        )
        base = r * per_batch
        samples["raw_batch100"].append(
            _rate(
                per_batch * 100,
                lambda base=base: [
                    recorder.insert_events(raw_batch[(base + i) * 100 : (base + i + 1) * 100])
                    for i in range(per_batch)
                ],
            )
        )
        samples["bulk_raw_batch100"].append(
            _rate(
                per_batch * 100,
                lambda base=base: [
                    bulk.insert_events(bulk_batch[(base + i) * 100 : (base + i + 1) * 100])
                    for i in range(per_batch)
                ],
            )
        )
        samples["signed_batch100"].append(
            _rate(
                per_batch * 100,
                lambda: [store.append_batch(signer_batch, items, 1) for _ in range(per_batch)],
            )
        )
    store.close()
    out: dict[str, float] = {k: round(statistics.median(v)) for k, v in samples.items()}
    out["batch_ratio"] = round(
        statistics.median(
            s / r for s, r in zip(samples["signed_batch100"], samples["raw_batch100"], strict=True)
        ),
        3,
    )
    out["single_ratio"] = round(
        statistics.median(
            s / r for s, r in zip(samples["signed_single"], samples["raw_single"], strict=True)
        ),
        3,
    )
    out["batch_ratio_min"] = round(
        min(
            s / r for s, r in zip(samples["signed_batch100"], samples["raw_batch100"], strict=True)
        ),
        3,
    )
    out["batch_ratio_max"] = round(
        max(
            s / r for s, r in zip(samples["signed_batch100"], samples["raw_batch100"], strict=True)
        ),
        3,
    )
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--singles", type=int, default=600)
    parser.add_argument("--batches", type=int, default=360)
    parser.add_argument("--rounds", type=int, default=6)
    args = parser.parse_args()
    out: dict[str, object] = {"bench": "append", "unit": "entries/s"}
    with tempfile.TemporaryDirectory() as folder:
        out["sqlite"] = measure(
            f"sqlite:///{Path(folder) / 'bench.db'}", args.singles, args.batches, args.rounds
        )
    with postgres_cluster(fast=False) as server:
        out["postgresql"] = measure(
            create_database(server), args.singles, args.batches, args.rounds
        )
    out["target_batch_ratio"] = 0.7
    out["met"] = all(out[k]["batch_ratio"] >= 0.7 for k in ("sqlite", "postgresql"))  # type: ignore[index]
    sys.stdout.write(json.dumps(out) + "\n")


if __name__ == "__main__":
    main()
