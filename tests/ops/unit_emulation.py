"""A stand-in for what systemd sets up before it starts a hardened unit's program, for a
machine where systemd is not PID 1: run as root inside `unshare --mount` (and `--uts`),
it makes the mounts a unit's directives ask for, then drops to the unit's user with its
limits, no new privileges, no capabilities and its seccomp filters, and execs the
program.

    python3 unit_emulation.py PLAN_JSON

The plan (written by tests/ops/test_bwrap_hardening.py from a rendered unit):
home_source, home (the path the unit names, bound from home_source), read_only_all,
read_write, protect_home ("yes", "read-only" or null), private_tmp, private_devices,
protect_proc, protect_cgroups, and the breaking ones the test checks: mask_proc_sys
(ProtectKernelTunables=), mask_kmsg (ProtectKernelLogs=), proc_subset_pid
(ProcSubset=pid); then uid, gid, no_new_privs, no_capabilities (or drop_capabilities:
names), syscalls (names joined by commas, or null), families (numbers, or null),
umask, nofile, core, argv.
"""

from __future__ import annotations

import json
import os
import resource
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]  # the checkout
DEVICES = ("null", "zero", "full", "random", "urandom", "tty")
# The parts of /proc ProtectKernelTunables= makes read-only (a subset of systemd's list).
PROC_TUNABLES = ("/proc/sys", "/proc/sysrq-trigger", "/proc/irq", "/proc/bus", "/proc/fs")


def mount(*args: str) -> None:
    subprocess.run(["mount", *args], check=True)


def mount_points() -> list[str]:
    points = []
    for line in Path("/proc/self/mountinfo").read_text().splitlines():
        target = line.split()[4].encode().decode("unicode_escape")
        points.append(target)
    return points


def under(path: str, roots: tuple[str, ...]) -> bool:
    return any(path == r or path.startswith(r.rstrip("/") + "/") for r in roots)


def main() -> None:
    plan = json.loads(Path(sys.argv[1]).read_text())
    mount("--make-rprivate", "/")
    home = plan["home"]
    # The home lives at its own path, outside /tmp (PrivateTmp= would hide it).
    top = str(Path(home).parent)
    mount("-t", "tmpfs", "-o", "mode=0755", "tmpfs", top)
    Path(home).mkdir()
    mount("--bind", plan["home_source"], home)
    if plan["private_tmp"]:
        # A checkout below /tmp (CI clones there) would vanish with it: the test's own
        # code (this folder's helpers, the venv) is bound back at its path. A real unit
        # turns PrivateTmp= off when its program is there (`home/service_unit.py`).
        keep = "/run/emulated-repo" if under(str(ROOT), ("/tmp", "/var/tmp")) else None
        if keep is not None:
            Path(keep).mkdir(exist_ok=True)
            mount("--bind", str(ROOT), keep)
        for tmp in ("/tmp", "/var/tmp"):
            mount("-t", "tmpfs", "-o", "mode=1777", "tmpfs", tmp)
        if keep is not None:
            ROOT.mkdir(parents=True, exist_ok=True)
            mount("--bind", keep, str(ROOT))
    if plan["private_devices"]:
        dev = "/run/emulated-dev"
        Path(dev).mkdir(exist_ok=True)
        mount("-t", "tmpfs", "-o", "mode=0755", "tmpfs", dev)
        for name in DEVICES:
            Path(dev, name).touch()
            mount("--bind", f"/dev/{name}", f"{dev}/{name}")
        for sub in ("pts", "shm"):
            Path(dev, sub).mkdir()
        mount("--rbind", "/dev/pts", f"{dev}/pts")
        mount("-t", "tmpfs", "-o", "mode=1777", "tmpfs", f"{dev}/shm")
        mount("--move", dev, "/dev")
    if plan["read_only_all"]:  # ProtectSystem=strict: all but the API file systems
        for point in mount_points():
            if not under(point, ("/proc", "/sys", "/dev")):
                subprocess.run(
                    ["mount", "-o", "remount,bind,ro", point],
                    check=False,
                    stderr=subprocess.DEVNULL,  # a mount point hidden by a later mount
                )
    for path in plan["read_write"]:
        if path not in mount_points():
            mount("--bind", path, path)
        mount("-o", "remount,bind,rw", path)
    if plan["protect_home"] == "yes":
        for hidden in ("/home", "/root", "/run/user"):
            if Path(hidden).is_dir():
                mount("-t", "tmpfs", "-o", "ro,mode=0000", "tmpfs", hidden)
    if plan["protect_proc"] or plan["proc_subset_pid"]:
        options = ["hidepid=invisible"] if plan["protect_proc"] else []
        if plan["proc_subset_pid"]:
            options.append("subset=pid")
        mount("-t", "proc", "-o", ",".join(options), "proc", "/proc")
    if plan["protect_cgroups"]:
        for point in mount_points():
            if under(point, ("/sys/fs/cgroup",)):
                subprocess.run(
                    ["mount", "-o", "remount,bind,ro", point],
                    check=False,
                    stderr=subprocess.DEVNULL,  # a mount point hidden by a later mount
                )
    if plan["mask_proc_sys"]:
        for path in PROC_TUNABLES:
            if Path(path).exists():
                mount("--bind", path, path)
                mount("-o", "remount,bind,ro", path)
    if plan["mask_kmsg"]:
        mount("--bind", "/dev/null", "/proc/kmsg")

    os.umask(plan["umask"])
    # Not above this process's hard limit (this container may not raise it; systemd can).
    hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
    nofile = plan["nofile"] if hard == resource.RLIM_INFINITY else min(plan["nofile"], hard)
    resource.setrlimit(resource.RLIMIT_NOFILE, (nofile, nofile))
    resource.setrlimit(resource.RLIMIT_CORE, (plan["core"], plan["core"]))
    argv = ["setpriv", f"--reuid={plan['uid']}", f"--regid={plan['gid']}", "--clear-groups"]
    if plan["no_new_privs"]:
        argv.append("--no-new-privs")
    if plan["no_capabilities"]:
        argv += ["--bounding-set=-all", "--inh-caps=-all"]
    elif plan["drop_capabilities"]:  # what Protect*= and PrivateDevices= take from root
        argv.append("--bounding-set=" + ",".join(f"-{c}" for c in plan["drop_capabilities"]))
    if plan["syscalls"] is not None or plan["families"] is not None:
        names = plan["syscalls"]
        families = ",".join(str(f) for f in plan["families"] or range(46))
        argv += [sys.executable, str(HERE / "seccomp_exec.py"), names or "-", families, "--"]
    argv += plan["argv"]
    os.execvp(argv[0], argv)


if __name__ == "__main__":
    main()
