"""UCXI's resolve on 10,000 items of context (issue 21), against the control socket.

A founder's own log is given `--items` `context.put` entries (100 tasks, ~200-byte
texts), written straight into its store before its agent starts; the agent then serves
UCXI (`ucxi.listen` on 127.0.0.1) next to its control socket. Every request below asks
for a random one of the items at `~latest`; every answer's text is checked.

- cold: the first resolve after the start, which folds every item (`ContextRequests`
  caches the fold per store position);
- UCXI: sequential resolves on one keep-alive `bzzz.client.UcxiClient` (latency p50/p99,
  requests/s), and `--concurrency` `AsyncUcxiClient`s at once for `--seconds` a round
  (requests/s, latency);
- the baseline, in the same run: the same `ucxl_get` over the agent's control socket (a
  JSON line on a Unix socket; UCXI's backend calls the very same handler in-process),
  sequential on one kept `Control` connection and with `--concurrency` connections at
  once; plus a fresh connection per request (`bzzz.agent.control.ask`), sequential;
- `bzzz ucxl get --json`, `--cli` times: the CLI does not ask the agent, it opens the
  store and folds every item itself, in a new process each time;
- the daemon's CPU per request on each path (from /proc), since the bench's own clients
  share the machine with it;
- after a new entry: one resolve right after one entry was appended, a `task.note` (not
  context: the agent keeps its fold) or a `context.put` (folded alone and merged into
  the agent's fold).

The phases are interleaved in rounds, their order alternating, so both paths see the same
machine. Ratios are UCXI's figure over the control socket's. One JSON line.

    python -m bench.ucxi [--items 10000] [--rounds 10] [--requests 300] [--seconds 2]
                         [--concurrency 8] [--refolds 5] [--cli 3]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import random
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType
from typing import Any

from bench.procstat import cpu_seconds
from bench.stats import percentile
from bzzz.agent.control import SOCKET_FILE, Control, ask
from bzzz.client import AsyncUcxiClient, UcxiClient
from bzzz.clock import now_ms
from bzzz.domain import context as cx
from bzzz.domain.payload import encode_payload
from bzzz.home.node import open_home_store, open_node
from bzzz.store import EventStore
from tests.support.agents import Agent, found, free_port, wait_for

CLUSTER = "bench"
TASKS = 100
BATCH = 1000  # entries a store transaction
TEXT_BYTES = 200
MAX_LINE = 1 << 24
QUIET_S = 2.0  # the node is settled once it wrote nothing for this long

Resolve = Callable[[str], Awaitable[str]]  # an address to its latest text


def progress(message: str) -> None:
    sys.stderr.write(f"[bench.ucxi] {message}\n")
    sys.stderr.flush()


def ms(seconds: list[float]) -> dict[str, Any]:
    """n, p50, p99 and max of durations in seconds, as milliseconds."""
    values = [s * 1000 for s in seconds]
    return {
        "n": len(values),
        "p50": round(percentile(values, 0.5), 3),
        "p99": round(percentile(values, 0.99), 3),
        "max": round(max(values), 3) if values else 0.0,
    }


def ratio(a: float, b: float) -> float | None:
    return round(a / b, 2) if b else None


# -- the node -------------------------------------------------------------------------


@dataclass(frozen=True)
class Items:
    addresses: list[str]
    texts: list[str]


def seed(home: Path, count: int) -> Items:
    """`count` context.put entries in the node's own log, `TASKS` tasks of paths each."""
    rng = random.Random(21)
    per_task = max(1, -(-count // TASKS))
    project = cx.project_name(CLUSTER)
    with open_node(home) as node:
        me = node.identity.public_key.hex()
        addresses, texts = [], []
        batch: list[tuple[str, bytes]] = []
        for n in range(count):
            task, path = f"t{n // per_task}", ("notes", f"p{n % per_task}.md")
            text = rng.randbytes(TEXT_BYTES // 2).hex()
            batch.append((cx.PUT, encode_payload(cx.put_body(task, path, text))))
            addresses.append(f"ucxl://{me}:admin@{project}:{task}/~latest/{'/'.join(path)}")
            texts.append(text)
            if len(batch) == BATCH or n == count - 1:
                node.store.append_batch(node.identity.signer, batch, now_ms())
                batch = []
    return Items(addresses, texts)


@dataclass
class Measured:
    """What one path measured over every round."""

    latencies: list[float] = field(default_factory=list)
    seconds: float = 0.0  # wall time of its phases
    requests: int = 0
    daemon_cpu: float = 0.0
    bench_cpu: float = 0.0

    def add(self, latencies: list[float], seconds: float, daemon: float, bench: float) -> None:
        self.latencies += latencies
        self.seconds += seconds
        self.requests += len(latencies)
        self.daemon_cpu += daemon
        self.bench_cpu += bench

    def figures(self) -> dict[str, Any]:
        per = self.requests or 1
        return {
            "latency_ms": ms(self.latencies),
            "requests_per_s": round(self.requests / self.seconds) if self.seconds else 0,
            "daemon_cpu_ms_per_request": round(self.daemon_cpu * 1000 / per, 3),
            "bench_cpu_ms_per_request": round(self.bench_cpu * 1000 / per, 3),
        }


class Bench:
    def __init__(self, agent: Agent, url: str, items: Items, args: argparse.Namespace) -> None:
        self.agent = agent
        self.home = agent.home
        self.url = url
        self.token_file = agent.home / "ucxi.token"
        self.items = items
        self.args = args
        self.rng = random.Random(7)
        assert agent.proc is not None
        self.pid = agent.proc.pid
        self.cpu = (0.0, 0.0)
        self.paths = {
            name: Measured()
            for name in (
                "ucxi_sequential",
                "control_sequential",
                "control_fresh_connection",
                "ucxi_concurrent",
                "control_concurrent",
            )
        }

    def pick(self) -> int:
        return self.rng.randrange(len(self.items.addresses))

    def check(self, n: int, text: object) -> None:
        if text != self.items.texts[n]:
            raise AssertionError(f"{self.items.addresses[n]}: answered {str(text)[:80]!r}")

    @contextlib.contextmanager
    def window(self) -> Iterator[None]:
        """The timed part of a phase, whose CPU (the daemon's, the bench's) is counted."""
        daemon, bench = cpu_seconds(self.pid), time.process_time()
        yield
        self.cpu = (cpu_seconds(self.pid) - daemon, time.process_time() - bench)

    def measured(self, name: str, run: Callable[[], tuple[list[float], float]]) -> None:
        latencies, seconds = run()
        self.paths[name].add(latencies, seconds, *self.cpu)

    # sequential

    def ucxi_sequential(self, client: UcxiClient, count: int) -> tuple[list[float], float]:
        picks = [self.pick() for _ in range(count)]
        latencies, texts = [], []
        with self.window():
            began = time.perf_counter()
            for n in picks:
                t = time.perf_counter()
                texts.append(client.resolve(self.items.addresses[n]).text)
                latencies.append(time.perf_counter() - t)
            seconds = time.perf_counter() - began
        for n, text in zip(picks, texts, strict=True):
            self.check(n, text)
        return latencies, seconds

    def control_sequential(self, control: Control | None, count: int) -> tuple[list[float], float]:
        """On the kept connection `control`, or (None) on a fresh one per request."""
        picks = [self.pick() for _ in range(count)]
        latencies, answers = [], []
        with self.window():
            began = time.perf_counter()
            for n in picks:
                request = {"op": "ucxl_get", "address": self.items.addresses[n]}
                t = time.perf_counter()
                answer = control.ask(request) if control is not None else ask(self.home, request)
                latencies.append(time.perf_counter() - t)
                answers.append(answer)
            seconds = time.perf_counter() - began
        for n, answer in zip(picks, answers, strict=True):
            if answer is None or not answer.get("ok"):
                raise AssertionError(f"ucxl_get refused: {answer}")
            self.check(n, answer["version"]["text"])
        return latencies, seconds

    # concurrent: `--concurrency` connections, opened before the clock starts

    def concurrent(
        self, connect: Callable[[contextlib.AsyncExitStack], Awaitable[Resolve]]
    ) -> tuple[list[float], float]:
        latencies: list[float] = []

        async def loop(resolve: Resolve, deadline: float) -> None:
            while time.perf_counter() < deadline:
                n = self.pick()
                t = time.perf_counter()
                text = await resolve(self.items.addresses[n])
                latencies.append(time.perf_counter() - t)
                self.check(n, text)

        async def run() -> float:
            async with contextlib.AsyncExitStack() as stack:
                resolvers = [await connect(stack) for _ in range(self.args.concurrency)]
                with self.window():
                    began = time.perf_counter()
                    deadline = began + self.args.seconds
                    await asyncio.gather(*(loop(r, deadline) for r in resolvers))
                    return time.perf_counter() - began

        return latencies, asyncio.run(run())

    async def ucxi_connection(self, stack: contextlib.AsyncExitStack) -> Resolve:
        client = AsyncUcxiClient(self.url, token_file=self.token_file)
        stack.push_async_callback(client.aclose)
        await client.status()  # connected (keep-alive) before the clock starts

        async def resolve(address: str) -> str:
            return (await client.resolve(address)).text

        return resolve

    async def control_connection(self, stack: contextlib.AsyncExitStack) -> Resolve:
        reader, writer = await asyncio.open_unix_connection(
            str(self.home / SOCKET_FILE), limit=MAX_LINE
        )

        async def close() -> None:
            writer.close()
            with contextlib.suppress(ConnectionError):
                await writer.wait_closed()

        stack.push_async_callback(close)

        async def resolve(address: str) -> str:
            writer.write(json.dumps({"op": "ucxl_get", "address": address}).encode() + b"\n")
            await writer.drain()
            answer = json.loads(await reader.readline())
            if not answer.get("ok"):
                raise AssertionError(f"ucxl_get refused: {answer}")
            return str(answer["version"]["text"])

        return resolve

    # the run

    def cold(self, client: UcxiClient) -> float:
        n = self.pick()
        t = time.perf_counter()
        version = client.resolve(self.items.addresses[n])
        seconds = time.perf_counter() - t
        self.check(n, version.text)
        return seconds

    def refolds(self, client: UcxiClient, count: int, kind: str) -> list[float]:
        """One resolve right after one new entry (a task.note, or a context.put) reached
        the store."""
        out = []
        for k in range(count):
            if kind == cx.PUT:
                self.agent.append(kind, **cx.put_body("bench-new", (f"n{k}.md",), f"new {k}"))
            else:
                self.agent.append(kind, text=f"bench refold {k}")
            n = self.pick()
            t = time.perf_counter()
            version = client.resolve(self.items.addresses[n])
            out.append(time.perf_counter() - t)
            self.check(n, version.text)
            client.resolve(self.items.addresses[self.pick()])  # the fold is cached again
        return out

    def cli(self, count: int) -> list[float]:
        """`bzzz ucxl get ADDRESS --json` in a new process, start to exit."""
        out = []
        for _ in range(count):
            n = self.pick()
            command = [sys.executable, "-m", "bzzz", "ucxl", "get", self.items.addresses[n]]
            t = time.perf_counter()
            done = subprocess.run(
                [*command, "--home", str(self.home), "--json"],
                capture_output=True,
                text=True,
                timeout=120,
            )
            out.append(time.perf_counter() - t)
            if done.returncode != 0:
                raise AssertionError(f"bzzz ucxl get failed: {done.stderr[-500:]}")
            self.check(n, json.loads(done.stdout)["text"])
        return out

    def rounds(self, client: UcxiClient, control: Control) -> None:
        args = self.args
        phases: list[tuple[str, Callable[[], tuple[list[float], float]]]] = [
            ("ucxi_sequential", lambda: self.ucxi_sequential(client, args.requests)),
            ("control_sequential", lambda: self.control_sequential(control, args.requests)),
            ("control_fresh_connection", lambda: self.control_sequential(None, args.requests)),
            ("ucxi_concurrent", lambda: self.concurrent(self.ucxi_connection)),
            ("control_concurrent", lambda: self.concurrent(self.control_connection)),
        ]
        for r in range(args.rounds):
            order = phases if r % 2 == 0 else phases[::-1]  # alternate which goes first
            for name, run in order:
                self.measured(name, run)
            progress(f"round {r + 1}/{args.rounds}")


def start(root: Path, count: int) -> tuple[Agent, str, Items, float]:
    agent = found(root, cluster=CLUSTER)
    began = time.perf_counter()
    items = seed(agent.home, count)
    seeded = time.perf_counter() - began
    progress(f"{count} context.put entries written in {seeded:.1f} s")
    port = free_port()
    agent.env = {"BZZZ_UCXI_LISTEN": f"127.0.0.1:{port}"}
    agent.start()
    url = f"http://127.0.0.1:{port}"
    with UcxiClient(url, token_file=agent.home / "ucxi.token") as client:
        wait_for(lambda: _answers(client), 30, "UCXI to answer")
    return agent, url, items, seeded


def _answers(client: UcxiClient) -> bool:
    try:
        client.status()
    except Exception:
        return False
    return True


def run(agent: Agent, url: str, items: Items, args: argparse.Namespace) -> dict[str, Any]:
    bench = Bench(agent, url, items, args)
    control = Control.connect(agent.home)
    if control is None:
        raise AssertionError(f"no control socket on {agent.home}")
    store = open_home_store(agent.home)
    try:
        with UcxiClient(url, token_file=agent.home / "ucxi.token") as client, control:
            settle(store)
            cold = bench.cold(client)
            progress(f"cold resolve (the first fold): {cold:.2f} s")
            bench.ucxi_sequential(client, 50)  # warm up both paths
            bench.control_sequential(control, 50)
            position = store.max_position()
            began = time.perf_counter()
            bench.rounds(client, control)
            measured_s = time.perf_counter() - began
            written = kinds_since(store, position)
            after_note = bench.refolds(client, args.refolds, "task.note")
            after_put = bench.refolds(client, args.refolds, cx.PUT)
            cli = bench.cli(args.cli)
    finally:
        store.close()
    paths = {name: p.figures() for name, p in bench.paths.items()}
    useq, cseq = paths["ucxi_sequential"], paths["control_sequential"]
    ucon, ccon = paths["ucxi_concurrent"], paths["control_concurrent"]
    return {
        "cold_resolve_ms": round(cold * 1000, 1),
        "resolve_after_note_ms": ms(after_note),
        "resolve_after_context_ms": ms(after_put),
        "cli_get_ms": ms(cli),
        **paths,
        "ratios": {
            "ucxi_over_control_p50": ratio(useq["latency_ms"]["p50"], cseq["latency_ms"]["p50"]),
            "ucxi_over_control_p99": ratio(useq["latency_ms"]["p99"], cseq["latency_ms"]["p99"]),
            "ucxi_over_control_requests_per_s": ratio(
                useq["requests_per_s"], cseq["requests_per_s"]
            ),
            "ucxi_over_control_concurrent_requests_per_s": ratio(
                ucon["requests_per_s"], ccon["requests_per_s"]
            ),
            "ucxi_over_control_daemon_cpu_per_request": ratio(
                useq["daemon_cpu_ms_per_request"], cseq["daemon_cpu_ms_per_request"]
            ),
            "ucxi_over_fresh_connection_p50": ratio(
                useq["latency_ms"]["p50"],
                paths["control_fresh_connection"]["latency_ms"]["p50"],
            ),
            "after_context_over_cached_p50": ratio(ms(after_put)["p50"], useq["latency_ms"]["p50"]),
        },
        "entries_written_while_measuring": written,
        "measured_s": round(measured_s, 1),
    }


def settle(store: EventStore, timeout: float = 60.0) -> None:
    """Wait until the node wrote nothing for `QUIET_S` (a new founder votes, leads and
    grants role keys in its first seconds: each entry would drop the cached fold)."""
    deadline = time.monotonic() + timeout
    position, since = store.max_position(), time.monotonic()
    while time.monotonic() - since < QUIET_S:
        if time.monotonic() > deadline:
            raise AssertionError(f"the node kept writing for {timeout} s")
        time.sleep(0.1)
        if (now := store.max_position()) != position:
            position, since = now, time.monotonic()


def kinds_since(store: EventStore, position: int) -> dict[str, int]:
    """How many entries of each kind the node stored after `position` (each dropped
    the cached fold)."""
    kinds: Counter[str] = Counter()
    while rows := store.notifications(after=position, limit=10_000):
        kinds.update(row.kind for row in rows)
        position = rows[-1].position
    return dict(kinds.most_common())


def _interrupted(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt


def main() -> None:
    signal.signal(signal.SIGTERM, _interrupted)
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--items", type=int, default=10_000)
    parser.add_argument("--rounds", type=int, default=10)
    parser.add_argument("--requests", type=int, default=300, help="a sequential phase's")
    parser.add_argument("--seconds", type=float, default=2.0, help="a concurrent phase's")
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--refolds", type=int, default=5)
    parser.add_argument("--cli", type=int, default=3, help="`bzzz ucxl get` runs (0: none)")
    args = parser.parse_args()
    began = time.monotonic()
    agent: Agent | None = None
    with tempfile.TemporaryDirectory(prefix="bzzz-ucxi-") as root:
        try:
            agent, url, items, seeded = start(Path(root), args.items)
            started = time.monotonic() - began
            figures = run(agent, url, items, args)
        finally:
            if agent is not None and agent.running():
                try:
                    agent.stop()
                except subprocess.TimeoutExpired:
                    agent.kill()
        tracebacks = agent.log_text().count("Traceback") if agent is not None else 0
    out: dict[str, Any] = {
        "bench": "ucxi",
        "items": args.items,
        "tasks": TASKS,
        "text_bytes": TEXT_BYTES,
        "cpus": os.cpu_count(),
        "concurrency": args.concurrency,
        "rounds": args.rounds,
        "seed_s": round(seeded, 1),
        "start_s": round(started, 1),
        **figures,
        "baseline_note": (
            "control_*: the same ucxl_get as a JSON line on the agent's Unix control socket "
            "(UCXI's backend calls the same handler in-process); control_fresh_connection: "
            "a new connection per request; cli_get_ms: `bzzz ucxl get`, a new process that "
            "folds the store itself"
        ),
        "tracebacks": tracebacks,
        "seconds": round(time.monotonic() - began, 1),
    }
    sys.stdout.write(json.dumps(out) + "\n")


if __name__ == "__main__":
    main()
