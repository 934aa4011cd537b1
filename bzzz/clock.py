"""The wall clock, read only by the imperative shell: the domain never looks at time.

Test only: the nemesis (`python -m nemesis`) moves one node's clock without touching the
machine's. `BZZZ_TEST_CLOCK_OFFSET_MS` (an integer, read once at import) is added to
every reading; `BZZZ_TEST_CLOCK_FILE` names a file holding another integer offset in
milliseconds, read again at most every `CLOCK_FILE_POLL_S` of monotonic time so that the
offset can jump while the node runs (a missing, empty or unreadable file counts as 0).
With neither set, `now_ms` is the plain wall clock and costs nothing more. Never set
them in production: entries would carry the shifted time.
"""

from __future__ import annotations

import asyncio
import os
import time
from pathlib import Path

OFFSET_ENV = "BZZZ_TEST_CLOCK_OFFSET_MS"
FILE_ENV = "BZZZ_TEST_CLOCK_FILE"
CLOCK_FILE_POLL_S = 0.1


def _wall_ms() -> int:
    return time.time_ns() // 1_000_000


class _ShiftedClock:
    """The wall clock plus a fixed offset and, if named, the offset in a file."""

    def __init__(self, fixed_ms: int, file: Path | None) -> None:
        self.fixed_ms, self.file = fixed_ms, file
        self.file_ms = 0
        self.read_at = -CLOCK_FILE_POLL_S

    def __call__(self) -> int:
        if self.file is not None:
            mono = time.monotonic()
            if mono - self.read_at >= CLOCK_FILE_POLL_S:
                self.read_at = mono
                self.file_ms = _offset_in(self.file)
        return _wall_ms() + self.fixed_ms + self.file_ms


def _offset_in(file: Path) -> int:
    try:
        text = file.read_text().strip()
        return int(text) if text else 0
    except (OSError, ValueError):
        return 0


def _clock() -> _ShiftedClock | None:
    fixed, file = os.environ.get(OFFSET_ENV), os.environ.get(FILE_ENV)
    if not fixed and not file:
        return None
    try:
        fixed_ms = int(fixed) if fixed else 0
    except ValueError:
        raise SystemExit(f"{OFFSET_ENV} must be an integer (milliseconds), not {fixed!r}") from None
    return _ShiftedClock(fixed_ms, Path(file) if file else None)


_shifted = _clock()


def now_ms() -> int:
    if _shifted is not None:
        return _shifted()
    return time.time_ns() // 1_000_000


def until_tick(period_s: float) -> float:
    """Seconds to the next multiple of `period_s` on the running loop's clock. Timers of
    one period that wait for it fall due together, and the loop wakes once for all of
    them (a wake-up costs 0.2-0.3 ms of CPU on a virtual machine); the monotonic clock
    is shared by the processes of one host, so the daemons there tick together too."""
    return period_s - asyncio.get_running_loop().time() % period_s


async def sleep_to_tick(period_s: float) -> None:
    await asyncio.sleep(until_tick(period_s))
