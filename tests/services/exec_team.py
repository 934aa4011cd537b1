"""An in-process team for execution tests: three in-memory replicas (an admin and two
developers) running the real services (election, claims, board, HMMM, intake from a
local task folder), with the execution service on the first developer driven by a
replayed model, real bubblewrap and real git. No SSH, no daemons: a scenario takes
a second or two."""

from __future__ import annotations

import asyncio
import subprocess
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bzzz.clock import now_ms
from bzzz.domain import hmmm as hm
from bzzz.domain import membership as ms
from bzzz.domain import work as wk
from bzzz.domain.election import Settings
from bzzz.domain.execution import RunLimits
from bzzz.domain.invite import secret_hash
from bzzz.domain.payload import encode_payload, payload_map
from bzzz.domain.tasks import TaskSpec
from bzzz.execution.git import Workspace
from bzzz.execution.replay import ReplayReasoner
from bzzz.execution.sandbox import BwrapSandbox
from bzzz.home.keys import Identity, create_identity
from bzzz.home.roles import load_roles
from bzzz.services.board import BoardService
from bzzz.services.claims import ClaimService
from bzzz.services.election import ElectionRunner
from bzzz.services.execution import (
    CommitIdentity,
    ExecutionService,
    ExecutionSettings,
    ModelChoice,
)
from bzzz.services.hmmm import HmmmService
from bzzz.services.intake import IntakeService
from bzzz.services.ports import PullRequests, Reasoner, Sandbox
from bzzz.store import EventStore
from bzzz.store.urls import resolve_store_url
from bzzz.tasks.local import LocalFolderSource, write_task
from tests.support.memory_replica import Hub, MemoryReplica

ROLES = load_roles(None)
FAST = Settings(heartbeat_ms=20, election_min_ms=150, election_max_ms=300)
LIMITS = hm.Limits(window_ms=200)


def git(*args: str, cwd: Path | None = None) -> str:
    env = {"PATH": "/usr/bin:/bin", "HOME": "/nonexistent", "GIT_CONFIG_NOSYSTEM": "1"}
    return subprocess.run(
        ["git", *args], cwd=cwd, env=env, check=True, capture_output=True, text=True
    ).stdout


def make_origin(root: Path) -> Path:
    """A bare repository with a first commit on main."""
    work = root / "seed"
    work.mkdir(parents=True)
    git("init", "-q", "-b", "main", cwd=work)
    (work / "greet.py").write_text("def greet():\n    return 'hi'\n")
    git("add", ".", cwd=work)
    git("-c", "user.name=t", "-c", "user.email=t@x", "commit", "-qm", "first", cwd=work)
    bare = root / "origin.git"
    git("clone", "-q", "--bare", str(work), str(bare))
    return bare


def call(name: str, **arguments: Any) -> dict[str, Any]:
    return {"content": "", "tool_calls": [{"name": name, "arguments": arguments}]}


PLAN = {"content": "Change greet.py as asked.\nFiles: greet.py"}


@dataclass
class Member:
    replica: MemoryReplica
    identity: Identity
    election: ElectionRunner
    claims: ClaimService
    board: BoardService
    hmmm: HmmmService
    intake: IntakeService
    execution: ExecutionService | None = None
    services: list[Any] = field(default_factory=list)


class Team:
    def __init__(
        self,
        root: Path,
        turns: list[dict[str, Any]] | Callable[[TaskSpec], ModelChoice],
        *,
        settings: ExecutionSettings | None = None,
        sandbox: Sandbox | None = None,
        pulls: list[PullRequests] | None = None,
        lease_ms: int = 60_000,
    ) -> None:
        self.root = root
        self.folder = root / "tasks"
        self.folder.mkdir(parents=True)
        self.origin = make_origin(root)
        self.turns = turns
        self.reasoners: list[Reasoner] = []
        self.settings = settings or ExecutionSettings(
            role="developer", run_limits=RunLimits(wall_s=10), ask_timeout_s=5
        )
        self.sandbox = sandbox or BwrapSandbox()
        self.pulls = pulls or []
        self.lease_ms = lease_ms
        self.members: list[Member] = []
        self.stores: list[EventStore] = []

    def _choose(self, spec: TaskSpec) -> ModelChoice:
        turns = self.turns
        found = turns(spec) if callable(turns) else ModelChoice(ReplayReasoner(turns), "replay")
        self.reasoners.append(found.reasoner)
        return found

    async def __aenter__(self) -> Team:
        for n in range(3):
            (self.root / f"id{n}").mkdir()
        identities = [create_identity(self.root / f"id{n}") for n in range(3)]
        signers = [i.signer for i in identities]
        self.stores = [
            EventStore(resolve_store_url(f"sqlite:///{self.root / f's{n}.db'}")) for n in range(3)
        ]
        founder = signers[0]
        founding = self.stores[0].append(
            founder, ms.FOUNDED, encode_payload(ms.founded_body("c", "n0", "admin")), 1
        )
        for n, member in enumerate(signers[1:], start=1):
            token = secret_hash(bytes([n]) * 16)
            body = ms.invited_body(token, "developer", 10**13)
            self.stores[0].append(founder, ms.INVITED, encode_payload(body), 2)
            body = ms.admitted_body(member.public_key, f"n{n}", "developer", token)
            self.stores[0].append(founder, ms.ADMITTED, encode_payload(body), 3)
        raws = [s.raw for s in self.stores[0].notifications(after=0)]
        for store in self.stores[1:]:
            store.ingest(raws)
        hub = Hub()
        source = LocalFolderSource(self.folder, "team")
        for n, (store, identity) in enumerate(zip(self.stores, identities, strict=True)):
            replica = MemoryReplica(hub, store, identity.signer, ROLES, founding.hash)
            election = ElectionRunner(replica, FAST)
            claims = ClaimService(replica, election, self.lease_ms)
            board = BoardService(replica, election, claims)
            claims.vet = board.vet
            claims.before_vet = board.refresh
            hmmm = HmmmService(replica, election, board, LIMITS, rule_reviewer=n != 1)
            intake = IntakeService(replica, election, board, [source], [], 0.2)

            async def on_admin(on: bool, claims: ClaimService = claims, i: Any = intake) -> None:
                await claims.set_admin(on)
                await i.set_admin(on)

            election.on_admin = on_admin
            member = Member(replica, identity, election, claims, board, hmmm, intake)
            if n == 1:
                member.execution = ExecutionService(
                    replica,
                    board,
                    hmmm,
                    self._choose,
                    self.sandbox,
                    Workspace(self.root / "work"),
                    self.pulls,
                    CommitIdentity("n1", "n1@agents.bzzz", identity.ssh_private_pem()),
                    self.settings,
                )
            member.services = [
                s for s in (claims, board, hmmm, intake, member.execution, election) if s
            ]
            self.members.append(member)
        for member in self.members:
            for service in member.services:
                await service.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        for member in self.members:
            for service in reversed(member.services):
                await service.stop()
        for store in self.stores:
            store.close()

    @property
    def worker(self) -> Member:
        return self.members[1]

    async def leader(self, timeout: float = 10.0) -> bytes:
        async with asyncio.timeout(timeout):
            while True:
                leaders = {await m.election.proven_leader() for m in self.members}
                if len(leaders) == 1 and (leader := leaders.pop()) is not None:
                    return leader
                await asyncio.sleep(0.02)

    async def give(self, title: str, body: str = "", member: int = 1) -> str:
        """A task in the folder, on the board, granted to `member`; its id."""
        _, spec = write_task(self.folder, title, body, repo=str(self.origin))
        await self.leader()
        who = self.members[member]
        async with asyncio.timeout(10):
            while who.board.view(spec.id) is None:
                await who.board.refresh()
                await asyncio.sleep(0.05)
        granted = await who.claims.request(spec.id, [], 10)
        assert granted["status"] == "granted", granted
        return spec.id

    async def until(self, check: Callable[[], Any], timeout: float = 20.0) -> Any:
        async with asyncio.timeout(timeout):
            while not (found := check()):
                await asyncio.sleep(0.05)
            return found

    def state(self, task: str, member: int = 0) -> str | None:
        view = self.members[member].board.view(task, now_ms())
        return view.state.value if view is not None else None

    def ended(self, task: str) -> dict[str, Any] | None:
        execution = self.worker.execution
        assert execution is not None
        return next((f for f in execution.finished if f["task"] == task), None)

    def entries(self, kind_prefix: str = "exec.") -> list[tuple[str, dict[str, Any]]]:
        """The worker's own entries of these kinds, in order."""
        store = self.worker.replica.store
        found = []
        for stored in store.entries(self.worker.replica.me):
            entry = stored.decode()
            if entry.kind.startswith(kind_prefix):
                found.append((entry.kind, dict(payload_map(entry.body) or {})))
        return found


def branches(origin: Path) -> list[str]:
    return git(
        "--git-dir", str(origin), "branch", "--list", "bzzz/*", "--format=%(refname:short)"
    ).split()


def message_of(origin: Path, branch: str) -> dict[str, str]:
    return wk.trailers(git("--git-dir", str(origin), "log", "-1", "--format=%B", branch))
