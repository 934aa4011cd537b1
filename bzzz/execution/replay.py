"""A reasoning backend that replays a recorded trajectory (issue 20), as SWE-agent's
ReplayModel does: each `chat` returns the next recorded turn, whatever it is asked,
for deterministic tests, benchmarks and demo tasks.

The recording format (JSON, UTF-8), one object per model turn::

    {
      "format": "bzzz-replay/1",
      "turns": [
        {"content": "Let me look.",
         "tool_calls": [{"name": "read_file", "arguments": {"path": "README.md"}}]},
        {"content": "",
         "tool_calls": [{"name": "finish", "arguments": {"summary": "done"},
                         "id": "call_1"}],
         "model": "qwen2.5-coder:7b", "prompt_tokens": 812, "completion_tokens": 20}
      ]
    }

A turn has ``content`` (default ""), ``tool_calls`` (default none; each with ``name``,
``arguments``: an object, or a string kept as the model's raw text, and an optional
``id``), and optionally ``model`` (default "replay"), ``prompt_tokens``,
``completion_tokens`` and ``seconds``. A bare JSON list of turns is read too.
`dump_turns` writes this format from `Reply`s.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from bzzz.domain.execution import ChatMessage, ModelInfo, Reply, ToolCall, ToolSpec
from bzzz.errors import ReasoningError

FORMAT = "bzzz-replay/1"
MODEL = "replay"


def turn_from_json(value: Any, where: str = "turn") -> Reply:
    """One turn of the recording format as a `Reply`."""
    if not isinstance(value, dict):
        raise ReasoningError(f"{where}: a turn must be an object")
    content = value.get("content", "")
    if content is None:
        content = ""
    if not isinstance(content, str):
        raise ReasoningError(f"{where}: content must be a string")
    raw_calls = value.get("tool_calls") or []
    if not isinstance(raw_calls, list):
        raise ReasoningError(f"{where}: tool_calls must be a list")
    calls = []
    for n, call in enumerate(raw_calls):
        if not isinstance(call, dict) or not isinstance(call.get("name"), str):
            raise ReasoningError(f"{where}: tool call {n} needs a name")
        arguments = call.get("arguments", {})
        if not isinstance(arguments, dict | str):
            raise ReasoningError(f"{where}: tool call {n}: arguments must be an object or text")
        call_id = call.get("id")
        calls.append(
            ToolCall(call["name"], arguments, str(call_id) if call_id is not None else None)
        )
    try:
        return Reply(
            content=content,
            tool_calls=tuple(calls),
            model=str(value.get("model") or MODEL),
            prompt_tokens=int(value.get("prompt_tokens") or 0),
            completion_tokens=int(value.get("completion_tokens") or 0),
            seconds=float(value.get("seconds") or 0.0),
        )
    except (TypeError, ValueError):
        raise ReasoningError(f"{where}: tokens and seconds must be numbers") from None


def turn_to_json(reply: Reply) -> dict[str, Any]:
    """A `Reply` in the recording format."""
    out: dict[str, Any] = {"content": reply.content}
    if reply.tool_calls:
        out["tool_calls"] = []
        for call in reply.tool_calls:
            item: dict[str, Any] = {
                "name": call.name,
                "arguments": call.arguments
                if isinstance(call.arguments, str)
                else dict(call.arguments),
            }
            if call.id is not None:
                item["id"] = call.id
            out["tool_calls"].append(item)
    out["model"] = reply.model
    if reply.prompt_tokens or reply.completion_tokens:
        out["prompt_tokens"] = reply.prompt_tokens
        out["completion_tokens"] = reply.completion_tokens
    if reply.seconds:
        out["seconds"] = reply.seconds
    return out


def load_turns(path: Path) -> list[Reply]:
    """The turns of a recording file."""
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ReasoningError(f"replay: cannot read {path}: {exc.strerror or exc}") from None
    except ValueError as exc:
        raise ReasoningError(f"replay: {path} is not JSON: {exc}") from None
    if isinstance(document, dict):
        if document.get("format", FORMAT) != FORMAT:
            raise ReasoningError(f"replay: {path}: unknown format {document.get('format')!r}")
        document = document.get("turns")
    if not isinstance(document, list):
        raise ReasoningError(f"replay: {path}: expected a list of turns")
    return [turn_from_json(turn, f"replay: {path}: turn {n}") for n, turn in enumerate(document)]


def dump_turns(turns: Sequence[Reply], path: Path) -> None:
    """Write `turns` as a recording file."""
    document = {"format": FORMAT, "turns": [turn_to_json(t) for t in turns]}
    path.write_text(json.dumps(document, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")


class ReplayReasoner:
    """`services.ports.Reasoner` answering each `chat` with the next recorded turn.

    Past the last turn, `chat` raises ``ReasoningError("the recording has no more
    turns")``. What each call was asked is kept in `requests` (model, messages,
    tools), for tests and for checking a replay against its recording."""

    def __init__(self, turns: Sequence[Reply | Mapping[str, Any]]) -> None:
        self._turns = [
            t if isinstance(t, Reply) else turn_from_json(dict(t), f"replay: turn {n}")
            for n, t in enumerate(turns)
        ]
        self._next = 0
        self.requests: list[tuple[str, tuple[ChatMessage, ...], tuple[ToolSpec, ...]]] = []

    @classmethod
    def from_file(cls, path: Path | str) -> ReplayReasoner:
        return cls(load_turns(Path(path)))

    @property
    def name(self) -> str:
        return "replay"

    @property
    def remaining(self) -> int:
        return len(self._turns) - self._next

    def __repr__(self) -> str:
        return f"ReplayReasoner({self._next}/{len(self._turns)} turns)"

    async def models(self) -> list[ModelInfo]:
        return [ModelInfo(MODEL)]

    async def chat(
        self,
        model: str,
        messages: Sequence[ChatMessage],
        tools: Sequence[ToolSpec],
        max_tokens: int | None = None,
    ) -> Reply:
        self.requests.append((model, tuple(messages), tuple(tools)))
        if self._next >= len(self._turns):
            raise ReasoningError("the recording has no more turns")
        turn = self._turns[self._next]
        self._next += 1
        return turn
