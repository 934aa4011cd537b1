"""An etcd cluster on 127.0.0.1 (Debian's etcd-server), the reference the benchmarks
measure BZZZ against in the same run: the same Raft defaults as BZZZ (heartbeat 100 ms,
election timeout 1000 ms), one data directory per member, spoken to through etcd's JSON
gateway (v3 API over HTTP) so that no client library is needed."""

from __future__ import annotations

import base64
import http.client
import json
import shutil
import subprocess
import urllib.request
from pathlib import Path
from typing import Any

from tests.support.agents import free_port

MISSING = "etcd is not installed (apt-get install etcd-server)"


class EtcdCluster:
    def __init__(self, root: Path, size: int) -> None:
        binary = shutil.which("etcd")
        if binary is None:
            raise FileNotFoundError(MISSING)
        self.binary = binary
        self.root = root
        self.names = [f"e{n}" for n in range(1, size + 1)]
        self.peer = {n: free_port() for n in self.names}
        self.client = {n: free_port() for n in self.names}
        self.procs: dict[str, subprocess.Popen[bytes]] = {}

    def start(self, name: str, state: str = "new") -> None:
        cluster = ",".join(f"{n}=http://127.0.0.1:{self.peer[n]}" for n in self.names)
        self.procs[name] = subprocess.Popen(
            [
                self.binary,
                "--name",
                name,
                "--data-dir",
                str(self.root / name),
                "--listen-peer-urls",
                f"http://127.0.0.1:{self.peer[name]}",
                "--initial-advertise-peer-urls",
                f"http://127.0.0.1:{self.peer[name]}",
                "--listen-client-urls",
                f"http://127.0.0.1:{self.client[name]}",
                "--advertise-client-urls",
                f"http://127.0.0.1:{self.client[name]}",
                "--initial-cluster",
                cluster,
                "--initial-cluster-state",
                state,
                "--heartbeat-interval",
                "100",
                "--election-timeout",
                "1000",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )

    def __enter__(self) -> EtcdCluster:
        for name in self.names:
            self.start(name)
        return self

    def __exit__(self, *_: object) -> None:
        for proc in self.procs.values():
            proc.terminate()
        for proc in self.procs.values():
            proc.wait(10)

    def status(self, name: str) -> dict[str, Any] | None:
        return call(self.client[name], "maintenance/status", {}, timeout=0.5)

    def _agreed(self, names: list[str]) -> tuple[str, str | None] | None:
        """From one round of status calls: the leader's member id, if every member asked
        names the same one, and the name of that member if it was among them."""
        statuses = {name: self.status(name) for name in names}
        seen = {str(s["leader"]) if s and s.get("leader") else None for s in statuses.values()}
        if len(seen) != 1 or None in seen:
            return None
        leader = seen.pop()
        assert leader is not None
        own = {n: str(s.get("header", {}).get("member_id")) for n, s in statuses.items() if s}
        return leader, next((n for n, member in own.items() if member == leader), None)

    def leader(self, names: list[str] | None = None) -> str | None:
        """The member id every member asked names as leader, or None."""
        agreed = self._agreed(names or self.names)
        return agreed[0] if agreed else None

    def leader_name(self) -> str | None:
        agreed = self._agreed(self.names)
        return agreed[1] if agreed else None


def call(port: int, path: str, body: dict[str, Any], timeout: float = 5.0) -> dict[str, Any] | None:
    """One v3 gateway call; None when the member does not answer."""
    request = urllib.request.Request(
        f"http://127.0.0.1:{port}/v3/{path}", data=json.dumps(body).encode(), method="POST"
    )
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return dict(json.load(response))
    except (OSError, ValueError):
        return None


def b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


class Client:
    """One kept-alive gateway connection, as an agent keeps one to its daemon."""

    def __init__(self, port: int) -> None:
        self.connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *_: object) -> None:
        self.connection.close()

    def call(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        self.connection.request("POST", f"/v3/{path}", json.dumps(body).encode())
        response = self.connection.getresponse()
        data = response.read()
        if response.status != 200:
            raise RuntimeError(f"etcd {path}: HTTP {response.status}: {data[:200]!r}")
        return dict(json.loads(data))

    def create(self, key: str, value: str) -> bool:
        """Put `key` only if it does not exist yet (a claim): whether this call made it."""
        k = b64(key)
        answer = self.call(
            "kv/txn",
            {
                "compare": [
                    {"key": k, "result": "EQUAL", "target": "CREATE", "create_revision": "0"}
                ],
                "success": [{"request_put": {"key": k, "value": b64(value)}}],
                "failure": [{"request_range": {"key": k}}],
            },
        )
        return bool(answer.get("succeeded"))  # the gateway leaves out a false
