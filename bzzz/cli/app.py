"""The `bzzz` entry point: the command tree and the one place errors become exit codes.

Exit codes: 0 success, 1 a finding (an audit that found problems, an import that refused
entries), 2 a usage error (bad input, missing home, unreadable bundle), 130 interrupted.
Every error is one line on stderr: `error: ...`.
"""

from __future__ import annotations

import sys
from importlib import metadata
from typing import Annotated, Any

import typer
from rich.markup import escape

from bzzz.cli import (
    agent_cmds,
    audit_cmd,
    claim_cmds,
    deploy_cmds,
    election_cmds,
    hap_cmd,
    hmmm_cmds,
    identity_cmds,
    keys_cmds,
    log_cmds,
    member_cmds,
    projection_cmds,
    repo_cmds,
    service_cmds,
    task_cmds,
    ucxl_cmds,
)
from bzzz.cli.render import err
from bzzz.errors import BzzzError, one_line

try:  # typer vendors click since 0.20; before, it used click itself
    from typer._click.exceptions import ClickException, UsageError
except ImportError:  # pragma: no cover
    from click.exceptions import (  # type: ignore[import-not-found,no-redef,assignment,unused-ignore]
        ClickException,
        UsageError,
    )

app = typer.Typer(
    name="bzzz",
    help="BZZZ: a peer-to-peer coordination network for AI coding agents and their humans.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)


def version() -> str:
    try:
        return metadata.version("bzzz")
    except metadata.PackageNotFoundError:  # run from a source tree that is not installed
        return "unknown"


def _show_version(value: bool) -> None:
    if value:
        print(f"bzzz {version()}")
        raise typer.Exit(0)


@app.callback()
def _root(
    _version: Annotated[
        bool,
        typer.Option(
            "--version",
            help="Print the version and exit.",
            is_eager=True,
            callback=_show_version,
        ),
    ] = False,
) -> None:
    """BZZZ: a peer-to-peer coordination network for AI coding agents and their humans."""


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
app.add_typer(task_cmds.app, name="task")
app.add_typer(hmmm_cmds.app, name="hmmm")
app.add_typer(repo_cmds.app, name="repo")
app.add_typer(service_cmds.app, name="service")
app.command("hap")(hap_cmd.hap)
app.add_typer(keys_cmds.app, name="keys")
app.command("deploy")(deploy_cmds.deploy)
app.command("setup")(deploy_cmds.setup)
app.add_typer(ucxl_cmds.app, name="ucxl")
app.command("decide")(ucxl_cmds.decide)


def _usage_line(error: ClickException) -> str:
    """A click/typer usage error as one line, with where to look for help."""
    message = " ".join(error.format_message().split())
    ctx: Any = getattr(error, "ctx", None)
    if ctx is not None and isinstance(error, UsageError):
        return f"{message} (see `{ctx.command_path} --help`)"
    return message


def main() -> None:
    try:
        code = app(standalone_mode=False, prog_name="bzzz")
    except BzzzError as error:
        _fail(str(error))
    except UsageError as error:
        if type(error).__name__ == "NoArgsIsHelpError":  # the help is already printed
            sys.exit(2)
        _fail(_usage_line(error))
    except ClickException as error:
        _fail(_usage_line(error))
    except typer.Abort:
        sys.exit(130)
    except KeyboardInterrupt:
        sys.exit(130)
    except OSError as error:  # the file system refused (typer handles a closed pipe)
        _fail(one_line(error))
    sys.exit(code if isinstance(code, int) else 0)


def _fail(message: str) -> None:
    """Print one error line and exit 2 (a usage error: nothing was changed)."""
    text = " ".join(message.split()) or "failed"
    err.print(f"[red]error:[/red] {escape(text)}", markup=True)
    sys.exit(2)
