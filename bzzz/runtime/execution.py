"""Assembling the execution service from a node's config: which reasoning backend and
model a task gets (per task type, then per role, then the default), the sandbox, the
workspace under the node home, the forges that open pull requests, and the identity
commits are signed with."""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from pathlib import Path

from bzzz.domain import claims as cl
from bzzz.domain import work as wk
from bzzz.domain.execution import Reply, RunLimits
from bzzz.domain.tasks import TaskSpec
from bzzz.errors import ConfigError, ReasoningError
from bzzz.execution.git import Workspace
from bzzz.execution.ollama import OllamaReasoner
from bzzz.execution.openai import OpenAIReasoner
from bzzz.execution.replay import ReplayReasoner, dump_turns
from bzzz.execution.sandbox import BwrapSandbox, UnsandboxedSandbox
from bzzz.home.config import DEFAULT_URLS, NodeConfig, ReasoningConfig
from bzzz.home.node import Node
from bzzz.services.board import BoardService
from bzzz.services.execution import (
    CommitIdentity,
    ExecutionService,
    ExecutionSettings,
    ModelChoice,
    replay_name,
    turns_path,
)
from bzzz.services.hmmm import HmmmService
from bzzz.services.ports import PullRequests, Reasoner, Replica, Sandbox
from bzzz.tasks.github_pulls import github_pulls_of

WORK_FOLDER = "work"
TRAJECTORIES = "trajectories"


def chooser_of(config: ReasoningConfig, role: str, home: Path) -> Callable[[TaskSpec], ModelChoice]:
    """The backend and models for a task: its type's override, else its role's, else
    the default. Servers are made once per URL; a replay reads the task's recording."""
    servers: dict[tuple[str, str], Reasoner] = {}

    def server(backend: str, url: str | None) -> Reasoner:
        where = url or DEFAULT_URLS[backend]
        if (backend, where) not in servers:
            if backend == "ollama":
                servers[backend, where] = OllamaReasoner(where)
            else:
                key = os.environ.get(config.api_key_env) if config.api_key_env else None
                if config.api_key_env and not key:
                    raise ReasoningError(f"reasoning.api_key_env: {config.api_key_env} is not set")
                servers[backend, where] = OpenAIReasoner(where, api_key=key)
        return servers[backend, where]

    def choose(spec: TaskSpec) -> ModelChoice:
        override = config.task_types.get(spec.type or "") or config.roles.get(role)
        backend = (override.backend if override else None) or config.backend
        model = (override.model if override else None) or config.model
        fallbacks = override.fallbacks if override and override.fallbacks is not None else None
        if backend == "replay":
            folder = home / (config.recordings or "recordings")
            path = folder / replay_name(spec.id)
            if not path.exists():
                path = folder / "default.json"
            if not path.exists():
                raise ReasoningError(
                    f"replay: no recording for {spec.id} ({replay_name(spec.id)} or "
                    f"default.json in {folder})"
                )
            return ModelChoice(ReplayReasoner.from_file(path), model or "replay")
        url = (override.url if override else None) or config.url
        compact = ((override.prompt if override else None) or config.prompt) == "compact"
        assert model is not None  # the config's validator saw to it
        return ModelChoice(
            server(backend, url), model, tuple(fallbacks or config.fallbacks), compact
        )

    return choose


def sandbox_of(config: NodeConfig) -> Sandbox:
    if config.sandbox.backend == "unsandboxed":
        return UnsandboxedSandbox()
    return BwrapSandbox(ro_paths=config.sandbox.ro_paths)


def template_of(node: Node) -> str | None:
    """The role's prompt template: the configured file, else the project's
    ``.ucxl/templates/ROLE.md``, else None (the built-in text)."""
    reasoning = node.config.reasoning
    candidates = []
    if reasoning is not None and reasoning.template is not None:
        candidates.append(node.home / reasoning.template)
    if node.config.project is not None:
        candidates.append(
            node.home / node.config.project / ".ucxl" / "templates" / f"{node.config.role}.md"
        )
    for path in candidates:
        try:
            return path.read_text(encoding="utf-8")[:8000]
        except FileNotFoundError:
            continue
        except OSError as error:
            raise ConfigError(f"cannot read the prompt template {path}: {error}") from None
    return None


def settings_of(node: Node) -> ExecutionSettings:
    config = node.config
    r = config.reasoning
    assert r is not None
    limits = config.sandbox.limits
    return ExecutionSettings(
        role=config.role,
        caps=wk.Caps(r.caps.calls, r.caps.tokens, r.caps.wall_s, r.caps.cost),
        prices=wk.Prices(r.prices.prompt, r.prices.completion) if r.prices else None,
        run_limits=RunLimits(limits.wall_s, limits.memory_mb, limits.pids, limits.output_kb),
        context_length=r.context_length,
        ask_timeout_s=r.ask_timeout_s,
        max_jobs=max(1, config.agent.max_tasks),
        template=template_of(node),
    )


def identity_of(node: Node) -> CommitIdentity:
    agent = node.identity.public_key.hex()
    return CommitIdentity(
        node.config.name, f"{agent[:16]}@agents.bzzz", node.identity.ssh_private_pem()
    )


def pulls_of(node: Node) -> list[PullRequests]:
    """Where pull requests are opened: the repositories of each ``github`` source."""
    return [
        github_pulls_of(source, node.home)
        for source in node.config.tasks.sources
        if source.type == "github"
    ]


def execution_of(
    node: Node,
    replica: Replica,
    board: BoardService,
    hmmm: HmmmService,
    pulls: Sequence[PullRequests] | None = None,
) -> ExecutionService | None:
    """The node's execution service, or None when no model is configured."""
    reasoning = node.config.reasoning
    if reasoning is None:
        return None
    folder = node.home / WORK_FOLDER

    def keep_turns(task: str, token: cl.Token, turns: Sequence[Reply]) -> None:
        (folder / TRAJECTORIES).mkdir(parents=True, exist_ok=True)
        dump_turns(turns, turns_path(folder / TRAJECTORIES, task, token))

    return ExecutionService(
        replica,
        board,
        hmmm,
        chooser_of(reasoning, node.config.role, node.home),
        sandbox_of(node.config),
        Workspace(folder),
        pulls_of(node) if pulls is None else pulls,
        identity_of(node),
        settings_of(node),
        keep_turns,
    )
