"""The node's HTTP endpoints, and the runtime step that serves them when the config's
`http.listen` is set:

- ``/healthz``: 200 ``ok`` while the event loop runs (liveness);
- ``/readyz``: 200 when the node is a member, connected (or alone in its cluster),
  caught up with its peers and following a proven leader, else 503; a JSON body lists
  every check with why it passed or failed;
- ``/metrics``: Prometheus's text format (`metrics.py`)."""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from http import HTTPStatus
from typing import NamedTuple, Protocol

from bzzz.http.metrics import NodeMetrics
from bzzz.http.readings import (
    DEFAULT_READY_LAG,
    BoardLike,
    ClaimsLike,
    ElectionLike,
    HmmmLike,
    MeshLike,
    NodeReadings,
    RuntimeReadings,
    readiness,
)
from bzzz.http.server import Handler, HttpServer, Request, Response, text

JSON = "application/json"


class NodeEndpoints:
    def __init__(self, readings: NodeReadings, max_lag: int = DEFAULT_READY_LAG) -> None:
        self.readings = readings
        self.max_lag = max_lag
        self.metrics = NodeMetrics(readings, max_lag)

    def routes(self) -> dict[str, Handler]:
        return {"/healthz": self.healthz, "/readyz": self.readyz, "/metrics": self.serve_metrics}

    async def healthz(self, _: Request) -> Response:
        return text(HTTPStatus.OK, "ok")

    async def readyz(self, _: Request) -> Response:
        checks = readiness(await self.readings.snapshot(), self.max_lag)
        ready = all(c.ok for c in checks)
        body = {
            "ready": ready,
            "reasons": [c.detail for c in checks if not c.ok],
            "checks": [{"name": c.name, "ok": c.ok, "detail": c.detail} for c in checks],
        }
        status = HTTPStatus.OK if ready else HTTPStatus.SERVICE_UNAVAILABLE
        return Response(status, json.dumps(body, ensure_ascii=False).encode() + b"\n", JSON)

    async def serve_metrics(self, request: Request) -> Response:
        body, content_type = await self.metrics.scrape(request.headers.get("accept", ""))
        return Response(HTTPStatus.OK, body, content_type)


# The runtime step


class _HasConfig(Protocol):
    @property
    def config(self) -> object: ...


class NodeParts(Protocol):
    """`bzzz.runtime.assembly.NodeRuntime`, the parts read here."""

    @property
    def node(self) -> _HasConfig: ...
    @property
    def mesh(self) -> MeshLike: ...
    @property
    def election(self) -> ElectionLike: ...
    @property
    def claims(self) -> ClaimsLike: ...
    @property
    def board(self) -> BoardLike: ...
    @property
    def hmmm(self) -> HmmmLike: ...


class HttpStep(NamedTuple):
    start: Callable[[], Awaitable[None]]
    stop: Callable[[], Awaitable[None]]
    server: HttpServer


def http_settings(config: object) -> tuple[str | None, int]:
    """`http.listen` and `http.ready_lag` of a node's config; (None, default) where the
    config has no `http` section."""
    section = getattr(config, "http", None)
    listen = getattr(section, "listen", None)
    lag = getattr(section, "ready_lag", DEFAULT_READY_LAG)
    return (listen if isinstance(listen, str) and listen else None), (
        lag if isinstance(lag, int) and lag >= 0 else DEFAULT_READY_LAG
    )


def http_step(
    runtime: NodeParts, listen: str | None = None, max_lag: int | None = None
) -> HttpStep | None:
    """The step serving the node's endpoints on `listen` (by default the config's
    `http.listen`), or None when that is not set. Build it before the node starts;
    starting it raises `UsageError` naming `http.listen` when the port is taken."""
    configured, lag = http_settings(runtime.node.config)
    where = listen if listen is not None else configured
    if where is None:
        return None
    readings = RuntimeReadings(
        runtime.mesh, runtime.election, runtime.claims, runtime.board, runtime.hmmm
    )
    endpoints = NodeEndpoints(readings, lag if max_lag is None else max_lag)
    server = HttpServer(where, endpoints.routes())
    return HttpStep(server.start, server.stop, server)
