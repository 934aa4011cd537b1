"""The grammar of entry kinds: dotted lowercase words, e.g. ``task.claim_requested``."""

from __future__ import annotations

import re
from functools import lru_cache

from bzzz.domain.limits import MAX_KIND_CHARS
from bzzz.errors import EntryError

_KIND = re.compile(r"[a-z][a-z0-9_]*(?:\.[a-z][a-z0-9_]*)+")


@lru_cache(maxsize=4096)
def _text_kind_problem(kind: str) -> str | None:
    if len(kind) > MAX_KIND_CHARS:
        return f"kind is {len(kind)} characters long; the limit is {MAX_KIND_CHARS}"
    if not _KIND.fullmatch(kind):
        return (
            f"kind {kind!r} is not dotted lowercase words "
            "(letters, digits and _; at least two words, e.g. task.claim_requested)"
        )
    return None


def kind_problem(kind: object) -> str | None:
    """Why `kind` is not a valid kind, or None when it is. A log uses a handful of kinds
    over and over, so answers are cached (bounded, so hostile input cannot grow it)."""
    if not isinstance(kind, str):
        return f"kind must be text, got {type(kind).__name__}"
    if len(kind) > MAX_KIND_CHARS:  # before the cache: long hostile strings stay out of it
        return f"kind is {len(kind)} characters long; the limit is {MAX_KIND_CHARS}"
    return _text_kind_problem(kind)


def check_kind(kind: object) -> str:
    problem = kind_problem(kind)
    if problem is not None:
        raise EntryError("bad-kind", problem)
    assert isinstance(kind, str)
    return kind


# Kinds that only BZZZ's own services write: a person's `bzzz log append` (and the control
# socket's `append`) must not forge them. An entry ending in "." is a prefix (a whole
# family of kinds), anything else one exact kind. Extend this tuple, and only this tuple,
# when a new service-written kind appears.
SERVICE_ONLY_KINDS: tuple[str, ...] = (
    "cluster.",
    "member.",
    "election.",
    "key.",
    "alert.",
    "agent.profile",
    "task.claim_granted",
    "task.claim_refused",
    "task.opened",
    "task.updated",
    "task.closed",
    "task.synced",
    "task.mirrored",
    "task.completed",
    "task.failed",
    "hmmm.delivered",
    "context.linked",  # the admin's curation of context (bzzz.domain.slurp)
    "context.superseded",
    "exec.",
    "mesh.",
)


def service_only(kind: str) -> bool:
    """Whether `kind` is written only by BZZZ's services, never by hand."""
    return any(
        kind.startswith(rule) if rule.endswith(".") else kind == rule for rule in SERVICE_ONLY_KINDS
    )


def check_hand_written(kind: object) -> str:
    """`check_kind`, and refuse the kinds only BZZZ's services write (code
    ``service-only``): for entries a person or a script asks for."""
    checked = check_kind(kind)
    if service_only(checked):
        raise EntryError(
            "service-only",
            f"kind {checked!r} is written by BZZZ's services, not by hand",
        )
    return checked
