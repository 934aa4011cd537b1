"""What HMMM coordination costs (issue 19), between real daemons on 127.0.0.1.

A founder (admin role, no tasks of its own) and 5 agents poll one local task folder of
100 tasks, with `hmmm.objection_window_s: 0` so that only the coordination's own cost
shows, and a webhook receiver in this process on every node's
`hmmm.escalation.webhooks`. No auto-claim: the bench claims each task over an agent's
control socket, round-robin, 20 per agent.

1. Plans: every holder posts a plan for each of its tasks (files distinct per task, so
   the rule reviewer has nothing to object to), one after the other, the 5 agents at
   once: 100 threads in flight. From the founder's store: per plan, its entry's time to
   its holder's `hmmm.resolution` (outcome proceed).
2. Messages: chains of `hmmm.msg` in `x:` threads, each a root and 3 replies by 4
   different agents (hops 0 to 3; each reply posted once its parent has reached every
   node), 5 chains at a time. Per message and per other node: its entry's time to the
   moment that node holds it (`{"op": "wait"}`, asked before the message is posted).
3. CPU: the daemons' CPU seconds (/proc) in each phase, per HMMM entry written in it,
   and net of what the idle cluster burns in as long.
4. Escalations: holders escalate 10 resolved threads (`what: escalate`), spread over a
   few seconds; from each escalation entry's time to its first arrival at the receiver
   (posted by the admin), and whether each arrived exactly once.
5. Baselines in the same run: the claim round trip (the control request to the grant,
   from the claims above), and an `append` (task.note) followed to every other node
   exactly as the messages are (same harness, same concurrency).

    python -m bench.hmmm [--tasks 100] [--chains 50] [--escalations 10] [--samples 50]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import signal
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from functools import partial
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from types import FrameType
from typing import Any

from bench.procstat import cpu_seconds
from bench.stats import percentile
from bench.tasks import configure, log_trouble
from bzzz.agent.control import SOCKET_FILE
from bzzz.domain import hmmm as hm
from bzzz.domain.claims import ClaimEntry
from bzzz.domain.payload import payload_map
from bzzz.home.node import open_home_store
from bzzz.projections.threads import hmmm_entries
from bzzz.store import EventStore
from bzzz.tasks.local import write_task
from tests.support.agents import Agent, found, join, proven_leader, stop_all, wait_for
from tests.support.webhook_receiver import WebhookReceiver

AGENTS = 5
MAX_TASKS = 25  # above the 20 each agent is given: no refusal for being full
POLL_S = 1.0
HOPS = 3  # the default `hmmm.max_hops`: a chain is a root and 3 replies
CONCURRENCY = 5  # chains (and baseline samples) in flight at once
REGISTER_S = 0.02  # lets the waits reach the nodes before the message is posted
MAX_LINE = 1 << 24


def progress(message: str) -> None:
    sys.stderr.write(f"[bench.hmmm] {message}\n")
    sys.stderr.flush()


def now_ms() -> float:
    return time.time() * 1000


def dist(values: list[float], digits: int = 1) -> dict[str, Any]:
    """n, p50, p99 and max of `values` (milliseconds, usually)."""
    return {
        "n": len(values),
        "p50": round(percentile(values, 0.5), digits),
        "p99": round(percentile(values, 0.99), digits),
        "max": round(max(values), digits) if values else 0.0,
    }


class TimedReceiver(WebhookReceiver):
    """The test suite's receiver, noting when each idempotency key first arrived."""

    def __init__(self) -> None:
        super().__init__()
        self.arrivals: dict[str, float] = {}  # key -> wall-clock ms of its first request

    def _handle(self, handler: BaseHTTPRequestHandler) -> None:
        arrived = now_ms()
        key = handler.headers.get("Idempotency-Key")
        if key is not None:
            with self._lock:
                self.arrivals.setdefault(key, arrived)
        super()._handle(handler)


async def control(
    home: Path, request: dict[str, Any], timeout: float = 60.0
) -> tuple[dict[str, Any], float]:
    """One request on a fresh connection: the answer, and the wall-clock ms it came."""
    reader, writer = await asyncio.open_unix_connection(str(home / SOCKET_FILE), limit=MAX_LINE)
    try:
        writer.write(json.dumps(request).encode() + b"\n")
        await writer.drain()
        line = await asyncio.wait_for(reader.readline(), timeout)
        arrived = now_ms()
        answer = json.loads(line) if line else {"ok": False, "error": "no answer"}
        return answer, arrived
    finally:
        writer.close()


class Cpu:
    """The daemons' CPU seconds over one phase."""

    def __init__(self, agents: list[Agent]) -> None:
        self.pids = [a.proc.pid for a in agents if a.proc is not None]
        self.before = [0.0] * len(self.pids)
        self.began = 0.0

    def start(self) -> None:
        self.before = [cpu_seconds(p) for p in self.pids]
        self.began = time.monotonic()

    def stop(self) -> tuple[float, float]:
        """CPU seconds of every daemon together, and the wall seconds."""
        used = sum(cpu_seconds(p) - b for p, b in zip(self.pids, self.before, strict=True))
        return used, time.monotonic() - self.began


def kinds_since(store: EventStore, position: int) -> Counter[str]:
    """How many entries of each kind the node stored after `position`."""
    kinds: Counter[str] = Counter()
    while rows := store.notifications(after=position, limit=10_000):
        kinds.update(row.kind for row in rows)
        position = rows[-1].position
    return kinds


def cpu_figures(
    cpu_s: float, seconds: float, idle_cores: float, kinds: Counter[str], per: int
) -> dict[str, Any]:
    """The phase's CPU, per entry of the kind measured (`per` of them)."""
    net = max(0.0, cpu_s - idle_cores * seconds)
    return {
        "seconds": round(seconds, 2),
        "daemons_cpu_s": round(cpu_s, 2),
        "entries_written": sum(kinds.values()),
        "entries_by_kind": dict(kinds.most_common()),
        "cpu_ms_per_entry_measured": round(cpu_s * 1000 / per, 2) if per else None,
        "cpu_ms_per_entry_net_of_idle": round(net * 1000 / per, 2) if per else None,
    }


# -- the cluster ----------------------------------------------------------------------


def start_cluster(root: Path, folder: Path, hook_url: str) -> list[Agent]:
    """The founder, then the agents joined to it; every node polls `folder`."""
    tasks = {"poll_s": POLL_S, "sources": [{"type": "local", "path": str(folder), "name": "team"}]}
    hmmm = {"objection_window_s": 0, "escalation": {"webhooks": [{"url": hook_url}]}}
    agent = {"auto_claim": False, "max_tasks": MAX_TASKS}
    founder = found(root)
    configure(founder, tasks=tasks, hmmm=hmmm)
    agents = [founder.start()]
    try:
        for n in range(1, AGENTS + 1):
            node = join(root, f"a{n}", founder)
            node.peers = [x.address for x in agents]
            configure(node, tasks=tasks, hmmm=hmmm, agent=agent)
            agents.append(node.start())
        wait_for(lambda: proven_leader(agents), timeout=60, what="a proven leader")
    except BaseException:
        stop_all(agents)
        raise
    return agents


class Bench:
    def __init__(self, agents: list[Agent], receiver: TimedReceiver) -> None:
        self.agents = agents
        self.workers = agents[1:]
        self.receiver = receiver
        self.ids = {a.home.name: a.agent_id for a in agents}
        self.stores = {a.home.name: open_home_store(a.home) for a in agents}
        self.founder_store = self.stores[agents[0].home.name]
        self.cpu = Cpu(agents)
        self.idle_cores = 0.0

    def close(self) -> None:
        for store in self.stores.values():
            store.close()

    async def tasks_listed(self, count: int, timeout: float = 60.0) -> list[str]:
        deadline = time.monotonic() + timeout
        while True:
            listed = []
            for agent in self.agents:
                answer, _ = await control(agent.home, {"op": "tasks"})
                listed.append(sorted(row["id"] for row in answer.get("tasks", [])))
            if all(len(rows) >= count for rows in listed):
                return listed[0]
            if time.monotonic() > deadline:
                raise AssertionError(f"only {[len(r) for r in listed]} of {count} tasks listed")
            await asyncio.sleep(0.5)

    async def idle(self, seconds: float) -> float:
        self.cpu.start()
        await asyncio.sleep(seconds)
        used, took = self.cpu.stop()
        self.idle_cores = used / took
        return self.idle_cores

    # -- claims: the first baseline ----------------------------------------------------

    async def claims(self, tasks: list[str]) -> tuple[dict[str, list[str]], dict[str, Any]]:
        """Each agent claims its share in turn, the agents at once; who holds what."""
        share = {a.home.name: tasks[n :: len(self.workers)] for n, a in enumerate(self.workers)}
        held: dict[str, list[str]] = {name: [] for name in share}
        rtts: list[float] = []
        refused: Counter[str] = Counter()

        async def claim_all(agent: Agent) -> None:
            for task in share[agent.home.name]:
                began = time.perf_counter()
                request = {"op": "claim", "task": task, "needs": [], "wait": 20}
                answer, _ = await control(agent.home, request, timeout=30)
                if answer.get("status") == "granted":
                    rtts.append((time.perf_counter() - began) * 1000)
                    held[agent.home.name].append(task)
                else:
                    refused[str(answer.get("reason", answer.get("error")))[:60]] += 1

        position = self.founder_store.max_position()
        self.cpu.start()
        await asyncio.gather(*(claim_all(a) for a in self.workers))
        cpu_s, seconds = self.cpu.stop()
        await asyncio.sleep(1)  # the last grants reach the founder
        kinds = kinds_since(self.founder_store, position)
        granted = sum(len(v) for v in held.values())
        return held, {
            "granted": granted,
            "not_granted": dict(refused),
            "round_trip_ms": dist(rtts),
            "claims_per_s": round(granted / seconds, 1) if seconds else 0.0,
            **cpu_figures(cpu_s, seconds, self.idle_cores, kinds, granted),
        }

    # -- 1. plans ------------------------------------------------------------------------

    async def plans(self, held: dict[str, list[str]]) -> dict[str, Any]:
        rtts: list[float] = []
        errors: Counter[str] = Counter()

        async def post_all(agent: Agent) -> None:
            for task in held[agent.home.name]:
                slug = task.split(":", 1)[1]
                request = {
                    "op": "hmmm",
                    "what": "plan",
                    "thread": task,
                    "text": f"Do {slug}: change its module and its test.",
                    "files": [f"src/{slug}.py", f"tests/test_{slug}.py"],
                }
                began = time.perf_counter()
                answer, _ = await control(agent.home, request)
                rtts.append((time.perf_counter() - began) * 1000)
                if not answer.get("ok"):
                    errors[str(answer.get("error"))[:80]] += 1

        total = sum(len(v) for v in held.values())
        position = self.founder_store.max_position()
        self.cpu.start()
        await asyncio.gather(*(post_all(a) for a in self.workers))
        posted_s = time.monotonic() - self.cpu.began
        # Every resolution on the founder: read from its store, which costs no daemon CPU.
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            found_ = kinds_since(self.founder_store, position)
            if found_[hm.RESOLUTION] >= total - sum(errors.values()):
                break
            await asyncio.sleep(0.05)
        cpu_s, seconds = self.cpu.stop()
        kinds = kinds_since(self.founder_store, position)

        plan_ts: dict[str, int] = {}
        resolved_ts: dict[str, int] = {}
        outcomes: Counter[str] = Counter()
        for row in self._since(position, [hm.PLAN, hm.RESOLUTION]):
            entry = row.decode()
            data = payload_map(entry.body) or {}
            thread = str(data.get("thread"))
            if entry.kind == hm.PLAN:
                plan_ts.setdefault(thread, entry.ts)
            else:
                outcomes[str(data.get("outcome"))] += 1
                if data.get("outcome") == "proceed":
                    resolved_ts.setdefault(thread, entry.ts)
        latencies = [float(resolved_ts[t] - ts) for t, ts in plan_ts.items() if t in resolved_ts]
        answer, _ = await control(self.agents[0].home, {"op": "threads"})
        states = Counter(row["state"] for row in answer.get("threads", []) if row["id"] in plan_ts)
        hmmm_entries = sum(n for k, n in kinds.items() if k in hm.KINDS)
        return {
            "threads": total,
            "post_errors": dict(errors),
            "post_round_trip_ms": dist(rtts),
            "posted_s": round(posted_s, 2),
            "plan_to_resolution_ms": dist(latencies),
            "unresolved": len(plan_ts) - len(latencies),
            "outcomes": dict(outcomes),
            "objections": kinds[hm.OBJECTION],
            "states_on_founder": dict(states),
            "hmmm_entries": hmmm_entries,
            **cpu_figures(cpu_s, seconds, self.idle_cores, kinds, hmmm_entries),
        }

    def _since(self, position: int, kinds: list[str]) -> list[Any]:
        rows: list[Any] = []
        while found_ := self.founder_store.notifications(after=position, limit=10_000, kinds=kinds):
            rows += found_
            position = found_[-1].position
        return rows

    # -- 2. messages, and the append baseline -------------------------------------------

    async def follow(
        self, author: Agent, post: Callable[[], Awaitable[dict[str, Any]]]
    ) -> dict[str, Any]:
        """Post one entry on `author` (through `post`, which answers the control
        answer) and time it to every other node: waits asked for the seq it should get,
        then the post. The entry's hash, its post's round trip and each node's delay."""
        key = self.ids[author.home.name]
        store = self.stores[author.home.name]
        head = await asyncio.to_thread(store.head, bytes.fromhex(key))
        expected = (head.seq if head is not None else 0) + 1
        others = [a for a in self.agents if a is not author]

        def waits(seq: int) -> list[asyncio.Task[tuple[dict[str, Any], float]]]:
            request = {"op": "wait", "author": key, "seq": seq, "timeout": 20}
            return [asyncio.create_task(control(o.home, request, 30)) for o in others]

        pending = waits(expected)
        await asyncio.sleep(REGISTER_S)
        began = time.perf_counter()
        answer = await post()
        rtt = (time.perf_counter() - began) * 1000
        if not answer.get("ok"):
            for task in pending:
                task.cancel()
            await asyncio.gather(*pending, return_exceptions=True)
            return {"error": str(answer.get("error"))[:100]}
        entry_hash = bytes.fromhex(answer.get("entry") or answer["hash"])
        rows = await asyncio.to_thread(
            store.entries, bytes.fromhex(key), after=expected - 1, upto=expected + 50
        )
        entry = next(r.decode() for r in rows if r.decode().hash == entry_hash)
        late = entry.seq != expected
        if late:  # the author wrote something else meanwhile (another chain's message,
            # a renewal): wait for the real seq, too late to time it
            for task in pending:
                task.cancel()
            await asyncio.gather(*pending, return_exceptions=True)
            pending = waits(entry.seq)
        results = await asyncio.gather(*pending)
        delays = [at - entry.ts for reply, at in results if reply.get("reached")]
        return {
            "hash": entry_hash.hex(),
            "rtt": rtt,
            "delays": delays,
            "missing": len(others) - len(delays),
            "late": late,
        }

    async def messages(self, chains: int) -> dict[str, Any]:
        by_hop: dict[int, list[float]] = {h: [] for h in range(HOPS + 1)}
        everywhere: list[float] = []
        rtts: list[float] = []
        chain_ms: list[float] = []
        counts: Counter[str] = Counter()
        gate = asyncio.Semaphore(CONCURRENCY)
        types = ["clarification_needed", "answer", "suggestion", "concern"]

        async def chain(n: int) -> None:
            async with gate:
                thread = f"x:{n + 1:032x}"
                parent: str | None = None
                began = time.perf_counter()
                for hop in range(HOPS + 1):
                    author = self.workers[(n + hop) % len(self.workers)]
                    request: dict[str, Any] = {
                        "op": "hmmm",
                        "what": "say",
                        "thread": thread,
                        "query_type": types[hop],
                        "text": f"chain {n}, hop {hop}: is the interface stable?",
                        "parent": parent,
                    }
                    got = await self.follow(author, partial(answer_of, author.home, request))
                    if "error" in got:
                        counts["post_errors"] += 1
                        counts[f"error: {got['error']}"] += 1
                        return
                    counts["posted"] += 1
                    counts["missing"] += got["missing"]
                    rtts.append(got["rtt"])
                    parent = got["hash"]
                    if got["late"]:  # its waits were asked after it was posted
                        counts["late_seq_not_timed"] += 1
                        continue
                    by_hop[hop] += got["delays"]
                    if got["delays"]:
                        everywhere.append(max(got["delays"]))
                chain_ms.append((time.perf_counter() - began) * 1000)

        position = self.founder_store.max_position()
        self.cpu.start()
        await asyncio.gather(*(chain(n) for n in range(chains)))
        cpu_s, seconds = self.cpu.stop()
        kinds = kinds_since(self.founder_store, position)
        every = [d for values in by_hop.values() for d in values]
        return {
            "chains": chains,
            "hops": HOPS,
            "concurrent_chains": CONCURRENCY,
            **dict(counts),
            "post_round_trip_ms": dist(rtts),
            "propagation_ms": dist(every),  # one message to one other node
            "propagation_ms_by_hop": {str(h): dist(v) for h, v in by_hop.items()},
            "on_every_node_ms": dist(everywhere),  # one message to the last other node
            "chain_ms": dist(chain_ms),  # root posted .. last reply on every node
            "hmmm_entries": kinds[hm.MSG],
            **cpu_figures(cpu_s, seconds, self.idle_cores, kinds, kinds[hm.MSG]),
        }

    async def appends(self, samples: int) -> dict[str, Any]:
        """The baseline: a plain `append` followed to every other node the same way."""
        delays: list[float] = []
        everywhere: list[float] = []
        rtts: list[float] = []
        counts: Counter[str] = Counter()
        gate = asyncio.Semaphore(CONCURRENCY)

        async def sample(n: int) -> None:
            async with gate:
                author = self.workers[n % len(self.workers)]
                request = {"op": "append", "kind": "task.note", "data": {"n": n}}
                got = await self.follow(author, partial(answer_of, author.home, request))
                if "error" in got:
                    counts["errors"] += 1
                    return
                counts["missing"] += got["missing"]
                rtts.append(got["rtt"])
                if got["late"]:
                    counts["late_seq_not_timed"] += 1
                    return
                delays.extend(got["delays"])
                if got["delays"]:
                    everywhere.append(max(got["delays"]))

        position = self.founder_store.max_position()
        self.cpu.start()
        await asyncio.gather(*(sample(n) for n in range(samples)))
        cpu_s, seconds = self.cpu.stop()
        kinds = kinds_since(self.founder_store, position)
        return {
            "what": "append (task.note) on one agent, the time until each other node "
            "holds it (op wait), same harness and concurrency as the hmmm.msg chains",
            "samples": samples,
            **dict(counts),
            "append_round_trip_ms": dist(rtts),
            "propagation_ms": dist(delays),
            "on_every_node_ms": dist(everywhere),
            **cpu_figures(cpu_s, seconds, self.idle_cores, kinds, kinds["task.note"]),
        }

    # -- 4. escalations ------------------------------------------------------------------

    async def escalations(self, held: dict[str, list[str]], count: int) -> dict[str, Any]:
        chosen = [
            (agent, held[agent.home.name][k])
            for k in range(count)
            for agent in self.workers
            if k < len(held[agent.home.name])
        ][:count]
        made: dict[str, str] = {}  # escalation entry hash -> thread
        errors: Counter[str] = Counter()
        for agent, task in chosen:
            request = {
                "op": "hmmm",
                "what": "escalate",
                "thread": task,
                "reason": "bench: a person decides",
            }
            answer, _ = await control(agent.home, request)
            if answer.get("ok"):
                made[answer["entry"]] = task
            else:
                errors[str(answer.get("error"))[:80]] += 1
            await asyncio.sleep(0.37)  # spread over the admin's 1 s delivery tick
        deadline = time.monotonic() + 40
        while time.monotonic() < deadline and not set(made) <= set(self.receiver.unique):
            await asyncio.sleep(0.05)
        await asyncio.sleep(3)  # a few more delivery passes: nothing may come again
        latencies = []
        for key in made:
            delivered = self.receiver.unique.get(key)
            if delivered is not None and isinstance(delivered.json, dict):
                latencies.append(self.receiver.arrivals[key] - float(delivered.json["ts"]))
        received = Counter(r.key for r in self.receiver.received)
        return {
            "how": "the holder writes hmmm.escalation (what: escalate) on a resolved thread; "
            "the admin posts it (with objection_window_s 0 the holder proceeds before "
            "another node's blocking objection can land, so that path cannot be driven)",
            "made": len(made),
            "errors": dict(errors),
            "delivered": len(latencies),
            "requests": len(self.receiver.requests),
            "received": len(self.receiver.received),
            "exactly_once": bool(made) and all(received[k] == 1 for k in made),
            "unexpected": sorted(set(received) - set(made)),
            "entry_to_receiver_ms": dist(latencies),
        }


def fold_cost(store: EventStore) -> dict[str, Any]:
    """What one fold of every thread (`fold_threads`, as each node does again on each
    HMMM arrival and twice more per post) costs in this process over the node's HMMM
    history at the end, and over its first quarter: the cost grows with the history."""
    entries = [
        ClaimEntry(e.author, e.kind, e.body, e.hash, e.ts, e.lamport) for e in hmmm_entries(store)
    ]
    at: dict[str, float] = {}
    for part in (entries[: len(entries) // 4], entries):
        began = time.perf_counter()
        for _ in range(5):
            hm.fold_threads(part, hm.Limits(window_ms=0), lambda *_: True)
        at[str(len(part))] = round((time.perf_counter() - began) * 1000 / 5, 2)
    return {"hmmm_entries": len(entries), "fold_ms_by_entries": at}


async def answer_of(home: Path, request: dict[str, Any]) -> dict[str, Any]:
    answer, _ = await control(home, request)
    return answer


async def run(
    agents: list[Agent], receiver: TimedReceiver, args: argparse.Namespace
) -> dict[str, Any]:
    bench = Bench(agents, receiver)
    try:
        tasks = await bench.tasks_listed(args.tasks)
        progress(f"{len(tasks)} tasks listed on every node")
        idle = await bench.idle(args.idle_s)
        held, claims = await bench.claims(tasks[: args.tasks])
        progress(f"claims: {claims['granted']} granted, p50 {claims['round_trip_ms']['p50']} ms")
        plans = await bench.plans(held)
        progress(f"plans: p50 {plans['plan_to_resolution_ms']['p50']} ms to the resolution")
        messages = await bench.messages(args.chains)
        progress(f"messages: p50 {messages['propagation_ms']['p50']} ms to another node")
        appends = await bench.appends(args.samples)
        progress(f"appends: p50 {appends['propagation_ms']['p50']} ms to another node")
        escalations = await bench.escalations(held, args.escalations)
        progress(f"escalations: {escalations['delivered']} delivered")
        fold = await asyncio.to_thread(fold_cost, bench.founder_store)
    finally:
        bench.close()
    return {
        "idle_cores": round(idle, 3),
        "claims": claims,
        "plans": plans,
        "messages": messages,
        "escalations": escalations,
        "baseline_append": appends,
        "threads_fold_in_process": fold,
    }


def ratio(a: float | None, b: float | None) -> float | None:
    return round(a / b, 2) if a is not None and b else None


def _interrupted(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


def main() -> None:
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, _interrupted)
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--tasks", type=int, default=100)
    parser.add_argument("--chains", type=int, default=50, help="of 4 messages each")
    parser.add_argument("--escalations", type=int, default=10)
    parser.add_argument("--samples", type=int, default=50, help="baseline appends")
    parser.add_argument("--idle-s", type=float, default=3.0)
    parser.add_argument("--keep", type=Path, help="run the cluster in this new folder, kept")
    args = parser.parse_args()
    began = time.monotonic()
    agents: list[Agent] = []
    with contextlib.ExitStack() as stack:
        if args.keep is not None:
            args.keep.mkdir(parents=True)
            root = args.keep.resolve()
        else:
            root = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="bzzz-hmmm-")))
        receiver = TimedReceiver()
        stack.enter_context(receiver)
        folder = root / "shared-tasks"
        for n in range(args.tasks):
            write_task(folder, f"Bench task {n}", f"Do thing {n}.", priority=(n * 7) % 4)
        try:
            agents = start_cluster(root, folder, receiver.url)
            started_s = time.monotonic() - began
            progress(f"{len(agents)} daemons up in {started_s:.1f} s")
            figures = asyncio.run(run(agents, receiver, args))
        finally:
            stop_all(agents)
        trouble = log_trouble(agents)
        tracebacks = sum(a.log_text().count("Traceback") for a in agents)
    plans, messages = figures["plans"], figures["messages"]
    appends, claims = figures["baseline_append"], figures["claims"]
    out: dict[str, Any] = {
        "bench": "hmmm",
        "cluster": {
            "daemons": len(agents),
            "agents": AGENTS,
            "tasks": args.tasks,
            "max_tasks": MAX_TASKS,
            "objection_window_s": 0,
            "start_s": round(started_s, 1),
        },
        **figures,
        "baseline_note": (
            "claims.round_trip_ms: the claim request to its grant over the control socket "
            "(5 agents at once); baseline_append: a plain entry followed to every other "
            "node exactly as each hmmm.msg is"
        ),
        "ratios": {
            "plan_to_resolution_p50_vs_claim_p50": ratio(
                plans["plan_to_resolution_ms"]["p50"], claims["round_trip_ms"]["p50"]
            ),
            "msg_propagation_p50_vs_append": ratio(
                messages["propagation_ms"]["p50"], appends["propagation_ms"]["p50"]
            ),
            "msg_propagation_p99_vs_append": ratio(
                messages["propagation_ms"]["p99"], appends["propagation_ms"]["p99"]
            ),
            "msg_post_p50_vs_append": ratio(
                messages["post_round_trip_ms"]["p50"], appends["append_round_trip_ms"]["p50"]
            ),
            "msg_cpu_per_entry_vs_append": ratio(
                messages["cpu_ms_per_entry_measured"], appends["cpu_ms_per_entry_measured"]
            ),
        },
        "log_trouble": trouble,
        "tracebacks": tracebacks,
        "seconds": round(time.monotonic() - began, 1),
    }
    sys.stdout.write(json.dumps(out) + "\n")


if __name__ == "__main__":
    main()
