"""Options shared by every command."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from bzzz.domain.addresses import parse_address
from bzzz.errors import UsageError

HomeOption = Annotated[
    Path | None,
    typer.Option(
        "--home",
        help="Node home folder (default: $BZZZ_HOME, else the XDG data dir).",
        show_default=False,
    ),
]
JsonOption = Annotated[bool, typer.Option("--json", help="Print JSON (a stable interface).")]
AuthorOption = Annotated[
    str | None,
    typer.Option("--author", "-a", help="Only this author: an agent id or a unique prefix."),
]


def check_address(option: str, value: str) -> str:
    """A HOST:PORT option checked before anything starts; UsageError names the option."""
    try:
        parse_address(value)
    except ValueError as exc:
        raise UsageError(f"{option}: {exc}") from None
    return value
