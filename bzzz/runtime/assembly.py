"""The composition root: a node built from its config in named, ordered steps (the mesh,
the services, discovery), started in that order and stopped in reverse. Front ends (the
agent daemon, later the HAP) assemble the same node and add their own steps."""

from __future__ import annotations

import asyncio
import logging
import os
import signal
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path

from bzzz.domain.election import Settings
from bzzz.domain.hmmm import Limits
from bzzz.domain.invite import InviteToken
from bzzz.domain.membership import founding_problem
from bzzz.domain.profile import Profile
from bzzz.domain.standing import TransferPolicy
from bzzz.errors import ConfigError, UsageError
from bzzz.home.config import NodeConfig
from bzzz.home.node import Node
from bzzz.http import HttpStep, http_step
from bzzz.mesh.discovery import Discovery
from bzzz.mesh.join import MeshInviters
from bzzz.mesh.mesh import Mesh
from bzzz.notify.webhook import WebhookNotifier, WebhookTarget
from bzzz.runtime.execution import execution_of
from bzzz.runtime.keys import keys_of
from bzzz.services.board import BoardService
from bzzz.services.chooser import AutoClaim
from bzzz.services.claims import ClaimService
from bzzz.services.election import ElectionRunner
from bzzz.services.escalations import EscalationService
from bzzz.services.execution import ExecutionService
from bzzz.services.hmmm import HmmmService
from bzzz.services.intake import IntakeService
from bzzz.services.keys import KeyService
from bzzz.services.ports import Inviters, Notifier, TaskMirror, TaskSource
from bzzz.services.profile import record_profile
from bzzz.services.slurp import SlurpService
from bzzz.tasks.github_source import github_source_of
from bzzz.tasks.hive import hive_source_of
from bzzz.tasks.local import LocalFolderSource

log = logging.getLogger("bzzz.runtime")
STOP_GRACE_S = 5.0  # per step


@dataclass
class Step:
    name: str
    start: Callable[[], Awaitable[None]]
    stop: Callable[[], Awaitable[None]]


def profile_of(config: NodeConfig) -> Profile:
    agent = config.agent
    return Profile(tuple(agent.capabilities), tuple(agent.models), agent.max_tasks)


def mesh_of(node: Node, listen: str | None = None, token: InviteToken | None = None) -> Mesh:
    """The node's mesh; for a join, set up for the cluster the token names."""
    settings = node.config.mesh
    if token is not None:
        settings = settings.model_copy(
            update={"cluster": token.cluster, "cluster_id": token.cluster_id.hex()}
        )
    return Mesh(
        node.store,
        node.identity,
        node.roles,
        settings,
        name=node.config.name,
        role=node.config.role,
        profile=profile_of(node.config),
        listen=listen,
    )


def sources_of(node: Node) -> tuple[list[TaskSource], list[TaskMirror]]:
    """The task sources of the node's config, and those of them that mirror claims."""
    sources: list[TaskSource] = []
    mirrors: list[TaskMirror] = []
    for config in node.config.tasks.sources:
        if config.type == "local":
            folder = node.home / config.path
            sources.append(LocalFolderSource(folder.resolve(), config.name))
        elif config.type == "github":
            github = github_source_of(config, node.home)
            sources.append(github)
            if config.mirror:
                mirrors.append(github)
        else:
            hive = hive_source_of(config, node.home)
            sources.append(hive)
            mirrors.append(hive)  # claims and status reported to Hive, as the original did
    return sources, mirrors


def limits_of(config: NodeConfig) -> Limits:
    h = config.hmmm
    return Limits(
        max_hops=h.max_hops,
        max_participants=h.max_participants,
        max_messages=h.max_messages,
        ttl_ms=int(h.ttl_s * 1000),
        window_ms=int(h.objection_window_s * 1000),
        max_revisions=h.max_revisions,
        per_minute=h.per_minute,
    )


def notifiers_of(config: NodeConfig) -> list[Notifier]:
    """The webhooks escalations go to; a secret comes from the environment."""
    found: list[Notifier] = []
    for n, hook in enumerate(config.hmmm.escalation.webhooks):
        secret = os.environ.get(hook.secret_env) if hook.secret_env else None
        if hook.secret_env and not secret:
            raise ConfigError(
                f"hmmm.escalation.webhooks.{n}.secret_env: {hook.secret_env} is not set"
            )
        found.append(WebhookNotifier(WebhookTarget(hook.url, secret)))
    return found


def local_task_folder(node: Node) -> Path | None:
    """The folder of the node's first local task source (where `bzzz task add`
    writes), or None."""
    for config in node.config.tasks.sources:
        if config.type == "local":
            return (node.home / config.path).resolve()
    return None


def inviters_of(node: Node) -> Inviters:
    return MeshInviters(lambda token: mesh_of(node, token=token))


@dataclass
class NodeRuntime:
    """One node's parts and the order they start in. Build with `assemble`."""

    node: Node
    mesh: Mesh
    election: ElectionRunner
    claims: ClaimService
    board: BoardService
    hmmm: HmmmService
    intake: IntakeService
    chooser: AutoClaim | None
    execution: ExecutionService | None = None
    http: HttpStep | None = None  # health, metrics and the dashboard, when http.listen is set
    keys: KeyService | None = None  # role keys, sealed content, the admin key's shares
    slurp: SlurpService | None = None  # the admin's curation of shared context
    steps: list[Step] = field(default_factory=list)
    _started: list[Step] = field(default_factory=list)

    def add(
        self, name: str, start: Callable[[], Awaitable[None]], stop: Callable[[], Awaitable[None]]
    ) -> None:
        self.steps.append(Step(name, start, stop))

    async def start(self) -> None:
        """Start every step in order; if one fails, stop those started, in reverse."""
        for step in self.steps:
            log.debug("starting %s", step.name)
            try:
                await step.start()
            except BaseException:
                await self.stop()
                raise
            self._started.append(step)

    async def stop(self) -> None:
        while self._started:
            step = self._started.pop()
            log.debug("stopping %s", step.name)
            try:
                async with asyncio.timeout(STOP_GRACE_S):
                    await step.stop()
            except TimeoutError:
                log.warning("%s did not stop within %.0f s", step.name, STOP_GRACE_S)

    async def run_until_signal(self) -> None:
        """Start, wait for SIGINT or SIGTERM, stop."""
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(signum, stop.set)
        try:
            await self.start()
            await stop.wait()
            log.info("stopping")
        finally:
            for signum in (signal.SIGINT, signal.SIGTERM):
                loop.remove_signal_handler(signum)
            await self.stop()


async def _nothing() -> None:
    return None


def assemble(
    node: Node,
    *,
    listen: str | None = None,
    peers: list[str] | None = None,
    mdns: bool | None = None,
) -> NodeRuntime:
    """The node's steps: http (when `http.listen` is set), mesh, profile, claims, board,
    hmmm, intake, election, auto-claim, execution, discovery, http ready."""
    config = node.config
    mesh = mesh_of(node, listen)
    e = config.election
    policy = TransferPolicy(
        e.transfer_margin, int(e.transfer_sustain_s * 1000), int(e.min_tenure_s * 1000)
    )
    election = ElectionRunner(
        mesh,
        Settings(e.heartbeat_ms, e.election_min_ms, e.election_max_ms),
        policy if e.transfer else None,
    )
    claims = ClaimService(mesh, election, config.agent.claim_lease_ms)
    board = BoardService(mesh, election, claims)
    claims.vet = board.vet  # no grant for a task the board shows done, closed or blocked
    claims.before_vet = board.refresh
    hmmm = HmmmService(mesh, election, board, limits_of(config), config.hmmm.rule_reviewer)
    sources, mirrors = sources_of(node)
    intake = IntakeService(mesh, election, board, sources, mirrors, config.tasks.poll_s)
    chooser = (
        AutoClaim(mesh, board, claims, config.agent.max_tasks) if config.agent.auto_claim else None
    )

    keys = keys_of(node, mesh, election)
    slurp = SlurpService(mesh, election, board, hmmm)

    async def admin_duties(on: bool) -> None:
        await claims.set_admin(on)  # granting claims
        await intake.set_admin(on)  # polling task sources, mirroring claims
        await keys.set_admin(on)  # granting role keys, splitting the admin key
        await slurp.set_admin(on)  # linking and superseding decisions

    escalations = EscalationService(mesh, election, hmmm, notifiers_of(config))

    async def admin_duties_and_delivery(on: bool) -> None:
        await admin_duties(on)
        await escalations.set_admin(on)  # posting escalations to the webhooks

    election.on_admin = admin_duties_and_delivery
    execution = execution_of(node, mesh, board, hmmm)
    runtime = NodeRuntime(node, mesh, election, claims, board, hmmm, intake, chooser, execution)
    runtime.keys = keys
    runtime.slurp = slurp

    async def start_mesh() -> None:
        await mesh.refresh()
        if mesh.cluster_id is None:
            raise ConfigError(
                "this node is in no cluster: found one with `bzzz init --new-cluster NAME`, "
                "or join one with `bzzz join TOKEN`"
            )
        problem = founding_problem(mesh.membership, mesh.cluster_id)
        if problem is not None and "no role named" in problem:
            raise ConfigError(
                f"{problem}: every node of a cluster must use the same roles file "
                f"(config key `project`; now {node.config.project or 'the packaged roles'})"
            )
        if problem is not None:
            raise ConfigError(f"{problem}; `bzzz audit` says what the store holds")
        try:
            await mesh.start([*config.mesh.peers, *(peers or [])])
        except OSError as error:
            raise UsageError(f"cannot listen on {mesh.listen}: {error.strerror or error}") from None
        view = mesh.view()
        log.info(
            "agent %s (%s) role %s (%s) in cluster %s (%s) listening on %s",
            view.name,
            view.agent_id.hex(),
            view.role,
            view.authority,
            view.cluster,
            mesh.cluster_id.hex()[:12],
            view.listen,
        )
        if not view.member:
            log.warning(
                "this node is not a member of cluster %s: peers will refuse it", view.cluster
            )

    async def start_profile() -> None:
        await record_profile(mesh, mesh.profile)

    # The HTTP endpoints start first and stop last: health answers while the mesh starts
    # (a slow store), and a port already taken fails before anything else binds. They
    # read the node as ready only once "http ready", the last step, has started.
    served = runtime.http = http_step(runtime)
    if served is not None:
        runtime.add("http", served.start, served.stop)
    runtime.add("mesh", start_mesh, mesh.stop)
    runtime.add("profile", start_profile, _nothing)
    runtime.add("claims", claims.start, claims.stop)
    runtime.add("board", board.start, board.stop)
    runtime.add("hmmm", hmmm.start, hmmm.stop)
    runtime.add("keys", keys.start, keys.stop)
    runtime.add("escalations", escalations.start, escalations.stop)
    runtime.add("slurp", slurp.start, slurp.stop)
    runtime.add("intake", intake.start, intake.stop)
    runtime.add("election", election.start, election.stop)
    if chooser is not None:
        runtime.add("auto-claim", chooser.start, chooser.stop)
    if execution is not None:
        runtime.add("execution", execution.start, execution.stop)
    if config.mesh.mdns if mdns is None else mdns:
        discovery = Discovery(mesh)
        runtime.add("discovery", discovery.start, discovery.stop)
    if served is not None:
        runtime.add("http ready", served.running, served.stopping)
    return runtime
