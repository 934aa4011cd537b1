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

Sealed context. Any of these entries may be sealed for a role (`bzzz.domain.sealing`):
its body is then an envelope, and the fold reads it through an *opener* it is handed (a
function from a `ContextEntry` to `Opened`; the projection makes one of the node's
keyring, the domain never sees a key). What a reader sees:

- **opened** (`Opened.state` OPEN): the version is context like a plain one, at the
  address its sealed payload names, its `sealed_for` the role and `readable` true;
- **sealed** for a role this reader holds no key of (or no opener was given): the
  version is *hidden* (`Context.hidden`), not placed at any address;
- **mismatch** or **damaged**: not context at all; `ignored` says why (`Opened.label`).

Why a sealed version the reader cannot open has no address: the task and the path are
inside the ciphertext, and must stay there. The envelope has exactly its four fields
(`sealing.ENVELOPE_FIELDS`: role, generation, recipient, ciphertext; a body with any
more is not an envelope), so there is nowhere to put them in the clear, and putting
them there would be a leak: a path (`decisions/fire-alice.md`) or a task
(`github:acme/merger#3`) often says as much as the text. What the reader does know is
the author, the author's role, the project, the kind and the role it is sealed for; so
`Context.hidden_for(pattern)` counts, per sealed-for role, the hidden versions whose
author, role and project a pattern could match ("3 versions sealed for architect may
match and are not shown"). Version numbers count the versions a reader can place: where
one item mixes sealed and plain versions, readers with other keys may number them
differently (`~vN`); a version's entry hash names it for everyone.

Curation. The elected admin links decisions to the task and thread they came from and
marks an older decision version superseded by the newer one (`bzzz.domain.slurp`);
`Context.curate` shows those acts on the versions (`links`, `superseded_by`).
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from bzzz.domain import hmmm as hm
from bzzz.domain import ucxl
from bzzz.domain.payload import payload_map
from bzzz.domain.sealing import DAMAGED, MISMATCH, OPEN, SEALED, Opened, not_open, parse_envelope
from bzzz.domain.task_entries import COMPLETED
from bzzz.errors import NotFoundError, UsageError

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
class Link:
    """Where a decision came from, as the admin recorded it (`context.linked`): its task
    on the board and its HMMM thread, each None when there is none."""

    task: str | None
    thread: str | None

    def covers(self, other: Link) -> bool:
        """Whether this link says everything `other` does."""
        return (other.task is None or other.task == self.task) and (
            other.thread is None or other.thread == self.thread
        )


@dataclass(frozen=True, slots=True)
class Version:
    """One version of a piece of context."""

    number: int  # 1 for the oldest
    author: bytes
    seq: int  # in the author's log
    ts: int  # the entry's timestamp, milliseconds
    kind: str
    hash: bytes
    text: str  # "" when not readable here
    sealed_for: str | None = None  # the role a sealed entry is sealed for; None: plain
    readable: bool = True  # False: sealed for a role this reader holds no key of
    links: tuple[Link, ...] = ()  # the admin's links (decisions)
    superseded_by: bytes | None = None  # the newer version's hash, as the admin recorded it


@dataclass(frozen=True, slots=True)
class Item:
    """A piece of context: where it lives and every version, oldest first."""

    address: ucxl.Address  # with ~latest
    versions: tuple[Version, ...]


@dataclass(frozen=True, slots=True)
class Hidden:
    """A sealed version this reader cannot open. Where it lives (task, path) is inside
    the ciphertext; who wrote it, in which role, in which project is known."""

    version: Version  # number 0, text "", readable False, sealed_for set
    role: str  # the author's member role
    project: str

    def could_match(self, pattern: ucxl.Address) -> bool:
        """Whether `pattern` could name this version: its agent, role and project match,
        and its path does not contradict what the kind says of the path (a plan's is
        `plan`, a decision's begins with `decisions`); the task and the rest of the path
        are unknown, so they may."""
        p = pattern
        agent_ok = p.agent == ucxl.WILDCARD or self.version.author.hex().startswith(p.agent)
        role_ok = p.role in (ucxl.WILDCARD, self.role)
        if not (agent_ok and role_ok and p.project in (ucxl.WILDCARD, self.project)):
            return False
        known, exact = _known_path(self.version.kind)
        if exact and len(p.path) > len(known):
            return False
        return p.path[: len(known)] == known[: len(p.path)]


@dataclass
class Context:
    """Every piece of context, by address (its temporal part ~latest)."""

    project: str
    _items: dict[ucxl.Address, list[Version]] = field(default_factory=dict)
    ignored: list[tuple[bytes, int, str]] = field(default_factory=list)  # author, seq, why
    hidden: list[Hidden] = field(default_factory=list)  # sealed, not readable here
    _by_hash: dict[bytes, tuple[ucxl.Address, Version]] = field(default_factory=dict)
    # The addresses of each (role, project, task, path): a short agent prefix looks here.
    _by_rest: dict[tuple[object, ...], list[ucxl.Address]] = field(default_factory=dict)

    def items(self) -> list[Item]:
        return [Item(a, tuple(v)) for a, v in sorted(self._items.items(), key=lambda i: str(i[0]))]

    def add(self, address: ucxl.Address, version: Version) -> None:
        """Add a version (numbered by `number_versions` once all are in)."""
        self._items.setdefault(address, []).append(version)

    def number_versions(self, addresses: Iterable[ucxl.Address] | None = None) -> None:
        """Order each item's versions by the author's log and number them from 1 (only
        the items at `addresses`, when given: those a later fold added to)."""
        if addresses is None:
            self._by_hash, self._by_rest = {}, {}
        for address in self._items if addresses is None else addresses:
            versions = self._items[address]
            versions.sort(key=lambda v: v.seq)
            numbered = [dataclasses.replace(v, number=n) for n, v in enumerate(versions, start=1)]
            self._items[address] = numbered
            self._by_hash.update((v.hash, (address, v)) for v in numbered)
            same = self._by_rest.setdefault(_rest(address), [])
            if address not in same:
                same.append(address)

    def merged(self, more: Context) -> Context:
        """This context and the versions, hidden versions and reasons of `more` (folded
        from entries that arrived later), as a new context; this one is not changed.
        The versions already here keep their curation."""
        items = {address: list(versions) for address, versions in self._items.items()}
        for address, versions in more._items.items():
            items.setdefault(address, []).extend(versions)
        merged = Context(
            self.project,
            items,
            [*self.ignored, *more.ignored],
            [*self.hidden, *more.hidden],
            dict(self._by_hash),
            {rest: list(addresses) for rest, addresses in self._by_rest.items()},
        )
        merged.number_versions(more._items)
        return merged

    def version(self, entry_hash: bytes) -> tuple[ucxl.Address, Version] | None:
        """The version an entry hash names, with its item's address, if placed here."""
        return self._by_hash.get(entry_hash)

    def curate(
        self, links: Mapping[bytes, Iterable[Link]], superseded: Mapping[bytes, bytes]
    ) -> None:
        """Show the admin's acts on the versions they name (`bzzz.domain.slurp` decides
        which acts count): each version's links (those another link covers left out)
        and the version that superseded it."""
        for address, versions in self._items.items():
            curated = []
            for v in versions:
                found = list(dict.fromkeys(links.get(v.hash, ())))
                kept = tuple(a for a in found if not any(b != a and b.covers(a) for b in found))
                curated.append(
                    dataclasses.replace(v, links=kept, superseded_by=superseded.get(v.hash))
                )
            self._items[address] = curated
            self._by_hash.update((v.hash, (address, v)) for v in curated)

    def hidden_for(self, pattern: ucxl.Address) -> dict[str, int]:
        """How many hidden versions `pattern` could name, per role they are sealed for
        (for "N versions sealed for ROLE may match and are not shown")."""
        counts: dict[str, int] = {}
        for hidden in self.hidden:
            if hidden.could_match(pattern) and hidden.version.sealed_for is not None:
                role = hidden.version.sealed_for
                counts[role] = counts.get(role, 0) + 1
        return dict(sorted(counts.items()))

    def find(self, address: ucxl.Address) -> list[Item]:
        """The items `address` names, its agent part an id or a prefix of one (so more
        than one only when a short prefix begins several ids)."""
        key = _latest(address)
        exact = self._items.get(key)
        if exact is not None:
            return [Item(key, tuple(exact))]
        return [
            Item(a, tuple(self._items[a]))
            for a in self._by_rest.get(_rest(key), ())
            if a.agent.startswith(key.agent)
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


def one_item(context: Context, address: ucxl.Address) -> Item:
    """The one item `address` names; a `UsageError` when it is a pattern or its agent
    prefix is ambiguous, a `NotFoundError` when there is none."""
    if address.is_pattern:
        raise UsageError("the address has a *: that is a search (`bzzz ucxl search`)")
    found = context.find(address)
    if len(found) > 1:
        raise UsageError(f"the agent {address.agent} begins {len(found)} ids: give more of it")
    if not found:
        raise NotFoundError(f"nothing at {address} (`bzzz ucxl search` lists what there is)")
    return found[0]


def _known_path(kind: str) -> tuple[tuple[str, ...], bool]:
    """What the kind of an entry says of its path without its body: a prefix, and
    whether it is the whole path."""
    if kind == DECISION:
        return (DECISIONS,), False
    if kind == hm.PLAN:
        return PLAN_PATH, True
    if kind in hm.KINDS:
        return DISCUSSION_PATH, True
    if kind == COMPLETED:
        return RESULT_PATH, True
    return (), False


def _rest(address: ucxl.Address) -> tuple[object, ...]:
    """An address without its agent and temporal parts."""
    return (address.role, address.project, address.task, address.path)


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


# How a reader opens a sealed entry (the projection's keyring; never raises).
Opener = Callable[[ContextEntry], Opened]


def put_body(task: str, path: tuple[str, ...], text: str) -> dict[str, Any]:
    return {"task": task, "path": list(path), "text": text}


@dataclass(frozen=True, slots=True)
class _Placed:
    address: ucxl.Address
    text: str
    sealed_for: str | None


@dataclass(frozen=True, slots=True)
class _Sealed:
    role: str  # sealed for


def fold_context(
    entries: Iterable[ContextEntry],
    roles_of: Mapping[bytes, str],
    project: str,
    deciding_roles: frozenset[str],
    opener: Opener | None = None,
) -> Context:
    """The context these entries make; `roles_of` gives each member's role (an author
    with none is not a member: its entries are left out); a decision counts only from a
    role in `deciding_roles` (authority `decision` or above); `opener` reads sealed
    entries (without one, every sealed entry is hidden)."""
    context = Context(project)
    for entry in entries:
        placed = _place(entry, roles_of, project, opener)
        deciding = roles_of.get(entry.author) in deciding_roles
        if entry.kind == DECISION and isinstance(placed, _Placed | _Sealed) and not deciding:
            placed = "its author's role may not make decisions"
        if isinstance(placed, str):
            context.ignored.append((entry.author, entry.seq, placed))
        elif isinstance(placed, _Sealed):
            version = Version(
                0, entry.author, entry.seq, entry.ts, entry.kind, entry.hash, "", placed.role, False
            )
            context.hidden.append(Hidden(version, roles_of[entry.author], project))
        elif placed is not None:
            version = Version(
                0,
                entry.author,
                entry.seq,
                entry.ts,
                entry.kind,
                entry.hash,
                placed.text,
                placed.sealed_for,
            )
            context.add(placed.address, version)
    context.number_versions()
    return context


def _open(entry: ContextEntry, opener: Opener | None) -> tuple[Any, str | None] | _Sealed | str:
    """The payload of an entry's body and the role it was sealed for (None: plain); a
    `_Sealed` when this reader cannot open it; why, when it is not context."""
    envelope = parse_envelope(entry.body)
    if envelope is None:
        return payload_map(entry.body), None
    opened = opener(entry) if opener is not None else not_open(SEALED, envelope)
    if opened.state in (MISMATCH, DAMAGED):
        return opened.label()
    if opened.state == SEALED or not opened.readable:
        return _Sealed(opened.role or envelope.role)
    return opened.payload, (opened.role or envelope.role) if opened.state == OPEN else None


def _place(
    entry: ContextEntry, roles_of: Mapping[bytes, str], project: str, opener: Opener | None
) -> _Placed | _Sealed | str | None:
    """Where an entry lives and its text; `_Sealed` when it is hidden from this reader;
    a reason when it should be context and cannot; None when it is not context at all."""
    if entry.kind not in KINDS:
        return None
    role = roles_of.get(entry.author)
    if role is None:
        return "its author is not a member"
    opened = _open(entry, opener)
    if isinstance(opened, str | _Sealed):
        return opened
    data, sealed_for = opened
    if not isinstance(data, dict):
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
    return _Placed(address, text, sealed_for)


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
