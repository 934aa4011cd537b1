"""`bzzz claim request|list|release`: task claims, through the running agent."""

from __future__ import annotations

import time
from typing import Annotated

import typer

from bzzz.agent.control import ask_running
from bzzz.cli.options import HomeOption, JsonOption
from bzzz.cli.render import iso_ms, out, print_json, shown
from bzzz.home.location import resolve_home

app = typer.Typer(help="Claims on tasks, granted by the elected admin.", no_args_is_help=True)


@app.command("request")
def request(
    task: Annotated[str, typer.Argument(help="The task, e.g. an issue reference like #42.")],
    needs: Annotated[
        list[str] | None, typer.Option("--needs", help="A capability the task needs.")
    ] = None,
    wait: Annotated[
        float, typer.Option(min=0, max=600, help="Seconds to wait for the admin's answer.")
    ] = 10,
    home: HomeOption = None,
    json_: JsonOption = False,
) -> None:
    """Ask the admin for a claim on a task. Exits 0 granted, 1 refused or no answer."""
    answer = ask_running(
        resolve_home(home),
        {"op": "claim", "task": task, "needs": needs or [], "wait": wait},
        timeout=wait + 5,
    )
    if json_:
        print_json({k: v for k, v in answer.items() if k != "ok"} | {"task": task})
    elif answer["status"] == "granted":
        out.print(f"granted {task} with token {answer['token']}")
    else:
        out.print(f"{answer['status']}: {shown(answer.get('reason'), 'no reason given')}")
    if answer["status"] != "granted":
        raise typer.Exit(1)


@app.command("list")
def list_claims(home: HomeOption = None, json_: JsonOption = False) -> None:
    """Every task's latest grant, as this node's logs prove it."""
    answer = ask_running(resolve_home(home), {"op": "claims"})
    if json_:
        print_json(
            {"term": answer["term"], "claims": answer["claims"], "pending": answer["pending"]}
        )
        return
    now = time.time() * 1000
    out.print(f"term {answer['term']}, {answer['pending']} requests pending")
    for row in answer["claims"]:
        state = "[green]live[/green]" if row["live"] else "[dim]lapsed[/dim]"
        left = f", {max(0, row['expires'] - now) / 1000:.0f}s left" if row["live"] else ""
        who = row["name"] or row["holder"][:12]
        out.print(f"  {row['task']}: {who} token {row['token']} {state}{left}")
        if not row["live"]:
            out.print(f"    [dim]until {iso_ms(row['expires'])}[/dim]")


@app.command("release")
def release(
    task: Annotated[str, typer.Argument(help="The task whose claim to give up.")],
    home: HomeOption = None,
) -> None:
    """Give up this agent's claim on a task."""
    answer = ask_running(resolve_home(home), {"op": "release", "task": task})
    out.print(f"released {task} (token {answer['released']})")
