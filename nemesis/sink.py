"""The webhook the escalations go to during a nemesis run: a small HTTP server on its
own host on the test LAN (never partitioned), answering every POST 200 and writing one
JSON line per POST (its Idempotency-Key, the escalation and thread it names) to a file.

    python -m nemesis.sink ADDRESS PORT OUT
"""

from __future__ import annotations

import json
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

MAX_BODY = 1 << 20


def serve(address: str, port: int, out: Path) -> None:
    lock = threading.Lock()

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: Any) -> None:
            pass

        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(min(length, MAX_BODY))
            try:
                data = json.loads(body)
            except ValueError:
                data = None
            line = {
                "key": self.headers.get("Idempotency-Key"),
                "escalation": data.get("escalation") if isinstance(data, dict) else None,
                "thread": data.get("thread") if isinstance(data, dict) else None,
            }
            with lock, out.open("a") as handle:
                handle.write(json.dumps(line) + "\n")
            answer = b'{"ok":true}'
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(answer)))
            self.send_header("Connection", "close")
            self.end_headers()
            self.wfile.write(answer)
            self.close_connection = True

    server = ThreadingHTTPServer((address, port), Handler)
    server.daemon_threads = True
    server.serve_forever(poll_interval=0.1)


def read_deliveries(out: Path) -> list[dict[str, Any]]:
    if not out.exists():
        return []
    return [json.loads(line) for line in out.read_text().splitlines() if line.strip()]


if __name__ == "__main__":
    serve(sys.argv[1], int(sys.argv[2]), Path(sys.argv[3]))
