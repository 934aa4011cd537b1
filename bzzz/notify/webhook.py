"""Webhooks (issue 19): one signed JSON POST per call, for N8N, Slack or any receiver.

The request `WebhookSender.deliver` makes::

    POST URL                                  (the URL's query is sent, never shown)
    Content-Type: application/json
    User-Agent: bzzz/VERSION
    Idempotency-Key: KEY                      (e.g. the escalation entry's hash, hex)
    X-Bzzz-Event: EVENT                       (e.g. hmmm.escalation)
    X-Bzzz-Delivery: KEY
    X-Bzzz-Signature-256: sha256=HEX          (only with a secret: HMAC-SHA256 of the body)
    Authorization: Basic ...                  (only when the URL has user:password@)

    {"key":"value",...}                       (the payload: UTF-8 JSON, sorted keys, compact)

The signature follows GitHub's webhooks, so a receiver checks it as it checks theirs.
The key is the same on every attempt, so a receiver drops repeats by it.

One call is one attempt and never raises for what the network or the receiver did: it
returns a `DeliveryResult`. Delivered means a 2xx (its body is not read). A redirect is
not followed (it could carry the signature elsewhere) and is a failure, as is any other
status, a timeout, a refused connection or a TLS error; ``error`` is one line naming the
URL without its user, password, query and fragment, and with the secret, the password
and the query's values cut out of whatever the receiver sent back. A 429 or 503 gives
``retry_after_s`` from its ``Retry-After`` (seconds or an HTTP date). The caller retries
with `next_attempt_s` until a 2xx and keeps the record of what was delivered.

Limits: ``timeout_s`` bounds the connect and every socket read, and the whole exchange
up to the status line is given that long (a receiver trickling header bytes can stretch
it: the standard library reads headers in one call); the body of a failure is read up to
``max_response_bytes`` within the same deadline, and only an excerpt is kept.

Not done: proxies (``HTTPS_PROXY`` is not read), client certificates, keeping a
connection open between deliveries. A Slack-style URL whose path is the credential is
shown with its path: configure such a receiver with a name of its own.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import http.client
import json
import math
import random
import re
import socket
import ssl
import time
import urllib.parse
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC
from email.utils import parsedate_to_datetime
from typing import Any

from bzzz import __version__
from bzzz.errors import UsageError

DEFAULT_TIMEOUT_S = 10.0
MAX_RESPONSE_BYTES = 64 * 1024  # of a failure's body; a 2xx's body is not read
MAX_EXCERPT = 160  # characters of a failure's body in the error line
MAX_ERROR = 400  # characters of an error line
MAX_URL = 2_000
BASE_BACKOFF_S = 2.0
MAX_BACKOFF_S = 900.0
MAX_RETRY_AFTER_S = 6 * 3600.0  # a receiver asking for longer is waited for this long
USER_AGENT = f"bzzz/{__version__}"
SIGNATURE_HEADER = "X-Bzzz-Signature-256"
SCHEMES = ("http", "https")

_KEY = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:-]{0,199}")
_EVENT = re.compile(r"[a-z0-9][a-z0-9._-]{0,63}")
_SPACE = re.compile(r"[\s\x00-\x1f\x7f]+")
_READ_CHUNK = 8192


def url_problem(url: object) -> str | None:
    """Why `url` cannot be a webhook's (None: it can). The answer never quotes it."""
    if not isinstance(url, str):
        return "the URL must be a string"
    if len(url) > MAX_URL:
        return f"the URL is longer than {MAX_URL} characters"
    if _SPACE.search(url):
        return "the URL has a space or a control character"
    try:
        parts = urllib.parse.urlsplit(url)
        parts.port  # noqa: B018 -- raises ValueError for a bad port
    except ValueError:
        return "the URL cannot be parsed"
    if parts.scheme.lower() not in SCHEMES:
        return "the URL must start with http:// or https://"
    if not parts.hostname:
        return "the URL has no host"
    return None


def redact_url(url: str) -> str:
    """`url` as an error may show it: scheme, host and port only. Not the path either:
    for Slack-style hooks (/services/TEAM/BOT/TOKEN) the path is the secret."""
    try:
        parts = urllib.parse.urlsplit(url)
        host = parts.hostname or ""
        port = parts.port
    except ValueError:
        return "<an unusable URL>"
    if ":" in host:
        host = f"[{host}]"
    netloc = host if port is None else f"{host}:{port}"
    return f"{parts.scheme.lower()}://{netloc}"


def signature_of(secret: str, body: bytes) -> str:
    """The ``X-Bzzz-Signature-256`` value of `body`: ``sha256=`` and the HMAC's hex."""
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def body_of(payload: Mapping[str, Any]) -> bytes:
    """The JSON a payload is sent as: UTF-8, sorted keys, compact; `UsageError` if it is
    not JSON (a NaN, a set, a lone surrogate...)."""
    try:
        text = json.dumps(
            payload, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False
        )
        return text.encode("utf-8")
    except (TypeError, ValueError, RecursionError) as error:
        raise UsageError(f"a webhook payload is not JSON: {_one_line(str(error), 120)}") from None


@dataclass(frozen=True, slots=True, repr=False)
class WebhookTarget:
    """Where escalations go, as configured: the URL and, when set, the secret the body
    is signed with. The secret is loaded by the caller and never shown."""

    url: str
    secret: str | None = None

    def __post_init__(self) -> None:
        problem = url_problem(self.url)
        if problem is not None:
            raise UsageError(f"webhook {_shown(self.url)}: {problem}")
        if self.secret is not None and (not isinstance(self.secret, str) or not self.secret):
            raise UsageError(f"webhook {redact_url(self.url)}: an empty secret")

    def __repr__(self) -> str:
        signed = "set" if self.secret else None
        return f"WebhookTarget(url={redact_url(self.url)!r}, secret={signed})"

    def sender(
        self,
        *,
        timeout_s: float = DEFAULT_TIMEOUT_S,
        max_response_bytes: int = MAX_RESPONSE_BYTES,
        ssl_context: ssl.SSLContext | None = None,
    ) -> WebhookSender:
        return WebhookSender(
            self.secret,
            timeout_s=timeout_s,
            max_response_bytes=max_response_bytes,
            ssl_context=ssl_context,
        )

    def delivery(self, key: str, event: str, payload: Mapping[str, Any]) -> Delivery:
        return Delivery(self.url, key, event, payload)


@dataclass(frozen=True, slots=True, repr=False)
class Delivery:
    """One notification to one URL. `key` is the idempotency key, the same on every
    attempt (e.g. the escalation entry's hash, hex); `event` names what happened
    (e.g. ``hmmm.escalation``); `payload` is JSON-able."""

    url: str
    key: str
    event: str
    payload: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        problem = url_problem(self.url)
        if problem is not None:
            raise UsageError(f"webhook {_shown(self.url)}: {problem}")
        if not isinstance(self.key, str) or not _KEY.fullmatch(self.key):
            raise UsageError("a delivery key is 1 to 200 letters, digits and . _ : - (not first)")
        if not isinstance(self.event, str) or not _EVENT.fullmatch(self.event):
            raise UsageError("an event is 1 to 64 of a-z, 0-9 and . _ - (not first)")
        if not isinstance(self.payload, Mapping):
            raise UsageError("a webhook payload is a mapping")

    def __repr__(self) -> str:
        return f"Delivery(url={redact_url(self.url)!r}, key={self.key!r}, event={self.event!r})"

    def body(self) -> bytes:
        return body_of(self.payload)


@dataclass(frozen=True, slots=True)
class DeliveryResult:
    """How one attempt went. `delivered`: the receiver answered 2xx. `status`: the
    HTTP status, None when there was no answer. `retry_after_s`: what a 429 or 503 asked
    for. `error`: one line, None when delivered."""

    delivered: bool
    status: int | None = None
    retry_after_s: float | None = None
    error: str | None = None


class WebhookSender:
    """Makes one attempt per `deliver`; see the module's docstring for the request."""

    def __init__(
        self,
        secret: str | None = None,
        *,
        timeout_s: float = DEFAULT_TIMEOUT_S,
        max_response_bytes: int = MAX_RESPONSE_BYTES,
        ssl_context: ssl.SSLContext | None = None,
    ) -> None:
        if secret is not None and (not isinstance(secret, str) or not secret):
            raise UsageError("a webhook secret must be a non-empty string")
        if not (isinstance(timeout_s, int | float) and math.isfinite(timeout_s) and timeout_s > 0):
            raise UsageError("a webhook timeout is a positive number of seconds")
        if max_response_bytes < 0:
            raise UsageError("max_response_bytes is not negative")
        self._secret = secret
        self.timeout_s = float(timeout_s)
        self.max_response_bytes = max_response_bytes
        self._ssl_context = ssl_context

    def __repr__(self) -> str:  # never the secret
        return f"WebhookSender(signed={self._secret is not None}, timeout_s={self.timeout_s})"

    @property
    def signed(self) -> bool:
        return self._secret is not None

    async def deliver(self, delivery: Delivery) -> DeliveryResult:
        """One attempt, in a worker thread. Raises only `UsageError`, for a payload
        that is not JSON."""
        body = delivery.body()  # a payload that is not JSON fails in the caller's task
        return await asyncio.to_thread(self._attempt, delivery, body)

    def deliver_now(self, delivery: Delivery) -> DeliveryResult:
        """`deliver`, blocking the calling thread."""
        return self._attempt(delivery, delivery.body())

    def _attempt(self, delivery: Delivery, body: bytes) -> DeliveryResult:
        parts = urllib.parse.urlsplit(delivery.url)
        where = f"POST {redact_url(delivery.url)}"
        hidden = _hidden(parts, self._secret)
        headers = self._headers(delivery, body, parts)
        target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        host = parts.hostname or ""
        deadline = time.monotonic() + self.timeout_s
        connection: http.client.HTTPConnection
        if parts.scheme.lower() == "https":
            context = self._ssl_context or ssl.create_default_context()
            connection = http.client.HTTPSConnection(
                host, parts.port, timeout=self.timeout_s, context=context
            )
        else:
            connection = http.client.HTTPConnection(host, parts.port, timeout=self.timeout_s)
        try:
            connection.request("POST", target, body=body, headers=headers)
            sock = connection.sock
            _until(sock, deadline)
            response = connection.getresponse()
            status = int(response.status)
            if 200 <= status < 300:
                return DeliveryResult(True, status)
            retry = None
            if status in (429, 503):
                retry = retry_after_of(response.getheader("Retry-After"), time.time())
            reason = _clean(response.reason or "", 60, hidden)
            excerpt = _clean(self._read(response, sock, deadline), MAX_EXCERPT, hidden)
        except TimeoutError:
            return self._failed(where, f"no answer within {self.timeout_s:g} s", hidden)
        except ConnectionRefusedError:
            return self._failed(where, "connection refused", hidden)
        except socket.gaierror:
            return self._failed(where, "the host name cannot be resolved", hidden)
        except ssl.SSLCertVerificationError as error:
            why = error.verify_message or "the certificate"
            return self._failed(where, f"TLS: {why}", hidden)
        except ssl.SSLError as error:
            return self._failed(where, f"TLS: {error.reason or type(error).__name__}", hidden)
        except http.client.HTTPException as error:
            return self._failed(where, f"a broken HTTP answer ({type(error).__name__})", hidden)
        except OSError as error:
            return self._failed(where, error.strerror or type(error).__name__, hidden)
        except ValueError:  # a host name IDNA cannot encode, a header http.client refuses
            return self._failed(where, "the URL cannot be used", hidden)
        finally:
            connection.close()
        head = f"HTTP {status}" + (f" {reason}" if reason else "")
        if 300 <= status < 400:
            why = f"{head}: redirects are not followed"
        else:
            why = head + (f": {excerpt}" if excerpt else "")
        return self._failed(where, why, hidden, status=status, retry_after_s=retry)

    def _headers(
        self, delivery: Delivery, body: bytes, parts: urllib.parse.SplitResult
    ) -> dict[str, str]:
        headers = {
            "Content-Type": "application/json",
            "User-Agent": USER_AGENT,
            "Idempotency-Key": delivery.key,
            "X-Bzzz-Event": delivery.event,
            "X-Bzzz-Delivery": delivery.key,
            "Connection": "close",
        }
        if self._secret is not None:
            headers[SIGNATURE_HEADER] = signature_of(self._secret, body)
        if parts.username is not None:
            user = urllib.parse.unquote(parts.username)
            password = urllib.parse.unquote(parts.password or "")
            token = base64.b64encode(f"{user}:{password}".encode()).decode("ascii")
            headers["Authorization"] = f"Basic {token}"
        return headers

    def _read(
        self, response: http.client.HTTPResponse, sock: socket.socket | None, deadline: float
    ) -> str:
        """A failure's body, up to the size cap, within the deadline ('' if unreadable)."""
        raw = b""
        try:
            while len(raw) < self.max_response_bytes:
                _until(sock, deadline)
                chunk = response.read(min(_READ_CHUNK, self.max_response_bytes - len(raw)))
                if not chunk:
                    break
                raw += chunk
        except (OSError, http.client.HTTPException):
            pass
        return raw.decode("utf-8", "replace")

    @staticmethod
    def _failed(
        where: str,
        why: str,
        hidden: Sequence[str],
        *,
        status: int | None = None,
        retry_after_s: float | None = None,
    ) -> DeliveryResult:
        return DeliveryResult(
            False, status, retry_after_s, _clean(f"{where}: {why}", MAX_ERROR, hidden)
        )


def retry_after_of(value: str | None, now: float) -> float | None:
    """Seconds a ``Retry-After`` value asks for (a number of seconds or an HTTP date,
    `now` the wall clock), within 0 and `MAX_RETRY_AFTER_S`; None if absent or unreadable."""
    if value is None:
        return None
    value = value.strip()
    if not value:
        return None
    seconds: float
    try:
        seconds = float(value)
    except ValueError:
        try:
            when = parsedate_to_datetime(value)
        except (TypeError, ValueError, IndexError):
            return None
        if when.tzinfo is None:
            when = when.replace(tzinfo=UTC)
        seconds = when.timestamp() - now
    if not math.isfinite(seconds):
        return None
    return min(max(seconds, 0.0), MAX_RETRY_AFTER_S)


def next_attempt_s(
    failures: int,
    retry_after: float | None,
    *,
    rng: random.Random,
    base_s: float = BASE_BACKOFF_S,
    cap_s: float = MAX_BACKOFF_S,
) -> float:
    """Seconds to wait before the next attempt after `failures` failed ones in a row:
    exponential backoff (`base_s`, doubling, at most `cap_s`) with jitter in its upper
    half, drawn from `rng`; never less than `retry_after` (what the receiver asked for,
    at most `MAX_RETRY_AFTER_S`). No failures and no `retry_after`: 0."""
    if base_s < 0 or cap_s < 0:
        raise UsageError("backoff times are not negative")
    delay = 0.0
    if failures > 0:
        ceiling = min(cap_s, base_s * 2.0 ** min(failures - 1, 64))
        delay = ceiling / 2 + rng.uniform(0.0, ceiling / 2)
    if retry_after is not None and math.isfinite(retry_after):
        delay = max(delay, min(max(retry_after, 0.0), MAX_RETRY_AFTER_S))
    return delay


def _until(sock: socket.socket | None, deadline: float) -> None:
    """Give the next socket read what is left of the deadline; `TimeoutError` if none."""
    left = deadline - time.monotonic()
    if left <= 0:
        raise TimeoutError
    if sock is not None:
        sock.settimeout(left)


def _hidden(parts: urllib.parse.SplitResult, secret: str | None) -> list[str]:
    """What an error line must not hold: the secret, the URL's password, its query and
    fragment and the query's values of 4 characters or more (as sent and decoded),
    longest first."""
    found = {secret or "", parts.query, parts.fragment}
    if parts.password:
        found.update((parts.password, urllib.parse.unquote(parts.password)))
    for pair in re.split(r"[&;]", parts.query):
        value = pair.partition("=")[2] if "=" in pair else pair
        if len(value) >= 4:
            found.update((value, urllib.parse.unquote_plus(value)))
    return sorted((s for s in found if s), key=len, reverse=True)


def _clean(text: str, limit: int, hidden: Sequence[str]) -> str:
    """`text` as one line of at most `limit` characters, with every hidden string cut
    out before it is shortened (so no prefix of one is left)."""
    for _ in range(2):  # before and after the spaces are collapsed
        for secret in hidden:
            text = text.replace(secret, "***")
        text = _SPACE.sub(" ", text)
    return _one_line(text, limit)


def _shown(url: object) -> str:
    return redact_url(url) if isinstance(url, str) and len(url) <= MAX_URL else "<a URL>"


def _one_line(text: str, limit: int) -> str:
    text = _SPACE.sub(" ", text).strip()
    return text if len(text) <= limit else text[: limit - 1] + "…"


class WebhookNotifier:
    """One webhook target as the services' `Notifier` port: `name` says where it posts
    without its secrets; `post` makes one attempt."""

    def __init__(self, target: WebhookTarget, *, timeout_s: float = 10.0) -> None:
        self._target = target
        self._sender = target.sender(timeout_s=timeout_s)
        self.name = redact_url(target.url)

    def __repr__(self) -> str:
        return f"WebhookNotifier({self.name!r})"

    async def post(self, key: str, event: str, payload: Mapping[str, Any]) -> DeliveryResult:
        return await self._sender.deliver(self._target.delivery(key, event, payload))
