"""The host's load and free memory, for the availability a node sends (its standing as
a leader candidate). Linux's /proc; elsewhere memory reads as unknown (0)."""

from __future__ import annotations

import os
from pathlib import Path

MEMINFO = Path("/proc/meminfo")


def load_permille() -> int:
    """The one-minute run-queue load per core, in thousandths (1000: all cores busy)."""
    try:
        load = os.getloadavg()[0]
    except OSError:
        return 0
    return min(int(load / (os.cpu_count() or 1) * 1000), 1_000_000)


def mem_free_mb() -> int:
    try:
        for line in MEMINFO.read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) // 1024
    except (OSError, ValueError, IndexError):
        pass
    return 0
