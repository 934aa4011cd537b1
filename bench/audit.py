"""Audit throughput on a store of 1,000,000 entries, and its peak memory.

Measures the default audit (hash links + each head's signature) and `--full` (every
signature), both over all cores, beside a plain single-core loop of SHA-256 + Ed25519
verification over the same entries, in the same run. Peak memory is the largest summed
resident size of the audit process and its workers, sampled from /proc.

Targets (issue 2): default >= 100,000 entries/s; full >= 1.6 x the loop; peak < 300 MB.
The store is built once and cached in bench/.cache (delete it to rebuild).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import multiprocessing
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

from sqlalchemy import insert

from bzzz.audit.reader import read_streams, scan
from bzzz.domain.entry import create_entry, decode_entry, signing_bytes_of
from bzzz.domain.identity import Ed25519Signer, verify_signature
from bzzz.domain.payload import encode_payload
from bzzz.store import EventStore
from bzzz.store.tables import heads, originator_of
from bzzz.store.urls import resolve_store_url

CACHE = Path(__file__).parent / ".cache"
KINDS = ["task.created", "task.progress", "hmmm.plan_proposed", "hmmm.objection", "task.note"]


def _author_chain(args: tuple[int, int]) -> tuple[bytes, list[bytes], bytes, int]:
    index, count = args
    signer = Ed25519Signer(hashlib.sha256(b"bench-author-%d" % index).digest())
    raws: list[bytes] = []
    prev = None
    for seq in range(1, count + 1):
        body = encode_payload({"task": f"#{seq // 50}", "step": seq, "note": "progress report"})
        entry = create_entry(
            signer,
            seq=seq,
            prev=prev,
            lamport=seq,
            ts=1_700_000_000_000 + seq,
            kind=KINDS[seq % len(KINDS)],
            body=body,
        )
        raws.append(entry.raw)
        prev = entry.hash
    return signer.public_key, raws, prev or b"", count


def build(path: Path, entries: int, authors: int) -> None:
    """Sign every log in parallel, then bulk-insert the rows exactly as the store would."""
    per = entries // authors
    store = EventStore(resolve_store_url(f"sqlite:///{path}"))
    table = store.recorder.events_record_cls.__table__
    with multiprocessing.get_context("spawn").Pool() as pool:
        for author, raws, last_hash, count in pool.imap_unordered(
            _author_chain, [(i, per) for i in range(authors)]
        ):
            originator = originator_of(author)
            with store.engine.begin() as conn:
                for start in range(0, count, 20_000):
                    conn.execute(
                        insert(table),
                        [
                            {
                                "originator_id": originator,
                                "originator_version": start + i + 1,
                                "topic": KINDS[(start + i + 1) % len(KINDS)],
                                "state": raw,
                            }
                            for i, raw in enumerate(raws[start : start + 20_000])
                        ],
                    )
                conn.execute(
                    insert(heads).values(
                        author=author, seq=count, hash=last_hash, lamport=count, forked_seq=None
                    )
                )
    store.close()


def _tree_rss_kb(root: int) -> int:
    """Summed VmRSS of `root` and all its descendants."""
    parents: dict[int, int] = {}
    rss: dict[int, int] = {}
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open(f"/proc/{name}/status") as handle:
                fields = dict(line.split(":", 1) for line in handle if ":" in line)
        except OSError:
            continue
        pid = int(name)
        parents[pid] = int(fields.get("PPid", "0").strip())
        rss[pid] = int(fields.get("VmRSS", "0 kB").split()[0])
    total, todo = 0, [root]
    while todo:
        pid = todo.pop()
        total += rss.get(pid, 0)
        todo.extend(child for child, parent in parents.items() if parent == pid)
    return total


def run_audit(url: str, full: bool) -> dict[str, object]:
    """Run one audit in a fresh process, sampling the process tree's memory."""
    argv = [sys.executable, "-m", "bench.audit", "--run-once", url] + (["--full"] if full else [])
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, text=True)
    peak = 0
    done = threading.Event()

    def sample() -> None:
        nonlocal peak
        while not done.is_set():
            peak = max(peak, _tree_rss_kb(proc.pid))
            time.sleep(0.05)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    out, _ = proc.communicate()
    done.set()
    sampler.join()
    result: dict[str, object] = json.loads(out)
    result["peak_rss_mb"] = round(peak / 1024, 1)
    return result


def run_once(url: str, full: bool) -> None:
    from bzzz.audit import audit_store

    report = audit_store(resolve_store_url(url), full=full)
    sys.stdout.write(
        json.dumps(
            {
                "ok": report.ok,
                "entries": report.entries,
                "seconds": round(report.seconds, 3),
                "entries_per_s": round(report.entries / report.seconds),
            }
        )
        + "\n"
    )


def baseline_loop(path: Path) -> dict[str, float]:
    """SHA-256 + Ed25519 verify of every entry, one core; only the loop is timed."""
    store = EventStore(resolve_store_url(f"sqlite:///{path}"), create=False)
    count, spent = 0, 0.0
    for originator, _rows, highest in read_streams(store)[0]:
        for start in range(0, highest, 50_000):
            page = [raw for _s, _k, raw, _p in scan(store, originator, start, start + 50_000)]
            author = decode_entry(page[0]).author
            started = time.perf_counter()
            for raw in page:
                hashlib.sha256(raw).digest()
                verify_signature(author, signing_bytes_of(raw), raw[-64:])
            spent += time.perf_counter() - started
            count += len(page)
    store.close()
    return {"entries": count, "seconds": round(spent, 3), "entries_per_s": round(count / spent)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--entries", type=int, default=1_000_000)
    parser.add_argument("--authors", type=int, default=10)
    parser.add_argument("--run-once", metavar="URL")
    parser.add_argument("--full", action="store_true")
    args = parser.parse_args()
    if args.run_once:
        run_once(args.run_once, args.full)
        return
    CACHE.mkdir(exist_ok=True)
    path = CACHE / f"audit-{args.entries}-{args.authors}.db"
    marker = path.with_suffix(".ready")
    built = 0.0
    if not marker.exists():
        for stale in CACHE.glob(path.name + "*"):
            stale.unlink()
        started = time.perf_counter()
        build(path, args.entries, args.authors)
        built = time.perf_counter() - started
        marker.write_text("ok\n")
    url = f"sqlite:///{path}"
    fast = run_audit(url, full=False)
    full = run_audit(url, full=True)
    loop = baseline_loop(path)
    out = {
        "bench": "audit",
        "entries": args.entries,
        "authors": args.authors,
        "cores": os.cpu_count(),
        "build_seconds": round(built, 1),
        "default": fast,
        "full": full,
        "loop_sha256_verify_1core": loop,
        "full_vs_loop": round(full["entries_per_s"] / loop["entries_per_s"], 2),  # type: ignore[operator]
        "targets": {"default_entries_per_s": 100_000, "full_vs_loop": 1.6, "peak_rss_mb": 300},
    }
    out["met"] = (
        fast["entries_per_s"] >= 100_000  # type: ignore[operator]
        and out["full_vs_loop"] >= 1.6  # type: ignore[operator]
        and max(fast["peak_rss_mb"], full["peak_rss_mb"]) < 300  # type: ignore[type-var]
        and fast["ok"]
        and full["ok"]
    )
    sys.stdout.write(json.dumps(out) + "\n")


if __name__ == "__main__":
    main()
