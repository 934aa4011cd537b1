"""`bzzz service`: run a node home's agent as a systemd service.

`install` writes the unit (`bzzz.home.service_unit`), checks it with `systemd-analyze
verify`, and enables and starts it where systemd runs; `--print` only shows it (no root,
nothing written). `uninstall` stops, disables and removes it.
"""

from __future__ import annotations

import contextlib
import grp
import os
import pwd
import shutil
import sys
import tempfile
from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape

from bzzz.cli.options import HomeOption
from bzzz.cli.render import err, out
from bzzz.errors import ConfigError, UsageError, one_line
from bzzz.home.location import resolve_home
from bzzz.home.node import open_config
from bzzz.home.service_unit import (
    MARKER,
    UNIT_NAME,
    Scope,
    ServicePaths,
    UnitSpec,
    agent_command,
    render_unit,
    service_paths,
    unit_file_name,
)
from bzzz.ops import systemd

app = typer.Typer(help="Run the agent as a systemd service.", no_args_is_help=True)

UserOption = Annotated[
    bool, typer.Option("--user", help="A user unit (systemctl --user), not a system one.")
]
NameOption = Annotated[str, typer.Option("--name", help="The unit's name (NAME.service).")]
UnitDirOption = Annotated[
    Path | None,
    typer.Option(
        "--unit-dir",
        help="Write the unit here instead of systemd's folder (tests, image builds).",
        hidden=True,
    ),
]


def entry_point() -> tuple[str, ...]:
    """How to run this bzzz: the `bzzz` script beside this Python (a virtualenv's or the
    system's), else the one on PATH, else `python -m bzzz`. Absolute, symlinks kept (a
    virtualenv's python is a symlink that must stay one)."""
    beside = Path(sys.executable).absolute().parent / "bzzz"
    if beside.is_file() and os.access(beside, os.X_OK):
        return (str(beside),)
    found = shutil.which("bzzz")
    if found:
        return (str(Path(found).absolute()),)
    return (str(Path(sys.executable).absolute()), "-m", "bzzz")


def _with_program(paths: ServicePaths) -> ServicePaths:
    """The Python that runs bzzz must stay readable too (ProtectHome= would hide a
    virtualenv's or pyenv's interpreter kept in a home folder)."""
    program = [Path(sys.executable).resolve(), Path(sys.prefix), Path(sys.base_prefix)]
    readable = tuple(dict.fromkeys([*paths.readable, *program]))
    return ServicePaths(paths.writable, readable)


def _owner(home: Path) -> tuple[str, str, int]:
    """The home's owner and group names, and the owner's uid."""
    st = home.stat()
    try:
        user = pwd.getpwuid(st.st_uid).pw_name
    except KeyError:
        raise ConfigError(
            f"{home} belongs to uid {st.st_uid}, which has no user name: "
            "give it to a user (chown -R USER) first"
        ) from None
    try:
        group = grp.getgrgid(st.st_gid).gr_name
    except KeyError:
        group = pwd.getpwuid(st.st_uid).pw_name
    return user, group, st.st_uid


def build_unit(home: Path | None, scope: Scope) -> tuple[UnitSpec, str]:
    """The unit for a node home, and its text."""
    where = resolve_home(home)
    config = open_config(where)  # a node home, with a valid config (ConfigError says why)
    user = group = None
    if scope == "system":
        user, group, _ = _owner(where)
    else:
        owner = where.stat().st_uid
        if owner != os.geteuid():
            raise UsageError(
                f"{where} belongs to uid {owner}, not to you (uid {os.geteuid()}): a user "
                "unit runs as you; install a system unit (without --user) instead"
            )
    spec = UnitSpec(
        command=agent_command(entry_point(), where),
        home=where,
        node_name=config.name,
        scope=scope,
        user=user,
        group=group,
        paths=_with_program(service_paths(where, config)),
        systemd_version=systemd.version(),
    )
    return spec, render_unit(spec)


def _scope(user: bool) -> Scope:
    return "user" if user else "system"


def _check_ours(path: Path) -> None:
    """Refuse to replace or remove a unit file `bzzz service install` did not write."""
    try:
        text = path.read_text()
    except FileNotFoundError:
        return
    except OSError as exc:
        raise UsageError(f"cannot read {path}: {one_line(exc)}") from None
    if not text.startswith(MARKER):
        raise UsageError(
            f"{path} was not written by `bzzz service install`: move it away or "
            "choose another --name"
        )


def _write(path: Path, text: str) -> None:
    """Write the unit (mode 0644) atomically."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, temp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
        try:
            with os.fdopen(fd, "w") as handle:
                handle.write(text)
            os.chmod(temp, 0o644)
            os.replace(temp, path)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(temp)
            raise
    except OSError as exc:
        raise UsageError(f"cannot write {path}: {one_line(exc)}") from None


def _needs_root(scope: Scope, unit_dir: Path | None, what: str) -> None:
    if scope == "system" and unit_dir is None and os.geteuid() != 0:
        raise UsageError(
            f"{what} a system unit needs root: run it with sudo, or add --user for a user "
            "unit (--print shows the unit without installing it)"
        )


@app.command("install")
def install(
    home: HomeOption = None,
    user: UserOption = False,
    print_: Annotated[
        bool, typer.Option("--print", help="Only print the unit; change nothing.")
    ] = False,
    name: NameOption = UNIT_NAME,
    unit_dir: UnitDirOption = None,
) -> None:
    """Write a hardened systemd unit for this node home's agent, check it with
    `systemd-analyze verify`, then enable and start it where systemd runs."""
    scope = _scope(user)
    file_name = unit_file_name(name)
    if not print_:
        _needs_root(scope, unit_dir, "installing")
    spec, text = build_unit(home, scope)
    if print_:
        sys.stdout.write(text)
        return
    problems = systemd.verify(text, file_name, scope)
    if problems:
        raise UsageError(f"systemd-analyze verify refused the unit: {problems[0]}")
    path = (unit_dir or systemd.unit_dir(scope)) / file_name
    _check_ours(path)
    _write(path, text)
    out.print(f"wrote {escape(str(path))} (checked by systemd-analyze verify)")
    if scope == "system" and spec.user == "root":
        err.print(
            f"[yellow]warning:[/yellow] {escape(str(spec.home))} belongs to root, so the "
            "agent runs as root; a user of its own is safer (chown -R it, install again)"
        )
    ctl = "systemctl" + (" --user" if scope == "user" else "")
    if unit_dir is not None or not systemd.running(scope):
        reason = "--unit-dir was given" if unit_dir is not None else systemd.why_not_running(scope)
        err.print(
            f"[yellow]not started:[/yellow] {escape(reason)}; where systemd runs: "
            f"{ctl} daemon-reload && {ctl} enable --now {file_name}"
        )
        return
    systemd.systemctl(scope, "daemon-reload")
    systemd.systemctl(scope, "enable", file_name)
    systemd.systemctl(scope, "restart", file_name)  # a changed unit takes effect too
    state = systemd.systemctl(scope, "is-active", file_name).strip()
    out.print(f"{file_name} enabled and {state}: journalctl {'--user ' if user else ''}-u {name}")


@app.command("uninstall")
def uninstall(
    user: UserOption = False,
    name: NameOption = UNIT_NAME,
    unit_dir: UnitDirOption = None,
) -> None:
    """Stop and disable the unit `install` wrote, and remove it (the node home stays)."""
    scope = _scope(user)
    file_name = unit_file_name(name)
    _needs_root(scope, unit_dir, "removing")
    path = (unit_dir or systemd.unit_dir(scope)) / file_name
    if not path.exists():
        raise UsageError(f"no unit at {path}: nothing to uninstall")
    _check_ours(path)
    live = unit_dir is None and systemd.running(scope)
    if live:
        systemd.systemctl(scope, "disable", "--now", file_name)
    try:
        path.unlink()
    except OSError as exc:
        raise UsageError(f"cannot remove {path}: {one_line(exc)}") from None
    if live:
        systemd.systemctl(scope, "daemon-reload")
        out.print(f"stopped, disabled and removed {escape(str(path))}")
    else:
        out.print(f"removed {escape(str(path))}")
        if unit_dir is None:
            err.print(
                f"[yellow]note:[/yellow] {escape(systemd.why_not_running(scope))}: nothing "
                "was running to stop"
            )
