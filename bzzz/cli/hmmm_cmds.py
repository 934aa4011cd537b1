"""`bzzz hmmm threads|show|transcript|plan|say|object|approve|escalate|resolve`: the
discussion before the work. Reading asks the running agent, or reads the store when
none runs; writing goes through the agent, which refuses a message the threads would
leave out, naming the rule."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer
from rich.markup import escape

from bzzz.agent.control import ask, ask_running
from bzzz.cli.options import HomeOption, JsonOption
from bzzz.cli.render import iso_ms, out, print_json
from bzzz.cli.views import thread_json
from bzzz.clock import now_ms
from bzzz.domain import hmmm as hm
from bzzz.domain.roles import Authority
from bzzz.errors import UsageError
from bzzz.home.location import resolve_home
from bzzz.home.node import cluster_id_of, open_node
from bzzz.projections.board import offline_board
from bzzz.projections.leadership import offline_view
from bzzz.projections.membership import read_membership
from bzzz.projections.threads import offline_threads, verify_messages

app = typer.Typer(help="HMMM: plans discussed before the work.", no_args_is_help=True)
ThreadArg = Annotated[str, typer.Argument(help="The thread: a task id, e.g. local:fix-login.")]


def _offline(home: Path) -> list[dict[str, Any]]:
    with open_node(home) as node:
        founding = cluster_id_of(node.config)
        view = offline_view(node.store, node.roles, founding)
        leaders = {term: p.leader for term, p in view.proof.proven.items()}
        board, _ = offline_board(node.store, leaders, view.proof.ends())
        members = read_membership(node.store, node.roles, founding).members.values()
        deciders = set(leaders.values()) | {
            m.agent_id
            for m in members
            if (role := node.roles.get(m.role)) is not None and role.authority >= Authority.DECISION
        }
        from bzzz.runtime.assembly import limits_of  # lazy: the runtime loads asyncssh

        limits = limits_of(node.config)
        threads = offline_threads(node.store, board, deciders, limits)
    now = now_ms()
    return [
        thread_json(hm.view(t, now, limits), view.names)
        for t in sorted(threads.threads.values(), key=lambda t: t.first_ts)
    ]


def _threads(home: Path) -> tuple[bool, list[dict[str, Any]]]:
    answer = ask(home, {"op": "threads"}, timeout=10.0)
    if answer is not None and answer.get("ok"):
        return True, answer["threads"]
    return False, _offline(home)


def _one(home: Path, thread: str) -> dict[str, Any]:
    problem = hm.thread_id_problem(thread)
    if problem is not None:
        raise UsageError(f"{thread[:200]!r}: {problem}")
    found = next((t for t in _threads(home)[1] if t["id"] == thread), None)
    if found is None:
        raise UsageError(f"no thread {thread!r} (`bzzz hmmm threads`)")
    return found


@app.command("threads")
def threads(home: HomeOption = None, json_: JsonOption = False) -> None:
    """Every thread, oldest first, with its state."""
    running, rows = _threads(resolve_home(home))
    if json_:
        print_json({"running": running, "threads": rows})
        return
    if not running:
        out.print("[dim]agent not running: the threads as this node's logs hold them[/dim]")
    if not rows:
        out.print("no threads")
    for row in rows:
        ignored = f", {len(row['ignored'])} left out" if row["ignored"] else ""
        out.print(
            f"[bold]{escape(row['id'])}[/bold] {row['state']}: {escape(row['why'])} "
            f"[dim]({len(row['messages'])} messages{ignored})[/dim]"
        )


def _who(message: dict[str, Any]) -> str:
    return str(message["author_name"] or message["author"][:12])


@app.command("inbox")
def inbox(home: HomeOption = None, json_: JsonOption = False) -> None:
    """What needs this member now: escalations, others' plans in their objection window
    it has not answered, and open questions to it, its role or people (the portal's
    "Needs you"). Needs the running agent."""
    rows = ask_running(resolve_home(home), {"op": "inbox"}, timeout=10.0)["inbox"]
    if json_:
        print_json({"inbox": rows})
        return
    if not rows:
        out.print("nothing needs you now")
    for row in rows:
        who = row["author_name"] or (row["author"] or "")[:12]
        out.print(
            f"[bold]{escape(row['kind'])}[/bold] {escape(row['thread'])} "
            f"{escape(who)}: {escape(row['text'])}"
        )


@app.command("show")
def show(thread: ThreadArg, home: HomeOption = None, json_: JsonOption = False) -> None:
    """One thread: its plan, messages and what was left out."""
    row = _one(resolve_home(home), thread)
    if json_:
        print_json(row)
        return
    out.print(f"[bold]{escape(row['id'])}[/bold] {row['state']}: {escape(row['why'])}")
    if row["until"]:
        out.print(f"  until {iso_ms(row['until'])}")
    for m in row["messages"]:
        extra = m.get("query_type") or m.get("severity") or m.get("outcome") or ""
        indent = "  " * (1 + m["hop"])
        out.print(
            f"{indent}[dim]{iso_ms(m['ts'])}[/dim] [cyan]{escape(_who(m))}[/cyan] "
            f"{m['kind'].removeprefix('hmmm.')} {escape(extra)}: {escape(m['text'])}"
        )
    for bad in row["ignored"]:
        out.print(
            f"  [yellow]left out {bad['entry'][:12]} by {bad['author'][:12]}: "
            f"{escape(bad['rule'])}[/yellow]"
        )


@app.command("transcript")
def transcript(
    thread: ThreadArg,
    format_: Annotated[str, typer.Option("--format", help="md or json.")] = "md",
    verify: Annotated[
        bool, typer.Option(help="Check every message against the logs (exit 1 if one fails).")
    ] = False,
    home: HomeOption = None,
) -> None:
    """The thread as a record a pull request links to: every message with its author,
    time and entry hash."""
    if format_ not in ("md", "json"):
        raise UsageError("--format: md or json")
    where = resolve_home(home)
    row = _one(where, thread)
    problems: list[str] = []
    if verify:
        with open_node(where) as node:
            problems = verify_messages(
                node.store, [(m["entry"], m["author"], m["ts"]) for m in row["messages"]]
            )
    if format_ == "json":
        print_json({**row, **({"verified": not problems, "problems": problems} if verify else {})})
    else:
        out.print(markdown(row), markup=False, highlight=False)
        if verify:
            out.print(
                f"\nverified: {len(row['messages']) - len(problems)} of "
                f"{len(row['messages'])} messages",
                markup=False,
            )
            for problem in problems:
                out.print(f"  {problem}", markup=False)
    if problems:
        raise typer.Exit(1)


def markdown(row: dict[str, Any]) -> str:
    lines = [f"# HMMM thread {row['id']}", "", f"State: {row['state']} ({row['why']})", ""]
    plan = row["plan"]
    if plan:
        files = ", ".join(plan["files"]) or "none named"
        lines += [f"Current plan (revision {plan['revision']}): files {files}", ""]
    for m in row["messages"]:
        extra = m.get("query_type") or m.get("severity") or m.get("outcome") or ""
        label = m["kind"].removeprefix("hmmm.") + (f" ({extra})" if extra else "")
        lines.append(
            f"- {iso_ms(m['ts'])} **{_who(m)}** {label}: {m['text']}  \n"
            f"  `{m['entry']}`" + (f" (reply to `{m['parent'][:12]}`)" if m["parent"] else "")
        )
    if row["ignored"]:
        lines += ["", "Left out by the rules:"]
        lines += [f"- `{b['entry']}` by `{b['author'][:12]}`: {b['rule']}" for b in row["ignored"]]
    return "\n".join(lines)


def _post(home: Path | None, request: dict[str, Any], json_: bool) -> None:
    answer = ask_running(resolve_home(home), {"op": "hmmm", **request}, timeout=15.0)
    if json_:
        print_json({"thread": answer["thread"], "entry": answer["entry"]})
    else:
        out.print(f"{request['what']} written to {answer['thread']} ({answer['entry'][:12]})")


@app.command("plan")
def plan(
    task: ThreadArg,
    text: Annotated[str, typer.Option("--text", help="The plan.")],
    files: Annotated[
        list[str] | None, typer.Option("--files", help="A file it expects to touch.")
    ] = None,
    approach: Annotated[str | None, typer.Option(help="How.")] = None,
    effort: Annotated[str | None, typer.Option(help="How much.")] = None,
    risks: Annotated[str | None, typer.Option(help="What could go wrong.")] = None,
    home: HomeOption = None,
    json_: JsonOption = False,
) -> None:
    """Propose (or revise) the plan for a task this agent holds; the objection window
    starts."""
    request: dict[str, Any] = {"what": "plan", "thread": task, "text": text, "files": files or []}
    request |= {"approach": approach, "effort": effort, "risks": risks}
    _post(home, request, json_)


@app.command("say")
def say(
    thread: ThreadArg,
    type_: Annotated[str, typer.Option("--type", help=f"One of: {', '.join(hm.QUERY_TYPES)}.")],
    text: Annotated[str, typer.Option("--text")],
    parent: Annotated[str | None, typer.Option(help="The entry hash replied to.")] = None,
    to: Annotated[str | None, typer.Option(help="The agent id asked (help, dependency).")] = None,
    home: HomeOption = None,
    json_: JsonOption = False,
) -> None:
    """A structured message in a thread."""
    request: dict[str, Any] = {"what": "say", "thread": thread, "query_type": type_, "text": text}
    request |= {"parent": parent, "to": to}
    _post(home, request, json_)


@app.command("object")
def object_(
    thread: ThreadArg,
    severity: Annotated[str, typer.Option(help="minor, major or blocking.")],
    reason: Annotated[str, typer.Option()],
    resolve: Annotated[str | None, typer.Option(help="What would resolve it.")] = None,
    home: HomeOption = None,
    json_: JsonOption = False,
) -> None:
    """Object to the thread's current plan."""
    request: dict[str, Any] = {"what": "object", "thread": thread, "severity": severity}
    _post(home, request | {"reason": reason, "resolve": resolve}, json_)


@app.command("approve")
def approve(thread: ThreadArg, home: HomeOption = None, json_: JsonOption = False) -> None:
    """Approve the thread's current plan."""
    _post(home, {"what": "approve", "thread": thread}, json_)


@app.command("escalate")
def escalate(
    thread: ThreadArg,
    reason: Annotated[str, typer.Option()],
    home: HomeOption = None,
    json_: JsonOption = False,
) -> None:
    """Ask people to decide."""
    _post(home, {"what": "escalate", "thread": thread, "reason": reason}, json_)


@app.command("resolve")
def resolve(
    thread: ThreadArg,
    why: Annotated[str, typer.Option(help="The decision and its reason.")],
    outcome: Annotated[str, typer.Option(help=f"One of: {', '.join(hm.OUTCOMES)}.")] = "decided",
    home: HomeOption = None,
    json_: JsonOption = False,
) -> None:
    """End an escalation or objection (a participant, the admin, or a deciding role)."""
    _post(home, {"what": "resolve", "thread": thread, "why": why, "outcome": outcome}, json_)
