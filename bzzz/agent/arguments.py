"""Arguments of control requests, checked as the network's bytes are."""

from __future__ import annotations

from typing import Any

from bzzz.errors import UsageError

MAX_WAIT_S = 600.0
Answer = dict[str, Any]


def seconds(value: object) -> float:
    if (
        not isinstance(value, int | float)
        or isinstance(value, bool)
        or not 0 <= value <= MAX_WAIT_S
    ):
        raise UsageError(f"a wait is 0 to {MAX_WAIT_S:.0f} seconds")
    return float(value)
