"""sd_notify against a real AF_UNIX datagram socket bound here, as systemd binds its own."""

from __future__ import annotations

import os
import socket
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from bzzz.ops.notify import Notifier, message, socket_address


@pytest.fixture
def listener(tmp_path: Path) -> Iterator[tuple[socket.socket, str]]:
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    path = str(tmp_path / "notify.sock")
    sock.bind(path)
    sock.settimeout(5)
    yield sock, path
    sock.close()


def fields(data: bytes) -> dict[str, str]:
    return dict(line.split("=", 1) for line in data.decode().splitlines())


def test_ready_status_watchdog_and_stopping_reach_the_socket(
    listener: tuple[socket.socket, str],
) -> None:
    sock, path = listener
    env = {"NOTIFY_SOCKET": path}
    notifier = Notifier.from_environment(env)
    assert notifier.enabled
    assert notifier.ready("alpha: listening on 127.0.0.1:1")
    assert fields(sock.recv(4096)) == {
        "READY": "1",
        "MAINPID": str(os.getpid()),
        "STATUS": "alpha: listening on 127.0.0.1:1",
    }
    assert notifier.watchdog()
    assert fields(sock.recv(4096)) == {"WATCHDOG": "1"}
    assert notifier.stopping("bye\nnow")  # a newline would start another field
    assert fields(sock.recv(4096)) == {"STOPPING": "1", "STATUS": "bye now"}


def test_an_abstract_socket_is_reached_too() -> None:
    name = f"bzzz-test-{uuid.uuid4().hex}"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.bind("\0" + name)
        sock.settimeout(5)
        notifier = Notifier.from_environment({"NOTIFY_SOCKET": "@" + name})
        assert notifier.status("working")
        assert sock.recv(4096) == b"STATUS=working\n"


def test_without_notify_socket_nothing_is_sent_and_nothing_fails() -> None:
    notifier = Notifier.from_environment({})
    assert not notifier.enabled
    assert not notifier.ready("x")
    assert notifier.watchdog_s is None


def test_the_variables_leave_the_environment_so_children_cannot_speak(
    listener: tuple[socket.socket, str],
) -> None:
    _, path = listener
    env = {"NOTIFY_SOCKET": path, "WATCHDOG_USEC": "3000000", "WATCHDOG_PID": "1", "X": "y"}
    notifier = Notifier.from_environment(env, pid=1)
    assert env == {"X": "y"}
    assert notifier.watchdog_s == 3.0


def test_the_watchdog_is_for_its_own_pid_only(listener: tuple[socket.socket, str]) -> None:
    _, path = listener
    env = {"NOTIFY_SOCKET": path, "WATCHDOG_USEC": "3000000", "WATCHDOG_PID": "12345"}
    assert Notifier.from_environment(env, pid=999).watchdog_s is None
    bad = {"NOTIFY_SOCKET": path, "WATCHDOG_USEC": "soon"}
    assert Notifier.from_environment(bad).watchdog_s is None


def test_a_socket_that_is_gone_is_reported_once_and_not_raised(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    notifier = Notifier.from_environment({"NOTIFY_SOCKET": str(tmp_path / "gone.sock")})
    assert not notifier.ready()
    assert not notifier.stopping()
    warnings = [r for r in caplog.records if "cannot notify systemd" in r.getMessage()]
    assert len(warnings) == 1


def test_addresses_and_messages() -> None:
    assert socket_address("/run/systemd/notify") == "/run/systemd/notify"
    assert socket_address("@abstract") == "\0abstract"
    assert socket_address("vsock:2:1") is None
    assert socket_address("@") is None
    assert message(READY=1, STATUS="a") == b"READY=1\nSTATUS=a\n"
    with pytest.raises(ValueError, match="not a notify field"):
        message(ready=1)


def test_an_unusable_notify_socket_value_is_warned_about(
    caplog: pytest.LogCaptureFixture,
) -> None:
    notifier = Notifier.from_environment({"NOTIFY_SOCKET": "vsock:2:1"})
    assert not notifier.enabled
    assert "not a path or @name" in caplog.text
