"""Serving UCXI (`ucxi.py`) with uvicorn on the node's own event loop, over HTTP or
HTTPS (mutual TLS when `ucxi.tls_client_ca` is set), as a step of the runtime.

uvicorn's `serve()` would install its own SIGINT/SIGTERM handlers over the daemon's; the
step binds the socket itself (so a taken port is a one-line error naming `ucxi.listen`)
and runs uvicorn's `_serve`, which is `serve` without the signal handlers. Limits: at most 64
connections at once (uvicorn answers 503 past them), idle keep-alive connections closed
after 30 s, a request body of at most `MAX_BODY` bytes (413 past it)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import ssl
from collections.abc import Awaitable, Callable, MutableMapping
from pathlib import Path
from typing import Any, NamedTuple

import uvicorn

from bzzz.errors import ConfigError, UsageError
from bzzz.http.server import bind_error, is_loopback, listen_address
from bzzz.http.token import BearerToken, load_or_create_token, token_path
from bzzz.http.ucxi import UcxiBackend, ucxi_app

log = logging.getLogger("bzzz.http")

LISTEN_KEY = "ucxi.listen"
# Above any request the document allows: 60,000 characters of text, each up to 12 bytes
# of JSON (an astral character as two \u escapes, as json.dumps writes it), and a 4,096
# character address.
MAX_BODY = 1024 * 1024
MAX_CONNECTIONS = 64
KEEP_ALIVE_S = 30

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
Asgi = Callable[[Scope, Receive, Send], Awaitable[None]]


class UcxiSettings(NamedTuple):
    listen: str | None
    token_file: str
    tls_cert: str | None
    tls_key: str | None
    tls_client_ca: str | None


def ucxi_settings(config: object) -> UcxiSettings:
    """The `ucxi` section of a node's config (its defaults where there is none)."""
    section = getattr(config, "ucxi", None)

    def text(name: str) -> str | None:
        value = getattr(section, name, None)
        return value if isinstance(value, str) and value else None

    return UcxiSettings(
        text("listen"),
        text("token_file") or "ucxi.token",
        text("tls_cert"),
        text("tls_key"),
        text("tls_client_ca"),
    )


def limit_body(app: Asgi, max_bytes: int = MAX_BODY) -> Asgi:
    """`app`, answering 413 to a request whose body is (or grows) larger than
    `max_bytes`, before the application reads it into memory."""

    async def limited(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await app(scope, receive, send)
            return
        declared = dict(scope.get("headers") or []).get(b"content-length")
        if declared is not None and (not declared.isdigit() or int(declared) > max_bytes):
            await _too_large(send, max_bytes)
            return
        seen = 0

        async def counted() -> Message:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > max_bytes:
                    raise _TooLarge
            return message

        try:
            await app(scope, counted, send)
        except _TooLarge:
            await _too_large(send, max_bytes)

    return limited


class _TooLarge(Exception):
    pass


async def _too_large(send: Send, max_bytes: int) -> None:
    body = b'{"error": "the request body is over %d bytes"}' % max_bytes
    headers = [(b"content-type", b"application/json"), (b"content-length", b"%d" % len(body))]
    await send({"type": "http.response.start", "status": 413, "headers": headers})
    await send({"type": "http.response.body", "body": body})


def _readable(home: Path, value: str, key: str) -> str:
    path = home / Path(value).expanduser()
    if not path.is_file():
        raise ConfigError(f"{key}: {path} is not a file")
    return str(path)


class UcxiServer:
    """UCXI on `settings.listen`; `start` and `stop` are the runtime's step."""

    def __init__(self, home: Path, settings: UcxiSettings, backend: UcxiBackend) -> None:
        if settings.listen is None:
            raise UsageError(f"{LISTEN_KEY} is not set")
        self.listen = settings.listen
        self.host, self.port = listen_address(settings.listen, LISTEN_KEY)
        self.mutual_tls = settings.tls_client_ca is not None
        self.tls = settings.tls_cert is not None
        self.token: BearerToken | None = None
        if not self.mutual_tls:
            path = token_path(home, settings.token_file)
            self.token = load_or_create_token(path, "ucxi.token_file")
        self.app = ucxi_app(backend, self.token)
        config = uvicorn.Config(
            limit_body(self.app),
            lifespan="off",
            log_config=None,
            access_log=False,
            server_header=False,
            limit_concurrency=MAX_CONNECTIONS,
            timeout_keep_alive=KEEP_ALIVE_S,
            timeout_graceful_shutdown=5,
            ssl_certfile=(
                _readable(home, settings.tls_cert, "ucxi.tls_cert") if settings.tls_cert else None
            ),
            ssl_keyfile=(
                _readable(home, settings.tls_key, "ucxi.tls_key") if settings.tls_key else None
            ),
            ssl_ca_certs=(
                _readable(home, settings.tls_client_ca, "ucxi.tls_client_ca")
                if settings.tls_client_ca
                else None
            ),
            ssl_cert_reqs=ssl.CERT_REQUIRED if self.mutual_tls else ssl.CERT_NONE,
        )
        try:
            config.load()
        except (ssl.SSLError, OSError) as error:
            raise ConfigError(f"ucxi.tls_cert/tls_key: cannot load them: {error}") from None
        self._server = uvicorn.Server(config)
        self._socket: socket.socket | None = None
        self._loop: asyncio.Task[None] | None = None

    @property
    def started(self) -> bool:
        return self._socket is not None and self._server.started

    @property
    def bound(self) -> tuple[str, int]:
        if self._socket is None:
            raise RuntimeError("UCXI is not started")
        name = self._socket.getsockname()
        return name[0], name[1]

    @property
    def url(self) -> str:
        host, port = self.bound
        shown = f"[{host}]" if ":" in host else host
        return f"{'https' if self.tls else 'http'}://{shown}:{port}"

    async def start(self) -> None:
        try:
            family = socket.AF_INET6 if ":" in self.host else socket.AF_INET
            sock = socket.create_server((self.host, self.port), family=family)
        except OSError as error:
            raise UsageError(bind_error(error, LISTEN_KEY, self.listen)) from None
        sock.setblocking(False)
        self._socket = sock
        # `_serve` is `serve` without its signal handlers (see the module's docstring).
        self._loop = asyncio.create_task(self._server._serve([sock]), name="ucxi")
        while not self._server.started:
            if self._loop.done():
                await self._loop  # its error, if it failed
                raise UsageError(f"{LISTEN_KEY}: UCXI did not start")
            await asyncio.sleep(0.005)
        log.info("serving UCXI on %s/ucxi/v1", self.url)
        if not is_loopback(self.host) and not self.tls:
            log.warning(
                "%s %s is reachable from other machines over plain HTTP: the token crosses "
                "the network in the clear (set ucxi.tls_cert and ucxi.tls_key)",
                LISTEN_KEY,
                self.listen,
            )

    async def stop(self) -> None:
        self._server.should_exit = True
        if self._loop is not None:
            with contextlib.suppress(asyncio.CancelledError):
                await self._loop
            self._loop = None
        if self._socket is not None:
            self._socket.close()
            self._socket = None


def ucxi_server(home: Path, config: object, backend: UcxiBackend) -> UcxiServer | None:
    """The UCXI server a node's config asks for, or None when `ucxi.listen` is unset.
    Build it before the node starts: it reads (or makes) the token file now."""
    settings = ucxi_settings(config)
    return UcxiServer(home, settings, backend) if settings.listen is not None else None
