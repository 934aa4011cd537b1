"""Deploying BZZZ to one host: the steps of `bzzz.domain.deploy`, each carried out over a
`Remote` (a logged-in SSH connection: `bzzz.deploy.remote`) and checked before it
counts as done, with the record saved after every step.

What runs on the host is plain: `python3` (the system's, for the probes that run before
BZZZ is there, each a short script sent on stdin) and the installed `bzzz` commands.
The invite token is a secret: it goes to `bzzz join` on the SSH channel's stdin, never
in a command line (which `ps` shows) or a file.
"""

from __future__ import annotations

import asyncio
import json
import posixpath
import shlex
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Literal, Protocol

from bzzz.clock import now_ms
from bzzz.domain import deploy as rules
from bzzz.domain.deploy import HostFacts, HostPlan, HostRecord
from bzzz.domain.invite import encode_token
from bzzz.domain.payload import encode_payload
from bzzz.errors import BzzzError, UsageError
from bzzz.home.node import Node, cluster_id_of
from bzzz.services.members import create_invite

VERIFIED = "deploy.verified"  # the deploying node's entry that proves replication
INVITE_EXPIRES = "30m"
START_TIMEOUT_S = 45.0
LINK_TIMEOUT_S = 60.0
STOP_TIMEOUT_S = 30
PIP_TIMEOUT_S = 900.0


class Ran(Protocol):
    @property
    def code(self) -> int: ...
    @property
    def out(self) -> str: ...
    @property
    def said(self) -> str: ...


class Remote(Protocol):
    """A host we are logged in to."""

    async def run(self, command: str, *, stdin: str | None = None, timeout: float = 300) -> Ran:
        """Run a shell command line; `stdin` is written to it over the channel."""
        ...

    async def sizes(self, folder: str) -> dict[str, int]:
        """The files in a folder and their sizes ({} when it is missing)."""
        ...

    async def put(self, files: list[Path], folder: str) -> None:
        """Copy files into a folder."""
        ...


class Packages(Protocol):
    """The wheel to install and every wheel the host needs (the wheel included)."""

    @property
    def wheel(self) -> Path: ...
    @property
    def files(self) -> tuple[Path, ...]: ...
    @property
    def sha256(self) -> str: ...
    @property
    def version(self) -> str: ...


PackagesFor = Callable[[HostFacts], Awaitable[Packages]]


@dataclass(frozen=True, slots=True)
class StepEvent:
    """Progress: a step of a host started, ended, or was already done."""

    host: str
    step: str
    state: Literal["started", "done", "failed"]
    said: str = ""
    seconds: float = 0.0


@dataclass
class Deployer:
    """What every host's deployment shares: the deploying node (it invites), where its
    agent is reached, the packages, and where progress and records go."""

    node: Node
    reach: str  # HOST:PORT of the deploying node's agent, for the invite token
    packages_for: PackagesFor
    save: Callable[[HostRecord], None]
    report: Callable[[StepEvent], None]
    poke: Callable[[], None] = lambda: None  # tell the local agent we wrote an entry

    async def deploy(self, remote: Remote, record: HostRecord) -> HostRecord:
        """Run the steps the record still needs; the record as it ends (saved after each
        step). A step that fails stops the host; the others are not affected."""
        run = _HostRun(self, remote, record)
        for name in rules.steps_from(record):
            if not await run.step(name):
                break
        return run.record


class _StepFailed(Exception):
    """A step's own failure, with why (caught in `_HostRun.step`, never escapes)."""


# Scripts for the host's python3 (sent on stdin: `python3 - ARGS`).

_CHECK = r"""
import importlib.util, json, os, platform, sys
prefix = os.path.expanduser(sys.argv[1])
where = prefix
while not os.path.exists(where):
    where = os.path.dirname(where) or "/"
st = os.statvfs(where)
name = platform.system()
try:
    with open("/etc/os-release") as f:
        info = dict(l.rstrip().split("=", 1) for l in f if "=" in l)
    name = info.get("PRETTY_NAME", name).strip('"')
except OSError:
    pass
try:
    init = open("/proc/1/comm").read().strip()
except OSError:
    init = "unknown"
print(json.dumps({
    "os": name, "machine": platform.machine(), "python": list(sys.version_info[:3]),
    "executable": sys.executable, "uid": os.getuid(), "home": os.path.expanduser("~"),
    "venv": all(importlib.util.find_spec(m) is not None for m in ("venv", "ensurepip")),
    "free_bytes": st.f_bavail * st.f_frsize, "free_at": where,
    "systemd": os.path.isdir("/run/systemd/system"), "init": init,
}))
"""

_STOP = r"""
import fcntl, json, os, signal, sys, time
home, timeout = sys.argv[1], float(sys.argv[2])
try:
    fd = os.open(os.path.join(home, "agent.lock"), os.O_RDWR)
except FileNotFoundError:
    print(json.dumps({"running": None})); sys.exit(0)
def held():
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    fcntl.flock(fd, fcntl.LOCK_UN)
    return False
if not held():
    print(json.dumps({"running": None})); sys.exit(0)
pid = int(os.pread(fd, 32, 0).decode().strip() or 0)
if pid > 0:
    os.kill(pid, signal.SIGTERM)
deadline = time.monotonic() + timeout
while held() and time.monotonic() < deadline:
    time.sleep(0.1)
print(json.dumps({"running": pid, "stopped": not held()}))
"""

_PORT = r"""
import socket, sys
host, port = sys.argv[1], int(sys.argv[2])
family = socket.AF_INET6 if ":" in host else socket.AF_INET
with socket.socket(family, socket.SOCK_STREAM) as s:
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        s.bind((host, port))
    except OSError as e:
        print(e.strerror or e); sys.exit(3)
"""

# `bzzz join` with the token read from stdin: the token never is in this process's
# command line (`ps` shows argv as it was at exec; sys.argv is only Python's copy).
_JOIN = (
    "import sys; token = sys.stdin.readline().strip(); "
    "sys.argv = ['bzzz', 'join', token, *sys.argv[1:]]; "
    "from bzzz.cli.app import main; main()"
)


def _q(*words: str) -> str:
    return " ".join(shlex.quote(w) for w in words)


class _HostRun:
    def __init__(self, deployer: Deployer, remote: Remote, record: HostRecord) -> None:
        self.d = deployer
        self.remote = remote
        self.record = record
        self.plan: HostPlan = record.plan
        self.facts: HostFacts | None = None

    # paths on the host (absolute once the check step ran)

    @property
    def prefix(self) -> str:
        return self.plan.prefix

    @property
    def home(self) -> str:
        return self.plan.home_path

    @property
    def bzzz(self) -> str:
        return posixpath.join(self.prefix, "venv", "bin", "bzzz")

    @property
    def python(self) -> str:
        return posixpath.join(self.prefix, "venv", "bin", "python")

    async def step(self, name: str) -> bool:
        host = self.record.key
        self.d.report(StepEvent(host, name, "started"))
        began = time.monotonic()
        try:
            said = await getattr(self, f"_{name}")()
            state: Literal["done", "failed"] = "done"
        except (_StepFailed, BzzzError) as exc:
            said, state = " ".join(str(exc).split()), "failed"
        seconds = time.monotonic() - began
        self.record = rules.record_step(self.record, name, state, said, now_ms(), seconds)
        self.d.save(self.record)
        self.d.report(StepEvent(host, name, state, said, seconds))
        return state == "done"

    async def _run(self, command: str, what: str, **kwargs: Any) -> str:
        ran = await self.remote.run(command, **kwargs)
        if ran.code != 0:
            raise _StepFailed(f"{what} failed: {ran.said}")
        return ran.out

    async def _status(self) -> dict[str, Any]:
        out = await self._run(_q(self.bzzz, "status", "--home", self.home, "--json"), "bzzz status")
        try:
            data = json.loads(out.strip().splitlines()[-1])
        except (ValueError, IndexError):
            raise _StepFailed(f"bzzz status answered what is not JSON: {out[:200]!r}") from None
        if not isinstance(data, dict):
            raise _StepFailed("bzzz status answered what is not a JSON object")
        return data

    # the steps

    async def _check(self) -> str:
        ran = await self.remote.run(_q("python3", "-", self.plan.prefix), stdin=_CHECK, timeout=60)
        if ran.code == 127:
            raise _StepFailed(
                "python3 is not installed on the host: install python3 (3.11 or later) "
                "and python3-venv"
            )
        if ran.code != 0:
            raise _StepFailed(f"probing the host failed: {ran.said}")
        facts = rules.parse_facts(ran.out)
        problems = rules.facts_problems(facts)
        if problems:
            raise _StepFailed("; ".join(problems))
        self.facts = facts
        self.plan = rules.resolve_paths(self.plan, facts.user_home)
        self.record = replace(self.record, plan=self.plan)
        rules.service_mode(self.plan.systemd, facts.systemd, facts.init)  # refuses early
        return rules.describe_facts(facts)

    async def _stop(self) -> str:
        facts = self._facts()
        if facts.systemd:
            user = ["--user"] if rules.user_scope(facts.uid) else []
            await self.remote.run(_q("systemctl", *user, "stop", "bzzz.service"), timeout=120)
        out = await self._run(
            _q("python3", "-", self.home, str(STOP_TIMEOUT_S)),
            "stopping the agent",
            stdin=_STOP,
            timeout=STOP_TIMEOUT_S + 30,
        )
        found = json.loads(out.strip().splitlines()[-1])
        if found.get("running") is None:
            return "no agent was running on the home"
        if not found.get("stopped"):
            raise _StepFailed(
                f"the agent (pid {found['running']}) did not stop within {STOP_TIMEOUT_S} s "
                "of SIGTERM: look at it on the host, then retry"
            )
        return f"stopped the agent (pid {found['running']}) with SIGTERM"

    async def _install(self) -> str:
        facts = self._facts()
        packages = await self.d.packages_for(facts)
        wheels = posixpath.join(self.prefix, "wheels")
        stamp = posixpath.join(self.prefix, "installed.sha256")
        await self._run(
            f"mkdir -p {_q(wheels)} && chmod 700 {_q(self.prefix)}", "making the folders"
        )
        present = await self.remote.sizes(wheels)
        missing = [f for f in packages.files if present.get(f.name) != f.stat().st_size]
        if missing:
            await self.remote.put(missing, wheels)
        copied = (
            f"copied {len(missing)} wheels ({rules.mib(sum(f.stat().st_size for f in missing))})"
        )
        probe = await self.remote.run(f"cat {_q(stamp)} && echo && {_q(self.bzzz, '--version')}")
        lines = probe.out.split()
        installed = lines[0] if probe.code == 0 and lines else None
        runs = probe.code == 0 and f"bzzz {packages.version}" in probe.out
        if not rules.install_needed(installed, packages.sha256, runs):
            return f"bzzz {packages.version} is installed already (same wheel); {copied}"
        wheel = posixpath.join(wheels, packages.wheel.name)
        pip = f"PIP_CONFIG_FILE=/dev/null {_q(self.python, '-m', 'pip')} install -q --no-index"
        await self._run(
            f"rm -f {_q(stamp)} && (test -x {_q(self.python)} || "
            f"python3 -m venv {_q(posixpath.join(self.prefix, 'venv'))})",
            "making the virtualenv",
            timeout=PIP_TIMEOUT_S,
        )
        await self._run(
            f"{pip} --find-links {_q(wheels)} {_q(wheel)} && "
            f"{pip} --no-deps --force-reinstall {_q(wheel)}",
            "pip install",
            timeout=PIP_TIMEOUT_S,
        )
        version = await self._run(_q(self.bzzz, "--version"), "running the installed bzzz")
        if f"bzzz {packages.version}" not in version:
            raise _StepFailed(
                f"the installed bzzz says {version.strip()!r}, not {packages.version}"
            )
        await self._run(f"printf %s {_q(packages.sha256)} > {_q(stamp)}", "writing the stamp")
        return f"bzzz {packages.version} installed in {self.prefix}/venv; {copied}"

    async def _home(self) -> str:
        config = posixpath.join(self.home, "config.yaml")
        made = False
        exists = await self.remote.run(_q("test", "-f", config))
        if exists.code != 0:
            await self._run(
                _q(
                    self.bzzz,
                    "init",
                    "--home",
                    self.home,
                    "--name",
                    self.plan.node_name,
                    "--role",
                    self.plan.role,
                    "--listen",
                    self.plan.listen,
                ),
                "bzzz init",
            )
            made = True
        status = await self._status()
        agent_id = status.get("agent_id")
        if not isinstance(agent_id, str):
            raise _StepFailed("the home has no agent id: its key is missing or damaged")
        self.record = replace(self.record, agent_id=agent_id)
        what = "made" if made else "kept the existing"
        return f"{what} node home {self.home} (agent {agent_id[:16]})"

    async def _join(self) -> str:
        cluster_id = cluster_id_of(self.d.node.config)
        if cluster_id is None:
            raise UsageError("the deploying node is in no cluster: found one first")
        status = await self._status()
        remote_cluster = status.get("cluster_id")
        action = rules.join_action(
            remote_cluster if isinstance(remote_cluster, str) else None, cluster_id.hex(), self.home
        )
        if action == "skip":
            return f"already a member of cluster {status.get('cluster')}"
        token = create_invite(self.d.node, self.plan.role, INVITE_EXPIRES, self.d.reach)
        self.d.poke()
        out = await self._run(
            _q(self.python, "-c", _JOIN, "--home", self.home, "--json"),
            "bzzz join",
            stdin=encode_token(token) + "\n",
            timeout=300,
        )
        after = await self._status()
        if after.get("cluster_id") != cluster_id.hex():
            raise _StepFailed("bzzz join ended, but the home names no cluster")
        try:
            joined = json.loads(out.strip().splitlines()[-1])
            copied = f"copied {joined['entries']} entries in {joined['logs']} logs"
        except (ValueError, IndexError, KeyError, TypeError):
            copied = "joined"
        return f"invited as {self.plan.role} and joined cluster {token.cluster}: {copied}"

    async def _service(self) -> str:
        facts = self._facts()
        mode, why = rules.service_mode(self.plan.systemd, facts.systemd, facts.init)
        unit = "no unit written (--systemd no)"
        if self.plan.systemd != "no":
            words = [self.bzzz, "service", "install", "--home", self.home]
            if rules.user_scope(facts.uid):
                words.append("--user")
            if self.plan.unit_dir:
                words += ["--unit-dir", self.plan.unit_dir]
            ran = await self.remote.run(_q(*words), timeout=180)
            if ran.code != 0:
                raise _StepFailed(
                    f"bzzz service install failed: {ran.said}"
                    + ("" if facts.systemd else " (--systemd no starts the agent without a unit)")
                )
            unit = ran.out.strip().splitlines()[0] if ran.out.strip() else "unit written"
        if mode == "systemd" and not self.plan.unit_dir:
            user = ["--user"] if rules.user_scope(facts.uid) else []
            state = await self.remote.run(_q("systemctl", *user, "is-active", "bzzz.service"))
            if state.out.strip() != "active":
                raise _StepFailed(f"systemd says bzzz.service is {state.out.strip() or state.said}")
            return f"{unit}; systemd started it (active)"
        await self._port_free()
        log = posixpath.join(self.home, "agent.log")
        pid_text = await self._run(
            # The subshell becomes the agent (exec), its output in the log: nothing of
            # it holds the SSH channel, which then closes.
            f"(cd {_q(self.home)} && exec setsid {_q(self.bzzz, 'agent', '--home', self.home)} "
            f">> {_q(log)} 2>&1 < /dev/null) & echo $!",
            "starting the agent",
            timeout=30,
        )
        pid = pid_text.strip().splitlines()[-1] if pid_text.strip() else "?"
        deadline = time.monotonic() + START_TIMEOUT_S
        while True:
            status = await self._status()
            if status.get("running"):
                break
            alive = await self.remote.run(_q("kill", "-0", pid))
            if alive.code != 0 or time.monotonic() > deadline:
                tail = await self.remote.run(_q("tail", "-n", "1", log))
                last = tail.out.strip() or "nothing in its log"
                raise _StepFailed(
                    f"the agent did not start (pid {pid}); its log {log} ends: {last}"
                )
            await asyncio.sleep(0.5)
        return (
            f"{unit}; {why}, so the agent was started detached instead (setsid, pid {pid}, "
            f"log {log}): it will not be restarted on failure or at boot"
        )

    async def _port_free(self) -> None:
        host, port = self.plan.listen.rsplit(":", 1)
        ran = await self.remote.run(_q("python3", "-", host.strip("[]"), port), stdin=_PORT)
        if ran.code != 0:
            raise _StepFailed(
                f"port {port} on the host is taken ({ran.said}): another program listens "
                "there; stop it (or deploy again with another --listen), then bzzz deploy "
                "--retry"
            )

    async def _verify(self) -> str:
        node = self.d.node
        me = node.identity.public_key.hex()
        began = time.monotonic()
        status = await self._until(
            lambda s: me in _connected(s), "link to this node", LINK_TIMEOUT_S
        )
        theirs = status.get("agent_id")
        if not isinstance(theirs, str):
            raise _StepFailed("bzzz status on the host shows no agent id")
        their_seq = int(status.get("heads", {}).get(theirs, 0))
        body = encode_payload({"host": self.record.key, "agent": theirs})
        ours = node.store.append(node.identity.signer, VERIFIED, body, now_ms())
        self.d.poke()
        await self._until(
            lambda s: int(s.get("heads", {}).get(me, 0)) >= ours.seq,
            "our entry to reach the host",
            LINK_TIMEOUT_S,
        )
        deadline = time.monotonic() + LINK_TIMEOUT_S
        while True:
            head = node.store.heads().get(bytes.fromhex(theirs))
            if head is not None and head.seq >= their_seq:
                break
            if time.monotonic() > deadline:
                raise _StepFailed(
                    f"the host's log did not reach this node within {LINK_TIMEOUT_S:.0f} s "
                    f"(it is at seq {their_seq}, we hold {head.seq if head else 0})"
                )
            await asyncio.sleep(0.3)
        linked = len(_connected(status))
        return (
            f"running, linked to {linked} member{'s' if linked != 1 else ''}; entries flow both "
            f"ways (our seq {ours.seq} there, its seq {their_seq} here) "
            f"{time.monotonic() - began:.1f} s after the start"
        )

    async def _until(
        self, check: Callable[[dict[str, Any]], bool], what: str, timeout: float
    ) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while True:
            status = await self._status()
            if not status.get("running"):
                raise _StepFailed("the agent is not running on the host (bzzz status)")
            if check(status):
                return status
            if time.monotonic() > deadline:
                raise _StepFailed(f"timed out after {timeout:.0f} s waiting for the {what}")
            await asyncio.sleep(0.5)

    def _facts(self) -> HostFacts:
        if self.facts is None:  # steps_from always runs the check step first
            raise _StepFailed("the host was not checked")
        return self.facts


def _connected(status: dict[str, Any]) -> set[str]:
    peers: Sequence[Any] = status.get("peers") or []
    return {str(p.get("agent_id")) for p in peers if isinstance(p, dict) and p.get("connected")}
