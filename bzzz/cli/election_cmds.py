"""`bzzz election status`."""

from __future__ import annotations

from typing import Any

import typer

from bzzz.cli.options import HomeOption, JsonOption
from bzzz.cli.render import iso_ms, out, print_json
from bzzz.home.location import resolve_home
from bzzz.runtime.control import ask
from bzzz.runtime.node import open_node

app = typer.Typer(help="The admin election.", no_args_is_help=True)


@app.command("status")
def status(home: HomeOption = None, json_: JsonOption = False) -> None:
    """Term, leader, voters and who is reachable, and the history of terms."""
    where = resolve_home(home)
    answer = ask(where, {"op": "election"})
    if answer is not None and answer.get("ok"):
        data: dict[str, Any] = {"running": True, **answer["election"]}
    else:
        from bzzz.runtime.election import offline_status

        with open_node(where) as node:
            data = {"running": False, **offline_status(node.store, node.roles)}
    if json_:
        print_json(data)
        return
    leader = data["leader"] or "none"
    proven = " (proven by the logs)" if data["leader_proven"] else ""
    source = (
        f"this node is {data['role']}" if data["running"] else "agent not running: from the logs"
    )
    out.print(f"term [bold]{data['term']}[/bold], leader {leader}{proven}; {source}")
    for voter in data["voters"]:
        mark = {True: "[green]●[/green]", False: "[red]○[/red]", None: "·"}[voter["reachable"]]
        score = voter.get("score")
        scored = f"  score {score:.1f}" if score is not None else ""
        out.print(f"  {mark} {voter['agent_id'][:12]} {voter['name'] or ''}{scored}")
    if data.get("transferring_to"):
        out.print(f"  handing leadership over to {data['transferring_to'][:12]}")
    for term in data["history"]:
        who = term["name"] or term["leader"][:12]
        out.print(
            f"  term {term['term']}: {who} by {term['votes']} votes, {term['trigger']},"
            f" {term['leaderless_ms']} ms without a leader,"
            f" at {iso_ms(term['elected_at'])}"
        )
    for split in data["split_brain"]:
        out.print(f"  [red]split brain in term {split['term']}[/red]: {split['leaders']}")
