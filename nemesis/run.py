"""One nemesis run: build the cluster, run the workload while the executor applies the
schedule, heal, wait for the cluster to settle, stop it and judge every property."""

from __future__ import annotations

import shutil
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bzzz.agent.control import ask
from bzzz.clock import now_ms
from nemesis import checks
from nemesis.checks import Verdict
from nemesis.cluster import TTL_S, Cluster, Node, cluster, stop_node
from nemesis.executor import Executor
from nemesis.schedule import NEEDS_NETEM, Schedule
from nemesis.sink import read_deliveries
from nemesis.workload import History, Workload
from tests.support.agents import converged, proven_leader
from tests.support.netns import qdisc_problem

FIRST_LEADER_S = 90.0
SETTLE_S = 240.0  # to converge after healing: generous, a loaded machine is slow
TASKS_S = 90.0
ESCALATIONS_S = 90.0
MAX_THREAD_WAIT_S = 300.0


@dataclass
class Outcome:
    schedule: Schedule
    verdicts: list[Verdict] = field(default_factory=list)
    skipped: dict[str, str] = field(default_factory=dict)
    summary: str = ""
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        return all(v.ok for v in self.verdicts)

    def report(self) -> str:
        lines = [f"{k}: not run here: {why}" for k, why in self.skipped.items()]
        lines.append(self.summary)
        for verdict in self.verdicts:
            lines.append(verdict.line())
            lines += [f"    {p}" for p in verdict.problems]
        s = self.schedule
        lines.append(
            f"{'CLEAN' if self.ok else 'FAILED'}: seed {s.seed}, {s.nodes} nodes, "
            f"{s.seconds:.0f} s of faults, {self.seconds:.0f} s in all"
        )
        if not self.ok:
            lines.append(
                f"reproduce: python -m nemesis --seed {s.seed} --minutes {s.seconds / 60:g} "
                f"--nodes {s.nodes}"
            )
        return "\n".join(lines)


def _poll(check: Callable[[], Any], timeout: float, every: float = 1.0) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        try:
            value = check()
        except Exception:
            value = None
        if value or time.monotonic() > deadline:
            return value
        time.sleep(every)


def _answer(node: Node, request: dict[str, Any], timeout: float = 15.0) -> dict[str, Any]:
    answer = ask(node.home, request, timeout=timeout)
    if answer is None or not answer.get("ok"):
        raise RuntimeError(f"{node.name} answered {answer}")
    return answer


def run(schedule: Schedule, root: Path, log: Callable[[str], None]) -> Outcome:
    began = time.monotonic()
    outcome = Outcome(schedule)
    if any(f.kind in NEEDS_NETEM for f in schedule.faults):
        problem = qdisc_problem("netem", "delay", "50ms", "loss", "5%")
        if problem is not None:
            outcome.skipped["lossy"] = f"tc netem is not available in this kernel ({problem})"
    for kind, why in outcome.skipped.items():
        log(f"{kind}: not run here: {why}")
    history = History()
    stop = threading.Event()
    with cluster(root, schedule.nodes, schedule.seconds / 60, log) as made:
        agents = [n.agent for n in made.nodes]
        if not _poll(lambda: proven_leader(agents), FIRST_LEADER_S):
            raise RuntimeError("the cluster elected no leader before the faults began")
        observer = checks.Observer(made)
        executor = Executor(made, schedule, log, skipped=dict(outcome.skipped))
        workload = Workload(made, schedule.seed, history)
        threads = [
            threading.Thread(target=observer.run, args=(stop,), daemon=True),
            threading.Thread(target=workload.run, args=(stop,), daemon=True),
        ]
        for thread in threads:
            thread.start()
        try:
            executor.run(threading.Event())
        finally:
            stop.set()
            for thread in threads:
                thread.join(60)
            executor.heal()
        outcome.summary = history.summary()
        log(outcome.summary)
        outcome.verdicts = _settle_and_judge(made, history, executor, log)
        outcome.verdicts.insert(0, observer.verdict())
        if not outcome.ok:
            _keep_stores(made)
    outcome.seconds = time.monotonic() - began
    return outcome


def _settled(made: Cluster) -> bool:
    agents = [n.agent for n in made.nodes]
    return all(a.running() for a in agents) and bool(proven_leader(agents)) and converged(agents)


def _settle_and_judge(
    made: Cluster, history: History, executor: Executor, log: Callable[[str], None]
) -> list[Verdict]:
    verdicts = []
    ok = _poll(lambda: _settled(made), SETTLE_S)
    verdicts.append(
        Verdict(
            "converges after healing",
            bool(ok),
            "one proven leader, equal heads" if ok else f"not within {SETTLE_S:.0f} s",
        )
    )
    log("settled" if ok else "did not settle")

    def boards() -> dict[str, set[str]]:
        return {n.name: {r["id"] for r in _answer(n, {"op": "tasks"})["tasks"]} for n in made.nodes}

    _poll(lambda: all(set(history.tasks) <= b for b in boards().values()), TASKS_S)
    verdicts.append(checks.tasks_listed(history.tasks, _try(boards, {})))

    def views() -> dict[str, list[dict[str, Any]]]:
        return {n.name: _answer(n, {"op": "threads"})["threads"] for n in made.nodes}

    first = [m["ts"] for rows in _try(views, {}).values() for r in rows for m in r["messages"][:1]]
    wait_s = min(
        MAX_THREAD_WAIT_S, max(0.0, (max(first, default=0) + TTL_S * 1000 - now_ms()) / 1000)
    )
    log(f"waiting {wait_s:.0f} s for every thread's ttl")
    time.sleep(wait_s + 2)
    _poll(lambda: all(r["state"] in checks.ENDED for rows in views().values() for r in rows), 60)
    seen = _try(views, {})
    verdicts.append(checks.threads_end(seen))
    escalations: dict[str, str] = {}
    for rows in seen.values():
        escalations.update(checks.escalations_of(rows))

    def delivered() -> bool:
        got = {str(d.get("escalation")) for d in read_deliveries(made.sink_log)}
        return set(escalations) <= got

    _poll(delivered, ESCALATIONS_S)
    verdicts.append(checks.escalations_delivered(escalations, read_deliveries(made.sink_log)))
    _poll(lambda: _settled(made), SETTLE_S / 2)
    stopping_ms = now_ms()
    for node in made.nodes:
        stop_node(node)
    copies = [checks.read_store(n.home, n.name) for n in made.nodes]
    verdicts.append(checks.stores_converge(copies, stopping_ms))
    verdicts.append(checks.acked_entries_kept(history, copies))
    verdicts.append(checks.audits_clean(made))
    verdicts.append(checks.leaders_in_logs(copies))
    verdicts.append(checks.one_live_grant(copies))
    verdicts.append(
        Verdict(
            "no daemon died unless killed",
            not executor.died,
            f"{len(executor.died)} died",
            list(executor.died),
        )
    )
    return verdicts


def _try(call: Callable[[], Any], default: Any) -> Any:
    try:
        return call()
    except Exception:
        return default


def _keep_stores(made: Cluster) -> None:
    """Copy every home out of its tmpfs before it is unmounted: the evidence."""
    for node in made.nodes:
        shutil.copytree(
            node.home,
            made.root / "kept" / node.name,
            ignore=shutil.ignore_patterns("nemesis-filler", "*.sock"),
            ignore_dangling_symlinks=True,
        )
