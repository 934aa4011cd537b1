"""Where a model's commands run (issue 20): `BwrapSandbox` (bubblewrap, no network, a
read-only root built from the host's /usr and /etc, the worktree the only writable place
besides a private /tmp) and `UnsandboxedSandbox` (a plain subprocess, only when configured
so explicitly). Both implement `services.ports.Sandbox` structurally.

Limits per command: wall time and output size always (the whole sandbox is killed when
either is passed); memory and the number of processes through a cgroup per command where
the machine allows it (v2, or v1 as on these machines: `memory` and `pids` controllers,
as root), otherwise through rlimits set before exec (RLIMIT_AS, RLIMIT_NPROC, which root
ignores). `limits_by` says which one is in use.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import os
import resource
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from bzzz.domain.execution import RunLimits, RunResult
from bzzz.errors import SandboxError, one_line

SAFE_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
TASK_DIR = "/task"  # where the worktree is inside the sandbox
INSTALL_HINT = (
    "install bubblewrap (Debian/Ubuntu: apt-get install bubblewrap; Fedora: dnf install "
    "bubblewrap), or run scripts/install-system-deps.sh"
)
# Parts of the host's root that are symlinks on merged-/usr systems, or directories.
_ROOT_PARTS = ("bin", "sbin", "lib", "lib32", "lib64", "libx32")
# What of /etc holds secrets: hidden behind an empty file or directory.
_ETC_SECRETS = ("shadow", "shadow-", "gshadow", "gshadow-", "sudoers", "sudoers.d", "ssh",
                "ssl/private")  # fmt: skip
_CHUNK = 65536
_counter = itertools.count()


def base_env(env: Mapping[str, str]) -> dict[str, str]:
    """The whole environment of a command: a safe PATH, HOME=/tmp, then exactly `env`."""
    return {"PATH": SAFE_PATH, "HOME": "/tmp", **env}


# --- limits: a cgroup per command, or rlimits ---------------------------------------------


@dataclass(frozen=True, slots=True)
class _Hierarchy:
    """Where to make a command's cgroups: v2 (one directory) or v1 (one per controller)."""

    version: int  # 1 or 2
    parents: Mapping[str, Path]  # controller ("memory", "pids", or "" for v2) -> our cgroup


def _own_cgroups() -> dict[str, str]:
    """This process's cgroup path per v1 controller, and under "" its v2 path."""
    found: dict[str, str] = {}
    with contextlib.suppress(OSError):
        for line in Path("/proc/self/cgroup").read_text().splitlines():
            _, controllers, path = line.split(":", 2)
            for name in controllers.split(",") if controllers else [""]:
                found[name] = path
    return found


def _cgroup_mounts() -> tuple[dict[str, Path], Path | None]:
    """v1 mount points per controller, and the v2 mount point."""
    v1: dict[str, Path] = {}
    v2: Path | None = None
    with contextlib.suppress(OSError):
        for line in Path("/proc/self/mounts").read_text().splitlines():
            fields = line.split()
            if len(fields) < 4:
                continue
            where, kind, options = Path(fields[1]), fields[2], fields[3].split(",")
            if kind == "cgroup2" and v2 is None:
                v2 = where
            elif kind == "cgroup":
                for name in ("memory", "pids"):
                    if name in options:
                        v1.setdefault(name, where)
    return v1, v2


def detect_hierarchy() -> _Hierarchy | None:
    """The cgroup hierarchy this process can make children in with the memory and pids
    controllers, or None (then rlimits are used). Read at run time, cheaply."""
    own = _own_cgroups()
    v1, v2 = _cgroup_mounts()
    if v2 is not None and "" in own:
        parent = v2 / own[""].lstrip("/")
        try:
            controllers = set((parent / "cgroup.controllers").read_text().split())
        except OSError:
            controllers = set()
        if {"memory", "pids"} <= controllers and os.access(parent, os.W_OK):
            return _Hierarchy(2, {"": parent})
    if {"memory", "pids"} <= v1.keys():
        parents = {c: v1[c] / own.get(c, "/").lstrip("/") for c in ("memory", "pids")}
        if all(os.access(p, os.W_OK) for p in parents.values()):
            return _Hierarchy(1, parents)
    return None


def _write(path: Path, value: str) -> None:
    path.write_text(value)


class _Cgroup:
    """The cgroup(s) of one command: made before it starts, joined by the child before
    exec, killed as a whole, removed afterwards."""

    def __init__(self, hierarchy: _Hierarchy, limits: RunLimits) -> None:
        name = f"bzzz-{os.getpid()}-{next(_counter)}"
        self.version = hierarchy.version
        self.dirs = {c: parent / name for c, parent in hierarchy.parents.items()}
        made: list[Path] = []
        try:
            for directory in self.dirs.values():
                directory.mkdir()
                made.append(directory)
            memory = str(limits.memory_mb * 1024 * 1024)
            if self.version == 2:
                d = self.dirs[""]
                enable = d.parent / "cgroup.subtree_control"
                if not {"memory", "pids"} <= set((d / "cgroup.controllers").read_text().split()):
                    _write(enable, "+memory +pids")
                _write(d / "memory.max", memory)
                with contextlib.suppress(OSError):
                    _write(d / "memory.swap.max", "0")
                _write(d / "pids.max", str(limits.pids))
            else:
                m = self.dirs["memory"]
                _write(m / "memory.limit_in_bytes", memory)
                with contextlib.suppress(OSError):
                    _write(m / "memory.memsw.limit_in_bytes", memory)
                _write(self.dirs["pids"] / "pids.max", str(limits.pids))
        except OSError as exc:
            for directory in made:
                with contextlib.suppress(OSError):
                    directory.rmdir()
            raise SandboxError(f"cannot make a cgroup for a command: {one_line(exc)}") from exc
        self._procs = [str(d / "cgroup.procs") for d in self.dirs.values()]

    def join(self) -> None:
        """In the child, before exec: move this process into the cgroup(s)."""
        pid = str(os.getpid()).encode()
        for path in self._procs:
            fd = os.open(path, os.O_WRONLY)
            try:
                os.write(fd, pid)
            finally:
                os.close(fd)

    def pids(self) -> set[int]:
        found: set[int] = set()
        for path in self._procs:
            with contextlib.suppress(OSError, ValueError):
                found.update(int(p) for p in Path(path).read_text().split())
        return found

    def kill(self) -> None:
        """Kill every process in the cgroup (new ones a fork bomb makes meanwhile too)."""
        if self.version == 2:
            with contextlib.suppress(OSError):
                _write(self.dirs[""] / "cgroup.kill", "1")
                return
        for _ in range(100):
            pids = self.pids()
            if not pids:
                return
            for pid in pids:
                with contextlib.suppress(OSError):
                    os.kill(pid, signal.SIGKILL)

    def oom_killed(self) -> bool:
        """Whether the kernel killed a process here for passing the memory limit."""
        if self.version == 2:
            name = self.dirs[""] / "memory.events"
        else:
            name = self.dirs["memory"] / "memory.oom_control"
        try:
            for line in name.read_text().splitlines():
                key, _, value = line.partition(" ")
                if key == "oom_kill" and int(value) > 0:
                    return True
        except (OSError, ValueError):
            pass
        return False

    async def remove(self) -> None:
        for directory in self.dirs.values():
            pause = 0.0002
            for _ in range(60):  # about 2 s in all
                try:
                    directory.rmdir()
                    break
                except FileNotFoundError:
                    break
                except OSError:  # EBUSY while the last processes exit
                    self.kill()
                    await asyncio.sleep(pause)
                    pause = min(pause * 2, 0.05)


def _rlimits(limits: RunLimits) -> Callable[[], None]:
    """A preexec that sets rlimits: address space, processes (ignored for root), and CPU
    time as a backstop to the wall time."""
    memory = limits.memory_mb * 1024 * 1024
    cpu = max(1, int(limits.wall_s) + 1)

    def apply() -> None:
        resource.setrlimit(resource.RLIMIT_AS, (memory, memory))
        resource.setrlimit(resource.RLIMIT_NPROC, (limits.pids, limits.pids))
        resource.setrlimit(resource.RLIMIT_CPU, (cpu, cpu))

    return apply


# --- running one command under the limits ------------------------------------------------


class _Limited:
    """What both sandboxes share: run an argv under RunLimits, read its output up to the
    cap, kill everything it started when it ends, is too slow, or says too much."""

    def __init__(self, cgroups: bool = True) -> None:
        self._hierarchy = detect_hierarchy() if cgroups else None

    @property
    def limits_by(self) -> str:
        """How memory and processes are limited: "cgroup v1", "cgroup v2" or "rlimit"."""
        if self._hierarchy is None:
            return "rlimit"
        return f"cgroup v{self._hierarchy.version}"

    async def _execute(
        self,
        argv: Sequence[str],
        *,
        env: Mapping[str, str],
        cwd: Path | None,
        limits: RunLimits,
        pass_fds: Sequence[int] = (),
        on_started: Callable[[], None] | None = None,
    ) -> tuple[RunResult, int | None]:
        """The result, and the process's own return code (None if it was killed by us)."""
        group: _Cgroup | None = None
        if self._hierarchy is not None:
            try:
                group = _Cgroup(self._hierarchy, limits)
            except SandboxError:
                self._hierarchy = None  # not allowed after all: rlimits from now on
        preexec: Callable[[], None] = group.join if group is not None else _rlimits(limits)
        started = time.monotonic()
        try:
            try:
                loop = asyncio.get_running_loop()
                transport, protocol = await loop.subprocess_exec(
                    lambda: _Protocol(loop),
                    *argv,
                    stdin=subprocess.DEVNULL,
                    stdout=subprocess.PIPE,
                    stderr=subprocess.PIPE,
                    env=dict(env),
                    cwd=cwd,
                    start_new_session=True,
                    preexec_fn=preexec,
                    pass_fds=tuple(pass_fds),
                )
                proc = asyncio.subprocess.Process(transport, protocol, loop)
            except (OSError, subprocess.SubprocessError) as exc:
                raise SandboxError(f"cannot start {argv[0]}: {one_line(exc)}") from exc
            finally:
                if on_started is not None:
                    on_started()
            return await self._supervise(proc, transport, protocol.exited, group, limits, started)
        finally:
            if group is not None:
                await group.remove()

    async def _supervise(
        self,
        proc: asyncio.subprocess.Process,
        transport: asyncio.SubprocessTransport,
        exited: asyncio.Event,
        group: _Cgroup | None,
        limits: RunLimits,
        started: float,
    ) -> tuple[RunResult, int | None]:
        cap = max(0, limits.output_kb) * 1024
        over = asyncio.Event()
        buffers = (bytearray(), bytearray())
        truncated = False

        async def pump(stream: asyncio.StreamReader | None, buf: bytearray) -> None:
            nonlocal truncated
            if stream is None:
                return
            # Reads to the end, dropping what is past the cap (until the kill), so that
            # the pipe's end is seen and the process's transport can finish.
            while chunk := await stream.read(_CHUNK):
                room = cap - len(buf)
                if len(chunk) > room:
                    buf += chunk[: max(0, room)]
                    truncated = True
                    over.set()
                else:
                    buf += chunk

        def kill_all() -> None:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(proc.pid, signal.SIGKILL)
            if group is not None:
                group.kill()

        readers = asyncio.gather(pump(proc.stdout, buffers[0]), pump(proc.stderr, buffers[1]))
        ended = asyncio.ensure_future(exited.wait())
        overflow = asyncio.ensure_future(over.wait())
        killed: str | None = None
        try:
            done, _ = await asyncio.wait(
                {ended, overflow}, timeout=limits.wall_s, return_when=asyncio.FIRST_COMPLETED
            )
            if ended not in done:
                killed = "output" if overflow in done else "wall"
            # Kill what it left behind (its own process group, its cgroup; bubblewrap's
            # pid namespace ends with it), or all of it.
            kill_all()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(asyncio.shield(readers), timeout=1.0)
            # A process out of reach (it left the process group, no cgroup) may still
            # hold a pipe: stop reading it.
            if not readers.done():
                transport.close()
            await asyncio.wait_for(proc.wait(), timeout=5.0)
        finally:
            ended.cancel()
            overflow.cancel()
            if proc.returncode is None:
                kill_all()
            readers.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await readers
        seconds = time.monotonic() - started
        code = proc.returncode
        own = None if killed is not None or code is None else code
        if own is not None and own < 0:
            own = 128 - own  # killed by a signal: the shell's convention, as bwrap reports it
        if killed is None and group is not None and group.oom_killed():
            killed = "memory"
        return (
            RunResult(
                exit_code=own,
                stdout=bytes(buffers[0]),
                stderr=bytes(buffers[1]),
                seconds=seconds,
                timed_out=killed == "wall",
                killed=killed,
                truncated=truncated,
            ),
            own,
        )


# --- the two sandboxes ---------------------------------------------------------------------


class BwrapSandbox(_Limited):
    """Bubblewrap: every namespace unshared (no network, its own pids), a read-only root
    made of the host's /usr, /etc (its secrets hidden) and `ro_paths`, a private /tmp,
    /proc and /dev, and the worktree bound writable at /task (the working directory).
    Nothing else of the host is there: not /root, /home, /var, nor the node home."""

    def __init__(
        self, bwrap: str | None = None, ro_paths: Sequence[str] = (), cgroups: bool = True
    ) -> None:
        super().__init__(cgroups)
        self._bwrap = bwrap
        self._ro_paths = tuple(ro_paths)

    @property
    def name(self) -> str:
        return "bwrap"

    def _binary(self) -> str:
        found = shutil.which(self._bwrap or "bwrap")
        if found is None:
            raise SandboxError(f"bubblewrap (bwrap) is not installed: {INSTALL_HINT}")
        return found

    def argv(self, binary: str, command: str, workdir: Path, status_fd: int) -> list[str]:
        """The bubblewrap command line for `command` with `workdir` at /task."""
        args = [binary, "--unshare-all", "--die-with-parent", "--new-session",
                "--hostname", "sandbox", "--json-status-fd", str(status_fd),
                "--ro-bind", "/usr", "/usr"]  # fmt: skip
        for part in _ROOT_PARTS:
            host = Path("/") / part
            if host.is_symlink():
                args += ["--symlink", os.readlink(host), str(host)]
            elif host.is_dir():
                args += ["--ro-bind", str(host), str(host)]
        args += ["--ro-bind", "/etc", "/etc"]
        remount: list[str] = []
        for secret in _ETC_SECRETS:
            host = Path("/etc") / secret
            if host.is_dir() and not host.is_symlink():
                args += ["--tmpfs", str(host)]
                remount += ["--remount-ro", str(host)]
            elif host.exists():
                args += ["--ro-bind", "/dev/null", str(host)]
        for path in self._ro_paths:
            args += ["--ro-bind", path, path]
        args += ["--proc", "/proc", "--dev", "/dev", "--tmpfs", "/tmp",
                 "--dir", TASK_DIR, "--bind", str(workdir), TASK_DIR, "--chdir", TASK_DIR,
                 *remount, "--remount-ro", "/",
                 "/bin/sh", "-c", command]  # fmt: skip
        return args

    async def check(self) -> None:
        """Raise `SandboxError` (one line: what to install or allow) unless a sandbox can
        be made here."""
        with tempfile.TemporaryDirectory(prefix="bzzz-sandbox-check-") as probe:
            result = await self.run("true", Path(probe), RunLimits(wall_s=10.0), {})
        if result.exit_code != 0:
            raise SandboxError(f"bubblewrap ran but `true` failed: {result.stderr[:200]!r}")

    async def run(
        self, command: str, workdir: Path, limits: RunLimits, env: Mapping[str, str]
    ) -> RunResult:
        binary = self._binary()
        workdir = Path(workdir).resolve()
        if not workdir.is_dir():
            raise SandboxError(f"the sandbox's working directory {workdir} is not a directory")
        read_fd, write_fd = os.pipe()
        try:
            os.set_blocking(read_fd, False)
            argv = self.argv(binary, command, workdir, write_fd)
            closed = False

            def close_write() -> None:
                nonlocal closed
                if not closed:
                    os.close(write_fd)
                    closed = True

            try:
                result, own = await self._execute(
                    argv,
                    env=base_env(env),
                    cwd=None,
                    limits=limits,
                    pass_fds=(write_fd,),
                    on_started=close_write,
                )
            finally:
                close_write()
            status = _read_available(read_fd)
        finally:
            os.close(read_fd)
        if own is not None and own != 0 and not _child_started(status):
            # bubblewrap itself failed before the command ran
            line = result.stderr.decode(errors="replace").strip().splitlines()
            why = line[0] if line else f"exit status {own}"
            raise SandboxError(
                f"bubblewrap cannot set up a sandbox here ({why}); it needs root or "
                "unprivileged user namespaces (sysctl kernel.unprivileged_userns_clone=1, "
                f"user.max_user_namespaces > 0); {INSTALL_HINT}"
            )
        return result


class UnsandboxedSandbox(_Limited):
    """A plain subprocess in the worktree, with the same limits and environment rules but
    no isolation: network, the host's files and the node home are all reachable. Only for
    explicit configuration (`sandbox.backend: unsandboxed`), shown in status and entries."""

    @property
    def name(self) -> str:
        return "unsandboxed"

    async def run(
        self, command: str, workdir: Path, limits: RunLimits, env: Mapping[str, str]
    ) -> RunResult:
        workdir = Path(workdir).resolve()
        if not workdir.is_dir():
            raise SandboxError(f"the working directory {workdir} is not a directory")
        result, _ = await self._execute(
            ["/bin/sh", "-c", command], env=base_env(env), cwd=workdir, limits=limits
        )
        return result


class _Protocol(asyncio.subprocess.SubprocessStreamProtocol):
    """asyncio's protocol for a subprocess with streams, and an event for the moment the
    process exits (`Process.wait()` waits for its pipes to close as well, which a
    process left in the background can put off for ever)."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        super().__init__(limit=_CHUNK, loop=loop)
        self.exited = asyncio.Event()

    def process_exited(self) -> None:
        super().process_exited()
        self.exited.set()


def _read_available(fd: int) -> bytes:
    chunks: list[bytes] = []
    while True:
        try:
            chunk = os.read(fd, _CHUNK)
        except BlockingIOError:
            break
        if not chunk:
            break
        chunks.append(chunk)
    return b"".join(chunks)


def _child_started(status: bytes) -> bool:
    """Whether bubblewrap's --json-status-fd reported the command's process started."""
    for line in status.decode(errors="replace").splitlines():
        with contextlib.suppress(ValueError):
            doc = json.loads(line)
            if isinstance(doc, dict) and "child-pid" in doc:
                return True
    return False
