"""Webhooks (issue 19) over real HTTP on 127.0.0.1, against a receiver stand-in."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import itertools
import json
import random
import socket
import threading
import time
from collections.abc import Iterator
from email.utils import formatdate

import pytest

from bzzz import __version__
from bzzz.errors import UsageError
from bzzz.notify.webhook import (
    MAX_BACKOFF_S,
    MAX_ERROR,
    MAX_RETRY_AFTER_S,
    Delivery,
    DeliveryResult,
    WebhookSender,
    WebhookTarget,
    next_attempt_s,
    redact_url,
    retry_after_of,
)
from tests.support.webhook_receiver import WebhookReceiver

SECRET = "whsec-0123456789abcdef"
KEY = "ab" * 32
EVENT = "hmmm.escalation"
PAYLOAD = {
    "task": "github:acme/app#15",
    "thread": "github:acme/app#15",
    "reason": "two objections: the schema change breaks the mobile client",
    "transcript": [
        {"author": "cd" * 32, "kind": "hmmm.plan", "text": "Migrate the schema — café ☕"},
        {"author": "ef" * 32, "kind": "hmmm.objection", "text": "Breaks v2 clients"},
    ],
    "link": "https://bzzz.example/threads/15",
}


@pytest.fixture
def receiver() -> Iterator[WebhookReceiver]:
    with WebhookReceiver(secret=SECRET) as standin:
        yield standin


def sender(timeout_s: float = 5.0) -> WebhookSender:
    return WebhookSender(SECRET, timeout_s=timeout_s)


def delivery_to(url: str, key: str = KEY) -> Delivery:
    return Delivery(url, key, EVENT, PAYLOAD)


def one_line(result: DeliveryResult) -> str:
    assert result.error is not None
    assert "\n" not in result.error and "\r" not in result.error
    assert len(result.error) <= MAX_ERROR
    return result.error


async def test_a_2xx_is_delivered_with_every_header_and_a_signature(
    receiver: WebhookReceiver,
) -> None:
    result = await sender().deliver(delivery_to(receiver.url))
    assert result == DeliveryResult(delivered=True, status=200)
    [seen] = receiver.requests
    assert seen.method == "POST" and seen.path == "/hook"
    expected = json.dumps(
        PAYLOAD, sort_keys=True, separators=(",", ":"), ensure_ascii=False
    ).encode("utf-8")
    assert seen.body == expected
    assert seen.json == PAYLOAD
    assert seen.headers["content-type"] == "application/json"
    assert seen.headers["user-agent"] == f"bzzz/{__version__}"
    assert seen.headers["idempotency-key"] == KEY
    assert seen.headers["x-bzzz-delivery"] == KEY
    assert seen.headers["x-bzzz-event"] == EVENT
    mac = hmac.new(SECRET.encode(), seen.body, hashlib.sha256).hexdigest()
    assert seen.headers["x-bzzz-signature-256"] == f"sha256={mac}"
    assert seen.signature_ok is True
    assert "authorization" not in seen.headers
    assert list(receiver.unique) == [KEY]


async def test_without_a_secret_nothing_is_signed() -> None:
    with WebhookReceiver() as receiver:
        result = await WebhookSender(timeout_s=5).deliver(delivery_to(receiver.url))
    assert result.delivered
    [seen] = receiver.requests
    assert "x-bzzz-signature-256" not in seen.headers


async def test_a_wrong_secret_is_refused_by_the_receiver(receiver: WebhookReceiver) -> None:
    result = await WebhookSender("not-the-secret", timeout_s=5).deliver(delivery_to(receiver.url))
    assert not result.delivered and result.status == 401
    assert "HTTP 401" in one_line(result)
    assert receiver.requests[0].signature_ok is False and not receiver.received


async def test_a_500_is_not_delivered_and_says_so_in_one_line(
    receiver: WebhookReceiver,
) -> None:
    receiver.fail_next(
        1, 500, body=b"boom\r\nTraceback (most recent call last):\n" + b"x" * 100_000
    )
    result = await sender().deliver(delivery_to(receiver.url))
    assert not result.delivered and result.status == 500 and result.retry_after_s is None
    line = one_line(result)
    assert line.startswith(f"POST http://127.0.0.1:{receiver.port}: HTTP 500")  # no path
    assert "boom Traceback" in line
    assert not receiver.received


@pytest.mark.parametrize("status", [503, 429])
async def test_503_and_429_carry_retry_after(receiver: WebhookReceiver, status: int) -> None:
    receiver.fail_next(1, status, retry_after="7")
    result = await sender().deliver(delivery_to(receiver.url))
    assert not result.delivered and result.status == status
    assert result.retry_after_s == 7.0
    assert f"HTTP {status}" in one_line(result)


async def test_retry_after_as_a_date(receiver: WebhookReceiver) -> None:
    receiver.fail_next(1, 503, retry_after=formatdate(time.time() + 120, usegmt=True))
    result = await sender().deliver(delivery_to(receiver.url))
    assert result.retry_after_s is not None and 115 <= result.retry_after_s <= 121


def test_retry_after_of() -> None:
    now = 1_700_000_000.0
    assert retry_after_of(None, now) is None
    assert retry_after_of("", now) is None
    assert retry_after_of("soon", now) is None
    assert retry_after_of("nan", now) is None
    assert retry_after_of("30", now) == 30.0
    assert retry_after_of("-5", now) == 0.0
    assert retry_after_of("99999999", now) == MAX_RETRY_AFTER_S
    assert retry_after_of(formatdate(now + 60, usegmt=True), now) == 60.0
    assert retry_after_of(formatdate(now - 60, usegmt=True), now) == 0.0


async def test_a_hang_is_a_timeout_not_an_exception(receiver: WebhookReceiver) -> None:
    receiver.hang_next(30)
    started = time.monotonic()
    result = await sender(timeout_s=0.3).deliver(delivery_to(receiver.url))
    assert time.monotonic() - started < 2
    assert not result.delivered and result.status is None
    assert "no answer within 0.3 s" in one_line(result)


async def test_nothing_listening_is_a_refused_connection() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    result = await sender().deliver(delivery_to(f"http://127.0.0.1:{port}/hook"))
    assert not result.delivered and result.status is None
    assert one_line(result) == f"POST http://127.0.0.1:{port}: connection refused"


async def test_a_redirect_is_not_followed(receiver: WebhookReceiver) -> None:
    receiver.redirect_next(location=receiver.base + "/elsewhere", status=302)
    result = await sender().deliver(delivery_to(receiver.url))
    assert not result.delivered and result.status == 302
    assert "redirects are not followed" in one_line(result)
    assert [r.path for r in receiver.requests] == ["/hook"]
    assert not receiver.received


async def test_a_broken_answer_is_an_error_line() -> None:
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen()
        port = server.getsockname()[1]

        def answer() -> None:
            conn, _ = server.accept()
            with conn:
                conn.recv(65536)
                conn.sendall(b"garbage\r\n\r\n")

        thread = threading.Thread(target=answer, daemon=True)
        thread.start()
        result = await sender().deliver(delivery_to(f"http://127.0.0.1:{port}/"))
        thread.join(5)
    assert not result.delivered and result.status is None
    assert "a broken HTTP answer" in one_line(result)


async def test_secrets_and_url_credentials_are_never_shown(receiver: WebhookReceiver) -> None:
    password, token = "p4ssw0rd-xyz", "t0ps3cret-query-token"
    url = f"http://hook-user:{password}@127.0.0.1:{receiver.port}/hook?token={token}&x=1#frag"
    target = WebhookTarget(url, SECRET)
    # a careless receiver echoes what it got, another the secret itself, cut by the cap
    receiver.fail_next(1, 400, echo=True)
    receiver.fail_next(1, 500, body=("x" * 150 + SECRET + " " + token).encode())
    results = [
        await target.sender(timeout_s=5).deliver(target.delivery(KEY, EVENT, PAYLOAD))
        for _ in range(2)
    ]
    # the query and the password were sent
    assert receiver.requests[0].path == f"/hook?token={token}&x=1"
    assert receiver.requests[0].headers["authorization"].startswith("Basic ")
    assert receiver.requests[0].signature_ok is True
    shown = [one_line(r) for r in results]
    shown += [repr(target), str(target), repr(target.sender()), repr(results[0])]
    shown += [repr(target.delivery(KEY, EVENT, PAYLOAD)), str(target.delivery(KEY, EVENT, {}))]
    for text in shown:
        for hidden in (SECRET, SECRET[:8], password, token, token[:8], "token=", "frag"):
            assert hidden not in text, (hidden, text)
    assert shown[0].startswith(f"POST http://127.0.0.1:{receiver.port}: HTTP 400")
    assert "***" in shown[0] and "***" in shown[1]
    assert redact_url(url) == f"http://127.0.0.1:{receiver.port}"  # the path may be a secret


def test_unusable_targets_and_deliveries_are_refused() -> None:
    for url in ("ftp://example.com/x", "http:///nohost", "http://a b/", "http://h:99999/", 7):
        with pytest.raises(UsageError):
            WebhookTarget(url)  # type: ignore[arg-type]
    with pytest.raises(UsageError) as caught:
        WebhookTarget("gopher://user:hunter22@example.com/?k=v3ry-s3cret")
    assert "hunter22" not in str(caught.value) and "v3ry" not in str(caught.value)
    with pytest.raises(UsageError):
        WebhookTarget("https://example.com/hook", "")
    with pytest.raises(UsageError):
        Delivery("https://example.com/hook", "key\r\nX-Evil: 1", EVENT, {})
    with pytest.raises(UsageError):
        Delivery("https://example.com/hook", KEY, "Bad Event", {})
    with pytest.raises(UsageError):
        WebhookSender(SECRET, timeout_s=0)


async def test_a_payload_that_is_not_json_is_a_usage_error(receiver: WebhookReceiver) -> None:
    for payload in ({"x": float("nan")}, {"x": {1, 2}}, {"x": "\ud800"}):
        with pytest.raises(UsageError):
            await sender().deliver(Delivery(receiver.url, KEY, EVENT, payload))
    assert not receiver.requests


def test_next_attempt_grows_is_capped_and_honours_retry_after() -> None:
    rng = random.Random(1)
    assert next_attempt_s(0, None, rng=rng) == 0.0
    for failures in range(1, 30):
        ceiling = min(MAX_BACKOFF_S, 2.0 * 2 ** (failures - 1))
        delay = next_attempt_s(failures, None, rng=rng)
        assert ceiling / 2 <= delay <= ceiling
    assert next_attempt_s(10**6, None, rng=rng) <= MAX_BACKOFF_S
    # grows: the average over many draws doubles until the cap
    means = [
        sum(next_attempt_s(n, None, rng=rng, base_s=1.0) for _ in range(200)) / 200
        for n in range(1, 8)
    ]
    assert all(b > 1.5 * a for a, b in itertools.pairwise(means))
    # the receiver's Retry-After is a floor, clamped
    assert next_attempt_s(1, 120.0, rng=rng) == 120.0
    assert next_attempt_s(0, 5.0, rng=rng) == 5.0
    assert 128 <= next_attempt_s(8, 1.0, rng=rng) <= 256  # backoff beats a short ask
    assert next_attempt_s(1, 10**9, rng=rng) == MAX_RETRY_AFTER_S
    assert next_attempt_s(1, -3.0, rng=rng, base_s=0.0) == 0.0
    # deterministic with a seeded rng
    first = [next_attempt_s(n, None, rng=random.Random(42)) for n in range(1, 10)]
    again = [next_attempt_s(n, None, rng=random.Random(42)) for n in range(1, 10)]
    assert first == again


async def test_a_retry_loop_delivers_once_by_key(receiver: WebhookReceiver) -> None:
    receiver.fail_next(1, 500)
    receiver.fail_next(1, 503, retry_after="0")
    receiver.fail_next(1, 429)
    webhook = sender()
    rng = random.Random(7)
    delivery = delivery_to(receiver.url)
    attempts, failures = 0, 0
    while True:
        attempts += 1
        result = await webhook.deliver(delivery)
        if result.delivered:
            break
        failures += 1
        await asyncio.sleep(next_attempt_s(failures, result.retry_after_s, rng=rng, base_s=0.01))
    assert attempts == 4
    # a repeat after success (a restart before the delivery was recorded) is dropped
    assert (await webhook.deliver(delivery)).delivered
    assert [r.status for r in receiver.requests] == [500, 503, 429, 200, 200]
    assert {r.key for r in receiver.requests} == {KEY}
    assert len(receiver.received) == 2 and list(receiver.unique) == [KEY]
