"""Task intake and auto-claim (issue 18).

1. GitHub sync: the GitHub stand-in with 10 repositories of 100 issues labelled
   ``bzzz-task``, polled by a `GitHubSource` in this process (real HTTP on 127.0.0.1,
   with a token). The first sync (every open issue, then one delta per repository): its
   seconds, requests and rate limit used; the second with nothing changed (goal: every
   request a 304, no rate limit used). The first poll goes through `plan_sync` against
   an empty board (the entries it would write, and the time), those entries are folded
   into a board, and the second poll is planned against it (goal: nothing to write).
   Medians over a few rounds, each with a new source.

2. Auto-claim spread: a founder (admin role, no auto-claim) and 5 agents that join with
   `agent.auto_claim` and `max_tasks` 2, all polling one local task folder of 500 task
   files (mixed priorities). An outside driver marks each held task done over the
   control socket as soon as it sees it, so slots free up, until the target is done.
   Counted from the entries (the founder's store): grants, claim requests, refusals
   (and why), refusals per grant (lower is better), grants per second.

3. The reference in the same run: the same cluster without `auto_claim`, each agent
   driven from outside by two naive pickers (two slots, as `max_tasks` 2) that walk the
   board most urgent first, oldest first, asking for each claimable task in turn and
   finishing it at once: the same claim path, none of the chooser's spreading (skip
   what another agent asked for, random among the first few, rest after a refusal).

    python -m bench.tasks [--rounds 5] [--tasks 500] [--done 500] [--run-s 100]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import re
import signal
import statistics
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from types import FrameType
from typing import Any

import yaml

from bench.procstat import cpu_seconds
from bzzz.agent.control import Control, ask
from bzzz.domain import claims as cl
from bzzz.domain import task_entries as te
from bzzz.domain.board import Board, apply_board
from bzzz.domain.intake import plan_sync
from bzzz.domain.payload import encode_payload, payload_map
from bzzz.home.config import GitHubSourceConfig
from bzzz.home.node import open_home_store
from bzzz.store import EventStore
from bzzz.tasks.github_source import github_source_of
from bzzz.tasks.local import LocalFolderSource, write_task
from tests.support.agents import Agent, found, join, proven_leader, stop_all, wait_for
from tests.support.github_standin import GitHubStandIn

TOKEN = "ghp_bench_standin_0123456789"
TOKEN_ENV = "BZZZ_BENCH_GH_TOKEN"
LABEL = "bzzz-task"
AGENTS = 5
MAX_TASKS = 2
POLL_S = 1.0
HELD_STATES = {"claimed", "planning", "working", "review", "escalated"}


def progress(message: str) -> None:
    sys.stderr.write(f"[bench.tasks] {message}\n")
    sys.stderr.flush()


def median(values: list[float]) -> float:
    return statistics.median(values) if values else 0.0


# -- 1. GitHub sync -----------------------------------------------------------------------


def _fold(plan_entries: list[tuple[str, dict[str, Any]]], term: int) -> tuple[Board, float]:
    """A board with the planned entries folded in, as every node would; the fold's ms."""
    author = bytes(32)
    entries = [
        cl.ClaimEntry(
            author=author,
            kind=kind,
            body=encode_payload(body),
            hash=n.to_bytes(32, "big"),
            ts=1_700_000_000_000 + n,
            lamport=n,
        )
        for n, (kind, body) in enumerate(plan_entries, 1)
    ]
    board = Board()
    began = time.perf_counter()
    apply_board(board, entries, {term: author})
    return board, (time.perf_counter() - began) * 1000


async def _github_rounds(
    gh: GitHubStandIn, repos: list[str], issues: int, rounds: int
) -> dict[str, Any]:
    config = GitHubSourceConfig(
        type="github",
        repos=repos,
        api_url=gh.url,
        token_env=TOKEN_ENV,
        name="github",
        label=LABEL,
        mirror=False,
    )
    figures: dict[str, list[float]] = {}

    def note(key: str, value: float) -> None:
        figures.setdefault(key, []).append(value)

    checks: list[str] = []
    with tempfile.TemporaryDirectory(prefix="bzzz-bench-gh-") as home:
        for n in range(rounds):
            source = github_source_of(config, Path(home), environ={TOKEN_ENV: TOKEN})
            gh.reset_counters()
            began = time.perf_counter()
            first = await source.poll(None)
            note("first_s", time.perf_counter() - began)
            note("first_requests", gh.requests)
            note("first_rate_used", gh.rate_used)
            listed = sum(len(c.specs) for c in first.changes)
            if listed != issues * len(repos) or first.problems:
                checks.append(f"round {n}: first poll listed {listed}, {first.problems[:3]}")

            began = time.perf_counter()
            plan = plan_sync(Board(), "github", first, term=1)
            note("plan_first_ms", (time.perf_counter() - began) * 1000)
            note("plan_first_entries", len(plan.entries) + (plan.synced is not None))
            written = [*plan.entries] + ([(te.SYNCED, plan.synced)] if plan.synced else [])
            board, fold_ms = _fold(written, term=1)
            note("fold_first_ms", fold_ms)

            gh.reset_counters()
            began = time.perf_counter()
            second = await source.poll(first.cursor)
            note("second_s", time.perf_counter() - began)
            note("second_requests", gh.requests)
            note("second_not_modified", gh.not_modified)
            note("second_rate_used", gh.rate_used)
            began = time.perf_counter()
            again = plan_sync(board, "github", second, term=1)
            note("plan_second_ms", (time.perf_counter() - began) * 1000)
            note("plan_second_entries", len(again.entries) + (again.synced is not None))
            if second.changes or len(second.unchanged) != len(repos):
                checks.append(
                    f"round {n}: second poll {len(second.changes)} changed scopes, "
                    f"{len(second.unchanged)} unchanged"
                )
    out: dict[str, Any] = {
        key: round(median(values), 4 if key.endswith("_s") else 2)
        for key, values in figures.items()
    }
    out["first_s_all"] = [round(v, 3) for v in figures["first_s"]]
    out["problems"] = checks
    return out


def github_sync(repos: int, issues: int, rounds: int) -> dict[str, Any]:
    with GitHubStandIn(token=TOKEN) as gh:
        names = [f"bench-org/repo-{r}" for r in range(repos)]
        for name in names:
            for i in range(issues):
                labels = [LABEL, f"priority-{i % 4}"]
                gh.add_issue(name, f"Issue {i} of {name}", f"Body of issue {i}", labels=labels)
        # The issues are older than the first listing's delta window (a second before
        # the server's time): the delta after the full listing is empty, as on a
        # repository whose issues are not all brand new.
        time.sleep(2.1)
        progress(f"github: {repos} repos x {issues} issues, {rounds} rounds")
        result = asyncio.run(_github_rounds(gh, names, issues, rounds))
    return {"repos": repos, "issues_per_repo": issues, "rounds": rounds, **result}


# -- 2. and 3. Claims over a shared task folder ----------------------------------------


def configure(node: Agent, **sections: dict[str, Any]) -> None:
    """Merge sections into the node's config.yaml (before it starts)."""
    path = node.home / "config.yaml"
    data = yaml.safe_load(path.read_text())
    for key, value in sections.items():
        data.setdefault(key, {}).update(value)
    path.write_text(yaml.safe_dump(data))


def stage_tasks(folder: Path, count: int) -> Path:
    """`count` task files, priorities 0 to 3 mixed, written aside to move in at once."""
    staged = folder.parent / f"{folder.name}-staged"
    for n in range(count):
        write_task(staged, f"Bench task {n}", f"Do thing {n}.", priority=(n * 7) % 4)
    return staged


def start_cluster(root: Path, folder: Path, auto_claim: bool) -> list[Agent]:
    """The founder, then the agents joined to it; every node polls `folder`."""
    tasks = {"poll_s": POLL_S, "sources": [{"type": "local", "path": str(folder), "name": "team"}]}
    founder = found(root)
    configure(founder, tasks=tasks)
    agents = [founder.start()]
    try:
        for n in range(1, AGENTS + 1):
            node = join(root, f"a{n}", founder)
            node.peers = [x.address for x in agents]
            configure(node, tasks=tasks, agent={"auto_claim": auto_claim, "max_tasks": MAX_TASKS})
            agents.append(node.start())
        wait_for(lambda: proven_leader(agents), timeout=60, what="a proven leader")
    except BaseException:
        stop_all(agents)
        raise
    return agents


def _entries_since(store: EventStore, position: int) -> list[tuple[str, int, dict[str, Any]]]:
    """(kind, ts, body) of the claim and completion entries one node stored after
    `position`, in the order the board folds them (Lamport clock, then author)."""
    found_: list[tuple[tuple[int, bytes], str, int, dict[str, Any]]] = []
    kinds = [*cl.KINDS, te.COMPLETED]
    while rows := store.notifications(after=position, limit=10_000, kinds=kinds):
        for row in rows:
            e = row.decode()
            found_.append(((e.lamport, e.author), e.kind, e.ts, payload_map(e.body) or {}))
        position = rows[-1].position
    found_.sort(key=lambda item: item[0])
    return [(kind, ts, body) for _, kind, ts, body in found_]


def _why(reason: str) -> str:
    """A refusal's reason without the names in it: held, at max tasks, done, ..."""
    if reason.startswith("already held"):
        return "held_by_another"
    if "max tasks" in reason:
        return "at_max_tasks"
    first, _, rest = reason.partition(" ")
    if ":" in first and rest:  # "local:some-task is done": the board's vetting
        return "task " + rest.split(":")[0][:40]
    return reason[:60]


def count_claims(store: EventStore, position: int, names: dict[str, str]) -> dict[str, Any]:
    """Grants, requests and refusals in the entries, and the grants per agent."""
    grants: list[int] = []
    per_agent: Counter[str] = Counter()
    requests = 0
    refused: Counter[str] = Counter()
    reissued = 0
    done: set[str] = set()
    on_done: set[str] = set()
    for kind, ts, body in _entries_since(store, position):
        if kind == te.COMPLETED:
            done.add(str(body.get("task")))
        elif kind == cl.REQUESTED:
            requests += 1
        elif kind == cl.REFUSED:
            refused[_why(str(body.get("reason")))] += 1
        elif kind == cl.GRANTED:
            for grant in cl.grant_maps(body) or []:
                if grant.get("request") is None:
                    reissued += 1
                    continue
                grants.append(ts)
                if grant.get("task") in done:
                    on_done.add(str(grant.get("task")))
                claimant = grant.get("claimant")
                who = claimant.hex() if isinstance(claimant, bytes) else "?"
                per_agent[names.get(who, who[:12])] += 1
    span_s = (max(grants) - min(grants)) / 1000 if len(grants) > 1 else 0.0
    total_refused = sum(refused.values())
    return {
        "claim_requests": requests,
        "granted": len(grants),
        "reissued_grants": reissued,
        "refused": total_refused,
        "refused_by_reason": dict(refused.most_common()),
        "refused_per_grant": round(total_refused / max(1, len(grants)), 3),
        "requests_per_grant": round(requests / max(1, len(grants)), 3),
        "grant_span_s": round(span_s, 2),
        "grants_per_s": round((len(grants) - 1) / span_s, 2) if span_s else 0.0,
        "grants_per_agent": dict(sorted(per_agent.items())),
        # granted after the task's completion: the board ignores the grant, the holder
        # renews it (the slot stays taken) and a new leader re-issues it
        "granted_tasks_already_done": len(on_done),
    }


class Finisher:
    """Marks held tasks done from outside, one thread and control connection per agent."""

    def __init__(self, agents: list[Agent], target: int, deadline: float) -> None:
        self.agents = agents
        self.target = target
        self.deadline = deadline
        self.done: set[str] = set()
        self.granted_done: set[str] = set()  # granted, but already done: not reported again
        self.report_errors: Counter[str] = Counter()
        self.lock = threading.Lock()
        self.stop = threading.Event()
        self.first_done: float | None = None
        self.last_done: float | None = None

    def finished(self, task: str) -> None:
        with self.lock:
            self.done.add(task)
            now = time.monotonic()
            self.first_done = self.first_done or now
            self.last_done = now
            if len(self.done) >= self.target:
                self.stop.set()

    def report(self, control: Control, task: str) -> bool:
        reply = control.ask({"op": "task_report", "task": task, "what": "done", "result": "bench"})
        if reply is not None and reply.get("ok"):
            self.finished(task)
            return True
        error = str((reply or {}).get("error", "no answer"))
        if "that is done" in error:  # granted after another agent had finished it
            with self.lock:
                self.granted_done.add(task)
            error = "completed on a task that is done"
        self.report_errors[error[:80]] += 1
        return False

    def run(self, work: Callable[[Agent, Control], None], per_agent: int = 1) -> None:
        def body(agent: Agent) -> None:
            control = Control.connect(agent.home, timeout=30)
            assert control is not None, agent.home
            with control:
                while not self.stop.is_set() and time.monotonic() < self.deadline:
                    work(agent, control)

        threads = [
            threading.Thread(target=body, args=(agent,), daemon=True)
            for agent in self.agents
            for _ in range(per_agent)
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=max(1.0, self.deadline - time.monotonic() + 30))
        self.stop.set()


def auto_claim_work(finisher: Finisher, ids: dict[str, str]) -> Callable[[Agent, Control], None]:
    """Each pass: the agent's claim book; every live grant of its own is reported done."""

    def work(agent: Agent, control: Control) -> None:
        me = ids[agent.home.name]
        answer = control.ask({"op": "claims"}) or {}
        mine = [
            row["task"]
            for row in answer.get("claims", [])
            if row["holder"] == me and row["live"] and not row["released"]
        ]
        reported = False
        for task in mine:
            if task not in finisher.done and task not in finisher.granted_done:
                reported |= finisher.report(control, task)
        if not reported:
            time.sleep(0.05)

    return work


def naive_work(finisher: Finisher) -> Callable[[Agent, Control], None]:
    """Each pass: the open tasks on the agent's board; ask for the first (most urgent,
    then oldest, as the chooser orders them), report it done at once if granted. What
    the chooser does without its spreading: no skipping, no random pick, no rest."""

    def work(agent: Agent, control: Control) -> None:
        answer = control.ask({"op": "tasks", "state": "open"}) or {}
        rows = answer.get("tasks", [])
        if not rows:
            time.sleep(0.05)
            return
        task = rows[0]["id"]
        reply = control.ask({"op": "claim", "task": task, "needs": [], "wait": 10})
        if reply and reply.get("status") == "granted":
            finisher.report(control, task)

    return work


def grants_on_done(agent: Agent) -> int:
    """Live, unreleased grants on tasks the board shows done: slots nobody frees."""
    claims = (ask(agent.home, {"op": "claims"}, timeout=20) or {}).get("claims", [])
    rows = (ask(agent.home, {"op": "tasks"}, timeout=20) or {}).get("tasks", [])
    done = {r["id"] for r in rows if r["state"] == "done"}
    return sum(1 for c in claims if c["live"] and not c["released"] and c["task"] in done)


def log_trouble(agents: list[Agent]) -> dict[str, int]:
    """The warnings and errors in the daemons' logs, counted by what they say (task
    names, hashes and terms left out)."""
    found_: Counter[str] = Counter()
    for agent in agents:
        for line in agent.log_text().splitlines():
            if "Traceback" in line:
                found_["Traceback"] += 1
                continue
            parts = line.split(maxsplit=2)
            if len(parts) < 3 or parts[1] not in ("WARNING", "ERROR", "CRITICAL"):
                continue
            text = re.sub(r"\b(term|grant) [0-9]+", r"\1 N", parts[2])
            text = re.sub(r"\b[0-9a-f]{12,}\b", "H", text)
            text = re.sub(r"(local|github):[^\s:]+", "TASK", text)
            found_[f"{parts[1]} {text[:100]}"] += 1
    return dict(found_.most_common(12))


def claims_run(
    root: Path, tasks: int, target: int, run_s: float, auto_claim: bool
) -> dict[str, Any]:
    """One cluster over one folder of `tasks` task files, until `target` are done."""
    label = "auto_claim" if auto_claim else "naive"
    folder = root / "shared-tasks"
    folder.mkdir(parents=True)
    staged = stage_tasks(folder, tasks)
    began_start = time.monotonic()
    agents = start_cluster(root, folder, auto_claim)
    try:
        started_s = time.monotonic() - began_start
        progress(f"{label}: {len(agents)} daemons up in {started_s:.1f} s")
        ids = {a.home.name: a.agent_id for a in agents}
        names = {v: k for k, v in ids.items()}
        leader_before = names.get(proven_leader(agents) or "", "?")
        store = open_home_store(agents[0].home)
        position = store.max_position()
        pids = [a.proc.pid for a in agents if a.proc is not None]
        cpu_before = [cpu_seconds(p) for p in pids]
        began = time.monotonic()
        for path in staged.iterdir():
            path.rename(folder / path.name)
        listed = wait_for(
            lambda: (
                len((ask(agents[1].home, {"op": "tasks"}, timeout=20) or {}).get("tasks", []))
                >= tasks
                and time.monotonic()
            ),
            timeout=60,
            what="the tasks listed",
        )
        listed_s = listed - began
        finisher = Finisher(agents[1:], target, time.monotonic() + run_s)
        work = auto_claim_work(finisher, ids) if auto_claim else naive_work(finisher)
        finisher.run(work, per_agent=1 if auto_claim else MAX_TASKS)
        seconds = time.monotonic() - began
        cpu = [cpu_seconds(p) - b for p, b in zip(pids, cpu_before, strict=True)]
        done_s = (finisher.last_done or began) - began
        time.sleep(2)  # the last entries reach the founder
        counted = count_claims(store, position, names)
        leader_after = names.get(proven_leader(agents) or "", "?")
        stuck = grants_on_done(agents[0])
        boards_done = sum(
            1
            for r in (ask(agents[0].home, {"op": "tasks"}, timeout=20) or {}).get("tasks", [])
            if r["state"] == "done"
        )
        store.close()
    finally:
        stop_all(agents)
    trouble = log_trouble(agents)
    progress(f"{label}: {len(finisher.done)} done in {done_s:.1f} s")
    return {
        "daemons": len(agents),
        "tasks": tasks,
        "target_done": target,
        "done": len(finisher.done),
        "done_on_founder_board": boards_done,
        "reached_target": len(finisher.done) >= target,
        "cluster_start_s": round(started_s, 1),
        "listed_s": round(listed_s, 2),  # files moved in -> all on an agent's board
        "seconds": round(seconds, 1),
        "done_per_s": round(len(finisher.done) / done_s, 2) if done_s else 0.0,
        **counted,
        "report_errors": dict(finisher.report_errors.most_common(5)),
        "live_grants_on_done_tasks_at_end": stuck,
        "daemons_cpu_s": round(sum(cpu), 1),
        "daemons_cores_busy": round(sum(cpu) / seconds, 2),
        "founder_cpu_s": round(cpu[0], 1),
        "leader": [leader_before, leader_after],
        "log_trouble": trouble,
    }


def local_scan_ms(tasks: int) -> float:
    """What one poll of a folder of `tasks` task files costs the admin, in this process."""
    with tempfile.TemporaryDirectory(prefix="bzzz-bench-scan-") as folder:
        path = Path(folder) / "tasks"
        staged = stage_tasks(path, tasks)
        source = LocalFolderSource(staged)
        times = []
        for _ in range(5):
            began = time.perf_counter()
            poll = source.scan()
            times.append((time.perf_counter() - began) * 1000)
        assert len(poll.changes[0].specs) == tasks
    return round(median(times), 1)


def _interrupted(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


def main() -> None:
    # Interruptible even when started in the background (where SIGINT is ignored), and a
    # SIGTERM stops the daemons as Ctrl-C does.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, _interrupted)
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--repos", type=int, default=10)
    parser.add_argument("--issues", type=int, default=100)
    parser.add_argument("--tasks", type=int, default=500)
    parser.add_argument("--done", type=int, default=500, help="stop once this many are done")
    parser.add_argument("--run-s", type=float, default=100.0, help="at most, per cluster")
    parser.add_argument("--no-reference", action="store_true")
    parser.add_argument("--keep", type=Path, help="run the clusters in this new folder, kept")
    args = parser.parse_args()
    began = time.monotonic()
    os.environ.pop(TOKEN_ENV, None)
    github = github_sync(args.repos, args.issues, args.rounds)
    scan = local_scan_ms(args.tasks)
    with contextlib.ExitStack() as stack:
        if args.keep is not None:
            args.keep.mkdir(parents=True)
            root = args.keep.resolve()
        else:
            root = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="bzzz-bench-")))
        spread = claims_run(root / "auto", args.tasks, args.done, args.run_s, auto_claim=True)
        reference: dict[str, Any] | None = None
        if not args.no_reference:
            reference = claims_run(root / "naive", args.tasks, args.done, args.run_s, False)
    out: dict[str, Any] = {
        "bench": "tasks",
        "github_sync": github,
        "local_folder_scan_ms": scan,  # one poll of the folder, paid every tasks.poll_s
        "auto_claim": {"agents": AGENTS, "max_tasks": MAX_TASKS, "poll_s": POLL_S, **spread},
        "naive_pickers": reference,
    }
    if reference and reference["granted"] and spread["granted"]:
        out["refused_per_grant_vs_naive"] = (
            round(spread["refused_per_grant"] / reference["refused_per_grant"], 3)
            if reference["refused_per_grant"]
            else None
        )
        out["grants_per_s_vs_naive"] = (
            round(spread["grants_per_s"] / reference["grants_per_s"], 3)
            if reference["grants_per_s"]
            else None
        )
    out["baseline_note"] = (
        "naive_pickers: the same cluster and claim path driven from outside, every picker "
        "asking for the most urgent, oldest open task; its grants/s also pays for reading "
        "the board over the socket before each ask, and the node that leads answers its "
        "own pickers first: compare the refusal ratios first"
    )
    out["targets"] = {"second_sync_rate_used": 0, "granted_tasks_already_done": 0}
    out["met"] = (
        github["second_rate_used"] == 0
        and not github["problems"]
        and spread["granted_tasks_already_done"] == 0
    )
    out["seconds"] = round(time.monotonic() - began, 1)
    sys.stdout.write(json.dumps(out) + "\n")


if __name__ == "__main__":
    main()
