"""A small HTTP/1.1 server on the daemon's own event loop: GET and HEAD on a few fixed
paths, answers of known length with keep-alive, or a stream (server-sent events) that
ends the connection; no request bodies.

*Why not a framework*: three read-only endpoints on a loopback port do not need FastAPI,
uvicorn and their five dependencies, nor aiohttp's seven; `asyncio.start_server` runs on
the loop the node already runs (uvloop), and what a scraper sends is one line and a few
headers. The limits below keep a misbehaving client from holding the node's memory or
its connections: a request head of at most 16 KiB, read within 10 s, at most 64
connections, idle ones closed after 30 s, a write that a client does not take within
10 s ends its connection (a stream's too)."""

from __future__ import annotations

import asyncio
import contextlib
import errno
import ipaddress
import logging
from collections.abc import AsyncGenerator, Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from http import HTTPStatus
from urllib.parse import urlsplit

from bzzz.domain.addresses import parse_address
from bzzz.errors import UsageError

log = logging.getLogger("bzzz.http")

LISTEN_KEY = "http.listen"
DEFAULT_HOST = "127.0.0.1"
MAX_HEAD = 16 * 1024
HEAD_TIMEOUT_S = 10.0
IDLE_TIMEOUT_S = 30.0
WRITE_TIMEOUT_S = 10.0
MAX_CONNECTIONS = 64
TEXT = "text/plain; charset=utf-8"


@dataclass(frozen=True, slots=True)
class Request:
    method: str
    path: str
    query: str
    headers: Mapping[str, str]  # names in lower case


@dataclass(frozen=True, slots=True)
class Response:
    status: int
    body: bytes
    content_type: str = TEXT
    headers: tuple[tuple[str, str], ...] = field(default=())
    # A body of unknown length: its chunks are written as they come, after `body`, and
    # the connection ends with it.
    stream: Callable[[], AsyncGenerator[bytes, None]] | None = None


Handler = Callable[[Request], Awaitable[Response]]


def text(status: int, body: str) -> Response:
    return Response(status, body.encode() + b"\n")


def listen_address(text: str, key: str = LISTEN_KEY) -> tuple[str, int]:
    """HOST:PORT, or a port alone (``9464`` or ``:9464``) on 127.0.0.1."""
    value = text.strip()
    if value.startswith(":"):
        value = value[1:]
    if value.isdigit():
        value = f"{DEFAULT_HOST}:{value}"
    try:
        return parse_address(value)
    except ValueError as error:
        raise UsageError(f"{key}: {error}") from None


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.split("%", 1)[0]).is_loopback
    except ValueError:
        return False


def bind_error(error: OSError, key: str, listen: str) -> str:
    """Why listening on `listen` failed, and what to do, in one line."""
    why = error.strerror or str(error)
    if error.errno == errno.EADDRINUSE:
        why += ": another process listens on that port; choose another or stop it"
    elif error.errno == errno.EADDRNOTAVAIL:
        why += ": that address is not one of this machine's"
    elif error.errno == errno.EACCES:
        why += ": a port below 1024 needs privileges; choose a higher one"
    return f"{key}: cannot listen on {listen}: {why}"


class _BadRequest(Exception):
    def __init__(self, status: HTTPStatus, why: str) -> None:
        super().__init__(why)
        self.status = status


def parse_head(head: bytes) -> tuple[Request, bool]:
    """The request in a head (up to and including the blank line), and whether the
    connection stays open after the answer."""
    try:
        lines = head.decode("latin-1").split("\r\n")
        method, target, version = lines[0].split(" ")
    except ValueError:
        raise _BadRequest(HTTPStatus.BAD_REQUEST, "malformed request line") from None
    if version not in ("HTTP/1.0", "HTTP/1.1"):
        raise _BadRequest(HTTPStatus.HTTP_VERSION_NOT_SUPPORTED, f"{version} is not HTTP/1.x")
    headers: dict[str, str] = {}
    for line in lines[1:]:
        if not line:
            continue
        name, sep, value = line.partition(":")
        if not sep or not name or name != name.strip():
            raise _BadRequest(HTTPStatus.BAD_REQUEST, "malformed header line")
        headers[name.lower()] = value.strip()
    if "transfer-encoding" in headers or headers.get("content-length", "0") != "0":
        raise _BadRequest(HTTPStatus.REQUEST_ENTITY_TOO_LARGE, "no request takes a body")
    parts = urlsplit(target)
    connection = headers.get("connection", "").lower()
    keep = "close" not in connection if version == "HTTP/1.1" else "keep-alive" in connection
    return Request(method, parts.path or "/", parts.query, headers), keep


def encode_response(response: Response, *, head_only: bool, keep: bool) -> bytes:
    try:
        reason = HTTPStatus(response.status).phrase
    except ValueError:
        reason = ""
    streamed = response.stream is not None and not head_only
    keep = keep and not streamed
    lines = [
        f"HTTP/1.1 {response.status} {reason}",
        f"Content-Type: {response.content_type}",
        *([] if streamed else [f"Content-Length: {len(response.body)}"]),
        "Cache-Control: no-store",
        "X-Content-Type-Options: nosniff",
        f"Connection: {'keep-alive' if keep else 'close'}",
        *(f"{name}: {value}" for name, value in response.headers),
    ]
    head = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")
    return head if head_only else head + response.body


async def read_head(reader: asyncio.StreamReader) -> bytes:
    """The next request's head: its lines up to the empty one. Waits up to the idle
    timeout for the first byte, then up to the head timeout for the rest; raises
    `LimitOverrunError` past `MAX_HEAD` bytes, `IncompleteReadError` when the client
    closes, `TimeoutError`."""
    async with asyncio.timeout(IDLE_TIMEOUT_S):
        first = await reader.readuntil(b"\r\n")
        while first == b"\r\n":  # empty lines before a request are allowed (RFC 9112 2.2)
            first = await reader.readuntil(b"\r\n")
    lines = [first]
    size = len(first)
    async with asyncio.timeout(HEAD_TIMEOUT_S):
        while lines[-1] != b"\r\n":
            line = await reader.readuntil(b"\r\n")
            size += len(line)
            if size > MAX_HEAD:
                raise asyncio.LimitOverrunError("request head too large", size)
            lines.append(line)
    return b"".join(lines)


class HttpServer:
    """Serves `routes` (path -> handler, GET and HEAD) on `listen` until stopped."""

    def __init__(self, listen: str, routes: Mapping[str, Handler], key: str = LISTEN_KEY):
        self.listen = listen
        self.key = key
        self.host, self.port = listen_address(listen, key)
        self.routes = dict(routes)
        self._server: asyncio.Server | None = None
        self._connections: set[asyncio.Task[None]] = set()
        self._stopping = False

    @property
    def bound(self) -> tuple[str, int]:
        """Where it listens (the port the system chose, for port 0)."""
        if self._server is None or not self._server.sockets:
            raise RuntimeError("the HTTP server is not started")
        sockname = self._server.sockets[0].getsockname()
        return sockname[0], sockname[1]

    async def start(self) -> None:
        self._stopping = False
        try:
            self._server = await asyncio.start_server(
                self._connection, self.host, self.port, limit=MAX_HEAD
            )
        except OSError as error:
            raise UsageError(bind_error(error, self.key, self.listen)) from None
        host, port = self.bound
        log.info("serving %s on http://%s:%d", ", ".join(sorted(self.routes)), host, port)
        if not is_loopback(self.host):
            log.warning(
                "%s %s is reachable from other machines, and so is what it serves "
                "without a token (127.0.0.1 keeps it on this machine)",
                self.key,
                self.listen,
            )

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
        self._stopping = True
        open_ones = list(self._connections)
        for task in open_ones:
            task.cancel()
        await asyncio.gather(*open_ones, return_exceptions=True)
        if self._server is not None:
            with contextlib.suppress(Exception):
                await self._server.wait_closed()
            self._server = None

    async def _connection(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        try:
            if task is None or len(self._connections) >= MAX_CONNECTIONS:
                busy = text(HTTPStatus.SERVICE_UNAVAILABLE, "too many connections")
                writer.write(encode_response(busy, head_only=False, keep=False))
                return
            self._connections.add(task)
            await self._serve(reader, writer)
        except (ConnectionError, TimeoutError, asyncio.IncompleteReadError):
            pass
        except asyncio.CancelledError:
            # Ended by `stop`: end as if the client left (asyncio's stream server logs a
            # connection task that ends cancelled as an error).
            if not self._stopping:
                raise
        finally:
            if task is not None:
                self._connections.discard(task)
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while True:
            try:
                head = await read_head(reader)
            except asyncio.LimitOverrunError:
                large = text(HTTPStatus.REQUEST_HEADER_FIELDS_TOO_LARGE, "request head too large")
                writer.write(encode_response(large, head_only=False, keep=False))
                return
            head_only, keep = False, False
            try:
                request, keep = parse_head(head)
                head_only = request.method == "HEAD"
                response = await self._answer(request)
            except _BadRequest as bad:
                response, keep = text(bad.status, str(bad)), False
            async with asyncio.timeout(WRITE_TIMEOUT_S):
                writer.write(encode_response(response, head_only=head_only, keep=keep))
                await writer.drain()
            if response.stream is not None and not head_only:
                await _write_stream(writer, response.stream)
                return
            if not keep:
                return

    async def _answer(self, request: Request) -> Response:
        """The handler's answer (a handler's bug is a 500, logged)."""
        handler = self.routes.get(request.path)
        if handler is None:
            return text(HTTPStatus.NOT_FOUND, f"not found; try {', '.join(sorted(self.routes))}")
        if request.method not in ("GET", "HEAD"):
            method_not_allowed = text(HTTPStatus.METHOD_NOT_ALLOWED, "only GET and HEAD")
            return Response(
                method_not_allowed.status,
                method_not_allowed.body,
                headers=(("Allow", "GET, HEAD"),),
            )
        try:
            return await handler(request)
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("http: %s %s failed", request.method, request.path)
            return text(HTTPStatus.INTERNAL_SERVER_ERROR, "internal error; the node's log says")


async def _write_stream(
    writer: asyncio.StreamWriter, stream: Callable[[], AsyncGenerator[bytes, None]]
) -> None:
    """Write a stream's chunks until it ends, the client leaves (the write fails) or the
    server stops (cancelled); the generator is closed in every case."""
    async with contextlib.aclosing(stream()) as chunks:
        async for chunk in chunks:
            async with asyncio.timeout(WRITE_TIMEOUT_S):
                writer.write(chunk)
                await writer.drain()
