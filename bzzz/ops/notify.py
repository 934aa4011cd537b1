"""sd_notify(3) without libsystemd: one datagram of `KEY=VALUE` lines to the AF_UNIX
socket that systemd names in NOTIFY_SOCKET (a path, or `@name` for an abstract socket).

With no NOTIFY_SOCKET (not run by systemd, or not `Type=notify`) every call does nothing.
A failed send is logged once and never stops the daemon: systemd then decides (a start
that never reports READY=1 times out). The variables are taken out of the environment
when read, so that git and other children cannot speak for the daemon.
"""

from __future__ import annotations

import logging
import os
import socket
from collections.abc import MutableMapping
from dataclasses import dataclass, field

log = logging.getLogger("bzzz.ops.notify")

NOTIFY_SOCKET = "NOTIFY_SOCKET"
WATCHDOG_USEC = "WATCHDOG_USEC"
WATCHDOG_PID = "WATCHDOG_PID"


def socket_address(value: str) -> str | None:
    """NOTIFY_SOCKET as an address for `sendto`: a path, or an abstract name (`@x` becomes
    `\\0x`). Other forms (systemd 254's `vsock:`) are not spoken here: None."""
    if value.startswith("/"):
        return value
    if value.startswith("@") and len(value) > 1:
        return "\0" + value[1:]
    return None


def message(**fields: str | int) -> bytes:
    """The datagram: one `KEY=VALUE` line per field (`READY=1`, `STATUS=...`). A value
    may not hold a newline (systemd reads line by line): it is replaced by a space."""
    lines = []
    for key, value in fields.items():
        if not key or not key.replace("_", "").isalnum() or not key.isupper():
            raise ValueError(f"not a notify field name: {key!r}")
        text = str(value).replace("\n", " ")
        lines.append(f"{key}={text}")
    return ("\n".join(lines) + "\n").encode()


@dataclass
class Notifier:
    """Tells the service manager about this process; does nothing when `address` is None."""

    address: str | None
    watchdog_s: float | None = None  # how often systemd wants WATCHDOG=1, if it does
    _failed: bool = field(default=False, repr=False)

    @classmethod
    def from_environment(
        cls, env: MutableMapping[str, str] | None = None, pid: int | None = None
    ) -> Notifier:
        """Read NOTIFY_SOCKET and the watchdog's variables, and remove them from `env`
        (os.environ by default)."""
        env = os.environ if env is None else env
        raw = env.pop(NOTIFY_SOCKET, None)
        usec = env.pop(WATCHDOG_USEC, None)
        watchdog_pid = env.pop(WATCHDOG_PID, None)
        address = socket_address(raw) if raw else None
        if raw and address is None:
            log.warning("NOTIFY_SOCKET=%s is not a path or @name: not notifying systemd", raw)
        watchdog_s: float | None = None
        own = os.getpid() if pid is None else pid
        if address is not None and usec and (watchdog_pid in (None, "", str(own))):
            try:
                micros = int(usec)
            except ValueError:
                micros = 0
            if micros > 0:
                watchdog_s = micros / 1_000_000
        return cls(address, watchdog_s)

    @property
    def enabled(self) -> bool:
        return self.address is not None

    def send(self, **fields: str | int) -> bool:
        """Send the fields in one datagram; True if it was sent."""
        if self.address is None:
            return False
        data = message(**fields)
        try:
            with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as sock:
                sock.sendto(data, self.address)
        except OSError as exc:
            if not self._failed:
                self._failed = True
                log.warning("cannot notify systemd at %s: %s", self.address.lstrip("\0"), exc)
            return False
        return True

    def ready(self, status: str | None = None) -> bool:
        """READY=1 (and STATUS=), with MAINPID so systemd need not guess."""
        fields: dict[str, str | int] = {"READY": 1, "MAINPID": os.getpid()}
        if status:
            fields["STATUS"] = status
        return self.send(**fields)

    def stopping(self, status: str | None = None) -> bool:
        fields: dict[str, str | int] = {"STOPPING": 1}
        if status:
            fields["STATUS"] = status
        return self.send(**fields)

    def status(self, text: str) -> bool:
        return self.send(STATUS=text)

    def watchdog(self) -> bool:
        return self.send(WATCHDOG=1)
