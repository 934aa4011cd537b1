"""The rendered system unit's hardening does not break the sandbox a model's commands run
in, and the directives the unit leaves out would.

systemd is not PID 1 here, so `unit_emulation.py` stands in for it: as root in a new
mount namespace it makes the mounts the unit's directives ask for, then drops to the
unit's user with no new privileges, no capabilities and the unit's seccomp filters
(built by libseccomp, as systemd builds them), and runs `sandbox_probe.py`: the real
`BwrapSandbox` running a command. Every [Service] directive of the unit is either
emulated or listed below with the reason it is not (a new directive fails the test
until it is one or the other).
"""

from __future__ import annotations

import ctypes.util
import functools
import grp
import json
import os
import pwd
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

from bzzz.home.service_unit import UnitSpec, agent_command, render_unit

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
SYSTEM_PYTHON = "/usr/bin/python3"  # readable by the unit's user (the venv's may not be)
HOME = "/mnt/bzzz-home"  # outside /tmp, as a service's home would be
USER, GROUP = "daemon", "daemon"  # a system user every Debian has (base-passwd)

# Directives that do not restrict what the program may do.
NOT_RESTRICTIONS = {
    "Type", "NotifyAccess", "ExecStart", "EnvironmentFile", "SyslogIdentifier", "Restart",
    "RestartSec", "RestartSteps", "RestartMaxDelaySec", "TimeoutStartSec", "TimeoutStopSec",
    "KillMode", "WatchdogSec", "AmbientCapabilities",
}  # fmt: skip
# Restrictions not emulated, and why that cannot hide a problem for bubblewrap.
NOT_EMULATED = {
    "ProtectKernelModules": "hides /usr/lib/modules (absent here) and drops CAP_SYS_MODULE "
    "(the emptied bounding set drops it anyway)",
    "ProtectClock": "denies setting the clock, which neither bubblewrap nor git does",
    "RestrictRealtime": "denies realtime scheduling, which bubblewrap does not ask for",
    "LockPersonality": "locks personality(2), which bubblewrap does not call",
    "RestrictSUIDSGID": "denies making set-uid files, which bubblewrap does not",
    "SystemCallArchitectures": "native only: libseccomp's filter is for the native one",
    "TasksMax": "a cgroup limit on the number of tasks (4096), far above one command's",
    "ProtectHostname": "emulated by unshare --uts",
}


def _missing() -> str | None:
    if os.geteuid() != 0:
        return "needs root: it sets up mounts and namespaces as systemd would"
    for tool in ("bwrap", "unshare", "setpriv", "mount", "systemd-analyze"):
        if shutil.which(tool) is None:
            return f"{tool} is not installed"
    if ctypes.util.find_library("seccomp") is None:
        return "libseccomp is not installed (Debian: libseccomp2), which builds the filters"
    if not Path(SYSTEM_PYTHON).exists():
        return f"{SYSTEM_PYTHON} is missing"
    if not Path(HOME).parent.is_dir():
        return f"{Path(HOME).parent} is missing"
    try:
        pwd.getpwnam(USER)
        grp.getgrnam(GROUP)
    except KeyError:
        return f"no user {USER} or group {GROUP}"
    return None


pytestmark = pytest.mark.skipif(_missing() is not None, reason=str(_missing()))


def service_settings(text: str) -> dict[str, list[str]]:
    """The [Service] section's directives, each with its values in order."""
    found: dict[str, list[str]] = {}
    section = None
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        if line.startswith("["):
            section = line
            continue
        if section == "[Service]":
            key, _, value = line.partition("=")
            found.setdefault(key, []).append(value)
    return found


@functools.cache
def expand_syscalls(item: str) -> frozenset[str]:
    """A SystemCallFilter= item as system call names (groups expanded, as systemd does)."""
    if not item.startswith("@"):
        return frozenset({item})
    out = subprocess.run(
        ["systemd-analyze", "syscall-filter", item], capture_output=True, text=True, check=True
    ).stdout
    names: set[str] = set()
    for line in out.splitlines()[1:]:
        line = line.strip()
        if line and not line.startswith("#"):
            names |= expand_syscalls(line)
    return frozenset(names)


# Capabilities systemd takes away for these directives (systemd.exec(5)); they matter
# only to a service that runs as root.
DROPPED_FOR = {
    "ProtectKernelModules": ("sys_module",),
    "ProtectClock": ("sys_time", "wake_alarm"),
    "PrivateDevices": ("mknod", "sys_rawio"),
}
FAMILIES = {"AF_UNIX": 1, "AF_INET": 2, "AF_INET6": 10, "AF_NETLINK": 16, "AF_PACKET": 17}


def plan_of(settings: dict[str, list[str]], home_source: Path) -> dict[str, Any]:
    """What unit_emulation.py must set up for these directives."""
    one = {k: v[-1] for k, v in settings.items()}
    known = NOT_RESTRICTIONS | NOT_EMULATED.keys() | {
        "NoNewPrivileges", "ProtectSystem", "ReadWritePaths", "ProtectHome", "PrivateTmp",
        "PrivateDevices", "ProtectProc", "ProtectControlGroups", "RestrictAddressFamilies",
        "CapabilityBoundingSet", "User", "Group", "UMask", "LimitNOFILE", "LimitCORE",
        "SystemCallFilter", "SystemCallErrorNumber", "ProtectKernelTunables",
        "ProtectKernelLogs", "ProcSubset",
    }  # fmt: skip
    unknown = sorted(settings.keys() - known)
    assert not unknown, f"emulate these or say why not: {unknown}"
    assert "SystemCallErrorNumber" not in one, "the emulation kills on a denied call"
    syscalls = None
    if "SystemCallFilter" in settings:
        names: set[str] = set(expand_syscalls("@default"))  # systemd adds it to allow lists
        for value in settings["SystemCallFilter"]:
            assert not value.startswith("~"), "only allow lists are emulated"
            for item in value.split():
                names |= expand_syscalls(item)
        syscalls = ",".join(sorted(names))
    families = None
    if "RestrictAddressFamilies" in one:
        families = [FAMILIES[f] for f in one["RestrictAddressFamilies"].split()]
    read_write = [p.strip('"').lstrip("-") for p in one.get("ReadWritePaths", "").split()]
    user = pwd.getpwnam(one["User"])
    return {
        "home_source": str(home_source),
        "home": HOME,
        "read_only_all": one.get("ProtectSystem") == "strict",
        "read_write": read_write,
        "protect_home": one.get("ProtectHome"),
        "private_tmp": one.get("PrivateTmp") == "yes",
        "private_devices": one.get("PrivateDevices") == "yes",
        "protect_proc": one.get("ProtectProc") == "invisible",
        "protect_cgroups": one.get("ProtectControlGroups") == "yes",
        "mask_proc_sys": one.get("ProtectKernelTunables") == "yes",
        "mask_kmsg": one.get("ProtectKernelLogs") == "yes",
        "proc_subset_pid": one.get("ProcSubset") == "pid",
        "uid": user.pw_uid,
        "gid": grp.getgrnam(one["Group"]).gr_gid,
        "no_new_privs": one.get("NoNewPrivileges") == "yes",
        "no_capabilities": one.get("CapabilityBoundingSet") == "",
        "drop_capabilities": [
            c for key, caps in DROPPED_FOR.items() if one.get(key) == "yes" for c in caps
        ],
        "syscalls": syscalls,
        "families": families,
        "umask": int(one.get("UMask", "0022"), 8),
        "nofile": int(one.get("LimitNOFILE", "1024")),
        "core": int(one.get("LimitCORE", "0")),
        "argv": [SYSTEM_PYTHON, str(HERE / "sandbox_probe.py"), str(ROOT), f"{HOME}/work"],
    }


def unit_text(user: str = USER, group: str = GROUP) -> str:
    spec = UnitSpec(
        command=agent_command(["/usr/bin/bzzz"], Path(HOME)),
        home=Path(HOME),
        node_name="alpha",
        user=user,
        group=group,
        systemd_version=252,
    )
    return render_unit(spec)


def run_under(settings: dict[str, list[str]], tmp_path: Path) -> dict[str, Any]:
    source = tmp_path / "home"
    (source / "work").mkdir(parents=True)
    user = pwd.getpwnam(settings["User"][-1])
    for path in (source, source / "work"):
        os.chown(path, user.pw_uid, user.pw_gid)
    plan = plan_of(settings, source)
    plan_file = tmp_path / "plan.json"
    plan_file.write_text(json.dumps(plan))
    uts = ["--uts"] if "ProtectHostname" in settings else []
    result = subprocess.run(
        ["unshare", "--mount", *uts, SYSTEM_PYTHON, str(HERE / "unit_emulation.py"),
         str(plan_file)],
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    lines = [ln for ln in result.stdout.splitlines() if ln.startswith("{")]
    assert lines, f"no answer (exit {result.returncode}): {result.stderr[-2000:]}"
    answer: dict[str, Any] = json.loads(lines[-1])
    answer["written_outside"] = (source / "work" / "written").exists()
    return answer


def test_the_rendered_unit_lets_bubblewrap_run_a_command(tmp_path: Path) -> None:
    settings = service_settings(unit_text())
    assert settings["User"] == [USER] and settings["CapabilityBoundingSet"] == [""]
    answer = run_under(settings, tmp_path)
    assert answer.get("exit_code") == 0, answer
    assert answer["stdout"] == "inside\ndone\n", answer
    assert answer["written_outside"], answer  # the worktree in the home is writable
    # The daemon's own cgroup is not writable under the unit: rlimits limit commands.
    assert answer["limits_by"] == "rlimit", answer


def test_the_unit_of_a_home_owned_by_root_lets_bubblewrap_run_too(tmp_path: Path) -> None:
    """Root keeps the capabilities bubblewrap uses as root (less those Protect*= take)."""
    settings = service_settings(unit_text("root", "root"))
    assert "CapabilityBoundingSet" not in settings
    answer = run_under(settings, tmp_path)
    assert answer.get("exit_code") == 0, answer
    assert answer["stdout"] == "inside\ndone\n", answer
    assert answer["written_outside"], answer


def test_the_emulation_is_not_a_no_op(tmp_path: Path) -> None:
    """Guards the guard: the emulated unit really is read-only outside its home."""
    settings = service_settings(unit_text())
    settings["ProtectHostname"] = ["yes"]
    source = tmp_path / "home"
    source.mkdir()
    plan = plan_of(settings, source)
    probe = "import os, json; print(json.dumps([os.access(p, os.W_OK) for p in "
    probe += f"['/etc', '/var/lib', '{ROOT}', '{HOME}']] + [os.geteuid()]))"
    plan["argv"] = [SYSTEM_PYTHON, "-c", probe]
    plan["uid"] = plan["gid"] = 0  # root: only the mounts can refuse it
    plan_file = tmp_path / "plan.json"
    plan_file.write_text(json.dumps(plan))
    result = subprocess.run(
        ["unshare", "--mount", "--uts", SYSTEM_PYTHON, str(HERE / "unit_emulation.py"),
         str(plan_file)],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    etc, var_lib, repo, home, uid = json.loads(result.stdout)
    assert uid == 0
    # os.access says a read-only mount is not writable, to root too (EROFS).
    assert (etc, var_lib, repo, home) == (False, False, False, True)


@pytest.mark.parametrize(
    ("directive", "value", "refusal"),
    [
        ("ProtectKernelTunables", "yes", "Can't mount proc"),
        ("ProtectKernelLogs", "yes", "Can't mount proc"),
        ("ProcSubset", "pid", "overflowuid"),
    ],
)
def test_what_the_unit_leaves_out_would_break_bubblewrap(
    tmp_path: Path, directive: str, value: str, refusal: str
) -> None:
    text = unit_text()
    assert f"#   {directive}=" in text or f"#   ProtectKernelTunables=, {directive}=" in text
    settings = service_settings(text)
    settings[directive] = [value]
    answer = run_under(settings, tmp_path)
    assert answer.get("exit_code") != 0, answer
    assert refusal in answer.get("stderr", "") + answer.get("error", ""), answer
    assert not answer["written_outside"]


def test_the_system_call_filter_is_what_bubblewrap_needs(tmp_path: Path) -> None:
    """The unit's SystemCallFilter= adds @mount and sethostname to @system-service:
    without them bubblewrap is killed (SIGSYS) before the command runs."""
    settings = service_settings(unit_text())
    assert settings["SystemCallFilter"] == ["@system-service @mount sethostname"]
    settings["SystemCallFilter"] = ["@system-service"]
    answer = run_under(settings, tmp_path)
    assert answer.get("exit_code") != 0, answer
    assert "inside" not in answer.get("stdout", ""), answer
    assert not answer["written_outside"]
