"""Deploying BZZZ to a machine over SSH, as rules: the steps, what a host's record of a
deployment holds, where `bzzz deploy --retry` resumes, and the idempotency decisions
each step makes from what it found on the host. No I/O: the SSH side is `bzzz.deploy`,
the flow `bzzz.services.deploy`.

A deployment runs the steps in order; each step checks its own result before it counts
as done. A failed step is recorded with why, and a retry starts at it (the steps before
it stay done). Deploying again from the start is harmless: every step first looks at
what is there (the installed wheel's hash, the home's cluster) and skips what is done.
"""

from __future__ import annotations

import json
import posixpath
import re
from dataclasses import dataclass, field, replace
from typing import Any, Literal

from bzzz.domain.addresses import parse_address, valid_host
from bzzz.errors import UsageError

STEPS: tuple[str, ...] = ("check", "stop", "install", "home", "join", "service", "verify")
TITLES: dict[str, str] = {
    "check": "check the host",
    "stop": "stop a running agent",
    "install": "install BZZZ",
    "home": "create the node home",
    "join": "invite and join",
    "service": "install and start the service",
    "verify": "verify it joined and replicates",
}
StepState = Literal["pending", "done", "failed"]
SystemdMode = Literal["auto", "yes", "no"]
SYSTEMD_MODES: tuple[str, ...] = ("auto", "yes", "no")

DEFAULT_SSH_PORT = 22
DEFAULT_LISTEN = "0.0.0.0:7420"
DEFAULT_PREFIX = "~/.local/share/bzzz-deploy"  # relative to the remote user's home
MIN_PYTHON = (3, 11)
# What an install takes on the host: the virtualenv (about 170 MB measured), the wheels
# copied (about 30 MB), pip's temporary files, and room for the store to grow.
MIN_FREE_BYTES = 400 * 1024 * 1024
STATE_VERSION = 1
_USER = re.compile(r"[A-Za-z_][A-Za-z0-9_.-]{0,31}")


@dataclass(frozen=True, slots=True)
class Target:
    """Where to deploy: USER@HOST[:PORT]."""

    user: str
    host: str
    port: int = DEFAULT_SSH_PORT

    def __str__(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{self.user}@{host}:{self.port}"


def parse_target(text: str) -> Target:
    """USER@HOST[:PORT] (an IPv6 host in brackets); UsageError says what is wrong."""
    cleaned = text.strip()
    user, at, rest = cleaned.rpartition("@")
    if not at or not _USER.fullmatch(user):
        raise UsageError(f"{text!r} is not USER@HOST[:PORT] (e.g. bzzz@10.0.0.5 or root@h2:2222)")
    if rest.startswith("["):
        host, close, tail = rest[1:].partition("]")
        if not close or (tail and not tail.startswith(":")):
            raise UsageError(f"{text!r}: an IPv6 host goes in brackets, e.g. root@[fe80::1]:22")
        port_text = tail[1:] if tail else ""
    elif rest.count(":") == 1:
        host, _, port_text = rest.partition(":")
    else:
        host, port_text = rest, ""
    if not host or not valid_host(host):
        raise UsageError(f"{text!r}: {host!r} is neither an IP address nor a host name")
    if port_text and (not port_text.isdigit() or not 0 < int(port_text) < 65536):
        raise UsageError(f"{text!r}: the SSH port {port_text!r} is not a number from 1 to 65535")
    return Target(user, host, int(port_text) if port_text else DEFAULT_SSH_PORT)


@dataclass(frozen=True, slots=True)
class HostPlan:
    """What to deploy on one host, as the operator asked (kept with its record so that a
    retry deploys the same thing). Remote paths may start with `~/` until the check
    step has learnt the remote user's home (`resolve_paths`)."""

    target: Target
    role: str = "developer"
    name: str | None = None  # the node's name (default: the host's short name)
    prefix: str = DEFAULT_PREFIX  # the virtualenv, the wheels and (by default) the home
    home: str | None = None  # the node home (default: PREFIX/home)
    listen: str = DEFAULT_LISTEN
    systemd: SystemdMode = "auto"
    unit_dir: str | None = None  # where the unit goes (default: systemd's own folder)

    @property
    def node_name(self) -> str:
        if self.name:
            return self.name
        short = self.target.host.split(".")[0] if not _is_ip(self.target.host) else ""
        return short or "node-" + re.sub(r"[^A-Za-z0-9]", "-", self.target.host).strip("-")

    @property
    def home_path(self) -> str:
        return self.home or posixpath.join(self.prefix, "home")

    @property
    def listen_port(self) -> int:
        return parse_address(self.listen)[1]


def check_plan(plan: HostPlan) -> HostPlan:
    """The plan, or UsageError naming the option that is wrong."""
    try:
        parse_address(plan.listen)
    except ValueError as exc:
        raise UsageError(f"--listen: {exc}") from None
    for option, path in (("--prefix", plan.prefix), ("--remote-home", plan.home)):
        if path is not None and not (path.startswith("/") or path.startswith("~/")):
            raise UsageError(f"{option} {path!r}: give an absolute path, or one that starts ~/")
        if path is not None and any(c in path for c in "\n\r\0"):
            raise UsageError(f"{option} {path!r} holds a line break")
    if plan.unit_dir is not None and not plan.unit_dir.startswith("/"):
        raise UsageError(f"--unit-dir {plan.unit_dir!r}: give an absolute path")
    if plan.systemd not in SYSTEMD_MODES:
        raise UsageError(f"--systemd {plan.systemd!r}: one of {', '.join(SYSTEMD_MODES)}")
    return plan


def _is_ip(host: str) -> bool:
    return bool(re.fullmatch(r"[0-9.]+", host)) or ":" in host


def expand(path: str, remote_home: str) -> str:
    """A remote path with a leading `~/` made absolute with the remote user's home."""
    if path == "~" or path.startswith("~/"):
        return posixpath.normpath(remote_home + path[1:])
    return posixpath.normpath(path)


def resolve_paths(plan: HostPlan, remote_home: str) -> HostPlan:
    """The plan with absolute remote paths."""
    return replace(
        plan,
        prefix=expand(plan.prefix, remote_home),
        home=expand(plan.home_path, remote_home),
    )


# What the check step found on the host.


@dataclass(frozen=True, slots=True)
class HostFacts:
    os: str
    machine: str
    python: tuple[int, int, int]
    python_path: str
    has_venv: bool  # the venv and ensurepip modules (Debian: python3-venv)
    uid: int
    user_home: str
    free_bytes: int
    free_at: str  # the folder the free space was measured in
    systemd: bool  # systemd is the service manager (PID 1)
    init: str  # PID 1's name

    @property
    def python_text(self) -> str:
        return ".".join(str(n) for n in self.python)

    @property
    def python_tag(self) -> str:
        """`cp311`: which binary wheels fit this host."""
        return f"cp{self.python[0]}{self.python[1]}"


def parse_facts(text: str) -> HostFacts:
    """The check probe's JSON line; UsageError when the host answered something else."""
    try:
        data = json.loads(text.strip().splitlines()[-1])
        python = tuple(int(n) for n in data["python"][:3])
        return HostFacts(
            os=str(data["os"]),
            machine=str(data["machine"]),
            python=(python[0], python[1], python[2]),
            python_path=str(data["executable"]),
            has_venv=bool(data["venv"]),
            uid=int(data["uid"]),
            user_home=str(data["home"]),
            free_bytes=int(data["free_bytes"]),
            free_at=str(data["free_at"]),
            systemd=bool(data["systemd"]),
            init=str(data["init"]),
        )
    except (ValueError, KeyError, IndexError, TypeError):
        raise UsageError(
            f"the host's answer to the check was not understood: {text.strip()[:200]!r}"
        ) from None


def facts_problems(facts: HostFacts, needed_bytes: int = MIN_FREE_BYTES) -> list[str]:
    """Why BZZZ cannot be installed on this host, each with what to do."""
    problems = []
    if facts.python < MIN_PYTHON:
        want = ".".join(str(n) for n in MIN_PYTHON)
        problems.append(
            f"python3 is {facts.python_text}; BZZZ needs {want} or later: install a newer "
            "python3 on the host"
        )
    if not facts.has_venv:
        problems.append(
            "python3 cannot make virtualenvs (no venv/ensurepip): on Debian or Ubuntu "
            "install python3-venv"
        )
    if facts.free_bytes < needed_bytes:
        problems.append(
            f"only {mib(facts.free_bytes)} free at {facts.free_at}; BZZZ needs about "
            f"{mib(needed_bytes)}: free some space or choose another --prefix"
        )
    return problems


def mib(n: int) -> str:
    return f"{n / (1024 * 1024):.0f} MiB"


def describe_facts(facts: HostFacts) -> str:
    manager = "systemd" if facts.systemd else f"no systemd (PID 1 is {facts.init})"
    return (
        f"{facts.os} ({facts.machine}), Python {facts.python_text}, "
        f"{mib(facts.free_bytes)} free, {manager}"
    )


# Idempotency decisions.


def install_needed(installed_sha256: str | None, wheel_sha256: str, runs: bool) -> bool:
    """Install unless this very wheel is installed and its `bzzz` runs."""
    return not (runs and installed_sha256 == wheel_sha256)


JoinAction = Literal["join", "skip"]


def join_action(remote_cluster_id: str | None, cluster_id: str, home: str) -> JoinAction:
    """`skip` when the node is already in our cluster, `join` when it is in none;
    UsageError when it belongs to another cluster (its identity is not ours to reuse)."""
    if remote_cluster_id is None:
        return "join"
    if remote_cluster_id == cluster_id:
        return "skip"
    raise UsageError(
        f"the node home {home} belongs to another cluster ({remote_cluster_id[:16]}...): "
        "deploy to another --remote-home, or remove that one first"
    )


ServiceMode = Literal["systemd", "detached"]


def service_mode(setting: SystemdMode, booted: bool, init: str) -> tuple[ServiceMode, str]:
    """How the agent is started on the host, and why, in words for the step's report."""
    if setting == "no":
        return "detached", "--systemd no was given"
    if booted:
        return "systemd", "systemd is the service manager"
    if setting == "yes":
        raise UsageError(
            f"--systemd yes, but systemd is not the service manager on the host (PID 1 is "
            f"{init}): use --systemd auto to start the agent detached there"
        )
    return "detached", f"systemd is not the service manager there (PID 1 is {init})"


def user_scope(uid: int) -> bool:
    """A user unit for anyone but root (no sudo needed)."""
    return uid != 0


# A host's record: which steps are done, when, and why one failed.


@dataclass(frozen=True, slots=True)
class StepRecord:
    name: str
    state: StepState = "pending"
    at_ms: int | None = None  # when it ended
    seconds: float | None = None
    said: str = ""  # what it found or did (done), or why it failed (failed)


@dataclass(frozen=True, slots=True)
class HostRecord:
    plan: HostPlan
    steps: tuple[StepRecord, ...] = field(default_factory=lambda: fresh_steps())
    started_ms: int | None = None
    agent_id: str | None = None  # the deployed node's, once its home exists

    @property
    def key(self) -> str:
        return str(self.plan.target)

    def step(self, name: str) -> StepRecord:
        return next(s for s in self.steps if s.name == name)

    @property
    def finished(self) -> bool:
        return all(s.state == "done" for s in self.steps)

    @property
    def failed(self) -> StepRecord | None:
        return next((s for s in self.steps if s.state == "failed"), None)

    @property
    def seconds(self) -> float:
        return sum(s.seconds or 0.0 for s in self.steps)


def fresh_steps() -> tuple[StepRecord, ...]:
    return tuple(StepRecord(name) for name in STEPS)


def start_record(plan: HostPlan, now_ms: int) -> HostRecord:
    """A new deployment: every step pending (each is idempotent on the host)."""
    return HostRecord(plan=plan, started_ms=now_ms)


def resume_at(record: HostRecord) -> str | None:
    """Where a retry starts: the first step that is not done (None: nothing to do)."""
    return next((s.name for s in record.steps if s.state != "done"), None)


def steps_from(record: HostRecord) -> tuple[str, ...]:
    """The steps a retry runs, in order; the check step runs again first whenever a
    later one resumes, since the host's facts (its home, its systemd) are needed and
    may have changed."""
    start = resume_at(record)
    if start is None:
        return ()
    rest = STEPS[STEPS.index(start) :]
    return rest if start == "check" else ("check", *rest)


def record_step(
    record: HostRecord, name: str, state: StepState, said: str, now_ms: int, seconds: float
) -> HostRecord:
    """The record with step `name` ended; a failed step makes every later one pending."""
    if name not in STEPS:
        raise ValueError(f"no step named {name!r}")
    ended = StepRecord(name, state, now_ms, round(seconds, 3), said)
    index = STEPS.index(name)
    steps = list(record.steps)
    steps[index] = ended
    if state == "failed":
        steps[index + 1 :] = [StepRecord(s) for s in STEPS[index + 1 :]]
    return replace(record, steps=tuple(steps))


# The state file: every host's record, as JSON.


def records_to_json(records: dict[str, HostRecord]) -> str:
    return json.dumps(
        {"version": STATE_VERSION, "hosts": [_record_dict(r) for r in records.values()]},
        indent=2,
    )


def records_from_json(text: str, where: str) -> dict[str, HostRecord]:
    """The records in a state file; UsageError naming the file when it is damaged."""
    try:
        data = json.loads(text)
        if data.get("version") != STATE_VERSION:
            raise ValueError(f"version {data.get('version')!r}")
        found = [_record_from(item) for item in data["hosts"]]
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        raise UsageError(
            f"{where} is damaged ({exc}): move it away; the next deploy starts afresh"
        ) from None
    return {r.key: r for r in found}


def _record_dict(record: HostRecord) -> dict[str, Any]:
    plan = record.plan
    return {
        "target": str(plan.target),
        "role": plan.role,
        "name": plan.name,
        "prefix": plan.prefix,
        "home": plan.home,
        "listen": plan.listen,
        "systemd": plan.systemd,
        "unit_dir": plan.unit_dir,
        "started_ms": record.started_ms,
        "agent_id": record.agent_id,
        "steps": [
            {
                "name": s.name,
                "state": s.state,
                "at_ms": s.at_ms,
                "seconds": s.seconds,
                "said": s.said,
            }
            for s in record.steps
        ],
    }


def _record_from(item: dict[str, Any]) -> HostRecord:
    systemd = item["systemd"]
    if systemd not in SYSTEMD_MODES:
        raise ValueError(f"systemd {systemd!r}")
    plan = HostPlan(
        target=parse_target(item["target"]),
        role=str(item["role"]),
        name=item["name"],
        prefix=str(item["prefix"]),
        home=item["home"],
        listen=str(item["listen"]),
        systemd=systemd,
        unit_dir=item["unit_dir"],
    )
    by_name = {s["name"]: s for s in item["steps"]}
    steps = []
    for name in STEPS:
        s = by_name.get(name, {"state": "pending"})
        if s["state"] not in ("pending", "done", "failed"):
            raise ValueError(f"step state {s['state']!r}")
        steps.append(
            StepRecord(name, s["state"], s.get("at_ms"), s.get("seconds"), s.get("said", ""))
        )
    return HostRecord(plan, tuple(steps), item.get("started_ms"), item.get("agent_id"))
