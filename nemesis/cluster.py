"""The nodes a nemesis run tortures: N `bzzz agent` daemons, each in a network namespace
on one LAN (tests/support/netns.py), each with its home on a small tmpfs of its own (so
that one node's disk can be filled), a clock file it reads its offset from
(bzzz/clock.py, test only), and a webhook sink on one more host of the LAN. Everything
it makes is undone on the way out (daemons, sink, mounts, namespaces), also on Ctrl-C."""

from __future__ import annotations

import contextlib
import errno
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from bzzz.agent.control import ask
from bzzz.clock import FILE_ENV
from bzzz.home.node import init_node
from tests.support.agents import Agent, join_in
from tests.support.netns import Host, Lan, lan

PORT = 7420
SINK_PORT = 8080
LEASE_MS = 8000  # short claim leases: they expire, and are granted again, within a run
WINDOW_S = 4.0  # the HMMM objection window
TTL_S = 40.0  # a thread's time to live: then it escalates on its own
START_TIMEOUT_S = 60.0


@dataclass
class Node:
    index: int
    host: Host
    agent: Agent
    clock_file: Path
    agent_id: str = ""
    filler: Path | None = None  # the file that fills its disk, while one does

    @property
    def name(self) -> str:
        return f"n{self.index + 1}"

    @property
    def home(self) -> Path:
        return self.agent.home


@dataclass
class Cluster:
    root: Path
    lan: Lan
    sink_host: Host
    nodes: list[Node] = field(default_factory=list)
    tasks: Path = Path()
    sink_log: Path = Path()
    log: Callable[[str], None] = print

    @property
    def sink_url(self) -> str:
        return f"http://{self.sink_host.address}:{SINK_PORT}/hook"

    def by_id(self, agent_id: str) -> Node | None:
        return next((n for n in self.nodes if n.agent_id == agent_id), None)

    def running(self) -> list[Node]:
        return [n for n in self.nodes if n.agent.running()]

    def leader(self) -> Node | None:
        """The node a running node says leads (asked quickly; None if nobody knows)."""
        for node in self.running():
            answer = _ask(node, {"op": "election"}, 2.0)
            leader = answer.get("election", {}).get("leader") if answer else None
            if leader:
                return self.by_id(str(leader))
        return None

    def start(self, node: Node) -> None:
        node.agent.start()


def _ask(node: Node, request: dict[str, Any], timeout: float) -> dict[str, Any] | None:
    try:
        answer = ask(node.home, request, timeout=timeout)
    except Exception:  # a paused or dying daemon: no answer is an answer here
        return None
    return answer if answer and answer.get("ok") else None


def _configure(home: Path, cluster: Cluster) -> None:
    path = home / "config.yaml"
    data = yaml.safe_load(path.read_text())
    data.setdefault("agent", {}).update({"max_tasks": 3, "claim_lease_ms": LEASE_MS})
    data["tasks"] = {
        "poll_s": 1.0,
        "sources": [{"type": "local", "path": str(cluster.tasks), "name": "nemesis"}],
    }
    data["hmmm"] = {
        "objection_window_s": WINDOW_S,
        "ttl_s": TTL_S,
        "escalation": {"webhooks": [{"url": cluster.sink_url}]},
    }
    path.write_text(yaml.safe_dump(data))


def _mount_tmpfs(path: Path, size_mb: int) -> None:
    path.mkdir(parents=True)
    subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size_mb}m,mode=0700", "tmpfs", str(path)],
        check=True,
        capture_output=True,
        timeout=10,
    )


def _umount(path: Path) -> None:
    subprocess.run(["umount", "-l", str(path)], capture_output=True, timeout=10)


def fill_disk(node: Node) -> int:
    """Fill the node's home until a write fails; returns the bytes written."""
    filler = node.home / "nemesis-filler"
    node.filler = filler
    written = 0
    fd = os.open(filler, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    try:
        for chunk in (1 << 20, 4096, 1):
            block = b"\0" * chunk
            while True:
                try:
                    written += os.write(fd, block)
                except OSError as error:
                    if error.errno != errno.ENOSPC:
                        raise
                    break
    finally:
        os.close(fd)
    return written


def free_disk(node: Node) -> None:
    if node.filler is not None:
        with contextlib.suppress(FileNotFoundError):
            node.filler.unlink()
        node.filler = None


def home_size_mb(minutes: float) -> int:
    """Room for a run's store (a few MB a minute under the workload), with margin."""
    return int(min(1024, 64 + 8 * minutes))


def stop_node(node: Node) -> None:
    agent = agent_of(node)
    if agent.proc is None or agent.proc.poll() is not None:
        return
    with contextlib.suppress(ProcessLookupError):
        os.kill(agent.proc.pid, signal.SIGCONT)  # a paused daemon cannot stop
    try:
        agent.stop(timeout=15)
    except subprocess.TimeoutExpired:
        agent.kill()


def agent_of(node: Node) -> Agent:
    return node.agent


@contextlib.contextmanager
def cluster(
    root: Path, count: int, minutes: float, log: Callable[[str], None]
) -> Iterator[Cluster]:
    """`count` nodes founded and joined, running, linked to each other; all undone after."""
    with lan(count + 1) as net, contextlib.ExitStack() as undo:
        *hosts, sink_host = net.hosts
        made = Cluster(root, net, sink_host, tasks=root / "tasks", sink_log=root / "sink.jsonl")
        made.log = log
        made.tasks.mkdir(parents=True, exist_ok=True)
        sink = subprocess.Popen(
            [
                *sink_host.wrap,
                sys.executable,
                "-m",
                "nemesis.sink",
                sink_host.address,
                str(SINK_PORT),
                str(made.sink_log),
            ],
            stdout=subprocess.DEVNULL,
            stderr=(root / "sink.log").open("ab"),
        )
        undo.callback(_end, sink)
        for index, host in enumerate(hosts):
            home = root / f"n{index + 1}"
            _mount_tmpfs(home, home_size_mb(minutes))
            undo.callback(_umount, home)
            clock_file = root / f"n{index + 1}.clock"
            clock_file.write_text("0\n")
            env = {FILE_ENV: str(clock_file)}
            agent = Agent(home, PORT, host=host.address, wrap=host.wrap, env=env)
            made.nodes.append(Node(index, host, agent, clock_file))
        undo.callback(_stop_all, made)
        first = made.nodes[0]
        init_node(
            first.home,
            name="n1",
            role="admin",
            cluster="nemesis",
            listen=f"{first.host.address}:{PORT}",
        ).close()
        _configure(first.home, made)
        _start(first)
        for node in made.nodes[1:]:
            joined = join_in(node.host.wrap, node.host.address, root, node.name, first.agent)
            node.agent.peers = [n.agent.address for n in made.nodes[: node.index]]
            node.agent.home = joined.home
            _configure(node.home, made)
            _start(node)
        for node in made.nodes:
            answer = _ask(node, {"op": "status"}, 10.0)
            assert answer is not None, f"{node.name} does not answer"
            node.agent_id = str(answer["status"]["agent_id"])
        log(
            f"cluster up: {', '.join(f'{n.name}={n.host.address}' for n in made.nodes)}; "
            f"sink {made.sink_url}"
        )
        yield made


def _start(node: Node) -> None:
    deadline = time.monotonic() + START_TIMEOUT_S
    while True:
        try:
            node.agent.start()
            return
        except AssertionError:
            if time.monotonic() > deadline:
                raise
            time.sleep(1.0)


def _stop_all(made: Cluster) -> None:
    for node in made.nodes:
        free_disk(node)
        try:
            stop_node(node)
        except Exception as error:  # keep undoing the rest
            made.log(f"stopping {node.name}: {error}")


def _end(proc: subprocess.Popen[bytes]) -> None:
    proc.terminate()
    try:
        proc.wait(5)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(5)
