"""The control socket on its own: a real Unix socket, served by `serve_control` on an event
loop in a thread, asked by the blocking client the CLI and benches use."""

from __future__ import annotations

import asyncio
import socket
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from bzzz.agent.control import (
    MAX_REQUEST,
    SOCKET_FILE,
    Control,
    ControlServer,
    ask,
    serve_control,
)
from bzzz.errors import UsageError


async def _echo(request: dict[str, Any]) -> dict[str, Any]:
    if request.get("op") == "fail":
        raise UsageError("asked to fail")
    return {"ok": True, "echo": request}


@pytest.fixture
def home(tmp_path: Path) -> Iterator[Path]:
    """A home whose control socket answers with `_echo` while the test runs."""
    loop = asyncio.new_event_loop()
    ready = threading.Event()
    server: list[ControlServer] = []

    async def start() -> None:
        server.append(await serve_control(tmp_path, _echo))
        ready.set()

    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    asyncio.run_coroutine_threadsafe(start(), loop)
    assert ready.wait(10)

    try:
        yield tmp_path
    finally:
        asyncio.run_coroutine_threadsafe(server[0].close(), loop).result(10)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(10)
        loop.close()


def test_one_connection_carries_many_requests_answered_in_order(home: Path) -> None:
    control = Control.connect(home)
    assert control is not None
    with control:
        for n in range(50):
            assert control.ask({"op": "echo", "n": n}) == {
                "ok": True,
                "echo": {"op": "echo", "n": n},
            }
        assert control.ask({"op": "fail"}) == {"ok": False, "error": "asked to fail"}
        assert control.ask({"op": "echo", "n": "still here"})["echo"]["n"] == "still here"  # type: ignore[index]


def test_a_line_that_is_not_a_json_object_is_answered_with_an_error(home: Path) -> None:
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.settimeout(5)
        sock.connect(str(home / SOCKET_FILE))
        sock.sendall(b'not json\n[1, 2]\n{"op": "echo"}\n')
        lines = _lines(sock, 3)
    assert '"ok": false' in lines[0] and "Expecting value" in lines[0]
    assert "a request is a JSON object" in lines[1]
    assert '"ok": true' in lines[2]


def test_a_request_over_the_limit_is_refused_and_the_connection_closed(home: Path) -> None:
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.settimeout(5)
        sock.connect(str(home / SOCKET_FILE))
        sock.sendall(b"x" * (MAX_REQUEST + 10) + b"\n")
        (line,) = _lines(sock, 1)
        assert f"at most {MAX_REQUEST} bytes" in line
        assert sock.recv(100) == b""  # closed after saying so
    assert ask(home, {"op": "echo"}) == {"ok": True, "echo": {"op": "echo"}}  # others unharmed


def test_no_agent_is_none_not_an_error(tmp_path: Path) -> None:
    assert ask(tmp_path, {"op": "status"}) is None
    assert Control.connect(tmp_path) is None


def _lines(sock: socket.socket, count: int) -> list[str]:
    data = b""
    while data.count(b"\n") < count:
        chunk = sock.recv(65536)
        if not chunk:
            break
        data += chunk
    return data.decode().splitlines()
