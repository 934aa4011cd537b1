"""HTTP: an adapter serving what a node's operators and their tools read over HTTP:
health (``/healthz``, ``/readyz``), Prometheus metrics (``/metrics``) and the mesh
dashboard (``/dashboard``, its data behind a bearer token), when the config's
`http.listen` is set (off by default).

`readings.py` takes a snapshot of the node's state from its parts (read-only protocols
the runtime's mesh and services satisfy) and judges readiness; `metrics.py` turns a
snapshot into metric families on a registry of the node's own; `dashboard.py` turns it
into the page's JSON and pushes it as server-sent events (the page: `static/`);
`token.py` keeps the bearer token; `server.py` is a small HTTP/1.1 server on the node's
event loop; `endpoints.py` puts them together and gives the runtime its steps
(`http_step`)."""

from bzzz.http.endpoints import HttpStep, NodeEndpoints, http_step
from bzzz.http.metrics import NodeMetrics
from bzzz.http.readings import RuntimeReadings, Snapshot, readiness
from bzzz.http.server import HttpServer

__all__ = [
    "HttpServer",
    "HttpStep",
    "NodeEndpoints",
    "NodeMetrics",
    "RuntimeReadings",
    "Snapshot",
    "http_step",
    "readiness",
]
