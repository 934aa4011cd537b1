"""`bzzz task trajectory ID [--json] [--replay FILE]`: what the agents' runs of a task
did, step by step, from the signed ``exec.*`` entries; and, on the node that ran it,
the model's recorded turns, for a replay backend to run again."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.markup import escape

from bzzz.cli.options import HomeOption, JsonOption
from bzzz.cli.render import iso_ms, out, print_json
from bzzz.domain.tasks import task_id_problem
from bzzz.domain.trajectory import Run
from bzzz.errors import UsageError
from bzzz.home.location import resolve_home
from bzzz.home.node import cluster_id_of, open_node
from bzzz.projections.leadership import offline_view
from bzzz.projections.trajectory import read_trajectory


def run_json(run: Run, names: dict[bytes, str]) -> dict[str, Any]:
    return {
        "agent": run.author.hex(),
        "agent_name": names.get(run.author),
        "token": list(run.token),
        "started": run.started_ts,
        "backend": run.backend,
        "model": run.model,
        "sandbox": run.sandbox,
        "branch": run.branch,
        "base": run.base,
        "steps": [
            {
                "n": s.n,
                "tool": s.tool,
                "arguments": s.arguments,
                "ts": s.ts,
                "sandbox": s.sandbox,
                "ok": s.ok,
                "exit_code": s.exit_code,
                "seconds": s.seconds,
                "output": s.output,
            }
            for s in run.steps
        ],
        "ended": dict(run.ended) if run.ended is not None else None,
    }


def trajectory(
    task: Annotated[str, typer.Argument(help="The task's id, e.g. local:fix-login.")],
    replay: Annotated[
        Path | None,
        typer.Option(help="Write the model's recorded turns of the latest run here."),
    ] = None,
    home: HomeOption = None,
    json_: JsonOption = False,
) -> None:
    """What each run of a task did, from the entries: every tool call and its outcome."""
    problem = task_id_problem(task)
    if problem is not None:
        raise UsageError(problem)
    where = resolve_home(home)
    with open_node(where) as node:
        view = offline_view(node.store, node.roles, cluster_id_of(node.config))
        runs = read_trajectory(node.store, task)
        me = node.identity.public_key
    if replay is not None:
        mine = [r for r in runs if r.author == me]
        if not mine:
            raise UsageError(f"this node ran no part of {task}: its turns are on the node that did")
        # lazy: the execution runtime loads the model clients
        from bzzz.execution.replay import load_turns
        from bzzz.runtime.execution import TRAJECTORIES, WORK_FOLDER
        from bzzz.services.execution import turns_path

        source = turns_path(where / WORK_FOLDER / TRAJECTORIES, task, mine[-1].token)
        if not source.exists():
            raise UsageError(f"no recorded turns for {task} at {source}")
        load_turns(source)  # a recording that does not load is not handed on
        shutil.copyfile(source, replay)
    if json_:
        print_json({"task": task, "runs": [run_json(r, view.names) for r in runs]})
        return
    if not runs:
        out.print(f"no run of {escape(task)} is recorded (nobody has worked it with a model)")
    for run in runs:
        who = view.names.get(run.author) or run.author.hex()[:12]
        token = f"{run.token[0]}.{run.token[1]}"
        out.print(
            f"[bold]{iso_ms(run.started_ts)}[/bold] {escape(who)} token {token}"
            f" {escape(run.backend)}/{escape(run.model)} in {escape(run.sandbox)}"
            f" on {escape(run.branch or '?')}"
        )
        for s in run.steps:
            mark = {
                True: "[green]ok[/green]",
                False: "[red]error[/red]",
                None: "[yellow]?[/yellow]",
            }
            args = escape(str(s.arguments))[:160]
            out.print(f"  {s.n:>3} {s.tool} {args} -> {mark[s.ok]}")
            if s.output and not s.ok:
                out.print(
                    f"      [dim]{escape(s.output.splitlines()[0][:160] if s.output else '')}[/dim]"
                )
        if run.ended is not None:
            e = run.ended
            out.print(
                f"  ended: {escape(str(e.get('outcome')))}: {escape(str(e.get('why')))}"
                f" {escape(str(e.get('link') or ''))}"
            )
            out.print(f"  spent: {escape(str(e.get('spent')))}")
        else:
            out.print("  [yellow]no end recorded (running, or the holder died)[/yellow]")
    if replay is not None:
        out.print(f"wrote the recorded turns to {replay}")
