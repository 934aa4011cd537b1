"""What the execution loop (issue 20) exchanges with a language model and a sandbox:
plain data, shared by the ports (`services.ports.Reasoner`, `services.ports.Sandbox`),
their adapters (`bzzz.execution`) and the rules of the loop."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


@dataclass(frozen=True, slots=True)
class ToolSpec:
    """A tool offered to the model: its name, what it does, its JSON-schema arguments."""

    name: str
    description: str
    parameters: Mapping[str, Any]


@dataclass(frozen=True, slots=True)
class ToolCall:
    """A tool call as the model made it. `arguments` is the parsed JSON object, or the
    raw text when the model's arguments were not a JSON object (the loop answers that
    with an error the model can read)."""

    name: str
    arguments: Mapping[str, Any] | str
    id: str | None = None  # OpenAI's tool_call_id; Ollama has none


@dataclass(frozen=True, slots=True)
class ChatMessage:
    role: str  # system | user | assistant | tool
    content: str
    tool_calls: tuple[ToolCall, ...] = ()
    tool_call_id: str | None = None  # a tool result answering this call (OpenAI)
    tool_name: str | None = None  # a tool result from this tool (Ollama)


@dataclass(frozen=True, slots=True)
class Reply:
    """One model turn: text and/or tool calls, and what it cost."""

    content: str
    tool_calls: tuple[ToolCall, ...]
    model: str
    prompt_tokens: int = 0
    completion_tokens: int = 0
    seconds: float = 0.0


@dataclass(frozen=True, slots=True)
class ModelInfo:
    name: str
    context_length: int | None = None  # tokens, when the server says
    details: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class RunLimits:
    wall_s: float = 300.0
    memory_mb: int = 2048
    pids: int = 256
    output_kb: int = 256  # stdout and stderr each are cut here


@dataclass(frozen=True, slots=True)
class RunResult:
    """What one command in a sandbox came to."""

    exit_code: int | None  # None: it was killed (see `killed`)
    stdout: bytes
    stderr: bytes
    seconds: float
    timed_out: bool = False
    killed: str | None = None  # why it was stopped: wall time, memory, pids, output
    truncated: bool = False  # output past the limit was dropped


@dataclass(frozen=True, slots=True)
class Remote:
    """Where a task's repository is fetched from and pushed to. `env` is what git needs
    to be let in (e.g. ``GIT_CONFIG_*`` variables carrying an authorization header): it
    goes to git's process environment only, never to an argument, an entry, a log or a
    sandbox, and `repr` leaves it out."""

    url: str
    env: Mapping[str, str] = field(default_factory=dict, repr=False)


@dataclass(frozen=True, slots=True)
class Worktree:
    """A task's checkout: its folder, its branch, the mirror it came from and the
    commit it started at."""

    path: Path
    branch: str
    mirror: Path
    base: str


@dataclass(frozen=True, slots=True)
class FileAnswer:
    """What a file tool came to: text the model reads, ok or not."""

    ok: bool
    text: str
