"""The systemd unit that runs a node home's agent (`bzzz service install`), as text.

Rendering is pure: what to run, as whom, which paths the daemon writes and reads, and the
systemd version (for the directives it knows) go in; the unit comes out. `service_paths`
reads a home's config to say which paths those are.

The hardening leaves out what breaks the sandbox a model's commands run in (bubblewrap,
`bzzz.execution.sandbox`): each left-out directive is named in the unit with the reason,
measured on Debian 12 (kernel 6.x, bubblewrap 0.8) by `tests/ops/test_bwrap_hardening.py`,
which sets up the same mounts and limits without systemd.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Literal

from bzzz.errors import ConfigError
from bzzz.home.config import NodeConfig
from bzzz.home.node import store_url_of

Scope = Literal["system", "user"]
UNIT_NAME = "bzzz"
MARKER = "# Written by `bzzz service install`"
ENV_FILE = "service.env"  # secrets for the service's environment, a 0600 file in the home
# Paths ProtectHome= hides (or makes read-only).
HOME_ROOTS = (PurePosixPath("/home"), PurePosixPath("/root"), PurePosixPath("/run/user"))
# Paths PrivateTmp= replaces with an empty folder of the service's own.
TMP_ROOTS = (PurePosixPath("/tmp"), PurePosixPath("/var/tmp"))
# RestartSteps= and RestartMaxDelaySec= (an exponential back-off) came in systemd 254.
BACKOFF_SINCE = 254
_UNIT = re.compile(r"[A-Za-z0-9:_.\\-]{1,200}")
_USER = re.compile(r"[A-Za-z_][A-Za-z0-9_.-]{0,31}\$?")


@dataclass(frozen=True)
class ServicePaths:
    """What the daemon of a home writes (besides the home) and reads, outside the home."""

    writable: tuple[Path, ...] = ()
    readable: tuple[Path, ...] = ()


@dataclass(frozen=True)
class UnitSpec:
    command: tuple[str, ...]  # ExecStart's argv; the first an absolute path
    home: Path
    node_name: str
    scope: Scope = "system"
    user: str | None = None  # system units: the home's owner
    group: str | None = None
    paths: ServicePaths = field(default_factory=ServicePaths)
    systemd_version: int | None = None  # None: not known (no systemd here)


def unit_file_name(name: str = UNIT_NAME) -> str:
    if not _UNIT.fullmatch(name) or name.endswith(".service"):
        raise ConfigError(
            f"unit name {name!r}: use letters, digits and ':_.-' without .service (e.g. bzzz)"
        )
    return f"{name}.service"


def _under(path: PurePosixPath, roots: Iterable[PurePosixPath]) -> bool:
    return any(path == root or root in path.parents for root in roots)


def _check_path(path: Path | str, what: str) -> str:
    text = str(path)
    if not text.startswith("/"):
        raise ConfigError(f"{what} {text!r} is not an absolute path")
    if any(c in text for c in "\n\r\0"):
        raise ConfigError(f"{what} {text!r} holds a line break: systemd cannot name it")
    return text


def quote_arg(arg: str) -> str:
    """One ExecStart= argument: `%` and `$` escaped (systemd expands specifiers and
    variables there), quoted when it holds a space, a quote or a backslash."""
    if any(c in arg for c in "\n\r\0"):
        raise ConfigError(f"argument {arg!r} holds a line break: systemd cannot pass it")
    text = arg.replace("%", "%%").replace("$", "$$")
    if text and not any(c in text for c in " \t\"'\\;"):
        return text
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def quote_path(path: Path | str, what: str, optional: bool = False) -> str:
    """A path in a space-separated list (ReadWritePaths=), quoted when it must be; `-`
    in front when it may be missing."""
    text = ("-" if optional else "") + _check_path(path, what).replace("%", "%%")
    if any(c in text for c in " \t\"'\\"):
        text = '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'
    return text


def _normal(path: Path) -> Path:
    """Absolute and without `..` (systemd refuses paths that are not normalized)."""
    return Path(os.path.normpath(path.absolute()))


def service_paths(home: Path, config: NodeConfig) -> ServicePaths:
    """The paths outside the home the daemon writes (an SQLite store kept elsewhere and
    its side files, local task folders) and reads (the project, the sandbox's extra
    folders, recordings, a prompt template, token files)."""
    home = _normal(home)
    writable: list[Path] = []
    readable: list[Path] = []

    def outside(path: Path) -> bool:
        return path != home and home not in path.parents

    url = store_url_of(home, config)
    if url.is_sqlite and url.url.database:
        folder = _normal(Path(url.url.database)).parent
        if outside(folder):
            writable.append(folder)  # WAL mode writes -wal and -shm beside the file
    for source in config.tasks.sources:
        if source.type == "local":
            folder = _normal(home / source.path)
            if outside(folder):
                writable.append(folder)
        token_file = getattr(source, "token_file", None)
        if token_file:
            readable.append(_normal(home / token_file))
    if config.project:
        readable.append(_normal(home / config.project))
    readable.extend(_normal(Path(p)) for p in config.sandbox.ro_paths)
    if config.reasoning is not None:
        for name in (config.reasoning.recordings, config.reasoning.template):
            if name:
                readable.append(_normal(home / name))
    return ServicePaths(
        tuple(dict.fromkeys(writable)),
        tuple(p for p in dict.fromkeys(readable) if outside(p) and p not in writable),
    )


def protect_home(spec: UnitSpec) -> Literal["yes", "read-only"]:
    """`yes` (hidden) unless the daemon needs something below /home, /root or /run/user:
    its home, a path it reads or writes, or its own program (a virtualenv in a home);
    then `read-only`, with the paths it writes opened again by ReadWritePaths=."""
    needed = [spec.home, *spec.paths.writable, *spec.paths.readable]
    needed.append(Path(spec.command[0]))
    if any(_under(PurePosixPath(p), HOME_ROOTS) for p in needed):
        return "read-only"
    return "yes"


def _tmp_problem(spec: UnitSpec) -> Path | None:
    for path in [spec.home, *spec.paths.writable, *spec.paths.readable, Path(spec.command[0])]:
        if _under(PurePosixPath(path), TMP_ROOTS):
            return path
    return None


def render_unit(spec: UnitSpec) -> str:
    """The unit file's text."""
    if not spec.command or not spec.command[0].startswith("/"):
        raise ConfigError(f"the program to run must be an absolute path, not {spec.command!r}")
    home = _check_path(spec.home, "the node home")
    system = spec.scope == "system"
    if system and spec.user is not None and not _USER.fullmatch(spec.user):
        raise ConfigError(f"user name {spec.user!r} cannot be used in User=")
    if system and spec.group is not None and not _USER.fullmatch(spec.group):
        raise ConfigError(f"group name {spec.group!r} cannot be used in Group=")
    as_root = system and spec.user in (None, "root")
    backoff = spec.systemd_version is not None and spec.systemd_version >= BACKOFF_SINCE
    in_tmp = _tmp_problem(spec)
    rw = [quote_path(home, "the node home")]
    rw += [quote_path(p, "a writable path", optional=True) for p in spec.paths.writable]

    lines: list[str] = [
        f"{MARKER} for the node home {home}.",
        "# Run it again after moving the home or the bzzz installation; `bzzz service",
        "# uninstall` removes it. `systemctl edit` keeps local changes in a drop-in.",
        "[Unit]",
        f"Description=BZZZ agent {spec.node_name}",
    ]
    if system:
        lines += ["Wants=network-online.target", "After=network-online.target"]
    lines += [
        "# At most 10 starts in 10 minutes; then the unit fails and says so.",
        "StartLimitIntervalSec=10min",
        "StartLimitBurst=10",
        "",
        "[Service]",
        "# The daemon sends READY=1 once its mesh listens and its services run, STOPPING=1",
        "# when it begins to stop, and WATCHDOG=1 while its event loop turns.",
        "Type=notify",
        "NotifyAccess=main",
        "ExecStart=" + " ".join(quote_arg(a) for a in spec.command),
        "# Secrets (a GitHub token, a model API key) as VAR=value lines, mode 0600:",
        "EnvironmentFile=-" + str(Path(home) / ENV_FILE).replace("%", "%%"),
    ]
    if system and spec.user is not None:
        lines.append(f"User={spec.user}")
        if spec.group is not None:
            lines.append(f"Group={spec.group}")
    lines += [
        "UMask=0077",
        "SyslogIdentifier=bzzz",
        "Restart=on-failure",
        "RestartSec=2s",
    ]
    if backoff:
        lines += ["RestartSteps=6", "RestartMaxDelaySec=2min"]
    else:
        lines.append(
            "# RestartSteps=/RestartMaxDelaySec= (back-off) need systemd 254; "
            + (f"this is {spec.systemd_version}." if spec.systemd_version else "not known here.")
        )
    lines += [
        "TimeoutStartSec=2min",
        "# Every step of the node stops within 5 s; the rest is margin.",
        "TimeoutStopSec=90s",
        "# SIGTERM to the daemon only: it stops its own work (git, sandboxed commands);",
        "# whatever is left after it exits is killed.",
        "KillMode=mixed",
        "WatchdogSec=2min",
        "LimitNOFILE=65536",
        "# No core files: a core of the daemon would hold its private key.",
        "LimitCORE=0",
        "TasksMax=4096",
        "",
        "# Hardening. The daemon writes only its home (and the paths below).",
        "NoNewPrivileges=yes",
        "ProtectSystem=strict",
        "ReadWritePaths=" + " ".join(rw),
        f"ProtectHome={protect_home(spec)}",
    ]
    if in_tmp is not None:
        lines += [
            f"# PrivateTmp= is off: {in_tmp} is below /tmp or /var/tmp, which it would hide.",
            "PrivateTmp=no",
        ]
    else:
        lines.append("PrivateTmp=yes")
    if not system:
        lines += [
            "# A user manager needs a user namespace for the settings above (systemd 253",
            "# and later imply this; 252 needs it said).",
            "PrivateUsers=yes",
        ]
    else:
        lines += [
            "PrivateDevices=yes",
            "ProtectProc=invisible",
            "ProtectKernelModules=yes",
            "ProtectClock=yes",
            "ProtectHostname=yes",
        ]
    lines += [
        "ProtectControlGroups=yes",
        "RestrictSUIDSGID=yes",
        "RestrictRealtime=yes",
        "LockPersonality=yes",
        "SystemCallArchitectures=native",
        "# The mesh (IPv4, IPv6), the control socket and journald (unix), and the interface",
        "# list for mDNS and bubblewrap's loopback set-up (netlink).",
        "RestrictAddressFamilies=AF_UNIX AF_INET AF_INET6 AF_NETLINK",
        "# bubblewrap needs mount(2), pivot_root(2) (@mount) and sethostname(2) beyond",
        "# @system-service (measured: without them it is killed by SIGSYS). Commands in",
        "# the sandbox inherit the filter.",
        "SystemCallFilter=@system-service @mount sethostname",
    ]
    if system and not as_root:
        lines += ["CapabilityBoundingSet=", "AmbientCapabilities="]
    elif system:
        lines += [
            "# Runs as root (the home's owner): bubblewrap then uses root's capabilities,",
            "# so CapabilityBoundingSet= is not emptied (measured: without them bubblewrap",
            "# fails with 'setting up uid map: Operation not permitted'). Better: give the",
            "# home to a user of its own (chown -R) and install again.",
        ]
    lines += [
        "# Not set, because they break the sandbox a model's commands run in (bubblewrap):",
        "#   ProtectKernelTunables=, ProtectKernelLogs=: they mount over parts of /proc, and",
        "#     the kernel then refuses bubblewrap a /proc of its own ('Can't mount proc on",
        "#     /newroot/proc: Operation not permitted').",
        "#   ProcSubset=pid: bubblewrap reads /proc/sys/kernel/overflowuid.",
        "#   RestrictNamespaces=: bubblewrap makes user, mount, PID, network, IPC, UTS and",
        "#     cgroup namespaces; allowing all of them restricts nothing.",
        "#   MemoryDenyWriteExecute=: cffi callbacks (cryptography, PyNaCl) may need memory",
        "#     that is writable and executable.",
        "#   Delegate=: with a delegated cgroup the daemon would sit in the cgroup its",
        "#     per-command cgroups need free of processes; commands get rlimits instead",
        "#     (`bzzz status` shows which).",
        "#   PrivateNetwork=, IPAddressDeny=: the mesh needs the network.",
        "",
        "[Install]",
        f"WantedBy={'multi-user.target' if system else 'default.target'}",
        "",
    ]
    return "\n".join(lines)


def agent_command(program: Sequence[str], home: Path) -> tuple[str, ...]:
    """ExecStart's argv: the program (the `bzzz` entry point, or `python -m bzzz`), then
    `agent --home HOME`."""
    return (*program, "agent", "--home", str(home))
