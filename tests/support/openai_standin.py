"""A local stand-in for an OpenAI-compatible chat completions server (vLLM, llama.cpp's
server, LM Studio): what `bzzz.execution.openai` uses.

A real HTTP server on 127.0.0.1 (see `tests.support.ollama_standin.StandinServer`):

- ``GET /v1/models``: the models given to the constructor;
- ``POST /v1/chat/completions``: the next scripted reply, streamed as server-sent events
  (``data: {chunk}`` lines, a usage chunk when ``stream_options.include_usage``, then
  ``data: [DONE]``), tool calls as deltas: the first with ``index``, ``id``, ``type`` and
  ``function.name``, the arguments in fragments over several chunks.

With `api_key` set, a request without ``Authorization: Bearer <key>`` gets a 401 whose
message echoes the key it got (so tests can check the client blanks it out). Scripts:
text, tool calls (parallel too), an error event first or mid-stream, HTTP errors, lines
that are not events, a huge stream, a stall, a stream without ``[DONE]``.
"""

from __future__ import annotations

import json
from collections import deque
from collections.abc import Iterable, Iterator, Mapping
from types import TracebackType
from typing import Any

from tests.support.ollama_standin import Event, Request, Script, StandinServer, json_script


def sse(*objects: Any) -> list[Event]:
    return [b"data: " + json.dumps(o).encode() + b"\n\n" for o in objects]


DONE: Event = b"data: [DONE]\n\n"


class OpenAIStandin(StandinServer):
    def __init__(self, models: Iterable[str] = ("local-model",), api_key: str | None = None):
        super().__init__()
        self.models = list(models)
        self.api_key = api_key
        self.script: deque[Script] = deque()
        self._usage = True

    def __enter__(self) -> OpenAIStandin:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    @property
    def chats(self) -> list[dict[str, Any]]:
        return [r.body for r in self.requests if r.path == "/v1/chat/completions"]

    def route(self, request: Request) -> Script:
        if self.api_key is not None:
            given = request.headers.get("Authorization", "")
            if given != f"Bearer {self.api_key}":
                shown = given.removeprefix("Bearer ")
                return json_script(
                    401,
                    {
                        "error": {
                            "message": f"Incorrect API key provided: {shown}",
                            "type": "invalid_request_error",
                            "code": "invalid_api_key",
                        }
                    },
                )
        if request.method == "GET" and request.path == "/v1/models":
            data = [
                {"id": m, "object": "model", "created": 1700000000, "owned_by": "standin"}
                for m in self.models
            ]
            return json_script(200, {"object": "list", "data": data})
        if request.method == "POST" and request.path == "/v1/chat/completions":
            if not self.script:
                return json_script(500, {"error": {"message": "no scripted reply"}})
            body = request.body if isinstance(request.body, dict) else {}
            options = body.get("stream_options") or {}
            self._usage = bool(options.get("include_usage"))
            script = self.script.popleft()
            return script
        return json_script(404, {"error": {"message": f"no route {request.path}"}})

    # chunks

    def _chunk(self, delta: dict[str, Any], finish: str | None = None) -> dict[str, Any]:
        return {
            "id": "chatcmpl-1",
            "object": "chat.completion.chunk",
            "created": 1700000000,
            "model": self.models[0],
            "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
        }

    def _end(self, finish: str, prompt: int, completion: int) -> Iterator[Event]:
        yield from sse(self._chunk({}, finish))
        if self._usage:  # decided when the request came in, before the stream is written
            yield from sse(
                {
                    "id": "chatcmpl-1",
                    "object": "chat.completion.chunk",
                    "model": self.models[0],
                    "choices": [],
                    "usage": {
                        "prompt_tokens": prompt,
                        "completion_tokens": completion,
                        "total_tokens": prompt + completion,
                    },
                }
            )
        yield DONE

    def _stream(self, events: Iterable[Event], status: int = 200) -> None:
        self.script.append(Script(status, events, "text/event-stream"))

    # scripting

    def reply_text(
        self, text: str, *, pieces: int = 3, prompt_tokens: int = 13, completion_tokens: int = 5
    ) -> None:
        size = max(1, -(-len(text) // pieces))
        parts = [text[i : i + size] for i in range(0, len(text), size)]

        def events() -> Iterator[Event]:
            yield from sse(self._chunk({"role": "assistant", "content": ""}))
            for part in parts:
                yield from sse(self._chunk({"content": part}))
            yield from self._end("stop", prompt_tokens, completion_tokens)

        self._stream(events())

    def reply_tools(
        self,
        calls: Iterable[tuple[str, str]],
        *,
        fragment: int = 7,
        prompt_tokens: int = 30,
        completion_tokens: int = 12,
    ) -> None:
        """Tool calls with their arguments as JSON text (sent as given, so bad JSON too),
        each streamed in fragments of `fragment` characters; parallel calls interleave."""
        listed = list(calls)

        def events() -> Iterator[Event]:
            yield from sse(self._chunk({"role": "assistant", "content": None}))
            for index, (name, _) in enumerate(listed):
                head = {
                    "index": index,
                    "id": f"call_{index}abc",
                    "type": "function",
                    "function": {"name": name, "arguments": ""},
                }
                yield from sse(self._chunk({"tool_calls": [head]}))
            longest = max((len(a) for _, a in listed), default=0)
            for start in range(0, longest, fragment):
                for index, (_, arguments) in enumerate(listed):
                    piece = arguments[start : start + fragment]
                    if piece:
                        frag = {"index": index, "function": {"arguments": piece}}
                        yield from sse(self._chunk({"tool_calls": [frag]}))
            yield from self._end("tool_calls", prompt_tokens, completion_tokens)

        self._stream(events())

    def reply_error(self, message: str) -> None:
        """An error object as the first event (status 200, as vLLM does mid-stream)."""
        self._stream(sse({"error": {"message": message, "type": "BadRequestError", "code": 400}}))

    def reply_mid_error(self, content: str, message: str) -> None:
        self._stream(
            [
                *sse(self._chunk({"role": "assistant", "content": content})),
                b"event: error\n",
                *sse({"error": {"message": message, "code": 500}}),
            ]
        )

    def reply_http_error(
        self, status: int, message: str, headers: Mapping[str, str] | None = None
    ) -> None:
        self.script.append(
            json_script(status, {"error": {"message": message, "code": status}}, headers)
        )

    def reply_garbage(self) -> None:
        self._stream([*sse(self._chunk({"content": "ok"})), b"data: {not json\n\n"])

    def reply_no_done(self) -> None:
        self._stream(sse(self._chunk({"content": "cut short"})))

    def reply_huge(self, total_bytes: int) -> None:
        def events() -> Iterator[Event]:
            event = (
                b"data: " + json.dumps(self._chunk({"content": "y" * 65_000})).encode() + b"\n\n"
            )
            for _ in range(total_bytes // len(event) + 2):
                yield event
            yield DONE

        self._stream(events())

    def reply_hang(self, seconds: float, *, content: str = "thinking") -> None:
        self._stream([*sse(self._chunk({"content": content})), float(seconds)])

    def reply_raw(self, events: Iterable[Event], *, status: int = 200) -> None:
        self._stream(list(events), status)
