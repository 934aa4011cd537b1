"""`bzzz election status`."""

from __future__ import annotations

from typing import Any

import typer

from bzzz.agent.control import ask
from bzzz.cli.options import HomeOption, JsonOption
from bzzz.cli.render import iso_ms, out, print_json, shown
from bzzz.cli.views import election_json
from bzzz.home.location import resolve_home
from bzzz.home.node import cluster_id_of, open_node
from bzzz.projections.leadership import offline_view

app = typer.Typer(help="The admin election.", no_args_is_help=True)


@app.command("status")
def status(home: HomeOption = None, json_: JsonOption = False) -> None:
    """Term, leader, voters and who is reachable, and the history of terms."""
    where = resolve_home(home)
    answer = ask(where, {"op": "election"})
    if answer is not None and answer.get("ok"):
        data: dict[str, Any] = {"running": True, **answer["election"]}
    else:
        with open_node(where) as node:
            view = offline_view(node.store, node.roles, cluster_id_of(node.config))
        data = {"running": False, **election_json(view)}
    if json_:
        print_json(data)
        return
    leader = f"leader {data['leader']}" if data["leader"] else "no leader"
    proven = " (proven by the logs)" if data["leader_proven"] else ""
    if data["running"]:
        source = f"this node is {shown(data.get('role'), 'not in the election')}"
    else:
        source = "agent not running: from the logs"
    out.print(f"term [bold]{data['term']}[/bold], {leader}{proven}; {source}")
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
