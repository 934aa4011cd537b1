"""The node's HTTP endpoints, and the runtime steps that serve them when the config's
`http.listen` is set:

- ``/healthz``: 200 ``ok`` while the event loop runs (liveness);
- ``/readyz``: 200 when the node runs (all its steps started), is a member, connected
  (or alone in its cluster), caught up with its peers and following a proven leader,
  else 503; a JSON body lists every check with why it passed or failed;
- ``/metrics``: Prometheus's text format (`metrics.py`); 503 until the node runs;
- ``/dashboard`` (the page, its script and styles: no data in them, served to anyone),
  ``/api/v1/state`` (JSON) and ``/dashboard/events`` (server-sent events): the mesh
  dashboard (`dashboard.py`).

*Who may read what*: health is open (a load balancer or a supervisor asks without
credentials); the dashboard's data needs the bearer token of `http.token_file`
(``Authorization: Bearer TOKEN``); /metrics holds counts and agent names, no task or
message text, and is open unless `http.metrics_auth` is set. The listener is on
127.0.0.1 unless configured otherwise."""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from http import HTTPStatus
from pathlib import Path
from typing import NamedTuple, Protocol

from bzzz.http.dashboard import (
    PAGE_HEADERS,
    STATIC,
    StatePusher,
    TooManyStreams,
    encode_state,
    state_of,
    static_file,
)
from bzzz.http.metrics import NodeMetrics
from bzzz.http.readings import (
    DEFAULT_READY_LAG,
    RUNNING,
    STOPPING,
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
from bzzz.http.token import BearerToken, load_or_create_token, token_path

JSON = "application/json"
EVENTS = "text/event-stream; charset=utf-8"
UNAUTHORIZED = (
    "unauthorized: send `Authorization: Bearer TOKEN` with the token in the node's "
    "http.token_file (the dashboard takes it as /dashboard#token=TOKEN)"
)


class NodeEndpoints:
    def __init__(
        self,
        readings: NodeReadings,
        max_lag: int = DEFAULT_READY_LAG,
        token: BearerToken | None = None,
        metrics_auth: bool = False,
    ) -> None:
        self.readings = readings
        self.max_lag = max_lag
        self.token = token
        self.metrics_auth = metrics_auth
        self.metrics = NodeMetrics(readings, max_lag)
        self.pusher = StatePusher(self._state)

    def routes(self) -> dict[str, Handler]:
        routes: dict[str, Handler] = {
            "/healthz": self.healthz,
            "/readyz": self.readyz,
            "/metrics": self.serve_metrics,
        }
        if self.token is not None:
            routes |= {path: self.serve_static for path in STATIC}
            routes |= {"/api/v1/state": self.serve_state, "/dashboard/events": self.serve_events}
        return routes

    def _refused(self, request: Request) -> Response | None:
        """The 401 for a request without the token, or None when it has it."""
        if self.token is not None and self.token.matches(request.headers.get("authorization")):
            return None
        return Response(
            HTTPStatus.UNAUTHORIZED,
            UNAUTHORIZED.encode() + b"\n",
            headers=(("WWW-Authenticate", 'Bearer realm="bzzz"'),),
        )

    def _not_running(self) -> Response | None:
        phase = self.readings.phase
        if phase == RUNNING:
            return None
        why = "shutting down" if phase == STOPPING else "starting: its logs are not read yet"
        return Response(
            HTTPStatus.SERVICE_UNAVAILABLE,
            f"{phase}: the node is {why}\n".encode(),
            headers=(("Retry-After", "1"),),
        )

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
        if self.metrics_auth and (refused := self._refused(request)) is not None:
            return refused
        if (unavailable := self._not_running()) is not None:
            return unavailable
        body, content_type = await self.metrics.scrape(request.headers.get("accept", ""))
        return Response(HTTPStatus.OK, body, content_type)

    async def _state(self) -> dict[str, object]:
        return state_of(await self.readings.snapshot(detail=True), self.max_lag)

    async def serve_static(self, request: Request) -> Response:
        name, content_type = STATIC[request.path]
        body = static_file(name)
        if body is None:
            return text(
                HTTPStatus.SERVICE_UNAVAILABLE,
                f"this installation of bzzz lacks the dashboard's file {name} "
                "(bzzz/http/static): reinstall the package",
            )
        return Response(HTTPStatus.OK, body, content_type, PAGE_HEADERS)

    async def serve_state(self, request: Request) -> Response:
        if (refused := self._refused(request)) is not None:
            return refused
        return Response(HTTPStatus.OK, encode_state(await self._state()) + b"\n", JSON)

    async def serve_events(self, request: Request) -> Response:
        if (refused := self._refused(request)) is not None:
            return refused
        try:
            stream = self.pusher.open()
        except TooManyStreams:
            return text(
                HTTPStatus.SERVICE_UNAVAILABLE,
                f"too many open dashboards (at most {self.pusher.max_streams}); close one",
            )
        return Response(HTTPStatus.OK, b"", EVENTS, (("X-Accel-Buffering", "no"),), stream)


# The runtime steps


class _HasConfig(Protocol):
    @property
    def config(self) -> object: ...
    @property
    def home(self) -> Path: ...


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
    """Two steps of the runtime: `start`/`stop` serve the endpoints (first to start, last
    to stop: health answers while the mesh starts); `running`/`stopping` tell them the
    node's other steps are all started (last to start, first to stop): until then, and
    from then, /readyz and /metrics answer 503."""

    start: Callable[[], Awaitable[None]]
    stop: Callable[[], Awaitable[None]]
    running: Callable[[], Awaitable[None]]
    stopping: Callable[[], Awaitable[None]]
    server: HttpServer
    endpoints: NodeEndpoints


class HttpSettings(NamedTuple):
    listen: str | None
    ready_lag: int
    token_file: str
    metrics_auth: bool


def http_settings(config: object) -> HttpSettings:
    """The `http` section of a node's config (its defaults where there is none)."""
    section = getattr(config, "http", None)
    listen = getattr(section, "listen", None)
    lag = getattr(section, "ready_lag", DEFAULT_READY_LAG)
    token_file = getattr(section, "token_file", "http.token")
    metrics_auth = getattr(section, "metrics_auth", False)
    return HttpSettings(
        listen if isinstance(listen, str) and listen else None,
        lag if isinstance(lag, int) and lag >= 0 else DEFAULT_READY_LAG,
        token_file if isinstance(token_file, str) and token_file else "http.token",
        metrics_auth is True,
    )


def http_step(
    runtime: NodeParts, listen: str | None = None, max_lag: int | None = None
) -> HttpStep | None:
    """The steps serving the node's endpoints on `listen` (by default the config's
    `http.listen`), or None when that is not set. Build it before the node starts: it
    reads (or makes) the dashboard's token file now, a `ConfigError` naming
    `http.token_file` if that fails; starting it raises `UsageError` naming
    `http.listen` when the port is taken."""
    settings = http_settings(runtime.node.config)
    where = listen if listen is not None else settings.listen
    if where is None:
        return None
    token = load_or_create_token(token_path(runtime.node.home, settings.token_file))
    readings = RuntimeReadings(
        runtime.mesh, runtime.election, runtime.claims, runtime.board, runtime.hmmm
    )
    endpoints = NodeEndpoints(
        readings,
        settings.ready_lag if max_lag is None else max_lag,
        token,
        settings.metrics_auth,
    )
    server = HttpServer(where, endpoints.routes())

    async def running() -> None:
        readings.phase = RUNNING

    async def stopping() -> None:
        readings.phase = STOPPING

    async def stop() -> None:
        await server.stop()
        await endpoints.pusher.stop()

    return HttpStep(server.start, stop, running, stopping, server, endpoints)
