"""The sandboxes of `bzzz.execution.sandbox` against real bubblewrap, real cgroups (where
the machine has them) and a TCP server really listening on the host."""

from __future__ import annotations

import asyncio
import os
import shutil
import time
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from bzzz.domain.execution import RunLimits
from bzzz.errors import SandboxError
from bzzz.execution.sandbox import BwrapSandbox, UnsandboxedSandbox, detect_hierarchy

if shutil.which("bwrap") is None:
    pytest.fail(
        "bubblewrap (bwrap) is not installed: run scripts/install-system-deps.sh "
        "(apt-get install bubblewrap)",
        pytrace=False,
    )

LIMITS = RunLimits(wall_s=10.0, memory_mb=256, pids=64, output_kb=64)


@pytest.fixture
def worktree(tmp_path: Path) -> Path:
    path = tmp_path / "worktree"
    path.mkdir()
    (path / "README").write_text("a task's worktree\n")
    return path


@pytest.fixture
def bwrap() -> BwrapSandbox:
    return BwrapSandbox()


def text(data: bytes) -> str:
    return data.decode(errors="replace")


def leftovers(marker: str) -> list[int]:
    """Host processes whose command line holds `marker`."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if marker.encode() in (entry / "cmdline").read_bytes():
                    found.append(int(entry.name))
            except OSError:
                pass
    return found


def our_cgroups() -> list[Path]:
    hierarchy = detect_hierarchy()
    if hierarchy is None:
        return []
    return [
        p for parent in hierarchy.parents.values() for p in parent.glob(f"bzzz-{os.getpid()}-*")
    ]


# --- bubblewrap: files -----------------------------------------------------------------


async def test_runs_in_the_worktree_and_writes_there(bwrap: BwrapSandbox, worktree: Path) -> None:
    result = await bwrap.run("pwd; cat README; echo made > made.txt", worktree, LIMITS, {})
    assert result.exit_code == 0, result
    assert text(result.stdout) == "/task\na task's worktree\n"
    assert (worktree / "made.txt").read_text() == "made\n"
    assert not result.timed_out and result.killed is None and not result.truncated
    assert our_cgroups() == []  # the command's cgroup is gone


async def test_nothing_else_is_writable(bwrap: BwrapSandbox, worktree: Path) -> None:
    home = Path.home()
    name = f"bzzz-canary-{uuid.uuid4().hex}"
    targets = [f"/{name}", f"/usr/{name}", f"/etc/{name}", f"/var/{name}", f"{home}/{name}"]
    script = "; ".join(f'if echo x > "{t}" 2>/dev/null; then echo "wrote {t}"; fi' for t in targets)
    script += f"; echo private > /tmp/{name} && cat /tmp/{name}"
    result = await bwrap.run(script, worktree, LIMITS, {})
    assert text(result.stdout) == "private\n", result
    for target in [*targets, f"/tmp/{name}"]:
        assert not Path(target).exists(), target  # the private /tmp is not the host's


async def test_node_home_and_user_home_are_not_visible(
    bwrap: BwrapSandbox, worktree: Path, tmp_path: Path
) -> None:
    node_home = tmp_path / "node-home"
    node_home.mkdir()
    canary = f"canary-{uuid.uuid4().hex}"
    (node_home / "key").write_text(canary)
    script = (
        f"cat {node_home}/key; ls {node_home}; ls {tmp_path}; ls {Path.home()}; ls /home; "
        "cat /etc/shadow; ls /etc/ssh; grep -rs canary- /tmp /task /etc /run /var; "
        "echo done"
    )
    result = await bwrap.run(script, worktree, LIMITS, {})
    assert text(result.stdout) == "done\n", result
    assert canary not in text(result.stdout + result.stderr)


async def test_only_the_given_environment_is_passed(
    bwrap: BwrapSandbox, worktree: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    canary = f"canary-{uuid.uuid4().hex}"
    monkeypatch.setenv("BZZZ_CANARY_SECRET", canary)
    monkeypatch.setenv("GITHUB_TOKEN", canary)
    for sandbox in (bwrap, UnsandboxedSandbox()):
        result = await sandbox.run("env", worktree, LIMITS, {"TASK": "42"})
        env = dict(line.split("=", 1) for line in text(result.stdout).splitlines())
        assert canary not in text(result.stdout), sandbox.name
        assert env["TASK"] == "42" and env["HOME"] == "/tmp", sandbox.name
        assert set(env) <= {"TASK", "HOME", "PATH", "PWD", "SHLVL", "OLDPWD", "_"}, env


# --- bubblewrap: network -----------------------------------------------------------------


@pytest.fixture
async def listening() -> AsyncIterator[tuple[int, list[str]]]:
    """A TCP server really listening on 127.0.0.1, and who connected to it."""
    seen: list[str] = []

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        seen.append(str(writer.get_extra_info("peername")))
        writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    async with server:
        yield port, seen


async def test_no_network(
    bwrap: BwrapSandbox, worktree: Path, listening: tuple[int, list[str]]
) -> None:
    port, seen = listening
    connect = f"bash -c 'echo hi > /dev/tcp/127.0.0.1/{port}' 2>/dev/null; echo tcp=$?"
    # The server is really there: the unsandboxed command reaches it.
    plain = await UnsandboxedSandbox().run(connect, worktree, LIMITS, {})
    assert text(plain.stdout) == "tcp=0\n" and len(seen) == 1
    result = await bwrap.run(
        f"{connect}; getent ahosts example.com >/dev/null; echo dns=$?; "
        "ls /sys/class/net 2>/dev/null; cat /proc/net/dev | tail -n +3 | cut -d: -f1",
        worktree,
        LIMITS,
        {},
    )
    out = text(result.stdout)
    assert "tcp=1" in out and "dns=0" not in out, result
    assert out.split()[-1] == "lo"  # the only interface
    await asyncio.sleep(0.05)
    assert len(seen) == 1


# --- limits, in both sandboxes ----------------------------------------------------------


@pytest.fixture(params=["bwrap", "unsandboxed"])
def sandbox(request: pytest.FixtureRequest) -> BwrapSandbox | UnsandboxedSandbox:
    return BwrapSandbox() if request.param == "bwrap" else UnsandboxedSandbox()


async def test_exit_codes_pass_through(
    sandbox: BwrapSandbox | UnsandboxedSandbox, worktree: Path
) -> None:
    assert (await sandbox.run("exit 7", worktree, LIMITS, {})).exit_code == 7
    assert (await sandbox.run("true", worktree, LIMITS, {})).exit_code == 0
    assert (await sandbox.run("kill -9 $$", worktree, LIMITS, {})).exit_code == 137
    result = await sandbox.run("echo out; echo err >&2; exit 3", worktree, LIMITS, {})
    assert (result.stdout, result.stderr, result.exit_code) == (b"out\n", b"err\n", 3)


async def test_wall_time_kills_the_command_and_its_children(
    sandbox: BwrapSandbox | UnsandboxedSandbox, worktree: Path
) -> None:
    marker = str(900000 + os.getpid() % 10000)  # `sleep MARKER`, found on the host by it
    limits = RunLimits(wall_s=1.0, memory_mb=256, pids=64, output_kb=64)
    started = time.monotonic()
    result = await sandbox.run(
        f"sleep {marker} & sh -c 'sleep {marker}' & while :; do :; done", worktree, limits, {}
    )
    assert time.monotonic() - started < 3.0
    assert result.timed_out and result.killed == "wall" and result.exit_code is None
    await asyncio.sleep(0.1)
    assert leftovers(f"sleep\x00{marker}") == []


async def test_background_processes_do_not_outlive_the_command(
    sandbox: BwrapSandbox | UnsandboxedSandbox, worktree: Path
) -> None:
    marker = str(800000 + os.getpid() % 10000)
    result = await sandbox.run(f"sleep {marker} & echo started", worktree, LIMITS, {})
    assert result.exit_code == 0 and result.stdout == b"started\n"
    assert result.seconds < 3.0 and not result.timed_out
    await asyncio.sleep(0.1)
    assert leftovers(f"sleep\x00{marker}") == []


async def test_output_is_cut_at_the_cap(
    sandbox: BwrapSandbox | UnsandboxedSandbox, worktree: Path
) -> None:
    for command, stream in (("yes", "stdout"), ("yes >&2", "stderr")):  # 10 GB and more
        result = await sandbox.run(command, worktree, LIMITS, {})
        assert result.truncated and result.killed == "output" and result.exit_code is None
        assert len(getattr(result, stream)) == LIMITS.output_kb * 1024
        assert getattr(result, stream).startswith(b"y\ny\n")
        assert result.seconds < 5.0


def _pids_enforced(sandbox: BwrapSandbox | UnsandboxedSandbox) -> bool:
    # RLIMIT_NPROC does not bind root: without cgroups a fork bomb would not be contained.
    return sandbox.limits_by.startswith("cgroup") or os.geteuid() != 0


async def test_process_count_is_limited(
    sandbox: BwrapSandbox | UnsandboxedSandbox, worktree: Path
) -> None:
    if not _pids_enforced(sandbox):
        pytest.skip(f"no cgroups here and root ignores RLIMIT_NPROC ({sandbox.limits_by})")
    spawn = "for i in $(seq 40); do sleep 0.3 & done; echo spawned"
    small = RunLimits(wall_s=10.0, memory_mb=256, pids=16, output_kb=64)
    result = await sandbox.run(spawn, worktree, small, {})
    assert b"spawned" not in result.stdout and b"fork" in result.stderr.lower()
    assert result.exit_code not in (0, None)
    roomy = RunLimits(wall_s=10.0, memory_mb=256, pids=64, output_kb=64)
    assert (await sandbox.run(spawn, worktree, roomy, {})).stdout == b"spawned\n"


async def test_a_fork_bomb_is_contained(
    sandbox: BwrapSandbox | UnsandboxedSandbox, worktree: Path
) -> None:
    if not _pids_enforced(sandbox):
        pytest.skip(f"no cgroups here and root ignores RLIMIT_NPROC ({sandbox.limits_by})")
    limits = RunLimits(wall_s=1.5, memory_mb=256, pids=32, output_kb=16)
    started = time.monotonic()
    result = await sandbox.run("f() { f | f & }; f; sleep 100", worktree, limits, {})
    assert time.monotonic() - started < 5.0
    assert result.timed_out or result.killed == "output"
    after = await sandbox.run("echo alive", worktree, LIMITS, {})
    assert after.stdout == b"alive\n"
    assert our_cgroups() == []


async def test_a_memory_hog_is_killed(
    sandbox: BwrapSandbox | UnsandboxedSandbox, worktree: Path
) -> None:
    limits = RunLimits(wall_s=10.0, memory_mb=64, pids=64, output_kb=64)
    # `tail` keeps a line in memory: 400 MB of zeros are one line.
    result = await sandbox.run(
        "head -c 400000000 /dev/zero | tail -n 1 >/dev/null", worktree, limits, {}
    )
    assert result.exit_code != 0
    if sandbox.limits_by.startswith("cgroup"):
        assert result.killed == "memory" and result.exit_code == 137, result


@pytest.mark.parametrize("kind", [BwrapSandbox, UnsandboxedSandbox])
async def test_rlimits_when_cgroups_are_not_used(
    kind: type[BwrapSandbox | UnsandboxedSandbox], worktree: Path
) -> None:
    sandbox = kind(cgroups=False)
    assert sandbox.limits_by == "rlimit"
    limits = RunLimits(wall_s=10.0, memory_mb=128, pids=64, output_kb=64)
    assert (await sandbox.run("echo ok", worktree, limits, {})).stdout == b"ok\n"
    result = await sandbox.run(
        "head -c 400000000 /dev/zero | tail -n 1 >/dev/null", worktree, limits, {}
    )
    assert result.exit_code not in (0, None) and b"memory" in result.stderr.lower(), result


async def test_commands_do_not_block_the_event_loop(
    sandbox: BwrapSandbox | UnsandboxedSandbox, worktree: Path
) -> None:
    ticks = 0

    async def tick() -> None:
        nonlocal ticks
        while True:
            await asyncio.sleep(0.01)
            ticks += 1

    ticker = asyncio.create_task(tick())
    results = await asyncio.gather(
        *(sandbox.run(f"sleep 0.3; echo {i}", worktree, LIMITS, {}) for i in range(4))
    )
    ticker.cancel()
    assert [r.stdout for r in results] == [f"{i}\n".encode() for i in range(4)]
    assert ticks >= 15


async def test_unsandboxed_runs_in_the_workdir(worktree: Path) -> None:
    sandbox = UnsandboxedSandbox()
    assert sandbox.name == "unsandboxed"
    result = await sandbox.run("pwd; echo x > made.txt", worktree, LIMITS, {})
    assert text(result.stdout).strip() == str(worktree.resolve())
    assert (worktree / "made.txt").exists()


# --- when the sandbox itself cannot run ----------------------------------------------------


async def test_missing_bwrap_is_a_sandbox_error(worktree: Path) -> None:
    sandbox = BwrapSandbox(bwrap="/nonexistent/bwrap")
    with pytest.raises(SandboxError, match="apt-get install bubblewrap"):
        await sandbox.run("true", worktree, LIMITS, {})


async def test_bwrap_that_cannot_make_namespaces_is_a_sandbox_error(
    worktree: Path, tmp_path: Path
) -> None:
    fake = tmp_path / "bwrap"
    fake.write_text(
        "#!/bin/sh\necho 'bwrap: No permissions to creating new namespace' >&2\nexit 1\n"
    )
    fake.chmod(0o755)
    with pytest.raises(SandboxError, match="user namespaces") as caught:
        await BwrapSandbox(bwrap=str(fake)).run("true", worktree, LIMITS, {})
    assert "No permissions" in str(caught.value) and "\n" not in str(caught.value)


async def test_a_command_failing_like_bwrap_is_still_a_result(
    bwrap: BwrapSandbox, worktree: Path
) -> None:
    result = await bwrap.run("echo 'bwrap: fake' >&2; exit 1", worktree, LIMITS, {})
    assert result.exit_code == 1


async def test_check_and_missing_workdir(bwrap: BwrapSandbox, tmp_path: Path) -> None:
    await bwrap.check()
    with pytest.raises(SandboxError, match="not a directory"):
        await bwrap.run("true", tmp_path / "missing", LIMITS, {})
