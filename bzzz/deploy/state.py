"""The deployment state file: every host this node deployed to, which steps are done,
when, and why one failed (`deploy.json` in the deploying node's home, mode 0600,
replaced atomically), so that `bzzz deploy --retry` continues where a deployment
stopped. It holds no secret: invite tokens and passwords never go in it."""

from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path

from bzzz.domain.deploy import HostRecord, records_from_json, records_to_json
from bzzz.errors import UsageError, one_line

STATE_FILE = "deploy.json"


def state_path(home: Path) -> Path:
    return home / STATE_FILE


def load_records(home: Path) -> dict[str, HostRecord]:
    path = state_path(home)
    try:
        text = path.read_text()
    except FileNotFoundError:
        return {}
    except OSError as exc:
        raise UsageError(f"cannot read {path}: {one_line(exc)}") from None
    return records_from_json(text, str(path))


def save_records(home: Path, records: dict[str, HostRecord]) -> None:
    path = state_path(home)
    try:
        fd, temp = tempfile.mkstemp(dir=home, prefix=f".{STATE_FILE}.", suffix=".tmp")
        try:
            os.fchmod(fd, 0o600)
            with os.fdopen(fd, "w") as handle:
                handle.write(records_to_json(records))
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(temp, path)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(temp)
            raise
    except OSError as exc:
        raise UsageError(f"cannot write {path}: {one_line(exc)}") from None
