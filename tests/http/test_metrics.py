"""The health and metrics endpoints over real HTTP on 127.0.0.1, served by the runtime's
step for nodes running the real services on in-memory replicas: `/metrics` parsed by
prometheus-client's own parsers, `/readyz` before and after a leader is proven, a port
already taken, and the small server's handling of what a client may send."""

from __future__ import annotations

import asyncio
import http.client
import json
import socket
import statistics
import time
import urllib.error
import urllib.request
from collections.abc import AsyncIterator, Iterable
from pathlib import Path
from types import SimpleNamespace

import pytest
from prometheus_client.metrics_core import Metric
from prometheus_client.openmetrics.parser import (
    text_string_to_metric_families as openmetrics_families,
)
from prometheus_client.parser import text_string_to_metric_families

from bzzz.domain import alerts
from bzzz.domain import hmmm as hm
from bzzz.domain.tasks import TaskState
from bzzz.errors import UsageError
from bzzz.http import HttpServer, Snapshot, http_step, readiness
from bzzz.http.metrics import HELP
from bzzz.http.readings import PeerLag
from bzzz.http.server import Request, Response
from bzzz.tasks.local import write_task
from tests.http.cluster import Cluster

_OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # no proxy for 127.0.0.1


def _fetch(url: str, headers: dict[str, str]) -> tuple[int, dict[str, str], bytes]:
    request = urllib.request.Request(url, headers=headers)
    try:
        with _OPENER.open(request, timeout=5) as answer:
            return answer.status, dict(answer.headers), answer.read()
    except urllib.error.HTTPError as error:
        return error.code, dict(error.headers), error.read()


async def get(url: str, **headers: str) -> tuple[int, dict[str, str], bytes]:
    """A GET by urllib (a client that is not ours), off the loop serving it."""
    return await asyncio.to_thread(_fetch, url, headers)


def by_name(metrics: Iterable[Metric]) -> dict[str, Metric]:
    return {family.name: family for family in metrics}


def value(family: Metric, **labels: str) -> float:
    found = [s.value for s in family.samples if s.labels == labels]
    assert len(found) == 1, (family.name, labels, family.samples)
    return found[0]


def family_names() -> set[str]:
    """The family names the text parser reports: counters without `_total`, the info
    as the gauge it is in the text format."""
    return {name.removesuffix("_total") for name in HELP} - {"bzzz_node"} | {"bzzz_node_info"}


@pytest.fixture
async def cluster(tmp_path: Path) -> AsyncIterator[Cluster]:
    built = Cluster(tmp_path).build()
    try:
        yield built
    finally:
        await built.stop()


async def test_metrics_parse_and_count_grants_tasks_and_the_term(cluster: Cluster) -> None:
    await cluster.serve()
    await cluster.start()
    leader = await cluster.leader()
    _, spec = write_task(cluster.folder, "Fix the greeting")
    worker = next(n for n in cluster.nodes if n.replica.me != leader)
    async with asyncio.timeout(10):
        while worker.board.view(spec.id) is None:
            await worker.board.refresh()
            await asyncio.sleep(0.05)
    granted = await worker.claims.request(spec.id, [], 10)
    assert granted["status"] == "granted", granted
    refused = await worker.claims.request("elsewhere", ["quantum"], 10)
    assert refused["status"] == "refused", refused
    await worker.board.refresh()

    status, headers, body = await get(worker.url + "/metrics")
    assert status == 200
    assert headers["Content-Type"] == "text/plain; version=0.0.4; charset=utf-8"
    families = by_name(text_string_to_metric_families(body.decode()))
    assert family_names() <= set(families), family_names() - set(families)
    for name, family in families.items():
        assert family.documentation, name  # every family has its help text

    assert families["bzzz_claim_grants"].type == "counter"
    assert value(families["bzzz_claim_grants"]) == 1
    assert value(families["bzzz_claim_refusals"]) == 1
    assert value(families["bzzz_claims_live"]) == 1
    tasks = families["bzzz_tasks"]
    assert {s.labels["state"] for s in tasks.samples} == {s.value for s in TaskState}
    assert value(tasks, state="claimed") == 1
    assert value(tasks, state="open") == 0
    assert value(families["bzzz_election_term"]) > 0
    assert value(families["bzzz_election_leader"]) == 1
    assert value(families["bzzz_election_is_leader"]) == 0
    assert value(families["bzzz_election_leader_changes"]) >= 1
    assert value(families["bzzz_ready"]) == 1
    assert value(families["bzzz_cluster_members"]) == 3
    assert value(families["bzzz_peers_connected"]) == 2
    assert value(families["bzzz_entries_appended"]) == worker.replica.heads[worker.replica.me]
    assert value(families["bzzz_entries_ingested"]) >= 5  # the founding and admissions
    lag = families["bzzz_replication_lag_entries"]
    assert len(lag.samples) == 4  # two peers, each side
    assert {s.labels["side"] for s in lag.samples} == {"we_lack", "they_lack"}
    assert {s.labels["peer_name"] for s in lag.samples} == {"n0", "n1", "n2"} - {
        next(
            m.name
            for m in worker.replica.membership.members.values()
            if m.agent_id == worker.replica.me
        )
    }
    threads = families["bzzz_hmmm_threads"]
    assert {s.labels["state"] for s in threads.samples} == {s.value for s in hm.ThreadState}
    assert value(families["bzzz_hmmm_escalations"]) == 0
    found = families["bzzz_alerts"]
    assert {s.labels["kind"] for s in found.samples} == {
        k.removeprefix("alert.") for k in alerts.KINDS
    }
    audit = families["bzzz_audit_findings"]
    assert {s.labels["check"]: s.value for s in audit.samples} == {
        "split-brain": 0,
        "double-vote": 0,
        "unproven-leader": 0,
    }
    info = families["bzzz_node_info"]
    assert info.samples[0].labels["agent_id"] == worker.replica.me.hex()

    # The leader counts the same cluster-wide totals, and knows it leads.
    admin = next(n for n in cluster.nodes if n.replica.me == leader)
    await admin.board.refresh()
    _, _, body = await get(admin.url + "/metrics")
    families = by_name(text_string_to_metric_families(body.decode()))
    assert value(families["bzzz_election_is_leader"]) == 1
    assert value(families["bzzz_claim_grants"]) == 1

    # OpenMetrics, when the scraper asks for it.
    accept = "application/openmetrics-text; version=1.0.0,text/plain;q=0.5"
    status, headers, body = await get(worker.url + "/metrics", Accept=accept)
    assert status == 200 and headers["Content-Type"].startswith("application/openmetrics-text")
    families = by_name(openmetrics_families(body.decode()))  # type: ignore[no-untyped-call]
    assert value(families["bzzz_claim_grants"]) == 1


async def test_readyz_is_503_until_a_leader_is_proven_then_200(cluster: Cluster) -> None:
    await cluster.serve()  # the endpoints answer; the node's other steps have not started
    node = cluster.nodes[1]
    status, headers, body = await get(node.url + "/healthz")
    assert (status, body) == (200, b"ok\n")
    status, headers, body = await get(node.url + "/readyz")
    assert status == 503 and headers["Content-Type"] == "application/json"
    data = json.loads(body)
    assert data["reasons"] == ["starting: the mesh and services are not all started yet"]
    assert [c["name"] for c in data["checks"]] == ["running"]
    # Counters read before the logs are would jump at the first scrape after: no metrics.
    status, headers, body = await get(node.url + "/metrics")
    assert status == 503 and headers["Retry-After"] == "1"
    assert body.startswith(b"starting: "), body

    await node.http.running()  # as if started; the election does not run yet
    status, headers, body = await get(node.url + "/readyz")
    assert status == 503
    data = json.loads(body)
    assert data["ready"] is False
    assert data["reasons"] == ["no leader known in term 0"], data
    checks = {c["name"]: c["ok"] for c in data["checks"]}
    assert checks == {
        "running": True,
        "member": True,
        "peers": True,
        "caught_up": True,
        "leader": False,
    }

    await cluster.start()
    await cluster.leader()
    for each in cluster.nodes:
        async with asyncio.timeout(5):
            while (answer := await get(each.url + "/readyz"))[0] != 200:
                await asyncio.sleep(0.05)
        data = json.loads(answer[2])
        assert data["ready"] is True and data["reasons"] == []
        assert all(c["ok"] for c in data["checks"])

    await node.http.stopping()  # the runtime's first step to stop
    status, _, body = await get(node.url + "/readyz")
    assert status == 503 and json.loads(body)["reasons"] == ["stopping: the node is shutting down"]


async def test_a_port_already_taken_is_a_clear_error() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        server = HttpServer(f"127.0.0.1:{port}", {})
        with pytest.raises(UsageError) as raised:
            await server.start()
    message = str(raised.value)
    assert message.startswith(f"http.listen: cannot listen on 127.0.0.1:{port}")
    assert "another process listens on that port" in message


def test_the_listen_address_is_checked_and_defaults_to_loopback() -> None:
    with pytest.raises(UsageError, match=r"^http\.listen: 'no-port' is not HOST:PORT"):
        HttpServer("no-port", {})
    assert (HttpServer("9464", {}).host, HttpServer(":9464", {}).port) == ("127.0.0.1", 9464)
    parts = SimpleNamespace(
        node=SimpleNamespace(config=SimpleNamespace(), home=Path("/nonexistent")),
        mesh=None,
        election=None,
        claims=None,
        board=None,
        hmmm=None,
    )
    assert http_step(parts) is None  # off unless http.listen is set


# The server with what clients send


async def _exchange(port: int, raw: bytes) -> bytes:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(raw)
        await writer.drain()
        async with asyncio.timeout(5):
            return await reader.read()  # until the server closes
    finally:
        writer.close()


@pytest.fixture
async def plain_server() -> AsyncIterator[HttpServer]:
    async def hello(_: Request) -> Response:
        return Response(200, b"hello\n")

    async def broken(_: Request) -> Response:
        raise RuntimeError("a bug")

    server = HttpServer("127.0.0.1:0", {"/hello": hello, "/broken": broken})
    await server.start()
    try:
        yield server
    finally:
        await server.stop()


async def test_the_server_keeps_connections_alive_and_answers_bad_requests(
    plain_server: HttpServer,
) -> None:
    port = plain_server.bound[1]
    two = (
        b"GET /hello HTTP/1.1\r\nHost: x\r\n\r\n"
        b"HEAD /hello?x=1 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    )
    answer = await _exchange(port, two)
    assert answer.count(b"HTTP/1.1 200 OK") == 2 and answer.count(b"hello\n") == 1
    assert b"Connection: keep-alive" in answer and answer.endswith(b"Connection: close\r\n\r\n")

    cases = {
        b"GET /nowhere HTTP/1.1\r\nConnection: close\r\n\r\n": b"HTTP/1.1 404 ",
        b"DELETE /hello HTTP/1.0\r\n\r\n": b"HTTP/1.1 405 ",
        b"POST /hello HTTP/1.1\r\nContent-Length: 3\r\n\r\nabc": b"HTTP/1.1 413 ",
        b"GET /hello\r\n\r\n": b"HTTP/1.1 400 ",
        b"GET /hello HTTP/2.0\r\n\r\n": b"HTTP/1.1 505 ",
        b"GET /hello HTTP/1.1\r\nX: " + b"a" * 20_000 + b"\r\n\r\n": b"HTTP/1.1 431 ",
        b"GET /broken HTTP/1.0\r\n\r\n": b"HTTP/1.1 500 ",
    }
    for request, expected in cases.items():
        answer = await _exchange(port, request)
        assert answer.startswith(expected), (request[:40], answer[:80])
    assert b"Allow: GET, HEAD" in await _exchange(port, b"PUT /hello HTTP/1.0\r\n\r\n")


async def test_stop_closes_open_connections(plain_server: HttpServer) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", plain_server.bound[1])
    writer.write(b"GET /hello HTTP/1.1\r\n\r\n")
    await writer.drain()
    await reader.readuntil(b"hello\n")  # the connection is kept open, idle
    async with asyncio.timeout(2):
        await plain_server.stop()
        assert await reader.read() == b""
    writer.close()


# Readiness, check by check


def _snapshot(**changes: object) -> Snapshot:
    base = {
        "agent_id": b"\x01" * 32,
        "name": "n1",
        "role": "developer",
        "cluster": "c",
        "member": True,
        "members": 3,
        "logs": 3,
        "appended": 10,
        "ingested": 20,
        "peers": (PeerLag(b"\x02" * 32, "n2", 0, 0),),
        "term": 4,
        "election_role": "follower",
        "leader": b"\x02" * 32,
        "leader_name": "n2",
        "leader_proven": True,
        "proven_terms": 2,
        "leader_changes": 2,
        "grants": 0,
        "refusals": 0,
        "live_claims": 0,
        "pending_requests": 0,
    }
    return Snapshot(**(base | changes))  # type: ignore[arg-type]


def test_readiness_checks_membership_peers_lag_and_the_leader() -> None:
    def failing(s: Snapshot) -> list[str]:
        return [c.detail for c in readiness(s, max_lag=100) if not c.ok]

    assert failing(_snapshot()) == []
    assert failing(_snapshot(peers=(), members=1)) == []  # alone in its cluster
    assert failing(_snapshot(peers=())) == ["no peer connected (of 2 other members)"]
    assert failing(_snapshot(member=False)) == [
        "not a member of the cluster: not joined yet, or removed"
    ]
    behind = (PeerLag(b"\x02" * 32, "n2", 101, 0), PeerLag(b"\x03" * 32, "n3", 500, 0))
    assert failing(_snapshot(peers=behind)) == [
        "lacks 500 entries that n3 holds (more than 100), and lags 1 more peers"
    ]
    assert failing(_snapshot(leader_proven=False)) == [
        "n2 leads term 4, not proven by the logs yet"
    ]
    # Before the node runs nothing else is judged: what it holds is not read yet.
    assert failing(_snapshot(phase="starting", member=False)) == [
        "starting: the mesh and services are not all started yet"
    ]


def test_leadership_findings_count_what_the_audit_would_report() -> None:
    from bzzz.domain.leadership import MISSING_VOTE, LeaderClaim, Leadership
    from bzzz.http.readings import leadership_findings

    def claim(seq: int) -> LeaderClaim:
        return LeaderClaim(b"\x01" * 32, 3, (), "no-leader", 0, 0, seq=seq)

    proof = Leadership(
        split_brain={3: {b"\x01" * 32, b"\x02" * 32}},
        double_votes=[(b"\x03" * 32, 2), (b"\x03" * 32, 2), (b"\x04" * 32, 2)],
        unproven=[(claim(1), "cites votes of 1 of 3 voters"), (claim(2), MISSING_VOTE)],
    )
    assert leadership_findings(proof) == {
        "split-brain": 1,
        "double-vote": 2,
        "unproven-leader": 1,  # a claim waiting for votes not held yet is no finding
    }


# The scrape's cost


def _timed(port: int, path: str, count: int) -> list[float]:
    """`count` GETs of `path` on one kept-alive connection, as a scraper does."""
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    times = []
    try:
        for _ in range(count):
            began = time.perf_counter()
            connection.request("GET", path)
            answer = connection.getresponse()
            answer.read()
            times.append(time.perf_counter() - began)
            assert answer.status == 200
    finally:
        connection.close()
    return times


async def test_scrape_time_against_a_trivial_endpoint(cluster: Cluster) -> None:
    await cluster.serve()
    await cluster.start()
    await cluster.leader()
    port = cluster.nodes[0].http.server.bound[1]
    await asyncio.to_thread(_timed, port, "/metrics", 5)  # warm up
    trivial = statistics.median(await asyncio.to_thread(_timed, port, "/healthz", 100))
    scrape = statistics.median(await asyncio.to_thread(_timed, port, "/metrics", 100))
    print(f"\np50 of 100: /healthz {trivial * 1000:.2f} ms, /metrics {scrape * 1000:.2f} ms")
    assert scrape < 0.25  # generous: a scrape is a few milliseconds on an idle machine
