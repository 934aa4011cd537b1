"""The daemon's control socket: a Unix socket in the home (mode 0600), one JSON request
and one JSON answer a line, as many in turn as the client sends on one connection. Only
the home's owner can reach it; nothing listens on TCP without SSH authentication."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import socket
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from bzzz.errors import BzzzError, UsageError

SOCKET_FILE = "agent.sock"
MAX_REQUEST = 256 * 1024
# A Unix socket path holds at most 107 bytes on Linux.
MAX_PATH = 107

Handler = Callable[[dict[str, Any]], Awaitable[dict[str, Any]]]


def socket_path(home: Path) -> Path:
    path = home / SOCKET_FILE
    if len(str(path).encode()) > MAX_PATH:
        raise UsageError(
            f"the home path {home} is too long for a control socket "
            f"(at most {MAX_PATH - len(SOCKET_FILE) - 1} bytes); use a shorter --home"
        )
    return path


class ControlServer:
    """The control socket's server and the connections it serves. A client may keep its
    connection open as long as the daemon runs; on the way out the daemon hangs up on
    it, so that its handler ends on end of input instead of being cancelled mid-read."""

    def __init__(self, handle: Handler) -> None:
        self._handle = handle
        self._server: asyncio.Server | None = None
        self._clients: dict[asyncio.Task[Any], asyncio.StreamWriter] = {}

    async def serve(self, home: Path) -> None:
        path = socket_path(home)
        with contextlib.suppress(FileNotFoundError):
            path.unlink()  # left by a crashed daemon; the home lock says we are the only one
        old_umask = os.umask(0o177)
        try:
            self._server = await asyncio.start_unix_server(self._on_client, path, limit=MAX_REQUEST)
        finally:
            os.umask(old_umask)
        os.chmod(path, 0o600)

    async def _on_client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._clients[task] = writer
        try:
            while line := await reader.readline():
                answer = await _answer(line, self._handle)
                writer.write(json.dumps(answer).encode() + b"\n")
                await writer.drain()
        except ValueError:  # the line ran past MAX_REQUEST: say so and hang up
            error = f"a request is one line of at most {MAX_REQUEST} bytes"
            writer.write(json.dumps({"ok": False, "error": error}).encode() + b"\n")
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
            writer.close()
            del self._clients[task]

    async def close(self) -> None:
        """Stop listening, hang up on every client, and wait for their handlers."""
        if self._server is not None:
            self._server.close()
        for writer in self._clients.values():
            writer.close()
        await asyncio.gather(*self._clients, return_exceptions=True)


async def serve_control(home: Path, handle: Handler) -> ControlServer:
    control = ControlServer(handle)
    await control.serve(home)
    return control


async def _answer(line: bytes, handle: Handler) -> dict[str, Any]:
    try:
        request = json.loads(line)
        if not isinstance(request, dict):
            raise ValueError("a request is a JSON object")
        return await handle(request)
    except (ValueError, BzzzError) as error:
        return {"ok": False, "error": str(error)}


class Control:
    """One connection to a running agent's control socket, for many requests in turn (an
    agent asking for task after task need not connect for each)."""

    def __init__(self, home: Path, sock: socket.socket) -> None:
        self.home = home
        self._sock = sock
        self._buffer = b""

    @classmethod
    def connect(cls, home: Path, timeout: float = 5.0) -> Control | None:
        """A connection to the agent on `home`, or None when none is running there."""
        path = home / SOCKET_FILE
        if not path.exists() or len(str(path).encode()) > MAX_PATH:
            return None
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(timeout)
        try:
            sock.connect(str(path))
        except (ConnectionRefusedError, FileNotFoundError):
            sock.close()
            return None
        except OSError as error:
            sock.close()
            raise UsageError(f"the agent on {home} did not answer: {error}") from None
        return cls(home, sock)

    def ask(self, request: dict[str, Any]) -> dict[str, Any] | None:
        """The agent's answer (None if it is not a JSON object)."""
        try:
            self._sock.sendall(json.dumps(request).encode() + b"\n")
            while b"\n" not in self._buffer:
                chunk = self._sock.recv(65536)
                if not chunk:
                    break
                self._buffer += chunk
        except OSError as error:
            raise UsageError(f"the agent on {self.home} did not answer: {error}") from None
        line, _, self._buffer = self._buffer.partition(b"\n")
        try:
            answer = json.loads(line)
        except ValueError:
            raise UsageError(f"the agent on {self.home} gave an unreadable answer") from None
        return answer if isinstance(answer, dict) else None

    def close(self) -> None:
        self._sock.close()

    def __enter__(self) -> Control:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()


def ask(home: Path, request: dict[str, Any], timeout: float = 5.0) -> dict[str, Any] | None:
    """The daemon's answer, or None when no daemon is running on this home."""
    control = Control.connect(home, timeout)
    if control is None:
        return None
    with control:
        return control.ask(request)


def ask_running(home: Path, request: dict[str, Any], timeout: float = 5.0) -> dict[str, Any]:
    """The running daemon's answer to a request it must carry out; `UsageError` when no
    daemon runs on this home or it refused."""
    answer = ask(home, request, timeout=timeout)
    if answer is None:
        raise UsageError(f"no agent is running on {home}: start it with `bzzz agent`")
    if not answer.get("ok"):
        raise UsageError(str(answer.get("error", "the agent refused the request")))
    return answer


def notify_agent(home: Path) -> None:
    """Tell a running agent that this process wrote to the store, so it replicates now
    instead of at its next poll. Best effort: no agent, no harm."""
    with contextlib.suppress(UsageError, OSError):
        ask(home, {"op": "refresh"}, timeout=2.0)
