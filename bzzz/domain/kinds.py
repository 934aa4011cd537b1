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
