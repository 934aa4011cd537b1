"""Shared context by UCXL address: which entries are context, where each one lives, and
which version an address names. Pure: the projection (`bzzz.projections.context`) feeds
it entries, the front ends print what it answers.

A piece of context is one author's, at one path of one task:

    ucxl://AUTHOR:ROLE@PROJECT:TASK/~latest/PATH

and each entry that writes it is a new version (in the author's log order, so every node
numbers versions alike). What becomes context:

| entry | path | text |
|---|---|---|
| `context.put` (`bzzz ucxl put`) | the address's | its text |
| `decision.made` (`bzzz decide`; deciding roles) | under `decisions/` | its text |
| `hmmm.plan` | `plan` | the plan and its files |
| `hmmm.msg`, `.objection`, `.approval`, `.escalation`, `.resolution` | `discussion` | the message |
| `task.completed` | `result` | the holder's result and its link (a pull request) |

The project is the cluster's (its label, made a UCXL name). The role is the author's
member role when the fold runs (an entry says who wrote it, not in which role; a member
whose role changed shows under the new one). An entry whose body does not fit is not
context; the fold says why in `ignored`, never raises.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from bzzz.domain import hmmm as hm
from bzzz.domain import ucxl
from bzzz.domain.payload import payload_map
from bzzz.domain.task_entries import COMPLETED

PUT = "context.put"
DECISION = "decision.made"
DECISIONS = "decisions"  # a decision's path begins here
PLAN_PATH = ("plan",)
DISCUSSION_PATH = ("discussion",)
RESULT_PATH = ("result",)
MAX_TEXT = 60_000  # characters of one version's text (an entry's body is at most 64 KiB)
KINDS = (PUT, DECISION, hm.PLAN, *[k for k in hm.KINDS if k != hm.PLAN], COMPLETED)
_PROJECT_CHARS = re.compile(r"[^a-z0-9._-]+")


def project_name(cluster: str | None) -> str:
    """The UCXL project of a cluster: its label in lowercase, other characters as `-`."""
    name = _PROJECT_CHARS.sub("-", (cluster or "").lower()).strip("-._")[: ucxl.MAX_NAME]
    return name or "bzzz"


@dataclass(frozen=True, slots=True)
class Version:
    """One version of a piece of context."""

    number: int  # 1 for the oldest
    author: bytes
    seq: int  # in the author's log
    ts: int  # the entry's timestamp, milliseconds
    kind: str
    hash: bytes
    text: str


@dataclass(frozen=True, slots=True)
class Item:
    """A piece of context: where it lives and every version, oldest first."""

    address: ucxl.Address  # with ~latest
    versions: tuple[Version, ...]


@dataclass
class Context:
    """Every piece of context, by address (its temporal part ~latest)."""

    project: str
    _items: dict[ucxl.Address, list[Version]] = field(default_factory=dict)
    ignored: list[tuple[bytes, int, str]] = field(default_factory=list)  # author, seq, why

    def items(self) -> list[Item]:
        return [Item(a, tuple(v)) for a, v in sorted(self._items.items(), key=lambda i: str(i[0]))]

    def add(self, address: ucxl.Address, version: Version) -> None:
        """Add a version (numbered by `number_versions` once all are in)."""
        self._items.setdefault(address, []).append(version)

    def number_versions(self) -> None:
        """Order each item's versions by the author's log and number them from 1."""
        for address, versions in self._items.items():
            versions.sort(key=lambda v: v.seq)
            self._items[address] = [
                Version(n, v.author, v.seq, v.ts, v.kind, v.hash, v.text)
                for n, v in enumerate(versions, start=1)
            ]

    def find(self, address: ucxl.Address) -> list[Item]:
        """The items `address` names, its agent part an id or a prefix of one (so more
        than one only when a short prefix begins several ids)."""
        key = _latest(address)
        exact = self._items.get(key)
        if exact is not None:
            return [Item(key, tuple(exact))]
        return [
            Item(a, tuple(v))
            for a, v in self._items.items()
            if a.agent.startswith(key.agent) and a == _latest(_with_agent(key, a.agent))
        ]

    def history(self, address: ucxl.Address) -> Item | None:
        """Every version of the one item `address` names (its temporal part aside)."""
        found = self.find(address)
        return found[0] if len(found) == 1 else None

    def get(self, address: ucxl.Address) -> tuple[Item, Version] | None:
        """The version `address` names, or None (no such item, or no such version)."""
        item = self.history(address)
        if item is None:
            return None
        version = pick(item.versions, address.temporal)
        return None if version is None else (item, version)

    def search(self, pattern: ucxl.Address) -> list[tuple[Item, Version]]:
        """Every item the pattern matches, each at the version its temporal part names
        (items without such a version are left out)."""
        found = []
        for item in self.items():
            if ucxl.matches(pattern, item.address):
                version = pick(item.versions, pattern.temporal)
                if version is not None:
                    found.append((item, version))
        return found


def _with_agent(address: ucxl.Address, agent: str) -> ucxl.Address:
    a = address
    return ucxl.Address(agent, a.role, a.project, a.task, a.temporal, a.path)


def _latest(address: ucxl.Address) -> ucxl.Address:
    return ucxl.Address(
        address.agent, address.role, address.project, address.task, ucxl.LATEST, address.path
    )


def pick(versions: tuple[Version, ...], temporal: ucxl.Temporal) -> Version | None:
    """The version a temporal segment names among `versions` (oldest first)."""
    kind, value = temporal.kind, temporal.value
    if not versions:
        return None
    if kind is ucxl.TemporalKind.LATEST:
        return versions[-1]
    if kind is ucxl.TemporalKind.FIRST:
        return versions[0]
    if kind is ucxl.TemporalKind.BACK:
        return versions[-1 - value] if value < len(versions) else None
    if kind is ucxl.TemporalKind.FORWARD:
        return versions[value] if value < len(versions) else None
    if kind is ucxl.TemporalKind.VERSION:
        return versions[value - 1] if value <= len(versions) else None
    written = [v for v in versions if v.ts <= value]
    return written[-1] if written else None


@dataclass(frozen=True, slots=True)
class ContextEntry:
    """What the fold needs of an entry."""

    author: bytes
    seq: int
    ts: int
    kind: str
    hash: bytes
    body: bytes


def put_body(task: str, path: tuple[str, ...], text: str) -> dict[str, Any]:
    return {"task": task, "path": list(path), "text": text}


def fold_context(
    entries: Iterable[ContextEntry],
    roles_of: Mapping[bytes, str],
    project: str,
    deciding_roles: frozenset[str],
) -> Context:
    """The context these entries make; `roles_of` gives each member's role (an author
    with none is not a member: its entries are left out); a decision counts only from a
    role in `deciding_roles` (authority `decision` or above)."""
    context = Context(project)
    for entry in entries:
        placed = _place(entry, roles_of, project)
        deciding = roles_of.get(entry.author) in deciding_roles
        if entry.kind == DECISION and isinstance(placed, tuple) and not deciding:
            placed = "its author's role may not make decisions"
        if isinstance(placed, str):
            context.ignored.append((entry.author, entry.seq, placed))
        elif placed is not None:
            address, text = placed
            context.add(
                address, Version(0, entry.author, entry.seq, entry.ts, entry.kind, entry.hash, text)
            )
    context.number_versions()
    return context


def _place(
    entry: ContextEntry, roles_of: Mapping[bytes, str], project: str
) -> tuple[ucxl.Address, str] | str | None:
    """Where an entry lives and its text; a reason when it should and cannot; None
    when it is not context at all."""
    if entry.kind not in KINDS:
        return None
    role = roles_of.get(entry.author)
    if role is None:
        return "its author is not a member"
    data = payload_map(entry.body)
    if data is None:
        return "its body is not a map"
    if entry.kind in (PUT, DECISION):
        task, path = data.get("task"), data.get("path")
        if not isinstance(path, list) or not all(isinstance(p, str) for p in path):
            return "path: a list of segments"
        if entry.kind == DECISION and path[:1] != [DECISIONS]:
            path = [DECISIONS, *path]
        text = data.get("text")
    elif entry.kind in hm.KINDS:
        task = data.get("thread")
        path = list(PLAN_PATH if entry.kind == hm.PLAN else DISCUSSION_PATH)
        text = _hmmm_text(data)
    else:
        task, path, text = data.get("task"), list(RESULT_PATH), _result_text(data)
    if not isinstance(text, str) or len(text) > MAX_TEXT:
        return f"text: at most {MAX_TEXT} characters"
    if not isinstance(task, str):
        return "task: text"
    try:
        address = ucxl.Address(entry.author.hex(), role, project, task, ucxl.LATEST, tuple(path))
    except ValueError as error:
        return f"not a UCXL address: {error}"
    return address, text


def _hmmm_text(data: Mapping[str, Any]) -> str | None:
    text = next((v for k in ("text", "reason", "why") if isinstance(v := data.get(k), str)), "")
    files = data.get("files")
    if isinstance(files, list) and files and all(isinstance(f, str) for f in files):
        text += "\n\nfiles: " + ", ".join(files)
    return text


def _result_text(data: Mapping[str, Any]) -> str:
    lines = [v for k in ("result", "summary") if isinstance(v := data.get(k), str) and v]
    for key in ("branch", "commit", "link"):
        value = data.get(key)
        if isinstance(value, str) and value:
            lines.append(f"{key.replace('_', ' ')}: {value}")
    return "\n".join(lines) or "completed"
