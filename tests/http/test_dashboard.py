"""The dashboard's endpoints over real HTTP on 127.0.0.1 for nodes running the real
services on in-memory replicas: the token file, the token asked of the data (not of
health), the state as JSON, the server-sent events (a push when the state changes, a
keep-alive when it does not, the poller gone with the last stream), and /metrics behind
the token when `http.metrics_auth` asks for it."""

from __future__ import annotations

import asyncio
import json
import os
import stat
from collections.abc import AsyncIterator
from pathlib import Path
from types import SimpleNamespace

import pytest

from bzzz.errors import ConfigError
from bzzz.http.endpoints import http_step
from bzzz.http.token import load_or_create_token
from bzzz.tasks.local import write_task
from tests.http.cluster import Cluster
from tests.http.test_metrics import get


@pytest.fixture
async def cluster(tmp_path: Path) -> AsyncIterator[Cluster]:
    built = Cluster(tmp_path).build()
    try:
        yield built
    finally:
        await built.stop()


def test_the_token_file_is_made_private_once_and_checked(tmp_path: Path) -> None:
    path = tmp_path / "http.token"
    made = load_or_create_token(path)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert len(made.reveal()) >= 40 and made.reveal() not in repr(made)
    again = load_or_create_token(path)
    assert again.reveal() == made.reveal()  # kept across restarts
    assert again.matches(f"Bearer {made.reveal()}") and again.matches(f"bearer {made.reveal()}")
    for wrong in (None, "", made.reveal(), f"Basic {made.reveal()}", "Bearer x", "Bearer é"):
        assert not again.matches(wrong), wrong

    os.chmod(path, 0o640)
    with pytest.raises(ConfigError, match=r"^http\.token_file: .* may be read by others"):
        load_or_create_token(path)
    os.chmod(path, 0o600)
    path.write_text("short\n")
    with pytest.raises(ConfigError, match=r"^http\.token_file: .* 16 to 4096 printable"):
        load_or_create_token(path)
    with pytest.raises(ConfigError, match=r"^http\.token_file: cannot create"):
        load_or_create_token(tmp_path / "missing" / "http.token")


async def _open_events(url: str, token: str) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    host, port = url.removeprefix("http://").rsplit(":", 1)
    reader, writer = await asyncio.open_connection(host, int(port))
    request = f"GET /dashboard/events HTTP/1.1\r\nAuthorization: Bearer {token}\r\n\r\n"
    writer.write(request.encode())
    await writer.drain()
    head = await reader.readuntil(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200 OK\r\n"), head
    assert b"Content-Type: text/event-stream" in head and b"Content-Length" not in head
    assert b"Connection: close" in head
    return reader, writer


async def _next_event(reader: asyncio.StreamReader) -> tuple[str | None, bytes]:
    """The next block's event name (None for a comment-only block) and data."""
    async with asyncio.timeout(10):
        block = await reader.readuntil(b"\n\n")
    event, data = None, b""
    for line in block.splitlines():
        if line.startswith(b"event: "):
            event = line[7:].decode()
        elif line.startswith(b"data: "):
            data += line[6:]
    return event, data


async def test_the_state_and_its_events_need_the_token(cluster: Cluster) -> None:
    await cluster.serve()
    node = cluster.nodes[1]
    token = node.token

    status, headers, body = await get(node.url + "/api/v1/state")
    assert status == 401 and headers["WWW-Authenticate"] == 'Bearer realm="bzzz"'
    assert body.startswith(b"unauthorized: send `Authorization: Bearer TOKEN`")
    assert (await get(node.url + "/api/v1/state", Authorization="Bearer nope"))[0] == 401
    assert (await get(node.url + "/dashboard/events"))[0] == 401
    assert (await get(node.url + "/readyz"))[0] == 503  # open, and starting
    assert (await get(node.url + "/metrics"))[0] == 503  # open unless metrics_auth

    status, _, body = await get(node.url + "/api/v1/state", Authorization=f"Bearer {token}")
    assert status == 200 and json.loads(body)["phase"] == "starting"

    status, headers, body = await get(node.url + "/dashboard")
    assert status == 200 and headers["Content-Type"] == "text/html; charset=utf-8"
    assert "script-src 'self'" in headers["Content-Security-Policy"]
    assert headers["X-Frame-Options"] == "DENY" and b'src="/dashboard/dashboard.js"' in body
    status, headers, script = await get(node.url + "/dashboard/dashboard.js")
    assert status == 200 and headers["Content-Type"].startswith("text/javascript")
    assert b"innerHTML" not in script and b"textContent" in script  # data only as text
    assert (await get(node.url + "/dashboard/dashboard.css"))[0] == 200

    await cluster.start()
    await cluster.leader()
    status, _, body = await get(node.url + "/api/v1/state", Authorization=f"Bearer {token}")
    state = json.loads(body)
    assert state["phase"] == "running"
    assert [a["name"] for a in state["agents"]] == ["n0", "n1", "n2"]
    assert [a["me"] for a in state["agents"]] == [False, True, False]
    assert state["election"]["leader_proven"] is True
    assert {h["name"] for h in state["heads"]} == {"n0", "n1", "n2"}  # votes, at least
    assert state["counts"]["tasks"]["open"] == 0 and state["tasks"] == []


async def test_events_push_changes_keep_alive_and_end_with_the_client(cluster: Cluster) -> None:
    await cluster.serve()
    await cluster.start()
    await cluster.leader()
    node = cluster.nodes[2]
    pusher = node.http.endpoints.pusher
    pusher.keepalive_s = 0.5
    reader, writer = await _open_events(node.url, node.token)
    try:
        assert (await _next_event(reader))[0] is None  # `retry:` and a comment
        event, data = await _next_event(reader)
        assert event == "state" and json.loads(data)["node"]["name"] == "n2"

        _, spec = write_task(cluster.folder, "A <b>bold</b> task")
        while True:  # pushed when the board shows it (a keep-alive may come first)
            event, data = await _next_event(reader)
            if event == "state" and json.loads(data)["tasks"]:
                break
        task = json.loads(data)["tasks"][0]
        assert (task["id"], task["title"], task["state"]) == (spec.id, "A <b>bold</b> task", "open")

        while (await _next_event(reader))[0] is not None:  # settles, then keeps alive
            pass
        assert pusher.streams == 1
    finally:
        writer.close()
    async with asyncio.timeout(5):  # noticed at the next write: the poller stops
        while pusher.streams:
            await asyncio.sleep(0.05)
    assert pusher._poller is None


async def test_stop_ends_open_streams_and_too_many_are_refused(cluster: Cluster) -> None:
    await cluster.serve()
    await cluster.start()
    node = cluster.nodes[0]
    node.http.endpoints.pusher.max_streams = 1
    reader, writer = await _open_events(node.url, node.token)
    await _next_event(reader)
    status, _, body = await get(
        node.url + "/dashboard/events", Authorization=f"Bearer {node.token}"
    )
    assert status == 503 and b"too many open dashboards" in body
    async with asyncio.timeout(5):
        await node.http.stop()
        while await reader.read(1 << 16):  # the server ends the stream
            pass
    writer.close()


async def test_metrics_auth_asks_the_token_of_scrapers(tmp_path: Path) -> None:
    cluster = Cluster(tmp_path).build()
    try:
        first = cluster.nodes[0]
        config = SimpleNamespace(http=SimpleNamespace(metrics_auth=True, token_file="t"))
        parts = SimpleNamespace(
            node=SimpleNamespace(config=config, home=tmp_path),
            mesh=first.mesh,
            election=first.election,
            claims=first.claims,
            board=first.board,
            hmmm=first.hmmm,
        )
        step = http_step(parts, listen="127.0.0.1:0")
        assert step is not None
        await step.start()
        await step.running()
        try:
            url = "http://{}:{}".format(*step.server.bound)
            token = (tmp_path / "t").read_text().strip()
            assert (await get(url + "/metrics"))[0] == 401
            assert (await get(url + "/metrics", Authorization=f"Bearer {token}"))[0] == 200
            assert (await get(url + "/healthz"))[0] == 200  # health never asks
        finally:
            await step.stop()
    finally:
        await cluster.stop()
