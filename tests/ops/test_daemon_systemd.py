"""A real `bzzz agent` run the way systemd runs a `Type=notify` unit whose stderr is the
journal: NOTIFY_SOCKET and WATCHDOG_USEC set, JOURNAL_STREAM naming its stderr, and
journald's socket at /run/systemd/journal/socket. systemd is not PID 1 here, so the
test binds both sockets itself (the journal's inside a mount namespace of the daemon's
own, at the path the daemon uses) and reads what arrives as systemd and journald would.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from bzzz.home.keys import load_identity
from tests.ops.journal_wire import receive
from tests.support.agents import free_port
from tests.support.cli import make_home

pytestmark = pytest.mark.skipif(
    os.geteuid() != 0 or shutil.which("unshare") is None,
    reason="needs root and unshare: journald's socket path is bound in a mount namespace",
)

# In the daemon's mount namespace: a tmpfs over /run/systemd (or /run, where that is
# missing), and the test's folder holding the journal socket bound at its journal/.
MOUNTS = """
set -e
mount --make-rprivate /
if [ -d /run/systemd ]; then top=/run/systemd; else top=/run; fi
mount -t tmpfs tmpfs "$top"
mkdir -p /run/systemd/journal
mount --bind "$1" /run/systemd/journal
shift
exec "$@"
"""


def notifications(sock: socket.socket, until: str, timeout: float) -> list[dict[str, str]]:
    """Datagrams as field maps, up to the first that holds `until`."""
    got: list[dict[str, str]] = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        sock.settimeout(max(0.1, deadline - time.monotonic()))
        try:
            data = sock.recv(4096)
        except TimeoutError:
            break
        fields = dict(line.split("=", 1) for line in data.decode().splitlines())
        got.append(fields)
        if until in fields:
            return got
    raise AssertionError(f"no {until} within {timeout} s; got {got}")


def journal_entries(sock: socket.socket, wanted: str, timeout: float) -> list[dict[str, str]]:
    """Entries (first value of each field) up to the first whose MESSAGE starts `wanted`."""
    got: list[dict[str, str]] = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        sock.settimeout(max(0.1, deadline - time.monotonic()))
        try:
            entry = {k: v[0] for k, v in receive(sock).items()}
        except TimeoutError:
            break
        got.append(entry)
        if entry.get("MESSAGE", "").startswith(wanted):
            return got
    raise AssertionError(f"no entry {wanted!r} within {timeout} s; got {got}")


@pytest.fixture
def sockets(tmp_path: Path) -> Iterator[tuple[socket.socket, socket.socket, Path]]:
    notify = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    notify.bind(str(tmp_path / "notify.sock"))
    (tmp_path / "journal").mkdir()
    journal = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    journal.bind(str(tmp_path / "journal" / "socket"))
    os.chmod(tmp_path / "journal" / "socket", 0o666)
    yield notify, journal, tmp_path
    notify.close()
    journal.close()


def test_the_daemon_notifies_systemd_and_logs_fields_to_journald(
    sockets: tuple[socket.socket, socket.socket, Path],
) -> None:
    notify, journal, tmp = sockets
    home = make_home(tmp / "home", "--new-cluster", "ops")
    agent_id = load_identity(home).public_key.hex()
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("BZZZ_")}
    with open(tmp / "stderr", "wb") as stderr:
        st = os.fstat(stderr.fileno())
        env.update(
            NOTIFY_SOCKET=str(tmp / "notify.sock"),
            WATCHDOG_USEC="1000000",
            JOURNAL_STREAM=f"{st.st_dev}:{st.st_ino}",
        )
        command = [sys.executable, "-m", "bzzz", "agent", "--home", str(home),
                   "--listen", f"127.0.0.1:{port}", "--no-mdns"]  # fmt: skip
        proc = subprocess.Popen(
            ["unshare", "--mount", "sh", "-c", MOUNTS, "sh", str(tmp / "journal"), *command],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=stderr,
            env=env,
        )
    try:
        try:
            ready = notifications(notify, "READY", timeout=60)[-1]
        except AssertionError:
            raise AssertionError((tmp / "stderr").read_text()[-2000:]) from None
        assert ready["MAINPID"] == str(proc.pid)  # unshare and sh exec: one process
        assert ready["STATUS"] == f"alpha: listening on 127.0.0.1:{port}"
        # The mesh is bound when READY=1 says so.
        with socket.create_connection(("127.0.0.1", port), timeout=5):
            pass

        # WATCHDOG=1 every half of WATCHDOG_USEC: at least two within 2 s.
        started = time.monotonic()
        notifications(notify, "WATCHDOG", timeout=2)
        notifications(notify, "WATCHDOG", timeout=2)
        assert time.monotonic() - started < 2.5

        entries = journal_entries(journal, "ready: ", timeout=10)
        said = entries[-1]
        assert said["PRIORITY"] == "6"
        assert said["SYSLOG_IDENTIFIER"] == "bzzz"
        assert said["LOGGER"] == "bzzz.agent"
        assert said["CODE_FILE"].endswith(os.path.join("bzzz", "agent", "daemon.py"))
        assert said["CODE_FUNC"] == "start"
        assert said["BZZZ_AGENT"] == agent_id
        assert said["BZZZ_NODE"] == "alpha"

        proc.send_signal(signal.SIGTERM)
        stopping = notifications(notify, "STOPPING", timeout=15)[-1]
        assert stopping["STATUS"] == "alpha: stopping"
        assert proc.wait(timeout=30) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    # Every record went to journald, none to stderr as text.
    assert "ready: " not in (tmp / "stderr").read_text(), (tmp / "stderr").read_text()
