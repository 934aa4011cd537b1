"""What the portal shows, as rows and lines, from the node's answers (the JSON of the
`bzzz ... --json` commands). Pure functions: the screens put them on the terminal."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from rich.markup import escape

from bzzz.domain.context import project_name
from bzzz.hap.form import Selection

CELL = 60  # characters of free text in a table cell
CONTEXT_HINT = "u: shared context by UCXL address"
NEEDS_LABEL = {"escalation": "ESCALATED", "plan": "review plan", "question": "question"}


@dataclass(frozen=True)
class Row:
    key: str
    cells: tuple[str, ...]
    selection: Selection


def short(text: object, width: int = CELL) -> str:
    flat = " ".join(str(text or "").split())
    return flat if len(flat) <= width else flat[: width - 1] + "…"


def age(ts: int | None, now_ms: float | None = None) -> str:
    if not ts:
        return ""
    seconds = max(0.0, ((now_ms if now_ms is not None else time.time() * 1000) - ts) / 1000)
    if seconds < 60:
        return f"{seconds:.0f}s"
    if seconds < 3600:
        return f"{seconds / 60:.0f}m"
    if seconds < 86400:
        return f"{seconds / 3600:.0f}h"
    return f"{seconds / 86400:.0f}d"


def who(author: str | None, name: str | None) -> str:
    return name or (author or "")[:8]


def needs_rows(inbox: list[dict[str, Any]], now_ms: float | None = None) -> list[Row]:
    rows = []
    for item in inbox:
        kind = str(item["kind"])
        entry = item.get("entry")
        rows.append(
            Row(
                f"{kind}:{item['thread']}:{entry}",
                (
                    NEEDS_LABEL.get(kind, kind),
                    str(item["thread"]),
                    who(item.get("author"), item.get("author_name")),
                    age(item.get("ts"), now_ms),
                    short(item.get("text")),
                ),
                Selection(item["thread"], item.get("task"), entry),
            )
        )
    return rows


def task_rows(tasks: list[dict[str, Any]], me: str | None) -> list[Row]:
    rows = []
    for t in tasks:
        holder = t.get("holder")
        held = "you" if holder and holder == me else who(holder, t.get("holder_name"))
        rows.append(
            Row(
                str(t["id"]),
                (str(t["state"]), f"p{t['priority']}", str(t["id"]), held, short(t["title"])),
                Selection(str(t["id"]), str(t["id"]), None),
            )
        )
    return rows


def reply_to(thread: dict[str, Any]) -> str | None:
    """The message a new reply in `thread` answers by default: its plan, else its latest."""
    plan = thread.get("plan")
    if plan:
        return str(plan["entry"])
    messages = thread.get("messages") or []
    return str(messages[-1]["entry"]) if messages else None


def thread_rows(threads: list[dict[str, Any]]) -> list[Row]:
    rows = []
    for t in sorted(threads, key=lambda t: -max((m["ts"] for m in t["messages"]), default=0)):
        rows.append(
            Row(
                str(t["id"]),
                (str(t["state"]), str(t["id"]), str(len(t["messages"])), short(t["why"])),
                Selection(str(t["id"]), t.get("task"), reply_to(t)),
            )
        )
    return rows


def who_line(
    status: dict[str, Any] | None, election: dict[str, Any] | None, mode: str, problem: str | None
) -> str:
    if status is None:
        return f"[b]BZZZ HAP[/b] · {escape(problem or 'connecting ...')}"
    cluster = status.get("cluster") or "no cluster"
    leader = (election or {}).get("leader")
    admin = "you" if leader and leader == status.get("agent_id") else None
    if admin is None and leader:
        admin = next(
            (
                p.get("name") or leader[:8]
                for p in status.get("peers", [])
                if p.get("agent_id") == leader
            ),
            leader[:8],
        )
    line = (
        f"[b]{escape(str(status['name']))}[/b] ({escape(str(status['role']))}) · "
        f"cluster {escape(str(cluster))} · admin {escape(admin or 'none (no quorum)')} · {mode}"
    )
    if status.get("execution"):
        line += " · [red]a model works this node's tasks[/red]"
    if problem:
        line += f" · [red]{escape(problem)}[/red]"
    return line


def peers_line(status: dict[str, Any] | None, election: dict[str, Any] | None) -> str:
    if status is None:
        return CONTEXT_HINT
    leader = (election or {}).get("leader")
    seen: dict[str, tuple[str, bool]] = {}  # one per member: a dial and a session may both show
    for p in status.get("peers", []):
        key = p.get("agent_id") or p.get("address") or "?"
        name = p.get("name") or seen.get(key, (key[:8], False))[0]
        seen[key] = (name, bool(p.get("connected")) or seen.get(key, ("", False))[1])
    parts = []
    for key, (name, connected) in seen.items():
        mark = "[green]●[/green]" if connected else "[red]○[/red]"
        parts.append(f"{mark} {escape(name)}{' (admin)' if key == leader else ''}")
    peers = " ".join(parts) or "no peers yet"
    return f"Peers: {peers} · [dim]{CONTEXT_HINT}[/dim]"


def thread_text(thread: dict[str, Any]) -> str:
    """A thread as markup: its state, plan and messages (replies indented)."""
    lines = [
        f"[b]{escape(thread['id'])}[/b]  {thread['state']}: {escape(thread['why'])}",
    ]
    plan = thread.get("plan")
    if plan:
        files = ", ".join(plan["files"]) or "none named"
        lines.append(f"current plan: revision {plan['revision']}, files {escape(files)}")
    lines.append("")
    for m in thread["messages"]:
        extra = m.get("query_type") or m.get("severity") or m.get("outcome") or ""
        kind = m["kind"].removeprefix("hmmm.") + (f" ({extra})" if extra else "")
        author = escape(who(m.get("author"), m.get("author_name")))
        indent = "  " * m.get("hop", 0)
        lines.append(
            f"{indent}[dim]{age(m['ts'])}[/dim] [b]{author}[/b] {kind} [dim]{m['entry'][:12]}[/dim]"
        )
        for text_line in str(m["text"]).splitlines() or [""]:
            lines.append(f"{indent}  {escape(text_line)}")
    for bad in thread.get("ignored", []):
        lines.append(f"[yellow]left out {bad['entry'][:12]}: {escape(bad['rule'])}[/yellow]")
    return "\n".join(lines)


def task_text(task: dict[str, Any]) -> str:
    lines = [f"[b]{escape(task['id'])}[/b]  {escape(task['title'])}"]
    lines.append(f"state {task['state']}, priority {task['priority']}, from {task['scope']}")
    if task.get("holder"):
        holder = escape(who(task["holder"], task.get("holder_name")))
        lines.append(f"held by {holder} with token {task['token']}")
    for key in ("type", "url", "repo", "result", "link", "reason"):
        if task.get(key):
            lines.append(f"{key}: {escape(str(task[key]))}")
    for key in ("needs", "labels", "depends_on", "waiting_for"):
        if task.get(key):
            lines.append(f"{key.replace('_', ' ')}: {escape(', '.join(task[key]))}")
    if task.get("body"):
        lines += ["", escape(task["body"])]
    lines.append("")
    for event in task.get("history", []):
        author = escape(who(event["author"], event.get("author_name")))
        lines.append(
            f"[dim]{age(event['ts'])}[/dim] {author} {event['kind']}: {escape(event['what'])}"
        )
    return "\n".join(lines)


def context_pattern(status: dict[str, Any] | None) -> str:
    """The search the context screen starts with: the newest of everything in the
    cluster's project."""
    project = project_name(str(status["cluster"]) if status and status.get("cluster") else None)
    return f"ucxl://*:*@{project}:*/~latest"


def first_line(text: object) -> str:
    lines = str(text or "").strip().splitlines()
    return lines[0] if lines else ""


def context_rows(found: list[dict[str, Any]], now_ms: float | None = None) -> list[Row]:
    """One row a piece of context (the `ucxl_search` answer), keyed by its address."""
    return [
        Row(
            str(row["latest"]),
            (
                str(row["latest"]),
                who(row.get("author"), row.get("author_name")),
                f"v{row['version']} of {row['versions']}",
                age(row.get("ts"), now_ms),
                short(first_line(row.get("text"))),
            ),
            Selection(),
        )
        for row in found
    ]


def version_rows(versions: list[dict[str, Any]], now_ms: float | None = None) -> list[Row]:
    """One row a version (the `ucxl_history` answer), newest first."""
    return [
        Row(
            str(v["address"]),
            (
                f"v{v['version']}",
                who(v.get("author"), v.get("author_name")),
                age(v.get("ts"), now_ms),
                str(v["kind"]),
                short(first_line(v.get("text"))),
            ),
            Selection(),
        )
        for v in reversed(versions)
    ]


def _curation(version: dict[str, Any]) -> str:
    """What the version's envelope and the admin say of it: sealed for a role, the task
    and thread it came from, superseded."""
    notes = []
    if version.get("sealed_for"):
        notes.append(f"sealed for {version['sealed_for']}")
    for link in version.get("links") or []:
        if isinstance(link, dict) and link.get("task"):
            notes.append(f"from task {link['task']}")
    if version.get("superseded_by"):
        notes.append(f"superseded by {str(version['superseded_by'])[:12]}")
    return " · ".join(notes)


def version_text(version: dict[str, Any]) -> str:
    """One version in full, as markup (everything from the node escaped)."""
    author = escape(who(version.get("author"), version.get("author_name")))
    curation = _curation(version)
    return "\n".join(
        [
            f"[b]{escape(str(version['address']))}[/b]",
            f"[dim]version {version['version']} of {version['versions']} · {author} · "
            f"{escape(str(version['kind']))} · {age(version.get('ts'))} ago · seq "
            f"{version['seq']} · {str(version['hash'])[:12]}[/dim]",
            *([f"[magenta]{escape(curation)}[/magenta]"] if curation else []),
            "",
            escape(str(version.get("text") or "")),
        ]
    )
