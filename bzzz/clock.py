"""The wall clock, read only by the imperative shell: the domain never looks at time."""

from __future__ import annotations

import time


def now_ms() -> int:
    return time.time_ns() // 1_000_000
