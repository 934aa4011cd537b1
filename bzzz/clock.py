"""The wall clock, read only by the imperative shell: the domain never looks at time."""

from __future__ import annotations

import asyncio
import time


def now_ms() -> int:
    return time.time_ns() // 1_000_000


def until_tick(period_s: float) -> float:
    """Seconds to the next multiple of `period_s` on the running loop's clock. Timers of
    one period that wait for it fall due together, and the loop wakes once for all of
    them (a wake-up costs 0.2-0.3 ms of CPU on a virtual machine); the monotonic clock
    is shared by the processes of one host, so the daemons there tick together too."""
    return period_s - asyncio.get_running_loop().time() % period_s


async def sleep_to_tick(period_s: float) -> None:
    await asyncio.sleep(until_tick(period_s))
