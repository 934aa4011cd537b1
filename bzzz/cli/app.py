"""The `bzzz` entry point: the command tree and the one place errors become exit codes.

Exit codes: 0 success, 1 a finding (an audit that found problems, an import that refused
entries), 2 a usage error (bad input, missing home, unreadable bundle), 130 interrupted.
"""

from __future__ import annotations

import sys

import typer

from bzzz.cli import (
    agent_cmds,
    audit_cmd,
    claim_cmds,
    election_cmds,
    identity_cmds,
    log_cmds,
    member_cmds,
    projection_cmds,
)
from bzzz.cli.render import err
from bzzz.errors import BzzzError

app = typer.Typer(
    name="bzzz",
    help="BZZZ: a peer-to-peer coordination network for AI coding agents and their humans.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
app.command("init")(identity_cmds.init)
app.command("id")(identity_cmds.show_id)
app.add_typer(log_cmds.app, name="log")
app.command("audit")(audit_cmd.audit)
app.add_typer(projection_cmds.app, name="projections")
app.command("agent")(agent_cmds.agent)
app.command("status")(agent_cmds.status)
app.command("invite")(member_cmds.invite)
app.command("join")(member_cmds.join)
app.add_typer(member_cmds.app, name="member")
app.add_typer(election_cmds.app, name="election")
app.add_typer(claim_cmds.app, name="claim")


def main() -> None:
    try:
        app()
    except BzzzError as error:
        err.print(f"[red]error:[/red] {error}", markup=True)
        sys.exit(2)
    except KeyboardInterrupt:
        sys.exit(130)
