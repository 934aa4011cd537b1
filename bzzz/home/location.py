"""Where a node home is: --home, else BZZZ_HOME, else the XDG data dir."""

from __future__ import annotations

import os
from pathlib import Path


def default_home() -> Path:
    explicit = os.environ.get("BZZZ_HOME")
    if explicit:
        return Path(explicit).expanduser()
    data = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(data) / "bzzz"


def resolve_home(home: Path | None) -> Path:
    return (home.expanduser() if home is not None else default_home()).absolute()
