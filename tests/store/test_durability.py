"""An append that has returned survives kill -9; a killed batch leaves nothing partial.
Real processes, real SIGKILL, on SQLite and PostgreSQL."""

from __future__ import annotations

import random
import signal
import subprocess
import sys
import time

import pytest

from bzzz.audit import audit_store
from bzzz.store import EventStore
from bzzz.store.urls import StoreUrl
from tests.support.append_worker import SIGNER


def _kill_after(url: StoreUrl, batch: int, lines_before_kill: int, extra_delay: float) -> int:
    """Run the worker, SIGKILL it after it printed enough; the last acknowledged total."""
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "tests.support.append_worker",
            url.url.render_as_string(hide_password=False),
            str(batch),
            "400",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    acknowledged = 0
    seen = 0
    assert proc.stdout is not None
    deadline = time.monotonic() + 60
    try:
        while seen < lines_before_kill and time.monotonic() < deadline:
            line = proc.stdout.readline()
            if not line:
                break
            if line.startswith("done"):
                acknowledged = int(line.split()[1])
            seen += 1
        time.sleep(extra_delay)
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
    assert proc.returncode == -signal.SIGKILL, proc.stderr.read() if proc.stderr else ""
    return acknowledged


@pytest.mark.slow
def test_acknowledged_single_appends_survive_kill_9(store_url: StoreUrl) -> None:
    acknowledged = 0
    for round_ in range(3):
        acknowledged = max(
            acknowledged, _kill_after(store_url, 1, 20 + 2 * round_, random.uniform(0, 0.01))
        )
    with EventStore(store_url) as store:
        head = store.head(SIGNER.public_key)
        assert head is not None and head.seq >= acknowledged > 0
    assert audit_store(store_url).ok


@pytest.mark.slow
def test_a_batch_killed_midway_leaves_no_partial_batch(store_url: StoreUrl) -> None:
    batch = 300
    acknowledged = 0
    for _ in range(4):
        # Odd line counts stop right after "writing": the kill lands inside a batch.
        acknowledged = max(
            acknowledged,
            _kill_after(store_url, batch, random.choice([3, 5, 7]), random.uniform(0.005, 0.05)),
        )
    with EventStore(store_url) as store:
        count = store.count()
        head = store.head(SIGNER.public_key)
    assert count % batch == 0, f"{count} entries: a partial batch was stored"
    assert count >= acknowledged > 0
    assert head is not None and head.seq == count
    report = audit_store(store_url, full=True)
    assert report.ok, report.findings
