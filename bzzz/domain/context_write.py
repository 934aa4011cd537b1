"""Who may write which piece of context: the rules `bzzz ucxl put`, `bzzz decide` and
UCXI's ``POST /ucxi/v1/context`` share. Pure: the caller says who it is.

A member writes its own context only (the address's agent part is its id, or the start
of it), in its member role, in the cluster's project, at one address (no `*`), as a new
version (``~latest``) of a path; a decision needs a role that may make decisions and
lives under ``decisions/``."""

from __future__ import annotations

from dataclasses import dataclass

from bzzz.domain import context as cx
from bzzz.domain import ucxl
from bzzz.errors import UsageError


@dataclass(frozen=True, slots=True)
class Writer:
    """The member that writes: its id (hex), member role, whether that role may decide,
    and the cluster's project name."""

    agent: str
    role: str
    may_decide: bool
    project: str


def decision_address(address: ucxl.Address) -> ucxl.Address:
    """Where a decision written at `address` lives: under ``decisions/``."""
    if address.path[:1] == (cx.DECISIONS,):
        return address
    a = address
    return ucxl.Address(a.agent, a.role, a.project, a.task, a.temporal, (cx.DECISIONS, *a.path))


def check_text(text: str) -> None:
    """A version's text: not empty, valid Unicode, at most `MAX_TEXT` bytes of UTF-8
    (so that the entry, sealed or not, stays within an entry's size limit)."""
    if not text.strip():
        raise UsageError("the text is empty")
    try:
        size = len(text.encode("utf-8"))
    except UnicodeEncodeError as error:
        raise UsageError(
            f"the text is not valid Unicode: {error.reason} at character {error.start}"
        ) from None
    if size > cx.MAX_TEXT:
        raise UsageError(f"the text is {size} bytes of UTF-8; at most {cx.MAX_TEXT}")


def check_write(address: ucxl.Address, kind: str, writer: Writer) -> ucxl.Address:
    """Why `writer` may not write an entry of `kind` (`context.put` or `decision.made`)
    at `address`, as a `UsageError`; else the address the new version will have."""
    if kind not in (cx.PUT, cx.DECISION):
        raise UsageError(f"context is written as {cx.PUT} or {cx.DECISION}, not {kind}")
    if address.is_pattern:
        raise UsageError("the address has a *: write to one address, not a pattern")
    if address.temporal != ucxl.LATEST:
        raise UsageError(f"write to ~latest (each write is a new version), not {address.temporal}")
    if not address.path:
        raise UsageError("the address needs a path after the temporal part, e.g. /~latest/notes.md")
    if not writer.agent.startswith(address.agent):
        raise UsageError(
            f"you write your own context only: the agent part is your id, {writer.agent}"
        )
    if address.role != writer.role:
        raise UsageError(f"your role is {writer.role}, not {address.role}")
    if address.project != writer.project:
        raise UsageError(f"this cluster's project is {writer.project}, not {address.project}")
    if kind == cx.DECISION:
        if not writer.may_decide:
            raise UsageError(
                f"the role {writer.role} may not make decisions (authority below decision)"
            )
        address = decision_address(address)
    a = address
    return ucxl.Address(writer.agent, a.role, a.project, a.task, a.temporal, a.path)
