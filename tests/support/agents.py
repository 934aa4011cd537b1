"""Real `bzzz agent` processes on 127.0.0.1 for the mesh tests, and ways to wait on them."""

from __future__ import annotations

import asyncio
import collections
import fcntl
import json
import os
import random
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bzzz.agent.control import ask
from bzzz.domain.invite import decode_token, encode_token
from bzzz.home.node import init_node, open_node
from bzzz.runtime.assembly import inviters_of
from bzzz.services.members import create_invite, join_cluster
from tests.support.cli import bzzz

START_TIMEOUT_S = 30.0


# Ports for the tests' daemons and stand-ins. A port is picked free but not held until its
# server binds it, seconds later; meanwhile anything else may take it. So ports come from
# below the kernel's ephemeral range, which no bind to port 0 and no outgoing connection on
# the machine is ever handed, and test processes side by side (pytest-xdist workers, other
# runs) take turns through a lock file per port: a port handed out stays locked by this
# process for PORT_HOLD_S, long enough for a test to start, stop and restart its daemon
# there; a lock dies with its process.
PORT_LOCKS = Path(tempfile.gettempdir()) / "bzzz-test-ports"
PORT_HOLD_S = 600.0
_LOWEST_PORT = 20000
_held: collections.deque[tuple[float, int]] = collections.deque()


def free_port() -> int:
    """A port on 127.0.0.1 that nothing listens on and no other test process hands out."""
    now = time.monotonic()
    while _held and (now - _held[0][0] > PORT_HOLD_S or len(_held) > 500):
        os.close(_held.popleft()[1])
    pool = range(_LOWEST_PORT, _ephemeral_ports_start())
    if len(pool) >= 1000:
        try:
            PORT_LOCKS.mkdir(mode=0o777, exist_ok=True)
        except OSError:
            pass
        else:
            start = random.randrange(len(pool))
            for n in range(300):
                port = pool[(start + n) % len(pool)]
                fd = _lock_port(port)
                if fd is None:
                    continue
                if _bindable(port):
                    _held.append((now, fd))
                    return port
                os.close(fd)
    with socket.socket() as sock:  # no pool to take turns in: the kernel's pick
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _ephemeral_ports_start() -> int:
    try:
        return int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return _LOWEST_PORT  # an empty pool


def _lock_port(port: int) -> int | None:
    try:
        fd = os.open(PORT_LOCKS / str(port), os.O_RDONLY | os.O_CREAT | os.O_CLOEXEC, 0o644)
    except OSError:
        return None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        os.close(fd)
        return None
    return fd


def _bindable(port: int) -> bool:
    with socket.socket() as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def wait_for(check: Callable[[], Any], timeout: float = 30.0, what: str = "condition") -> Any:
    """Poll `check` until it returns something truthy; fail after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(0.05)


@dataclass
class Agent:
    home: Path
    port: int
    peers: list[str] = field(default_factory=list)
    host: str = "127.0.0.1"
    # Runs the agent inside a network namespace, e.g. ["ip", "netns", "exec", "ns1"].
    wrap: list[str] = field(default_factory=list)
    mdns: bool = False
    env: dict[str, str] = field(default_factory=dict)  # added to the agent's environment
    proc: subprocess.Popen[bytes] | None = None
    log: Path | None = None

    @property
    def address(self) -> str:
        return f"{self.host}:{self.port}"

    def start(self, *extra: str) -> Agent:
        self.log = self.home.parent / f"{self.home.name}.log"
        args = [*self.wrap, sys.executable, "-m", "bzzz", "agent", "--home", str(self.home)]
        args += ["--listen", self.address, *([] if self.mdns else ["--no-mdns"]), *extra]
        for peer in self.peers:
            args += ["--peer", peer]
        with open(self.log, "ab") as log:
            env = {**os.environ, **self.env} if self.env else None
            self.proc = subprocess.Popen(args, stdout=log, stderr=log, env=env)
        wait_for(self._answers, START_TIMEOUT_S, f"agent {self.home.name} to start")
        return self

    def _answers(self) -> bool:
        assert self.proc is not None
        if self.proc.poll() is not None:
            raise AssertionError(f"agent {self.home.name} exited: {self.log_text()[-2000:]}")
        try:
            return ask(self.home, {"op": "status"}) is not None
        except Exception:
            return False

    def log_text(self) -> str:
        return self.log.read_text(errors="replace") if self.log else ""

    def status(self) -> dict[str, Any]:
        answer = ask(self.home, {"op": "status"})
        assert answer is not None and answer["ok"], answer
        return dict(answer["status"])

    def heads(self) -> dict[str, int]:
        return dict(self.status()["heads"])

    def connected(self) -> set[str]:
        return {p["agent_id"] for p in self.status()["peers"] if p["connected"]}

    def append(self, kind: str = "task.note", **data: Any) -> int:
        answer = ask(self.home, {"op": "append", "kind": kind, "data": data})
        assert answer is not None and answer["ok"], answer
        return int(answer["seq"])

    def election(self) -> dict[str, Any]:
        answer = ask(self.home, {"op": "election"})
        assert answer is not None and answer["ok"], answer
        return dict(answer["election"])

    @property
    def agent_id(self) -> str:
        return str(self.status()["agent_id"])

    def stop(self, timeout: float = 10.0) -> int:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(timeout)

    def kill(self) -> None:
        assert self.proc is not None
        os.kill(self.proc.pid, signal.SIGKILL)
        self.proc.wait(10)

    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None


def found(root: Path, name: str = "n0", cluster: str = "test") -> Agent:
    port = free_port()
    init_node(
        root / name, name=name, role="admin", cluster=cluster, listen=f"127.0.0.1:{port}"
    ).close()
    return Agent(root / name, port)


def invite_token(
    inviter: Agent, role: str = "developer", expires: str = "10m", reach: str | None = None
) -> str:
    """An invite to `inviter`'s cluster, reaching it at `reach` (default its address)."""
    with open_node(inviter.home) as node:
        return encode_token(create_invite(node, role, expires, reach or inviter.address))


def join(root: Path, name: str, inviter: Agent, token: str | None = None) -> Agent:
    """A new node admitted by `inviter` (whose agent must run), its logs copied."""
    port = free_port()
    node = init_node(root / name, name=name, role="developer", listen=f"127.0.0.1:{port}")
    with node:
        asyncio.run(
            join_cluster(node, decode_token(token or invite_token(inviter)), inviters_of(node))
        )
    return Agent(root / name, port)


def converged(agents: list[Agent]) -> bool:
    heads = [a.heads() for a in agents]
    return all(h == heads[0] for h in heads[1:])


def stop_all(agents: list[Agent]) -> None:
    for agent in agents:
        if agent.running():
            try:
                agent.stop()
            except subprocess.TimeoutExpired:
                agent.kill()


def join_in(
    host_wrap: list[str],
    address: str,
    root: Path,
    name: str,
    inviter: Agent,
    reach: str | None = None,
) -> Agent:
    """Like `join`, for a node that lives in a network namespace (`ip netns exec ...`),
    reaching the inviter at `reach` (default its address)."""
    home = root / name
    result = subprocess.run(
        [
            *host_wrap,
            sys.executable,
            "-m",
            "bzzz",
            "join",
            invite_token(inviter, reach=reach),
            "--home",
            str(home),
            "--name",
            name,
            "--listen",
            f"{address}:7420",
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    return Agent(home, 7420, host=address, wrap=host_wrap)


# What a running cluster says: its audit, its leader, its claims.


def audit_findings(agent: Agent) -> list[dict[str, Any]]:
    result = bzzz("audit", "--home", str(agent.home), "--json")
    report = json.loads(result.out)
    assert result.code == (0 if report["ok"] else 1), result.err
    return list(report["findings"])


def audit_clean(agent: Agent) -> None:
    findings = audit_findings(agent)
    assert not findings, findings[:5]


def proven_leader(agents: list[Agent]) -> str | None:
    """The leader every running agent agrees on and can prove from its logs."""
    views = [a.election() for a in agents if a.running()]
    leaders = {v["leader"] for v in views}
    if len(leaders) == 1 and None not in leaders and all(v["leader_proven"] for v in views):
        return str(leaders.pop())
    return None


def claim(agent: Agent, task: str) -> dict[str, object]:
    answer = ask(agent.home, {"op": "claim", "task": task, "needs": [], "wait": 20}, timeout=30)
    assert answer is not None
    return answer


def claims_of(agent: Agent) -> dict[str, dict[str, object]]:
    answer = ask(agent.home, {"op": "claims"})
    assert answer is not None
    return {row["task"]: row for row in answer["claims"]}
