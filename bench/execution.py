"""What executing a task costs (issue 20): the sandbox per command, and tasks end to end.

1. Sandbox overhead per command, in this process: `BwrapSandbox().run(command, workdir,
   RunLimits(), env)` against the same command through `UnsandboxedSandbox` (the same
   limits, cgroup or rlimits, and output handling, no isolation), through
   `UnsandboxedSandbox(cgroups=False)` (rlimits instead of a cgroup per command: what
   the cgroup costs) and through a bare `asyncio.create_subprocess_exec("/bin/sh", "-c",
   command)` with piped output and the sandbox's environment (the rawest baseline),
   interleaved (the four in turn, the order rotating), for `true` and for
   `python3 -c pass`, after a few warm-up runs. Per variant: p50, p99 and mean;
   `added_ms_p50` is bwrap's p50 minus the unsandboxed one's (goal: under 20 ms), and
   which mechanism limits memory and processes (`limits_by`).

2. End to end between real daemons on 127.0.0.1: a founder (admin role, no model) and
   5 agents with `agent.auto_claim`, `max_tasks` 1, a replayed model
   (`reasoning.backend: replay`, one `default.json` for every task: a plan turn,
   `write_file out.txt`, `run true`, `finish`), bubblewrap, and
   `hmmm.objection_window_s: 0`, all polling one local task folder. One team repository
   (a bare one with a first commit); 200 task files naming it are moved into the folder
   at once, and the bench waits until the founder's board shows every task done (or
   failed). Figures: tasks per minute (the files moved in to the last
   `task.completed`), and per task from the founder's store: its grant to
   `exec.started` (coordination), `exec.started` to `exec.ended` (execution) and
   `exec.ended` to `task.completed`: p50 each, and each one's share of the summed
   grant-to-completed times. Finer: the grant to the plan (the model's plan turn), the
   plan to HMMM's proceed, the proceed to the work's start (the executor waking;
   `exec.ended`'s `spent.wall_s` counts from there), the work's start to `exec.started`
   (the mirror fetched and the worktree made), `exec.started` to the last
   `exec.result` (three tool steps, two entries each, the `run` in bubblewrap, whose own
   seconds are given too), and the last result to `exec.ended` (the signed commit, the
   token check, the push). Also how long tasks waited for a free agent, an agent's gap
   from one completion to its next grant, the most tasks in flight at once against
   agents x max_tasks (the execution service works at most `max_tasks` tasks at once
   and auto-claim asks for no more), leader elections during the run, and the daemons'
   CPU seconds per task, their own and their children's (git, bubblewrap, ssh-keygen
   signing), with the whole machine's busy share (it is shared).

   `max_tasks` 1 by default: the config's default, and what an agent with one model
   does (its turns queue on that model; a replay has no such cost, so a higher
   `max_tasks` here would show a parallelism a real model would not give).

    python -m bench.execution [--samples 200] [--agents 5] [--tasks 200] [--max-tasks 1]
        [--timeout-s 600] [--no-sandbox-part] [--no-cluster-part] [--keep DIR]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import itertools
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path
from types import FrameType
from typing import Any

import yaml

from bench.procstat import cpu_seconds
from bench.stats import percentile
from bench.tasks import log_trouble
from bzzz.agent.control import ask
from bzzz.domain import claims as cl
from bzzz.domain import hmmm as hm
from bzzz.domain import task_entries as te
from bzzz.domain import tools as tl
from bzzz.domain.execution import RunLimits
from bzzz.domain.payload import payload_map
from bzzz.execution.sandbox import BwrapSandbox, UnsandboxedSandbox, base_env
from bzzz.home.node import open_home_store
from bzzz.services.execution import SANDBOX_ENV
from bzzz.store import EventStore
from bzzz.tasks.local import write_task
from tests.support.agents import Agent, found, join, proven_leader, stop_all, wait_for

COMMANDS = ("true", "python3 -c pass")
WARMUP = 5
AGENTS = 5
# One task at a time per agent: the config's default, and what an agent with one model
# does (its turns queue on the model: a second task in flight mostly waits for it).
MAX_TASKS = 1
POLL_S = 1.0
TURNS = [
    {"content": "Write the file.\nFiles: out.txt"},
    {"content": "", "tool_calls": [
        {"name": "write_file", "arguments": {"path": "out.txt", "content": "done\n"}}]},
    {"content": "", "tool_calls": [{"name": "run", "arguments": {"command": "true"}}]},
    {"content": "", "tool_calls": [{"name": "finish", "arguments": {"summary": "out.txt"}}]},
]  # fmt: skip
GIT_ENV = {"PATH": "/usr/bin:/bin", "HOME": "/nonexistent", "GIT_CONFIG_NOSYSTEM": "1"}


def progress(message: str) -> None:
    sys.stderr.write(f"[bench.execution] {message}\n")
    sys.stderr.flush()


def dist(values: list[float], digits: int = 2) -> dict[str, Any]:
    """n, p50, p99, mean and max of `values` (milliseconds, usually)."""
    return {
        "n": len(values),
        "p50": round(percentile(values, 0.5), digits),
        "p99": round(percentile(values, 0.99), digits),
        "mean": round(statistics.fmean(values), digits) if values else 0.0,
        "max": round(max(values), digits) if values else 0.0,
    }


# -- 1. the sandbox per command -----------------------------------------------------------


async def raw_run(command: str, workdir: Path) -> int | None:
    proc = await asyncio.create_subprocess_exec(
        "/bin/sh",
        "-c",
        command,
        cwd=workdir,
        env=base_env(SANDBOX_ENV),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    await proc.communicate()
    return proc.returncode


async def sandbox_overhead(samples: int) -> dict[str, Any]:
    bwrap, plain = BwrapSandbox(), UnsandboxedSandbox()
    plain_rlimits = UnsandboxedSandbox(cgroups=False)
    limits = RunLimits()
    failures: Counter[str] = Counter()
    out: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="bzzz-bench-sandbox-") as folder:
        workdir = Path(folder)

        async def via(sandbox: BwrapSandbox | UnsandboxedSandbox, command: str) -> int | None:
            return (await sandbox.run(command, workdir, limits, SANDBOX_ENV)).exit_code

        variants: dict[str, Callable[[str], Awaitable[int | None]]] = {
            "bwrap": lambda c: via(bwrap, c),
            "unsandboxed": lambda c: via(plain, c),
            "unsandboxed_rlimits": lambda c: via(plain_rlimits, c),
            "raw_subprocess": lambda c: raw_run(c, workdir),
        }
        names = list(variants)
        for command in COMMANDS:
            times: dict[str, list[float]] = {name: [] for name in names}
            for n in range(WARMUP + samples):
                shift = n % len(names)
                for name in names[shift:] + names[:shift]:
                    began = time.perf_counter()
                    code = await variants[name](command)
                    took = (time.perf_counter() - began) * 1000
                    if code != 0:
                        failures[f"{name} {command}: exit {code}"] += 1
                    if n >= WARMUP:
                        times[name].append(took)
            figures: dict[str, Any] = {name: dist(values) for name, values in times.items()}
            figures["added_ms_p50"] = round(
                figures["bwrap"]["p50"] - figures["unsandboxed"]["p50"], 2
            )
            figures["added_ms_p50_vs_raw"] = round(
                figures["bwrap"]["p50"] - figures["raw_subprocess"]["p50"], 2
            )
            # What the per-command cgroup costs (made, joined, removed), and what all of
            # the limits and output handling cost, over the bare subprocess.
            figures["cgroup_cost_ms_p50"] = round(
                figures["unsandboxed"]["p50"] - figures["unsandboxed_rlimits"]["p50"], 2
            )
            figures["limits_cost_ms_p50"] = round(
                figures["unsandboxed"]["p50"] - figures["raw_subprocess"]["p50"], 2
            )
            out[command] = figures
            progress(
                f"sandbox `{command}`: bwrap p50 {figures['bwrap']['p50']} ms, unsandboxed "
                f"{figures['unsandboxed']['p50']} ms, raw {figures['raw_subprocess']['p50']} ms"
            )
    version = subprocess.run(["bwrap", "--version"], capture_output=True, text=True).stdout
    return {
        "samples": samples,
        "warmup": WARMUP,
        "limits": {"wall_s": limits.wall_s, "memory_mb": limits.memory_mb, "pids": limits.pids},
        "limits_by": {
            "bwrap": bwrap.limits_by,
            "unsandboxed": plain.limits_by,
            "unsandboxed_rlimits": plain_rlimits.limits_by,
        },
        "bwrap_version": version.strip(),
        "by_command": out,
        "failures": dict(failures),
        "goal_added_ms_p50": 20,
        "met": all(f["added_ms_p50"] < 20 for f in out.values()) and not failures,
    }


# -- 2. tasks end to end ------------------------------------------------------------------


def git(*args: str, cwd: Path | None = None) -> str:
    return subprocess.run(
        ["git", *args], cwd=cwd, env=GIT_ENV, check=True, capture_output=True, text=True
    ).stdout


def team_repository(root: Path) -> Path:
    """A bare repository with a first commit on main."""
    seed = root / "seed"
    seed.mkdir()
    git("init", "-q", "-b", "main", cwd=seed)
    (seed / "README.md").write_text("The team's repository.\n")
    git("add", ".", cwd=seed)
    git("-c", "user.name=t", "-c", "user.email=t@x", "commit", "-qm", "first", cwd=seed)
    bare = root / "origin.git"
    git("clone", "-q", "--bare", str(seed), str(bare))
    return bare


def configure(node: Agent, **sections: dict[str, Any]) -> None:
    """Merge sections into the node's config.yaml (before it starts)."""
    path = node.home / "config.yaml"
    data = yaml.safe_load(path.read_text())
    for key, value in sections.items():
        data[key] = {**(data.get(key) or {}), **value}
    path.write_text(yaml.safe_dump(data))


def start_cluster(
    root: Path, folder: Path, recordings: Path, agents_n: int, max_tasks: int
) -> list[Agent]:
    """The founder, then the agents joined to it; every node polls `folder`."""
    tasks = {"poll_s": POLL_S, "sources": [{"type": "local", "path": str(folder), "name": "team"}]}
    hmmm = {"objection_window_s": 0}
    agents: list[Agent] = []
    try:
        founder = found(root)
        configure(founder, tasks=tasks, hmmm=hmmm)
        agents.append(founder)  # stopped below even if interrupted while it starts
        founder.start()
        for n in range(1, agents_n + 1):
            node = join(root, f"a{n}", founder)
            node.peers = [x.address for x in agents]
            configure(
                node,
                tasks=tasks,
                hmmm=hmmm,
                agent={"auto_claim": True, "max_tasks": max_tasks},
                reasoning={"backend": "replay", "recordings": str(recordings)},
                sandbox={"backend": "bwrap"},
            )
            agents.append(node)
            node.start()
        wait_for(lambda: proven_leader(agents), timeout=60, what="a proven leader")
    except BaseException:
        stop_all(agents)
        raise
    return agents


def own_and_children_cpu(pid: int) -> tuple[float, float]:
    """The process's own CPU seconds, and those of its children it has waited for."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    tick = os.sysconf("SC_CLK_TCK")
    return cpu_seconds(pid), (int(fields[13]) + int(fields[14])) / tick


def machine_busy() -> tuple[int, int]:
    """Busy and total jiffies of the whole machine (/proc/stat), for the share in use."""
    values = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = values[3] + values[4]
    return sum(values) - idle, sum(values)


def board_states(founder: Agent) -> Counter[str]:
    answer = ask(founder.home, {"op": "tasks"}, timeout=30) or {}
    return Counter(str(row.get("state")) for row in answer.get("tasks", []))


def entries(store: EventStore, kinds: list[str]) -> list[tuple[str, bytes, int, dict[str, Any]]]:
    """(kind, author, ts, body) of every entry of `kinds` in the store."""
    rows: list[tuple[str, bytes, int, dict[str, Any]]] = []
    position = 0
    while found_ := store.notifications(after=position, limit=10_000, kinds=kinds):
        for row in found_:
            e = row.decode()
            rows.append((e.kind, e.author, e.ts, payload_map(e.body) or {}))
        position = found_[-1].position
    return rows


def task_times(store: EventStore) -> dict[str, dict[str, Any]]:
    """Per task: the wall-clock ms (entry ts) of its grant, plan, proceed, exec.started,
    exec.ended and task.completed or task.failed, and its `run` step's seconds."""
    kinds = [cl.GRANTED, hm.PLAN, hm.RESOLUTION, tl.STARTED, tl.STEP, tl.RESULT, tl.ENDED,
             te.COMPLETED, te.FAILED]  # fmt: skip
    tasks: dict[str, dict[str, Any]] = {}
    grants: dict[str, list[int]] = {}
    runs: set[tuple[str, Any, Any, Any]] = set()
    results: list[tuple[tuple[str, Any, Any, Any], float]] = []

    def of(task: Any) -> dict[str, Any]:
        return tasks.setdefault(str(task), {})

    for kind, author, ts, body in entries(store, kinds):
        if kind == cl.GRANTED:
            for grant in cl.grant_maps(body) or []:
                if grant.get("task") is None:
                    continue
                if grant.get("request") is None:  # a new leader re-issuing a live hold
                    of(grant["task"])["reissued"] = of(grant["task"]).get("reissued", 0) + 1
                else:
                    grants.setdefault(str(grant["task"]), []).append(ts)
        elif kind == hm.PLAN:
            of(body.get("thread")).setdefault("plan", ts)
        elif kind == hm.RESOLUTION:
            if body.get("outcome") == "proceed":
                of(body.get("thread")).setdefault("proceed", ts)
        elif kind == tl.STARTED:
            of(body.get("task"))["started"] = ts
            of(body.get("task"))["holder"] = author.hex()
        elif kind == tl.ENDED:
            row = of(body.get("task"))
            row["ended"] = ts
            row["outcome"] = body.get("outcome")
            row["spent_wall_s"] = (body.get("spent") or {}).get("wall_s")
        elif kind == tl.STEP:
            if body.get("tool") == "run":
                runs.add((str(body["task"]), body.get("term"), body.get("grant"), body.get("n")))
        elif kind == tl.RESULT:
            key = (str(body["task"]), body.get("term"), body.get("grant"), body.get("n"))
            results.append((key, float(body.get("seconds") or 0.0)))
            row = of(body["task"])
            row["last_result"] = max(ts, row.get("last_result", ts))
        elif kind == te.COMPLETED:
            of(body.get("task")).setdefault("completed", ts)
        elif kind == te.FAILED:
            of(body.get("task")).setdefault("failed", ts)
    for key, seconds in results:
        if key in runs:
            of(key[0])["run_s"] = seconds
    for task, row in tasks.items():
        # When the work began (before the worktree): exec.ended's wall_s counts from there.
        if "ended" in row and isinstance(row.get("spent_wall_s"), int | float):
            row["work_start"] = row["ended"] - row["spent_wall_s"] * 1000
        # The grant the work ran under: the last one before its exec.started (a task
        # granted again after a lapse counts from its last grant).
        stamps = sorted(grants.get(task, []))
        before = [g for g in stamps if g <= row.get("started", row.get("plan", 0))]
        if before:
            row["grant"] = before[-1]
        row["grants"] = len(stamps)
    return tasks


def in_flight_peak(rows: list[dict[str, Any]]) -> int:
    """The most tasks held at once (grant to completed)."""
    edges = sorted([(r["grant"], 1) for r in rows] + [(r["completed"], -1) for r in rows])
    peak = held = 0
    for _, step in edges:
        held += step
        peak = max(peak, held)
    return peak


def phases(tasks: dict[str, dict[str, Any]], t0_ms: float, max_tasks: int) -> dict[str, Any]:
    """The per-task figures over the tasks that went grant -> started -> ended ->
    completed."""
    whole = [
        r for r in tasks.values() if all(k in r for k in ("grant", "started", "ended", "completed"))
    ]
    segments = {
        "coordination_grant_to_exec_started": ("grant", "started"),
        "execution_exec_started_to_ended": ("started", "ended"),
        "completion_exec_ended_to_completed": ("ended", "completed"),
    }
    parts = {
        "coordination_parts": {
            "grant_to_plan": ("grant", "plan"),  # the model's plan turn, posted
            "plan_to_proceed": ("plan", "proceed"),  # HMMM: the holder's resolution
            "proceed_to_work_start": ("proceed", "work_start"),  # the executor's wake-up
            # the mirror fetched, the worktree made, the exec.started entry
            "worktree_to_exec_started": ("work_start", "started"),
        },
        "execution_parts": {
            # three tool steps (write_file, run, finish), each an exec.step and an
            # exec.result entry
            "tool_steps_to_last_result": ("started", "last_result"),
            # the signed commit, the token check, the push, the entry
            "commit_push_to_exec_ended": ("last_result", "ended"),
        },
    }
    totals = [float(r["completed"] - r["grant"]) for r in whole]
    total_sum = sum(totals) or 1.0
    out: dict[str, Any] = {
        "tasks_measured": len(whole),
        "grant_to_completed_ms": dist(totals, 1),
    }
    for name, (a, b) in segments.items():
        values = [float(r[b] - r[a]) for r in whole]
        out[name] = {**dist(values, 1), "share_of_total": round(sum(values) / total_sum, 3)}
    for group, named in parts.items():
        detail: dict[str, Any] = {}
        for name, (a, b) in named.items():
            values = [float(r[b] - r[a]) for r in whole if a in r and b in r]
            detail[name] = {**dist(values, 1), "share_of_total": round(sum(values) / total_sum, 3)}
        out[group] = detail
    runs = [r["run_s"] * 1000 for r in whole if "run_s" in r]
    out["execution_parts"]["run_true_in_bwrap_ms"] = {
        **dist(runs, 1),
        "share_of_total": round(sum(runs) / total_sum, 3),
    }
    # Waiting for a free agent: the files moved in to the task's grant.
    out["queued_files_in_to_grant_ms"] = dist([r["grant"] - t0_ms for r in whole], 0)
    # Grow with the run? The first and last fifth of the tasks by grant time.
    ordered = sorted(whole, key=lambda r: r["grant"])
    fifth = max(1, len(ordered) // 5)
    trend: dict[str, Any] = {}
    worktree = {"worktree_to_exec_started": ("work_start", "started")}
    for name, (a, b) in {**segments, **worktree}.items():
        first = [float(r[b] - r[a]) for r in ordered[:fifth] if a in r and b in r]
        last = [float(r[b] - r[a]) for r in ordered[-fifth:] if a in r and b in r]
        trend[name] = [round(percentile(first, 0.5), 1), round(percentile(last, 0.5), 1)]
    out["p50_first_vs_last_fifth_ms"] = trend
    out["in_flight_peak"] = in_flight_peak(whole) if whole else 0
    # Each agent between two of its tasks: its task.completed to its next grant (the
    # claim released, the auto-claim pass, the request, the leader's grant).
    by_holder: dict[str, list[dict[str, Any]]] = {}
    for r in whole:
        by_holder.setdefault(str(r.get("holder")), []).append(r)
    gaps: list[float] = []
    for rows in by_holder.values():
        rows.sort(key=lambda r: r["grant"])
        gaps += [float(b["grant"] - a["completed"]) for a, b in itertools.pairwise(rows)]
    # (With max_tasks above 1 an agent's tasks overlap: no gap to speak of.)
    out["agent_completed_to_next_grant_ms"] = (
        {
            **dist(gaps, 1),
            "share_of_agent_time": round(sum(gaps) / ((sum(gaps) + total_sum) or 1.0), 3),
        }
        if max_tasks == 1
        else None
    )
    out["tasks_per_agent"] = sorted(len(rows) for rows in by_holder.values())
    return out


def end_to_end(args: argparse.Namespace, root: Path) -> dict[str, Any]:
    origin = team_repository(root)
    recordings = root / "recordings"
    recordings.mkdir()
    (recordings / "default.json").write_text(
        json.dumps({"format": "bzzz-replay/1", "turns": TURNS})
    )
    folder = root / "tasks"
    folder.mkdir()
    staged = root / "tasks-staged"
    for n in range(args.tasks):
        write_task(staged, f"Bench task {n}", f"Write out.txt ({n}).", repo=str(origin))
    agents: list[Agent] = []
    began_start = time.monotonic()
    t0_ms = end_ms = time.time() * 1000
    try:
        agents = start_cluster(root, folder, recordings, args.agents, args.max_tasks)
        started_s = time.monotonic() - began_start
        progress(f"{len(agents)} daemons up in {started_s:.1f} s")
        founder = agents[0]
        pids = [a.proc.pid for a in agents if a.proc is not None]
        cpu_before = [own_and_children_cpu(p) for p in pids]
        busy_before = machine_busy()
        t0_ms = time.time() * 1000
        began = time.monotonic()
        for path in staged.iterdir():
            path.rename(folder / path.name)
        deadline = began + args.timeout_s
        states: Counter[str] = Counter()
        shown = -1
        while time.monotonic() < deadline:
            states = board_states(founder)
            finished = states["done"] + states["failed"]
            if finished // 20 != shown // 20:
                shown = finished
                progress(
                    f"{finished} of {args.tasks} finished after {time.monotonic() - began:.0f} s"
                )
            if finished >= args.tasks:
                break
            time.sleep(1.0)
        waited_s = time.monotonic() - began
        end_ms = time.time() * 1000
        cpu_after = [own_and_children_cpu(p) for p in pids]
        busy_after = machine_busy()
        timed_out = states["done"] + states["failed"] < args.tasks
        # Every node's last entries reach the founder (its board said done: it holds
        # each task's completion, and so every entry its holder wrote before).
        time.sleep(2.0)
        store = open_home_store(founder.home)
        try:
            tasks = task_times(store)
        finally:
            store.close()
        leader = proven_leader(agents)
    finally:
        stop_all(agents)
    trouble = log_trouble(agents)
    tracebacks = sum(a.log_text().count("Traceback") for a in agents)
    leader_changes = elections_between(agents, t0_ms, end_ms)

    completed = [r["completed"] for r in tasks.values() if "completed" in r]
    span_s = (max(completed) - t0_ms) / 1000 if completed else 0.0
    own = [a[0] - b[0] for a, b in zip(cpu_after, cpu_before, strict=True)]
    children = [a[1] - b[1] for a, b in zip(cpu_after, cpu_before, strict=True)]
    done = len(completed)
    busy = (busy_after[0] - busy_before[0]) / max(1, busy_after[1] - busy_before[1])
    figures = phases(tasks, t0_ms, args.max_tasks)
    slots = args.agents * args.max_tasks
    return {
        "agents": args.agents,
        "max_tasks": args.max_tasks,
        "tasks": args.tasks,
        "poll_s": POLL_S,
        "objection_window_s": 0,
        "cluster_start_s": round(started_s, 1),
        "done": done,
        "failed": sum(1 for r in tasks.values() if "failed" in r),
        "board_states_at_end": dict(states),
        "timed_out": timed_out,
        "waited_s": round(waited_s, 1),
        "files_in_to_last_completed_s": round(span_s, 1),
        "tasks_per_minute": round(done * 60 / span_s, 1) if span_s else 0.0,
        # granted again after a hold ended (not done), and live holds a new leader re-issued
        "regranted_tasks": sum(1 for r in tasks.values() if r.get("grants", 0) > 1),
        "reissued_holds": sum(1 for r in tasks.values() if r.get("reissued")),
        "leader_changes_during_run": leader_changes,
        **figures,
        "parallelism": {
            "slots_agents_x_max_tasks": slots,
            "in_flight_peak": figures["in_flight_peak"],
            "limited_by_max_tasks": figures["in_flight_peak"] >= slots,
            "note": (
                "the execution service works at most max_tasks tasks at once "
                "(ExecutionSettings.max_jobs = agent.max_tasks) and auto-claim asks for no "
                "more: at most agents x max_tasks tasks are in flight. Default 1: the "
                "config's, and an agent with one model works one task at a time (its turns "
                "queue on the model); a replay costs nothing, so more would overstate it"
            ),
        },
        "cpu": {
            "daemons_own_s": round(sum(own), 1),
            "daemons_children_s": round(sum(children), 1),
            "founder_own_s": round(own[0], 1),
            "own_ms_per_task": round(sum(own) * 1000 / done, 1) if done else None,
            "children_ms_per_task": round(sum(children) * 1000 / done, 1) if done else None,
            "daemons_cores_busy": round((sum(own) + sum(children)) / waited_s, 2),
            "machine_busy_share": round(busy, 3),
            "machine_cores": os.cpu_count(),
        },
        "leader_at_end": leader[:12] if leader else None,
        "log_trouble": trouble,
        "tracebacks": tracebacks,
    }


def elections_between(agents: list[Agent], t0_ms: float, end_ms: float) -> list[str]:
    """The leader elections the logs show from `t0_ms` to `end_ms`: when, and why (not
    those of the shutdown, as each node stops in turn)."""

    def stamp(ms: float) -> str:
        return datetime.fromtimestamp(ms / 1000, UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:23]

    since, until = stamp(t0_ms), stamp(end_ms)
    found_ = []
    for agent in agents:
        for line in agent.log_text().splitlines():
            if "elected leader of term" in line and since <= line[:23] <= until:
                found_.append(
                    f"{line[11:23]} {agent.home.name}: {line.split('INFO', 1)[-1].strip()}"
                )
    return sorted(found_)


def _interrupted(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


def main() -> None:
    # Interruptible even when started in the background (where SIGINT is ignored), and a
    # SIGTERM stops the daemons as Ctrl-C does.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, _interrupted)
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--samples", type=int, default=200, help="runs per command and variant")
    parser.add_argument("--agents", type=int, default=AGENTS)
    parser.add_argument("--tasks", type=int, default=200)
    parser.add_argument("--max-tasks", type=int, default=MAX_TASKS)
    parser.add_argument("--timeout-s", type=float, default=600.0, help="for the tasks to finish")
    parser.add_argument("--no-sandbox-part", action="store_true")
    parser.add_argument("--no-cluster-part", action="store_true")
    parser.add_argument("--keep", type=Path, help="run the cluster in this new folder, kept")
    args = parser.parse_args()
    if shutil.which("bwrap") is None:
        sys.exit("bench.execution needs bubblewrap (apt-get install bubblewrap)")
    began = time.monotonic()
    out: dict[str, Any] = {"bench": "execution"}
    if not args.no_sandbox_part:
        out["sandbox"] = asyncio.run(sandbox_overhead(args.samples))
    if not args.no_cluster_part:
        with contextlib.ExitStack() as stack:
            if args.keep is not None:
                args.keep.mkdir(parents=True)
                root = args.keep.resolve()
            else:
                root = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="bzzz-exec-")))
            out["end_to_end"] = end_to_end(args, root)
    out["note"] = "figures from a shared 2-core machine: compare within one run"
    out["seconds"] = round(time.monotonic() - began, 1)
    sys.stdout.write(json.dumps(out) + "\n")


if __name__ == "__main__":
    main()
