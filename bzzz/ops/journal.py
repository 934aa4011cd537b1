"""Logging to journald through its native protocol, so that fields survive: PRIORITY,
SYSLOG_IDENTIFIER, CODE_FILE / CODE_LINE / CODE_FUNC, LOGGER, and this node's own
(BZZZ_AGENT, BZZZ_NODE, and any `BZZZ_*` attribute a log call passes in `extra`).

The protocol (an AF_UNIX datagram of fields to /run/systemd/journal/socket, long values
length-prefixed, a sealed memfd when the datagram is too big) is logging-journald's
`JournaldTransport`; which fields a record becomes is decided here. Use it only when
stderr is the journal (`stderr_is_journal`): that is how a service started by systemd
with the default StandardError=journal knows journald is there for it.
"""

from __future__ import annotations

import logging
import os
import re
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

JOURNAL_SOCKET = Path("/run/systemd/journal/socket")
IDENTIFIER = "bzzz"
# syslog(3) priorities, as journald takes them.
PRIORITY = {logging.CRITICAL: 2, logging.ERROR: 3, logging.WARNING: 4, logging.INFO: 6}
DEBUG_PRIORITY = 7
# A journal field name: capitals, digits and '_', not starting with '_' (trusted fields,
# set by journald itself) or a digit, at most 64 characters.
_FIELD = re.compile(r"[A-Z][A-Z0-9_]{0,63}")
# Fields this handler sets itself; a caller's `extra` cannot replace them.
_OWN = frozenset({"MESSAGE", "PRIORITY", "SYSLOG_IDENTIFIER", "CODE_FILE", "CODE_LINE",
                  "CODE_FUNC", "LOGGER"})  # fmt: skip


def stderr_is_journal(env: Mapping[str, str] | None = None, fd: int | None = None) -> bool:
    """Whether this process's stderr is a journald stream: JOURNAL_STREAM (`DEV:INODE`,
    set by systemd) names the file stderr is. A malformed value means no."""
    value = (os.environ if env is None else env).get("JOURNAL_STREAM", "")
    device, _, inode = value.partition(":")
    if not (device.isdigit() and inode.isdigit()):
        return False
    try:
        st = os.fstat(sys.stderr.fileno() if fd is None else fd)
    except (OSError, ValueError):  # stderr closed, or replaced by an object without a file
        return False
    return st.st_dev == int(device) and st.st_ino == int(inode)


def field_name(name: str) -> str | None:
    """`name` if journald would take it as a field's name, else None."""
    return name if _FIELD.fullmatch(name) else None


def priority_of(level: int) -> int:
    for threshold, priority in PRIORITY.items():  # highest first
        if level >= threshold:
            return priority
    return DEBUG_PRIORITY


class JournalHandler(logging.Handler):
    """A record becomes one journal entry. If journald cannot be reached the record goes
    to `fallback` (the text handler on stderr, which systemd also sends to the journal,
    without the fields)."""

    def __init__(
        self,
        identifier: str = IDENTIFIER,
        socket_path: Path = JOURNAL_SOCKET,
        fallback: logging.Handler | None = None,
    ) -> None:
        super().__init__()
        self.identifier = identifier
        self.socket_path = socket_path
        self.fallback = fallback
        self.fields: dict[str, str] = {}
        # Imported here: only a daemon whose stderr is the journal needs it.
        from logging_journald import JournaldTransport  # type: ignore[import-untyped]

        # Unconnected: each send names the path, so a restarted journald (a new socket
        # at the same path) is reached again, as libsystemd does.
        self._transport: Any = JournaldTransport(socket_path=socket_path, connected=False)

    def set_fields(self, **fields: str) -> None:
        """Fields every later entry carries (e.g. BZZZ_AGENT); ValueError names a bad one."""
        for name in fields:
            if field_name(name) is None or name in _OWN:
                raise ValueError(f"not a field this handler may set: {name!r}")
        self.fields.update(fields)

    def entry(self, record: logging.LogRecord) -> list[tuple[str, str | int]]:
        """The fields of one record, in the order they are sent."""
        pairs: list[tuple[str, str | int]] = [
            ("MESSAGE", self.format(record)),
            ("PRIORITY", priority_of(record.levelno)),
            ("SYSLOG_IDENTIFIER", self.identifier),
            ("LOGGER", record.name),
            ("CODE_FILE", record.pathname),
            ("CODE_LINE", record.lineno),
            ("CODE_FUNC", record.funcName),
        ]
        pairs.extend(self.fields.items())
        for name, value in record.__dict__.items():  # log.info(..., extra={"BZZZ_PEER": x})
            if name.startswith("BZZZ_") and field_name(name) and name not in self.fields:
                pairs.append((name, str(value)))
        return pairs

    def emit(self, record: logging.LogRecord) -> None:
        try:
            pairs = self.entry(record)
            self._transport.send(pairs)
        except OSError:
            if self.fallback is not None:
                self.fallback.handle(record)
            else:
                self.handleError(record)
        except Exception:  # a record that cannot be formatted: logging's own report
            self.handleError(record)

    def close(self) -> None:
        try:
            self._transport.socket.close()
        finally:
            super().close()
