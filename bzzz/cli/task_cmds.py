"""`bzzz task list|show|sync|add|progress|done|fail|trajectory`: the task board.

`list` and `show` ask the running agent, or read the store when none runs; `sync` and
the holder's reports need the agent (they write entries and wait for the admin)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer
from rich.markup import escape

from bzzz.agent.control import ask, ask_running
from bzzz.cli.options import HomeOption, JsonOption
from bzzz.cli.render import iso_ms, out, print_json
from bzzz.cli.trajectory_cmd import trajectory
from bzzz.cli.views import cursor_json, task_detail_json, task_json
from bzzz.clock import now_ms
from bzzz.domain import task_entries as te
from bzzz.domain.tasks import DEFAULT_PRIORITY, MAX_PRIORITY, TaskState
from bzzz.errors import UsageError
from bzzz.home.location import resolve_home
from bzzz.home.node import cluster_id_of, open_node
from bzzz.projections.board import offline_board
from bzzz.projections.leadership import offline_view
from bzzz.tasks.local import write_task

app = typer.Typer(
    help="The task board: tasks from the sources, who holds them.", no_args_is_help=True
)
app.command("trajectory")(trajectory)
STATES = ", ".join(s.value for s in TaskState)
COLOURS = {"open": "green", "blocked": "yellow", "done": "dim", "closed": "dim", "failed": "red"}


def _offline(home: Path) -> tuple[list[dict[str, Any]], list[dict[str, Any]], dict[str, Any]]:
    """Rows, sources and details by id, from the store alone."""
    with open_node(home) as node:
        view = offline_view(node.store, node.roles, cluster_id_of(node.config))
        leaders = {term: p.leader for term, p in view.proof.proven.items()}
        board, book = offline_board(node.store, leaders, view.proof.ends())
    now = now_ms()
    views = board.views(now, lambda task: book.live(task, now))
    rows = [task_json(v, view.names) for v in views]
    details = {v.id: task_detail_json(v, view.names) for v in views}
    return rows, [cursor_json(c) for c in board.cursors.values()], details


@app.command("list")
def list_tasks(
    state: Annotated[str | None, typer.Option(help=f"Only tasks in this state ({STATES}).")] = None,
    home: HomeOption = None,
    json_: JsonOption = False,
) -> None:
    """The board, most urgent first, then oldest."""
    if state is not None and state not in {s.value for s in TaskState}:
        raise UsageError(f"--state: no state {state!r}; known: {STATES}")
    where = resolve_home(home)
    answer = ask(where, {"op": "tasks"}, timeout=10.0)
    if answer is not None and answer.get("ok"):
        running, rows, sources = True, answer["tasks"], answer["sources"]
    else:
        running = False
        rows, sources, _ = _offline(where)
    if state is not None:
        rows = [r for r in rows if r["state"] == state]
    if json_:
        print_json({"running": running, "tasks": rows, "sources": sources})
        return
    if not running:
        out.print("[dim]agent not running: the board as this node's logs hold it[/dim]")
    for source in sources:
        synced = iso_ms(source["synced"])
        out.print(f"[dim]source {escape(source['source'])}: synced {synced}[/dim]")
        for problem in source["problems"]:
            out.print(f"  [yellow]{escape(problem)}[/yellow]")
    if not rows:
        out.print("no tasks" + (f" in state {state}" if state else ""))
    for row in rows:
        colour = COLOURS.get(row["state"], "cyan")
        who = row["holder_name"] or (row["holder"] or "")[:12]
        held = f" [cyan]{escape(who)}[/cyan] {row['token']}" if row["holder"] else ""
        out.print(
            f"[{colour}]{row['state']:<9}[/{colour}] p{row['priority']} "
            f"[bold]{escape(row['id'])}[/bold]{held}  {escape(row['title'])}"
        )


@app.command("show")
def show(
    task: Annotated[str, typer.Argument(help="The task's id, e.g. local:fix-login.")],
    home: HomeOption = None,
    json_: JsonOption = False,
) -> None:
    """One task: its fields, body and history from the entries."""
    where = resolve_home(home)
    answer = ask(where, {"op": "task", "task": task}, timeout=10.0)
    if answer is not None and answer.get("ok"):
        detail = answer["task"]
    elif answer is not None and "not on the task board" in str(answer.get("error")):
        raise UsageError(str(answer["error"]))
    else:
        found = _offline(where)[2].get(task)
        if found is None:
            raise UsageError(f"{task[:200]!r} is not on the task board (`bzzz task list`)")
        detail = found
    if json_:
        print_json(detail)
        return
    out.print(f"[bold]{escape(detail['id'])}[/bold]  {escape(detail['title'])}")
    out.print(f"state {detail['state']}, priority {detail['priority']}, from {detail['scope']}")
    if detail["holder"]:
        who = detail["holder_name"] or detail["holder"]
        out.print(f"held by {escape(who)} with token {detail['token']}")
    for key in ("type", "url", "repo", "result", "link", "reason"):
        if detail.get(key):
            out.print(f"{key}: {escape(str(detail[key]))}")
    for key in ("needs", "labels", "depends_on", "waiting_for"):
        if detail.get(key):
            out.print(f"{key.replace('_', ' ')}: {escape(', '.join(detail[key]))}")
    if detail["body"]:
        out.print()
        out.print(escape(detail["body"]))
    out.print()
    for event in detail["history"]:
        who = event["author_name"] or event["author"][:12]
        out.print(
            f"[dim]{iso_ms(event['ts'])}[/dim] [cyan]{escape(who)}[/cyan] "
            f"{event['kind']}: {escape(event['what'])}"
        )


@app.command("sync")
def sync(
    wait: Annotated[
        float, typer.Option(min=0, max=600, help="Seconds to wait for the admin's poll.")
    ] = 30,
    home: HomeOption = None,
    json_: JsonOption = False,
) -> None:
    """Ask the admin to poll the task sources now, and wait until it has."""
    answer = ask_running(resolve_home(home), {"op": "task_sync", "wait": wait}, timeout=wait + 5)
    if json_:
        print_json({"synced": answer["synced"]})
    elif not answer["synced"]:
        out.print(f"no sync within {wait:.0f} s: is there an admin? (bzzz election status)")
    for source in [] if json_ else answer["synced"]:
        problems = f", {len(source['problems'])} problems" if source["problems"] else ""
        out.print(f"synced {escape(source['source'])}{problems}")
        for problem in source["problems"]:
            out.print(f"  [yellow]{escape(problem)}[/yellow]")
    if not answer["synced"]:
        raise typer.Exit(1)


@app.command("add")
def add(
    title: Annotated[str, typer.Option("--title", help="What is to be done.")],
    body: Annotated[str, typer.Option(help="The details, in Markdown.")] = "",
    priority: Annotated[
        int, typer.Option(help=f"0 (most urgent) to {MAX_PRIORITY}.")
    ] = DEFAULT_PRIORITY,
    needs: Annotated[
        list[str] | None, typer.Option("--needs", help="A capability (or role) it needs.")
    ] = None,
    repo: Annotated[str | None, typer.Option(help="The repository it changes.")] = None,
    type_: Annotated[str | None, typer.Option("--type", help="bug, feature, docs, ...")] = None,
    depends_on: Annotated[
        list[str] | None, typer.Option("--depends-on", help="A task it waits for.")
    ] = None,
    home: HomeOption = None,
    json_: JsonOption = False,
) -> None:
    """Write a task file into this node's local task folder (tasks.sources)."""
    where = resolve_home(home)
    with open_node(where) as node:
        from bzzz.runtime.assembly import local_task_folder  # lazy: it loads asyncssh

        folder = local_task_folder(node)
    if folder is None:
        raise UsageError(
            "this node has no local task source: add `tasks: {sources: [{type: local, "
            "path: tasks}]}` to its config.yaml"
        )
    path, spec = write_task(
        folder,
        title,
        body,
        priority=priority,
        needs=needs,
        repo=repo,
        type_=type_,
        depends_on=depends_on,
    )
    if json_:
        print_json({"id": spec.id, "path": str(path)})
        return
    out.print(f"added {spec.id} ({path}); the admin lists it at its next poll (bzzz task sync)")


def _report(home: Path | None, task: str, what: str, **fields: Any) -> dict[str, Any]:
    request = {"op": "task_report", "task": task, "what": what, **fields}
    return ask_running(resolve_home(home), request)


@app.command("progress")
def progress(
    task: Annotated[str, typer.Argument(help="A task this agent holds.")],
    phase: Annotated[str, typer.Option(help=f"One of: {', '.join(te.PHASES)}.")],
    home: HomeOption = None,
) -> None:
    """Say where the work on a task this agent holds stands."""
    answer = _report(home, task, "phase", phase=phase)
    out.print(f"{task} is {answer['state']} (token {answer['token']})")


@app.command("done")
def done(
    task: Annotated[str, typer.Argument(help="A task this agent holds.")],
    result: Annotated[str, typer.Option(help="What was done, in a sentence or two.")] = "",
    link: Annotated[str | None, typer.Option(help="The pull request or branch.")] = None,
    home: HomeOption = None,
) -> None:
    """Mark a task this agent holds as done."""
    answer = _report(home, task, "done", result=result, link=link)
    out.print(f"{task} is {answer['state']} (token {answer['token']})")


@app.command("fail")
def fail(
    task: Annotated[str, typer.Argument(help="A task this agent holds.")],
    reason: Annotated[str, typer.Option(help="Why it could not be done.")],
    home: HomeOption = None,
) -> None:
    """Give a task up as failed: it goes back on the board for another agent."""
    answer = _report(home, task, "failed", reason=reason)
    out.print(f"{task} is {answer['state']} (token {answer['token']})")
