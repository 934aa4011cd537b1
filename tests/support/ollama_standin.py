"""A local stand-in for Ollama's native API: what `bzzz.execution.ollama` uses.

A real HTTP server on 127.0.0.1 (a `ThreadingHTTPServer` in a background thread, HTTP/1.1
with chunked transfer, as Ollama answers), used as a context manager:

- ``GET /api/tags``: the models given to the constructor;
- ``POST /api/show``: a model's ``model_info`` with ``<arch>.context_length``, or a 404
  ``{"error": "model '...' not found"}``;
- ``POST /api/chat``: the next scripted reply from a queue, streamed as NDJSON lines.

Scripts (queue them with the `reply_*` methods): text in pieces, tool calls, an
``{"error": ...}`` first or after some content, an HTTP error, a line that is not JSON,
a huge stream, a stream that stalls, a stream that ends without ``done``. With the queue
empty, a chat gets a 500. Every request is recorded in `requests` (`chats` for the
bodies of ``/api/chat``), so tests can check what the client sent back.

`StandinServer` and `Script` are shared with `tests.support.openai_standin`.
"""

from __future__ import annotations

import json
import sys
import threading
from collections import deque
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any

Event = bytes | float  # bytes: written as they are; a float: a pause of that many seconds


@dataclass
class Script:
    """One scripted HTTP answer: a status, a content type, and what to write."""

    status: int = 200
    events: Iterable[Event] = ()
    content_type: str = "application/json"
    headers: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Request:
    method: str
    path: str
    headers: dict[str, str]
    body: Any  # the JSON body, or None


def json_script(status: int, payload: Any, headers: Mapping[str, str] | None = None) -> Script:
    return Script(status, [json.dumps(payload).encode()], "application/json", headers or {})


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False

    def handle_error(self, request: Any, client_address: Any) -> None:
        # A client that hangs up on a stream it has read enough of is no error here.
        if not isinstance(sys.exc_info()[1], ConnectionError):
            super().handle_error(request, client_address)


class StandinServer:
    """The machinery of a stand-in: a server thread, a route function, the recorded
    requests, and a stop event that ends every pause at once when the server closes."""

    def __init__(self) -> None:
        self.requests: list[Request] = []
        self.stopping = threading.Event()
        self._lock = threading.Lock()
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None

    def route(self, request: Request) -> Script:  # overridden by each stand-in
        raise NotImplementedError

    @property
    def port(self) -> int:
        assert self._server is not None, "the stand-in is not started"
        return int(self._server.server_address[1])

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        standin = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: Any) -> None:
                pass

            def _handle(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length) if length else b""
                try:
                    body = json.loads(raw) if raw else None
                except ValueError:
                    body = raw.decode("utf-8", "replace")
                request = Request(self.command, self.path, dict(self.headers.items()), body)
                with standin._lock:
                    standin.requests.append(request)
                script = standin.route(request)
                self._write(script)

            def _write(self, script: Script) -> None:
                self.send_response(script.status)
                self.send_header("Content-Type", script.content_type)
                for name, value in script.headers.items():
                    self.send_header(name, value)
                self.send_header("Transfer-Encoding", "chunked")
                self.end_headers()
                try:
                    for event in script.events:
                        if isinstance(event, float | int):
                            if standin.stopping.wait(float(event)):
                                return
                            continue
                        if event:
                            self.wfile.write(b"%x\r\n%s\r\n" % (len(event), event))
                            self.wfile.flush()
                    self.wfile.write(b"0\r\n\r\n")
                    self.wfile.flush()
                except (BrokenPipeError, ConnectionResetError):
                    self.close_connection = True

            do_GET = _handle
            do_POST = _handle

        self._server = _Server(("127.0.0.1", 0), Handler)
        self._thread = threading.Thread(
            target=self._server.serve_forever, args=(0.02,), daemon=True
        )
        self._thread.start()

    def close(self) -> None:
        self.stopping.set()
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
        if self._thread is not None:
            self._thread.join(5)

    def paths(self) -> list[str]:
        with self._lock:
            return [r.path for r in self.requests]


def ndjson(*objects: Any) -> list[Event]:
    return [json.dumps(o).encode() + b"\n" for o in objects]


class OllamaStandin(StandinServer):
    """Ollama's native API with scripted chat replies. `models`: name -> context length
    (None: `model_info` without one)."""

    def __init__(self, models: Mapping[str, int | None] | None = None) -> None:
        super().__init__()
        self.models = dict(models if models is not None else {"qwen2.5-coder:7b": 32768})
        self.script: deque[Script] = deque()
        self.show_missing: set[str] = set()  # listed by /api/tags, a 404 from /api/show

    def __enter__(self) -> OllamaStandin:
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
        return [r.body for r in self.requests if r.path == "/api/chat"]

    def route(self, request: Request) -> Script:
        if request.method == "GET" and request.path == "/api/tags":
            return json_script(200, {"models": [self._tag(n) for n in self.models]})
        if request.method == "POST" and request.path == "/api/show":
            name = (request.body or {}).get("model") if isinstance(request.body, dict) else None
            if name not in self.models or name in self.show_missing:
                return json_script(404, {"error": f"model '{name}' not found"})
            return json_script(200, self._show(str(name)))
        if request.method == "POST" and request.path == "/api/chat":
            if not self.script:
                return json_script(500, {"error": "the stand-in has no scripted reply"})
            return self.script.popleft()
        return Script(404, [b"404 page not found"], "text/plain")

    def _tag(self, name: str) -> dict[str, Any]:
        return {
            "name": name,
            "model": name,
            "modified_at": "2025-01-01T00:00:00Z",
            "size": 4_683_087_332,
            "digest": "0" * 64,
            "details": {
                "format": "gguf",
                "family": "qwen2",
                "parameter_size": "7.6B",
                "quantization_level": "Q4_K_M",
            },
        }

    def _show(self, name: str) -> dict[str, Any]:
        info: dict[str, Any] = {"general.architecture": "qwen2", "qwen2.embedding_length": 3584}
        if self.models[name] is not None:
            info["qwen2.context_length"] = self.models[name]
        return {
            "modelfile": "FROM ...",
            "parameters": "",
            "template": "{{ .Prompt }}",
            "details": self._tag(name)["details"],
            "model_info": info,
            "capabilities": ["completion", "tools"],
        }

    # the chunks of one chat answer

    def _chunk(self, message: dict[str, Any], done: bool = False, **extra: Any) -> dict[str, Any]:
        model = next(iter(self.models), "model")
        return {
            "model": model,
            "created_at": "2025-01-01T00:00:00Z",
            "message": {"role": "assistant", **message},
            "done": done,
            **extra,
        }

    def _done(self, prompt_tokens: int, eval_tokens: int) -> dict[str, Any]:
        return self._chunk(
            {"content": ""},
            True,
            done_reason="stop",
            total_duration=1_000_000,
            prompt_eval_count=prompt_tokens,
            eval_count=eval_tokens,
        )

    def _stream(self, events: Iterable[Event], status: int = 200) -> None:
        self.script.append(Script(status, events, "application/x-ndjson"))

    # scripting

    def reply_text(
        self, text: str, *, pieces: int = 3, prompt_tokens: int = 11, eval_tokens: int = 7
    ) -> None:
        size = max(1, -(-len(text) // pieces))
        parts = [text[i : i + size] for i in range(0, len(text), size)] or [""]
        chunks = [self._chunk({"content": p}) for p in parts]
        self._stream(ndjson(*chunks, self._done(prompt_tokens, eval_tokens)))

    def reply_tools(
        self,
        calls: Iterable[tuple[str, Any]],
        *,
        content: str = "",
        prompt_tokens: int = 20,
        eval_tokens: int = 9,
    ) -> None:
        """Tool calls as Ollama streams them: in one chunk, before the done line.
        An argument value that is a str is sent as it is (a model's bad arguments)."""
        tool_calls = [{"function": {"name": n, "arguments": a}} for n, a in calls]
        chunks = [self._chunk({"content": content, "tool_calls": tool_calls})]
        self._stream(ndjson(*chunks, self._done(prompt_tokens, eval_tokens)))

    def reply_error(self, message: str, *, status: int = 200) -> None:
        """An ``{"error": ...}`` as the first line."""
        self._stream(ndjson({"error": message}), status)

    def reply_mid_error(self, content: str, message: str) -> None:
        """Some content, then an ``{"error": ...}`` line, status 200."""
        self._stream(ndjson(self._chunk({"content": content}), {"error": message}))

    def reply_http_error(self, status: int, message: str) -> None:
        self.script.append(json_script(status, {"error": message}))

    def reply_garbage(self) -> None:
        self._stream([*ndjson(self._chunk({"content": "ok"})), b"<html>proxy error</html>\n"])

    def reply_no_done(self) -> None:
        self._stream(ndjson(self._chunk({"content": "cut short"})))

    def reply_huge(self, total_bytes: int) -> None:
        """Content lines past `total_bytes`, made as they are sent."""

        def lines() -> Iterator[Event]:
            line = json.dumps(self._chunk({"content": "x" * 65_000})).encode() + b"\n"
            for _ in range(total_bytes // len(line) + 2):
                yield line
            yield from ndjson(self._done(1, 1))

        self._stream(lines())

    def reply_hang(self, seconds: float, *, content: str = "thinking") -> None:
        """One content line, then silence for `seconds` (ended early by close)."""
        self._stream([*ndjson(self._chunk({"content": content})), float(seconds)])

    def reply_raw(self, events: Iterable[Event], *, status: int = 200) -> None:
        self._stream(list(events), status)
