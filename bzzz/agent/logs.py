"""Structured logs to stderr: text for people, JSON lines for machines (`--log-json`).

Under systemd (stderr is the journal: `JOURNAL_STREAM` names it) records go to journald
through its native protocol instead, so that their fields survive: PRIORITY, CODE_FILE,
CODE_LINE, CODE_FUNC, LOGGER, SYSLOG_IDENTIFIER=bzzz, and BZZZ_AGENT / BZZZ_NODE once the
daemon knows who it is (`tag`). `journalctl -u bzzz BZZZ_AGENT=...` then finds them."""

from __future__ import annotations

import json
import logging
import sys
import time
from collections.abc import Mapping

from bzzz.ops.journal import JOURNAL_SOCKET, JournalHandler, stderr_is_journal


class _JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        data = {
            "ts": int(record.created * 1000),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        if record.exc_info:
            data["error"] = self.formatException(record.exc_info)
        return json.dumps(data)


def _stderr_handler(as_json: bool) -> logging.Handler:
    handler = logging.StreamHandler(sys.stderr)
    if as_json:
        handler.setFormatter(_JsonFormatter())
    else:
        formatter = logging.Formatter("%(asctime)s.%(msecs)03dZ %(levelname)-7s %(message)s")
        formatter.converter = time.gmtime
        formatter.datefmt = "%Y-%m-%dT%H:%M:%S"
        handler.setFormatter(formatter)
    return handler


def setup_logging(
    level: str, as_json: bool, env: Mapping[str, str] | None = None
) -> logging.Handler:
    """Send the `bzzz` loggers' records to journald when stderr is the journal, else to
    stderr as text or JSON lines. Returns the handler."""
    text = _stderr_handler(as_json)
    handler: logging.Handler = text
    if stderr_is_journal(env):
        try:
            handler = JournalHandler(socket_path=JOURNAL_SOCKET, fallback=text)
        except OSError:  # no journald socket after all: stderr still reaches the journal
            handler = text
    root = logging.getLogger("bzzz")
    for old in root.handlers:
        if old is not handler:
            old.close()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    root.propagate = False
    # asyncssh logs every packet exchange at INFO; keep only its warnings.
    logging.getLogger("asyncssh").setLevel(logging.WARNING)
    return handler


def tag(**fields: str) -> None:
    """Fields every later journal entry carries (BZZZ_AGENT=...); nothing when the logs
    go to stderr as text or JSON."""
    for handler in logging.getLogger("bzzz").handlers:
        if isinstance(handler, JournalHandler):
            handler.set_fields(**fields)
