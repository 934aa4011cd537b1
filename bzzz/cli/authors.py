"""Naming authors on the command line: a full agent id or a unique prefix of one."""

from __future__ import annotations

from collections.abc import Iterable

from bzzz.domain.identity import is_id_prefix, parse_agent_id
from bzzz.errors import UsageError


def resolve_author(text: str, known: Iterable[bytes]) -> bytes:
    """The known author that `text` names; a full id need not be known yet."""
    cleaned = text.strip().lower()
    if len(cleaned) == 64:
        return parse_agent_id(cleaned)
    if not is_id_prefix(cleaned):
        raise UsageError(f"--author {text!r}: give an agent id or at least 4 of its hex digits")
    matches = [a for a in known if a.hex().startswith(cleaned)]
    if not matches:
        raise UsageError(f"--author {text!r}: no log here by an author whose id starts so")
    if len(matches) > 1:
        raise UsageError(
            f"--author {text!r} is ambiguous: it starts {len(matches)} agent ids; give more digits"
        )
    return matches[0]
