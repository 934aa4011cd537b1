"""How entries and reports look on a terminal and as JSON."""

from __future__ import annotations

import json
import sys
from datetime import UTC, datetime
from typing import Any

from rich.console import Console
from rich.markup import escape

from bzzz.domain.entry import Entry
from bzzz.domain.identity import short_id
from bzzz.domain.payload import decode_payload

# No emoji codes: ":x:" in a task title or an error must print as typed.
out = Console(highlight=False, soft_wrap=True, emoji=False)
err = Console(stderr=True, highlight=False, soft_wrap=True, emoji=False)


def print_json(data: Any) -> None:
    sys.stdout.write(json.dumps(data, separators=(",", ":"), sort_keys=False) + "\n")
    sys.stdout.flush()


def iso_ms(ts: int) -> str:
    try:
        moment = datetime.fromtimestamp(ts / 1000, tz=UTC)
    except (OverflowError, OSError, ValueError):
        return f"{ts}ms"
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{ts % 1000:03d}Z"


NO_CLUSTER = "no cluster (bzzz init --new-cluster NAME or bzzz join TOKEN)"


def shown(value: object, missing: str) -> str:
    """A value for human output: `missing` (what is missing and what to do) instead of
    Python's None or an empty string."""
    return missing if value is None or value == "" else str(value)


def entry_json(entry: Entry) -> dict[str, Any]:
    return {
        "author": entry.author.hex(),
        "seq": entry.seq,
        "hash": entry.hash.hex(),
        "prev": entry.prev.hex() if entry.prev else None,
        "lamport": entry.lamport,
        "ts": entry.ts,
        "kind": entry.kind,
        "data": decode_payload(entry.body),
    }


def entry_line(entry: Entry, width: int = 100) -> str:
    data = json.dumps(decode_payload(entry.body), separators=(",", ":"), ensure_ascii=False)
    if len(data) > width:
        data = data[: width - 1] + "…"
    return (
        f"[dim]{iso_ms(entry.ts)}[/dim] [cyan]{short_id(entry.author)}[/cyan]"
        f" [bold]#{entry.seq}[/bold] [green]{escape(entry.kind)}[/green] {escape(data)}"
    )
