"""The daemon's control socket: a Unix socket in the home (mode 0600), one JSON request
and one JSON answer a line. Only the home's owner can reach it; nothing listens on TCP
without SSH authentication."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import socket
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from bzzz.errors import UsageError

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


async def serve_control(home: Path, handle: Handler) -> asyncio.Server:
    path = socket_path(home)
    with contextlib.suppress(FileNotFoundError):
        path.unlink()  # left by a crashed daemon; the home lock says we are the only one

    async def on_client(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            line = await reader.readline()
            try:
                request = json.loads(line[:MAX_REQUEST])
                if not isinstance(request, dict):
                    raise ValueError("a request is a JSON object")
                answer = await handle(request)
            except (ValueError, UsageError) as error:
                answer = {"ok": False, "error": str(error)}
            writer.write(json.dumps(answer).encode() + b"\n")
            await writer.drain()
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
            writer.close()

    old_umask = os.umask(0o177)
    try:
        server = await asyncio.start_unix_server(on_client, path, limit=MAX_REQUEST)
    finally:
        os.umask(old_umask)
    os.chmod(path, 0o600)
    return server


def ask(home: Path, request: dict[str, Any], timeout: float = 5.0) -> dict[str, Any] | None:
    """The daemon's answer, or None when no daemon is running on this home."""
    path = home / SOCKET_FILE
    if not path.exists() or len(str(path).encode()) > MAX_PATH:
        return None
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.settimeout(timeout)
        try:
            sock.connect(str(path))
            sock.sendall(json.dumps(request).encode() + b"\n")
            data = b""
            while not data.endswith(b"\n"):
                chunk = sock.recv(65536)
                if not chunk:
                    break
                data += chunk
        except (ConnectionRefusedError, FileNotFoundError):
            return None
        except OSError as error:
            raise UsageError(f"the agent on {home} did not answer: {error}") from None
    try:
        answer = json.loads(data)
    except ValueError:
        raise UsageError(f"the agent on {home} gave an unreadable answer") from None
    return answer if isinstance(answer, dict) else None


def notify_agent(home: Path) -> None:
    """Tell a running agent that this process wrote to the store, so it replicates now
    instead of at its next poll. Best effort: no agent, no harm."""
    with contextlib.suppress(UsageError, OSError):
        ask(home, {"op": "refresh"}, timeout=2.0)
