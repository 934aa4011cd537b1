"""A reasoning backend speaking the OpenAI-compatible chat completions API (issue 20):
vLLM, llama.cpp's server, LM Studio, Ollama's ``/v1``.

- `models()`: ``GET /v1/models``; the context length is not part of that API, so it is
  None (unless the server adds vLLM's ``max_model_len``).
- `chat()`: ``POST /v1/chat/completions`` with ``tools`` as
  ``{"type": "function", "function": {...}}``, ``stream: true`` and
  ``stream_options: {"include_usage": true}``. The answer is server-sent events,
  ``data: {...}`` lines up to ``data: [DONE]``; content deltas are joined, tool-call
  deltas are put together by their ``index`` (``id`` and ``function.name`` once,
  ``function.arguments`` in fragments), and the usage chunk gives the tokens. An error
  object in the stream (``{"error": {...}}``, or an ``event: error``) raises
  `ReasoningError`. Arguments that are not a JSON object stay raw text.
- Tool results go back as ``{"role": "tool", "tool_call_id": ..., "content": ...}``.

The API key goes in ``Authorization: Bearer`` and nowhere else: not in a `repr`, and
blanked out of every error message even if the server echoes it.
"""

from __future__ import annotations

import json
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from bzzz.domain.execution import ChatMessage, ModelInfo, Reply, ToolCall, ToolSpec
from bzzz.execution.ollama import (
    MAX_RESPONSE_BYTES,
    HttpEndpoint,
    error_text,
    parse_arguments,
)

_CHAT = "/v1/chat/completions"
_MODELS = "/v1/models"


def _function_tool(tool: ToolSpec) -> dict[str, Any]:
    return {
        "type": "function",
        "function": {
            "name": tool.name,
            "description": tool.description,
            "parameters": dict(tool.parameters),
        },
    }


def _openai_messages(messages: Sequence[ChatMessage]) -> list[dict[str, Any]]:
    """The messages in OpenAI's shape. A tool call without an id (one recorded from
    Ollama, which has none) gets ``call_N``, and a tool result without a
    ``tool_call_id`` answers the oldest such call still unanswered."""
    out: list[dict[str, Any]] = []
    unanswered: list[str] = []
    made = 0
    for message in messages:
        item: dict[str, Any] = {"role": message.role, "content": message.content}
        if message.tool_calls:
            calls = []
            for call in message.tool_calls:
                call_id = call.id
                if call_id is None:
                    made += 1
                    call_id = f"call_{made}"
                    unanswered.append(call_id)
                arguments = (
                    call.arguments
                    if isinstance(call.arguments, str)
                    else json.dumps(call.arguments)
                )
                calls.append(
                    {
                        "id": call_id,
                        "type": "function",
                        "function": {"name": call.name, "arguments": arguments},
                    }
                )
            item["tool_calls"] = calls
            if not message.content:
                item["content"] = None
        if message.role == "tool":
            call_id = message.tool_call_id
            if call_id is None and unanswered:
                call_id = unanswered.pop(0)
            elif call_id in unanswered:
                unanswered.remove(call_id)
            if call_id is not None:
                item["tool_call_id"] = call_id
        out.append(item)
    return out


@dataclass
class _PartialCall:
    id: str | None = None
    name: list[str] = field(default_factory=list)
    arguments: list[str] = field(default_factory=list)


class _OpenAITurn:
    """The server-sent events of one chat completion, put together."""

    def __init__(self, endpoint: HttpEndpoint, model: str) -> None:
        self.endpoint = endpoint
        self.model = model
        self.content: list[str] = []
        self.calls: dict[int, _PartialCall] = {}
        self.prompt_tokens = 0
        self.completion_tokens = 0
        self.finished = False
        self._event = "message"

    def feed(self, raw: bytes) -> bool:
        line = raw.decode("utf-8", "replace").rstrip("\r\n")
        if not line:
            self._event = "message"  # a blank line ends an event
            return False
        if line.startswith(":"):
            return False  # a comment (keep-alive)
        name, _, value = line.partition(":")
        value = value.removeprefix(" ")
        if name == "event":
            self._event = value.strip()
            return False
        if name in ("id", "retry"):
            return False
        if name != "data":
            raise self.endpoint.fail(_CHAT, f"not a server-sent event: {line[:80]!r}")
        if value.strip() == "[DONE]":
            return True
        try:
            chunk = json.loads(value)
        except ValueError:
            raise self.endpoint.fail(_CHAT, f"an event is not JSON: {value[:80]!r}") from None
        if not isinstance(chunk, dict):
            raise self.endpoint.fail(_CHAT, f"an event is not a JSON object: {value[:80]!r}")
        error = error_text(chunk)
        if error is None and self._event == "error":
            error = json.dumps(chunk)
        if error is not None:
            raise self.endpoint.fail(_CHAT, f"error: {error}")
        self._take(chunk)
        return False

    def _take(self, chunk: dict[str, Any]) -> None:
        self.model = str(chunk.get("model") or self.model)
        usage = chunk.get("usage")
        if isinstance(usage, dict):
            self.prompt_tokens = int(usage.get("prompt_tokens") or 0)
            self.completion_tokens = int(usage.get("completion_tokens") or 0)
        for choice in chunk.get("choices") or ():
            if not isinstance(choice, dict) or choice.get("index", 0) != 0:
                continue
            if choice.get("finish_reason"):
                self.finished = True
            delta = choice.get("delta") or choice.get("message") or {}
            if not isinstance(delta, dict):
                continue
            if isinstance(delta.get("content"), str):
                self.content.append(delta["content"])
            for position, fragment in enumerate(delta.get("tool_calls") or ()):
                if isinstance(fragment, dict):
                    self._take_call(fragment, position)

    def _take_call(self, fragment: dict[str, Any], position: int) -> None:
        index = fragment.get("index")
        if not isinstance(index, int):
            index = position
        partial = self.calls.setdefault(index, _PartialCall())
        if fragment.get("id"):
            partial.id = str(fragment["id"])
        function = fragment.get("function")
        if isinstance(function, dict):
            if isinstance(function.get("name"), str):
                partial.name.append(function["name"])
            arguments = function.get("arguments")
            if isinstance(arguments, str):
                partial.arguments.append(arguments)
            elif arguments is not None:
                partial.arguments.append(json.dumps(arguments))

    def tool_calls(self) -> tuple[ToolCall, ...]:
        return tuple(
            ToolCall(
                name="".join(partial.name),
                arguments=parse_arguments("".join(partial.arguments)),
                id=partial.id,
            )
            for _, partial in sorted(self.calls.items())
        )


class OpenAIReasoner:
    """`services.ports.Reasoner` over an OpenAI-compatible server at `url` (with or
    without the trailing ``/v1``).

    `api_key`: sent as ``Authorization: Bearer``, never shown; `timeout_s`: the longest
    wait for any byte of an answer; `turn_timeout_s`: the longest a whole turn may take;
    `max_response_bytes`: answers past this are cut with a `ReasoningError`;
    `extra_body`: more fields for every chat request (``temperature``, ...)."""

    def __init__(
        self,
        url: str,
        *,
        api_key: str | None = None,
        timeout_s: float = 300.0,
        turn_timeout_s: float | None = None,
        max_response_bytes: int = MAX_RESPONSE_BYTES,
        extra_body: Mapping[str, Any] | None = None,
    ) -> None:
        base = url.strip().rstrip("/")
        base = base.removesuffix("/v1")
        headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self._http = HttpEndpoint(
            "openai",
            base,
            timeout_s=timeout_s,
            turn_timeout_s=turn_timeout_s,
            max_bytes=max_response_bytes,
            headers=headers,
            secrets=[api_key] if api_key else [],
        )
        self._extra = dict(extra_body or {})

    @property
    def name(self) -> str:
        return "openai"

    @property
    def url(self) -> str:
        return self._http.public_url

    def __repr__(self) -> str:
        return f"OpenAIReasoner({self.url!r})"

    async def models(self) -> list[ModelInfo]:
        listing = await self._http.get_json("GET", _MODELS)
        entries = listing.get("data") if isinstance(listing, dict) else None
        if not isinstance(entries, list):
            raise self._http.fail(_MODELS, "the answer has no list of models")
        found: list[ModelInfo] = []
        for entry in entries:
            if not isinstance(entry, dict) or not entry.get("id"):
                continue
            length = entry.get("max_model_len")
            details = {k: v for k, v in entry.items() if k in ("owned_by", "created")}
            found.append(
                ModelInfo(
                    str(entry["id"]),
                    length if isinstance(length, int) and not isinstance(length, bool) else None,
                    details,
                )
            )
        return found

    async def chat(
        self,
        model: str,
        messages: Sequence[ChatMessage],
        tools: Sequence[ToolSpec],
        max_tokens: int | None = None,
    ) -> Reply:
        body: dict[str, Any] = {
            **self._extra,
            "model": model,
            "messages": _openai_messages(messages),
            "stream": True,
            "stream_options": {"include_usage": True},
        }
        if tools:
            body["tools"] = [_function_tool(t) for t in tools]
        if max_tokens is not None:
            body["max_tokens"] = max_tokens
        turn = _OpenAITurn(self._http, model)
        started = time.monotonic()
        done = await self._http.stream("POST", _CHAT, body, turn.feed)
        if not done and not turn.finished:
            raise self._http.fail(_CHAT, "the answer ended before data: [DONE]")
        return Reply(
            content="".join(turn.content),
            tool_calls=turn.tool_calls(),
            model=turn.model,
            prompt_tokens=turn.prompt_tokens,
            completion_tokens=turn.completion_tokens,
            seconds=time.monotonic() - started,
        )
