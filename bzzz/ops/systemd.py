"""systemd from the outside: whether it runs here, its version, where units go, checking a
unit with `systemd-analyze verify`, and systemctl. Every failure is a `UsageError` whose
one line says what systemd said."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Literal

from bzzz.errors import UsageError, one_line

Scope = Literal["system", "user"]
SYSTEM_UNIT_DIR = Path("/etc/systemd/system")
_VERSION = re.compile(r"^systemd (\d+)")
TIMEOUT_S = 120.0  # `systemctl enable --now` waits for the start (TimeoutStartSec=2min)


def booted() -> bool:
    """Whether systemd is the service manager of this machine (sd_booted(3))."""
    return Path("/run/systemd/system").is_dir()


def user_manager_running(env: Mapping[str, str] | None = None) -> bool:
    """Whether this user has a running systemd user manager to talk to."""
    runtime = (os.environ if env is None else env).get("XDG_RUNTIME_DIR")
    if not runtime:
        return False
    return Path(runtime, "systemd", "private").exists()


def running(scope: Scope, env: Mapping[str, str] | None = None) -> bool:
    return booted() and (scope == "system" or user_manager_running(env))


def why_not_running(scope: Scope) -> str:
    """One sentence: why units cannot be started here."""
    if not booted():
        try:
            init = Path("/proc/1/comm").read_text().strip()
        except OSError:
            init = "unknown"
        return f"systemd is not the service manager here (PID 1 is {init})"
    return "no systemd user manager runs for this user (XDG_RUNTIME_DIR/systemd/private)"


def version() -> int | None:
    """systemd's version from `systemctl --version`, or None without systemctl."""
    program = shutil.which("systemctl")
    if program is None:
        return None
    try:
        result = subprocess.run(
            [program, "--version"], capture_output=True, text=True, timeout=10, check=False
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    match = _VERSION.match(result.stdout)
    return int(match.group(1)) if match else None


def unit_dir(scope: Scope, env: Mapping[str, str] | None = None) -> Path:
    """Where an administrator's units go: /etc/systemd/system, or the user's
    $XDG_CONFIG_HOME/systemd/user (~/.config/systemd/user)."""
    if scope == "system":
        return SYSTEM_UNIT_DIR
    env = os.environ if env is None else env
    config = env.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(config) / "systemd" / "user"


def verify(text: str, file_name: str, scope: Scope) -> list[str]:
    """What `systemd-analyze verify` says about the unit `text`, one problem a line: any
    output on stderr is one (it exits 0 on unknown keys and bad values). UsageError when
    systemd-analyze is not installed."""
    program = shutil.which("systemd-analyze")
    if program is None:
        raise UsageError(
            "systemd-analyze is not installed, so the unit cannot be checked "
            "(Debian/Ubuntu: apt-get install systemd)"
        )
    with tempfile.TemporaryDirectory(prefix="bzzz-unit-") as folder:
        path = Path(folder, file_name)
        path.write_text(text)
        env = dict(os.environ)
        command = [program]
        if scope == "user":
            command.append("--user")
            # A user manager's paths need a runtime folder, even to verify.
            runtime = Path(folder, "runtime")
            runtime.mkdir(mode=0o700)
            env.setdefault("XDG_RUNTIME_DIR", str(runtime))
        command += ["verify", str(path)]
        try:
            result = subprocess.run(
                command, capture_output=True, text=True, timeout=60, check=False, env=env
            )
        except (OSError, subprocess.TimeoutExpired) as exc:
            raise UsageError(f"systemd-analyze verify failed: {one_line(exc)}") from None
    problems = [line.strip() for line in result.stderr.splitlines() if line.strip()]
    if result.returncode != 0 and not problems:
        problems.append(f"systemd-analyze verify exited {result.returncode}")
    return [p.replace(str(path), file_name) for p in problems]


def systemctl(scope: Scope, *args: str) -> str:
    """Run `systemctl [--user] ARGS`; its stdout, or UsageError with its first error line."""
    program = shutil.which("systemctl")
    if program is None:
        raise UsageError("systemctl is not installed here")
    command = [program, *(["--user"] if scope == "user" else []), *args]
    try:
        result = subprocess.run(
            command, capture_output=True, text=True, timeout=TIMEOUT_S, check=False
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise UsageError(f"{' '.join(command[1:])} failed: {one_line(exc)}") from None
    if result.returncode != 0:
        said = next((ln for ln in result.stderr.splitlines() if ln.strip()), "")
        raise UsageError(
            f"systemctl {' '.join(command[1:])} failed (exit {result.returncode})"
            + (f": {said.strip()}" if said else "")
        )
    return result.stdout
