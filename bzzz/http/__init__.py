"""HTTP: an adapter serving what a node's operators and their tools read over HTTP:
health (``/healthz``, ``/readyz``) and Prometheus metrics (``/metrics``), when the
config's `http.listen` is set (off by default).

`readings.py` takes a snapshot of the node's state from its parts (read-only protocols
the runtime's mesh and services satisfy) and judges readiness; `metrics.py` turns a
snapshot into metric families on a registry of the node's own; `server.py` is a small
HTTP/1.1 server on the node's event loop; `endpoints.py` puts them together and gives
the runtime its step (`http_step`)."""

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
