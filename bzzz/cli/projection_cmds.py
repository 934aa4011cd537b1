"""`bzzz projections`: status, rebuild, and the authors read model."""

from __future__ import annotations

from typing import Annotated

import typer

from bzzz.cli.options import HomeOption, JsonOption
from bzzz.cli.render import iso_ms, out, print_json
from bzzz.domain.identity import short_id
from bzzz.errors import UsageError
from bzzz.home.location import resolve_home
from bzzz.home.node import open_home_store
from bzzz.projections import Projection, ProjectionRunner
from bzzz.projections.authors import AuthorsProjection, read_authors

app = typer.Typer(help="Read models built from the logs.", no_args_is_help=True)

PROJECTIONS: dict[str, type[Projection]] = {"authors": AuthorsProjection}


def _chosen(name: str | None) -> list[type[Projection]]:
    if name is None:
        return list(PROJECTIONS.values())
    if name not in PROJECTIONS:
        raise UsageError(f"no projection {name!r}; there are: {', '.join(PROJECTIONS)}")
    return [PROJECTIONS[name]]


@app.command("status")
def status(home: HomeOption = None, json_: JsonOption = False) -> None:
    """Where each projection is in the notification log."""
    with open_home_store(resolve_home(home)) as store:
        rows = [
            {"name": p.name, "position": r.position(), "behind": r.behind()}
            for p in PROJECTIONS.values()
            for r in [ProjectionRunner(store, p())]
        ]
    if json_:
        print_json({"projections": rows})
        return
    for row in rows:
        out.print(f"{row['name']:<12} at {row['position']}, {row['behind']} behind")


@app.command("rebuild")
def rebuild(
    name: Annotated[str | None, typer.Argument(help="One projection (default: all).")] = None,
    home: HomeOption = None,
    json_: JsonOption = False,
) -> None:
    """Forget a projection's state and replay every entry from the start."""
    with open_home_store(resolve_home(home)) as store:
        done = {p.name: ProjectionRunner(store, p()).rebuild() for p in _chosen(name)}
    if json_:
        print_json({"rebuilt": done})
        return
    for projection, count in done.items():
        out.print(f"Rebuilt {projection} from {count} notifications")


@app.command("authors")
def authors(home: HomeOption = None, json_: JsonOption = False) -> None:
    """Per author: head, entry counts by kind, first and last timestamps."""
    with open_home_store(resolve_home(home)) as store:
        ProjectionRunner(store, AuthorsProjection()).catch_up()
        with store.datastore.transaction(commit=False) as session:
            summaries = read_authors(session)
    if json_:
        print_json({"authors": [s.as_json() for s in summaries]})
        return
    for s in summaries:
        kinds = ", ".join(f"{k} {n}" for k, n in sorted(s.kinds.items()))
        out.print(
            f"[cyan]{short_id(s.author)}[/cyan] head #{s.head_seq}  {s.entries} entries  "
            f"{iso_ms(s.first_ts)} .. {iso_ms(s.last_ts)}  [dim]{kinds}[/dim]"
        )
