"""A webhook receiver on 127.0.0.1 over real HTTP, as N8N or a careful receiver would be:
it checks the signature when it knows the secret, and drops repeats by Idempotency-Key.

    with WebhookReceiver(secret="s3cret") as receiver:
        receiver.fail_next(2, status=503, retry_after="7")
        ... post to receiver.url ...
        assert len(receiver.unique) == 1

Every request is in `requests` with the status it was answered; an accepted POST (a
2xx: the signature checks out, no knob failed it) is in `received`, repeats included,
and the first of each key in `unique`. A repeat is answered 200 too (it was processed
already). Without a secret, signatures are not checked. Header names are lower-cased.

Knobs (each applies to the next requests, in this order): `hang_next` (wait S seconds
before answering, cut short when the receiver closes), `redirect_next` (a 3xx to a
Location), `fail_next` (a status, with Retry-After if given).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import threading
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any

MAX_BODY = 1 << 20


@dataclass
class Request:
    """One request as the receiver got it, and how it answered."""

    method: str
    path: str  # with the query
    headers: dict[str, str]  # names lower-cased
    body: bytes
    json: Any  # the parsed body, or None
    signature_ok: bool | None  # None: no secret to check against
    status: int = 0  # what it answered

    @property
    def key(self) -> str | None:
        return self.headers.get("idempotency-key")


@dataclass
class _Knob:
    count: int
    status: int
    retry_after: str | None = None
    location: str | None = None
    hang_s: float = 0.0
    body: bytes | None = None
    echo: bool = False


class WebhookReceiver:
    def __init__(self, secret: str | None = None, path: str = "/hook") -> None:
        self.secret = secret
        self.path = path
        self.requests: list[Request] = []
        self.received: list[Request] = []
        self.unique: dict[str, Request] = {}
        self._hangs: list[_Knob] = []
        self._redirects: list[_Knob] = []
        self._failures: list[_Knob] = []
        self._lock = threading.Lock()
        self._closing = threading.Event()
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # --- knobs ----------------------------------------------------------------------

    def fail_next(
        self,
        count: int = 1,
        status: int = 500,
        retry_after: str | None = None,
        body: bytes | None = None,
        echo: bool = False,
    ) -> None:
        """Answer the next `count` requests `status` (with `retry_after` as Retry-After),
        with `body`, or with the request's path and headers when `echo` (a careless
        receiver's error page)."""
        with self._lock:
            self._failures.append(
                _Knob(count, status, retry_after=retry_after, body=body, echo=echo)
            )

    def stop_failing(self) -> None:
        """Forget the failures still queued: answer 2xx from now on."""
        with self._lock:
            self._failures.clear()

    def hang_next(self, seconds: float, count: int = 1) -> None:
        with self._lock:
            self._hangs.append(_Knob(count, 0, hang_s=seconds))

    def redirect_next(
        self, location: str = "http://127.0.0.1:9/elsewhere", status: int = 302, count: int = 1
    ) -> None:
        with self._lock:
            self._redirects.append(_Knob(count, status, location=location))

    # --- where ----------------------------------------------------------------------

    @property
    def port(self) -> int:
        assert self._server is not None, "the receiver is not started"
        return int(self._server.server_address[1])

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def url(self) -> str:
        return self.base + self.path

    # --- life -----------------------------------------------------------------------

    def __enter__(self) -> WebhookReceiver:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: Any) -> None:
                pass

            def do_POST(self) -> None:
                receiver._handle(self)

            def do_GET(self) -> None:
                receiver._handle(self)

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True
        )
        self._thread.start()
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self._closing.set()  # wakes every hang
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
        if self._thread is not None:
            self._thread.join(5)

    # --- the handler ------------------------------------------------------------------

    @staticmethod
    def _take(knobs: list[_Knob]) -> _Knob | None:
        while knobs and knobs[0].count <= 0:
            knobs.pop(0)
        if not knobs:
            return None
        knobs[0].count -= 1
        return knobs[0]

    def _handle(self, handler: BaseHTTPRequestHandler) -> None:
        length = int(handler.headers.get("Content-Length") or 0)
        body = handler.rfile.read(min(length, MAX_BODY))
        headers = {name.lower(): value for name, value in handler.headers.items()}
        try:
            parsed = json.loads(body) if body else None
        except ValueError:
            parsed = None
        signature_ok: bool | None = None
        if self.secret is not None:
            want = "sha256=" + hmac.new(self.secret.encode(), body, hashlib.sha256).hexdigest()
            got = headers.get("x-bzzz-signature-256", "")
            signature_ok = hmac.compare_digest(want.encode(), got.encode())
        request = Request(handler.command, handler.path, headers, body, parsed, signature_ok)
        with self._lock:
            self.requests.append(request)
            hang = self._take(self._hangs)
            redirect = self._take(self._redirects)
            failure = None if redirect else self._take(self._failures)
        if hang is not None:
            self._closing.wait(hang.hang_s)
        extra: dict[str, str] = {}
        if redirect is not None:
            status, answer = redirect.status, b""
            extra["Location"] = redirect.location or "/"
        elif failure is not None:
            status, answer = failure.status, failure.body or b'{"error":"failing on purpose"}'
            if failure.echo:
                answer = json.dumps({"path": request.path, "headers": headers}).encode()
            if failure.retry_after is not None:
                extra["Retry-After"] = failure.retry_after
        elif handler.command != "POST":
            status, answer = 405, b'{"error":"POST only"}'
        elif signature_ok is False:
            status, answer = 401, b'{"error":"bad signature"}'
        else:
            status, answer = 200, b'{"ok":true}'
            with self._lock:
                self.received.append(request)
                if request.key is not None and request.key in self.unique:
                    answer = b'{"ok":true,"repeat":true}'
                elif request.key is not None:
                    self.unique[request.key] = request
        request.status = status
        try:
            handler.send_response(status)
            handler.send_header("Content-Type", "application/json")
            handler.send_header("Content-Length", str(len(answer)))
            handler.send_header("Connection", "close")
            for name, value in extra.items():
                handler.send_header(name, value)
            handler.end_headers()
            handler.wfile.write(answer)
        except OSError:
            pass  # the client gave up (a timeout)
        handler.close_connection = True
