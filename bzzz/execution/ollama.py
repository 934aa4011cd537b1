"""A reasoning backend speaking Ollama's native API (issue 20).

- `models()`: ``GET /api/tags`` for the names, then ``POST /api/show`` for each, whose
  ``model_info`` has the context length under ``<architecture>.context_length``.
- `chat()`: ``POST /api/chat`` with ``messages``, ``tools`` (Ollama's function-tool
  format) and ``stream: true``. The answer is NDJSON: ``message.content`` fragments are
  joined, ``message.tool_calls`` collected (their ``arguments`` are a JSON object), and
  the line with ``done: true`` ends the turn with ``prompt_eval_count`` and
  ``eval_count``. An ``{"error": ...}`` line, first or mid-stream, raises
  `ReasoningError`.
- Tool results go back as ``{"role": "tool", "tool_name": ..., "content": ...}``.

HTTP is the standard library's `http.client`, run in a worker thread and read line by
line: every read waits at most `timeout_s`, a turn takes at most `turn_timeout_s` (when
set), and an answer larger than `max_response_bytes` is cut. Every failure (HTTP
errors, a refused connection, a timeout, a line that is not JSON, an oversized answer)
is a `ReasoningError` of one line naming the URL, never a credential.

`HttpEndpoint` is shared with `bzzz.execution.openai`.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import http.client
import json
import socket
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any
from urllib.parse import unquote, urlsplit

from bzzz.domain.execution import ChatMessage, ModelInfo, Reply, ToolCall, ToolSpec
from bzzz.errors import ReasoningError

MAX_RESPONSE_BYTES = 8 * 1024 * 1024
DEFAULT_URL = "http://127.0.0.1:11434"
_ERROR_BODY_BYTES = 64 * 1024
_ERROR_TEXT_CHARS = 300
_RETRY_AFTER_S = 1.0  # a 5xx or 429 without Retry-After: worth another try after this


def one_line(text: str, limit: int = _ERROR_TEXT_CHARS) -> str:
    """`text` flattened to one line of at most `limit` characters."""
    flat = " ".join(text.split())
    return flat if len(flat) <= limit else flat[: limit - 1] + "…"


def error_text(payload: Any) -> str | None:
    """The message of an error answer in the shapes model servers use: Ollama's
    ``{"error": "..."}``, OpenAI's ``{"error": {"message": ...}}``, vLLM's older
    ``{"object": "error", "message": ...}``; None when `payload` is no error."""
    if not isinstance(payload, dict):
        return None
    if "error" in payload and payload["error"] is not None:
        error = payload["error"]
        if isinstance(error, dict):
            return str(error.get("message") or json.dumps(error))
        return str(error)
    if payload.get("object") == "error":
        return str(payload.get("message") or "an error without a message")
    return None


def parse_arguments(raw: Any) -> Mapping[str, Any] | str:
    """A tool call's arguments as the loop wants them: a JSON object, or the raw text
    when they are not one (the loop answers that with an error the model can read)."""
    if isinstance(raw, dict):
        return raw
    if raw is None:
        return {}
    if not isinstance(raw, str):
        return json.dumps(raw)
    if not raw.strip():
        return {}
    try:
        parsed = json.loads(raw)
    except ValueError:
        return raw
    return parsed if isinstance(parsed, dict) else raw


def _retry_after(response: http.client.HTTPResponse) -> float | None:
    header = response.getheader("Retry-After")
    if header is not None:
        try:
            return max(0.0, float(header))
        except ValueError:
            pass
    if response.status >= 500 or response.status == 429:
        return _RETRY_AFTER_S
    return None


class HttpEndpoint:
    """The base URL of a model server, spoken to with `http.client` in a worker thread.

    `headers` go with every request; `secrets` (an API key, a password in the URL) are
    blanked out of every error message, whatever the server echoes back."""

    def __init__(
        self,
        backend: str,
        url: str,
        *,
        timeout_s: float,
        turn_timeout_s: float | None = None,
        max_bytes: int = MAX_RESPONSE_BYTES,
        headers: Mapping[str, str] | None = None,
        secrets: Sequence[str] = (),
    ) -> None:
        parts = urlsplit(url.strip())
        netloc = parts.netloc.rpartition("@")[2]
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ReasoningError(
                f"{backend}: not an http(s) URL: {parts.scheme}://{netloc}{parts.path}"
            )
        if timeout_s <= 0:
            raise ReasoningError(f"{backend}: timeout_s must be positive, not {timeout_s}")
        self.backend = backend
        self.base_path = parts.path.rstrip("/")
        self.public_url = f"{parts.scheme}://{netloc}{self.base_path}"
        self.timeout_s = timeout_s
        self.turn_timeout_s = turn_timeout_s
        self.max_bytes = max_bytes
        self._https = parts.scheme == "https"
        self._host = parts.hostname
        self._port = parts.port
        self._headers = dict(headers or {})
        self._secrets = [s for s in secrets if s]
        if parts.username is not None:
            user, password = unquote(parts.username), unquote(parts.password or "")
            token = base64.b64encode(f"{user}:{password}".encode()).decode()
            self._headers.setdefault("Authorization", f"Basic {token}")
            self._secrets += [s for s in (password, token) if s]

    def __repr__(self) -> str:
        return f"HttpEndpoint({self.backend!r}, {self.public_url!r})"

    # errors

    def where(self, path: str) -> str:
        return f"{self.backend} at {self.public_url}{path}"

    def fail(self, path: str, text: str, retry_after_s: float | None = None) -> ReasoningError:
        message = f"{self.where(path)}: {one_line(text)}"
        for secret in self._secrets:
            message = message.replace(secret, "***")
        return ReasoningError(message, retry_after_s=retry_after_s)

    # exchanges

    async def get_json(self, method: str, path: str, body: Any = None) -> Any:
        """One request whose answer is one JSON document."""

        def work(exchange: _Exchange) -> Any:
            response = exchange.open(method, path, body)
            data = b"".join(exchange.lines(response))
            try:
                return json.loads(data)
            except ValueError:
                raise self.fail(path, "the answer is not JSON") from None

        return await self._in_thread(work)

    async def stream(
        self, method: str, path: str, body: Any, on_line: Callable[[bytes], bool]
    ) -> bool:
        """One request whose answer is read line by line: `on_line` gets each line and
        says True when the answer is complete. True when it did, False at the end of
        the answer before it did."""

        def work(exchange: _Exchange) -> bool:
            response = exchange.open(method, path, body)
            return any(on_line(line) for line in exchange.lines(response))

        return bool(await self._in_thread(work))

    async def _in_thread(self, work: Callable[[_Exchange], Any]) -> Any:
        exchange = _Exchange(self)
        try:
            return await asyncio.to_thread(work, exchange)
        except asyncio.CancelledError:
            exchange.abort()  # wakes the worker thread blocked in a read
            raise
        finally:
            exchange.close()


class _Exchange:
    """One request and its answer, in a worker thread."""

    def __init__(self, endpoint: HttpEndpoint) -> None:
        self.endpoint = endpoint
        self.connection: http.client.HTTPConnection | None = None
        self.path = ""
        self.deadline = (
            time.monotonic() + endpoint.turn_timeout_s
            if endpoint.turn_timeout_s is not None
            else None
        )

    def open(self, method: str, path: str, body: Any) -> http.client.HTTPResponse:
        ep = self.endpoint
        self.path = path
        cls = http.client.HTTPSConnection if ep._https else http.client.HTTPConnection
        self.connection = cls(ep._host, ep._port, timeout=ep.timeout_s)
        headers = {"User-Agent": "bzzz", "Accept": "*/*", **ep._headers}
        data = None
        if body is not None:
            data = json.dumps(body).encode()
            headers["Content-Type"] = "application/json"
        try:
            self.connection.request(method, ep.base_path + path, body=data, headers=headers)
            response = self.connection.getresponse()
        except TimeoutError:
            raise ep.fail(path, f"no answer within {ep.timeout_s:g} s", _RETRY_AFTER_S) from None
        except ConnectionRefusedError:
            raise ep.fail(path, "connection refused (is the server running?)", None) from None
        except (OSError, http.client.HTTPException) as exc:
            raise ep.fail(path, f"{type(exc).__name__}: {exc}", _RETRY_AFTER_S) from None
        if response.status >= 400:
            raise self._http_error(response)
        return response

    def _http_error(self, response: http.client.HTTPResponse) -> ReasoningError:
        ep = self.endpoint
        try:
            raw = response.read(_ERROR_BODY_BYTES)
        except (OSError, http.client.HTTPException):
            raw = b""
        text = raw.decode("utf-8", "replace")
        try:
            detail = error_text(json.loads(text)) or text
        except ValueError:
            detail = text
        summary = f"HTTP {response.status} {response.reason}".strip()
        if detail.strip():
            summary += f": {detail}"
        return ep.fail(self.path, summary, _retry_after(response))

    def lines(self, response: http.client.HTTPResponse) -> Iterator[bytes]:
        ep = self.endpoint
        total = 0
        while True:
            try:
                line = response.readline(ep.max_bytes - total + 1)
            except TimeoutError:
                raise ep.fail(
                    self.path, f"the answer stalled for {ep.timeout_s:g} s", _RETRY_AFTER_S
                ) from None
            except (OSError, ValueError, http.client.HTTPException) as exc:
                raise ep.fail(
                    self.path, f"the answer broke off: {type(exc).__name__}", _RETRY_AFTER_S
                ) from None
            if not line:
                return
            total += len(line)
            if total > ep.max_bytes:
                raise ep.fail(self.path, f"the answer is larger than {ep.max_bytes} bytes; cut")
            if self.deadline is not None and time.monotonic() > self.deadline:
                raise ep.fail(
                    self.path, f"the turn took longer than {ep.turn_timeout_s:g} s", _RETRY_AFTER_S
                )
            yield line

    def abort(self) -> None:
        connection = self.connection
        sock = connection.sock if connection is not None else None
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)

    def close(self) -> None:
        if self.connection is not None:
            self.connection.close()


def decode_line(endpoint: HttpEndpoint, path: str, line: bytes) -> dict[str, Any] | None:
    """One JSON-object line of a stream; None for a blank line."""
    text = line.strip()
    if not text:
        return None
    try:
        value = json.loads(text)
    except ValueError:
        raise endpoint.fail(path, f"a line of the answer is not JSON: {text[:80]!r}") from None
    if not isinstance(value, dict):
        raise endpoint.fail(path, f"a line of the answer is not a JSON object: {text[:80]!r}")
    return value


def _function_tool(tool: ToolSpec) -> dict[str, Any]:
    return {
        "type": "function",
        "function": {
            "name": tool.name,
            "description": tool.description,
            "parameters": dict(tool.parameters),
        },
    }


def _ollama_message(message: ChatMessage) -> dict[str, Any]:
    out: dict[str, Any] = {"role": message.role, "content": message.content}
    if message.tool_calls:
        # Ollama wants an object; arguments the model botched go back empty (the tool
        # result that follows tells the model what was wrong with them).
        out["tool_calls"] = [
            {
                "function": {
                    "name": call.name,
                    "arguments": dict(call.arguments)
                    if not isinstance(call.arguments, str)
                    else {},
                }
            }
            for call in message.tool_calls
        ]
    if message.role == "tool" and message.tool_name is not None:
        out["tool_name"] = message.tool_name
    return out


class _OllamaTurn:
    """The NDJSON lines of one ``/api/chat`` answer, put together."""

    def __init__(self, endpoint: HttpEndpoint, model: str) -> None:
        self.endpoint = endpoint
        self.model = model
        self.content: list[str] = []
        self.tool_calls: list[ToolCall] = []
        self.prompt_tokens = 0
        self.completion_tokens = 0

    def feed(self, line: bytes) -> bool:
        chunk = decode_line(self.endpoint, "/api/chat", line)
        if chunk is None:
            return False
        error = error_text(chunk)
        if error is not None:
            raise self.endpoint.fail("/api/chat", f"error: {error}")
        self.model = str(chunk.get("model") or self.model)
        message = chunk.get("message")
        if isinstance(message, dict):
            if isinstance(message.get("content"), str):
                self.content.append(message["content"])
            for call in message.get("tool_calls") or ():
                self.tool_calls.append(self._tool_call(call))
        if chunk.get("done") is True:
            self.prompt_tokens = int(chunk.get("prompt_eval_count") or 0)
            self.completion_tokens = int(chunk.get("eval_count") or 0)
            return True
        return False

    def _tool_call(self, call: Any) -> ToolCall:
        function = call.get("function") if isinstance(call, dict) else None
        if not isinstance(function, dict):
            return ToolCall(name="", arguments=json.dumps(call))
        call_id = call.get("id")
        return ToolCall(
            name=str(function.get("name") or ""),
            arguments=parse_arguments(function.get("arguments")),
            id=str(call_id) if call_id else None,
        )


class OllamaReasoner:
    """`services.ports.Reasoner` over Ollama's native API at `url`.

    `timeout_s`: the longest wait for any byte of an answer; `turn_timeout_s`: the
    longest a whole turn may take (None: no limit beyond `timeout_s` between bytes);
    `max_response_bytes`: answers past this are cut with a `ReasoningError`;
    `options`: Ollama's model options (``num_ctx``, ``temperature``, ...) sent with
    every chat; `keep_alive`: how long Ollama keeps the model loaded (e.g. ``"5m"``)."""

    def __init__(
        self,
        url: str = DEFAULT_URL,
        *,
        timeout_s: float = 300.0,
        turn_timeout_s: float | None = None,
        max_response_bytes: int = MAX_RESPONSE_BYTES,
        options: Mapping[str, Any] | None = None,
        keep_alive: str | None = None,
    ) -> None:
        self._http = HttpEndpoint(
            "ollama",
            url,
            timeout_s=timeout_s,
            turn_timeout_s=turn_timeout_s,
            max_bytes=max_response_bytes,
        )
        self._options = dict(options or {})
        self._keep_alive = keep_alive

    @property
    def name(self) -> str:
        return "ollama"

    @property
    def url(self) -> str:
        return self._http.public_url

    def __repr__(self) -> str:
        return f"OllamaReasoner({self.url!r})"

    async def models(self) -> list[ModelInfo]:
        tags = await self._http.get_json("GET", "/api/tags")
        entries = tags.get("models") if isinstance(tags, dict) else None
        if not isinstance(entries, list):
            raise self._http.fail("/api/tags", "the answer has no list of models")
        found: list[ModelInfo] = []
        for entry in entries:
            if not isinstance(entry, dict) or not (entry.get("name") or entry.get("model")):
                continue
            name = str(entry.get("name") or entry.get("model"))
            show = await self._http.get_json("POST", "/api/show", {"model": name})
            if not isinstance(show, dict):
                raise self._http.fail("/api/show", f"the answer for {name} is not an object")
            details: dict[str, Any] = {}
            if isinstance(entry.get("details"), dict):
                details.update(entry["details"])
            if isinstance(show.get("details"), dict):
                details.update(show["details"])
            if isinstance(show.get("capabilities"), list):
                details["capabilities"] = list(show["capabilities"])
            if isinstance(entry.get("size"), int):
                details["size"] = entry["size"]
            found.append(ModelInfo(name, _context_length(show.get("model_info")), details))
        return found

    async def chat(
        self,
        model: str,
        messages: Sequence[ChatMessage],
        tools: Sequence[ToolSpec],
        max_tokens: int | None = None,
    ) -> Reply:
        body: dict[str, Any] = {
            "model": model,
            "messages": [_ollama_message(m) for m in messages],
            "stream": True,
        }
        if tools:
            body["tools"] = [_function_tool(t) for t in tools]
        options = dict(self._options)
        if max_tokens is not None:
            options["num_predict"] = max_tokens
        if options:
            body["options"] = options
        if self._keep_alive is not None:
            body["keep_alive"] = self._keep_alive
        turn = _OllamaTurn(self._http, model)
        started = time.monotonic()
        done = await self._http.stream("POST", "/api/chat", body, turn.feed)
        if not done:
            raise self._http.fail("/api/chat", "the answer ended before its done line")
        return Reply(
            content="".join(turn.content),
            tool_calls=tuple(turn.tool_calls),
            model=turn.model,
            prompt_tokens=turn.prompt_tokens,
            completion_tokens=turn.completion_tokens,
            seconds=time.monotonic() - started,
        )


def _context_length(model_info: Any) -> int | None:
    """``<architecture>.context_length`` of ``/api/show``'s ``model_info``, or any
    ``*.context_length`` when the architecture is not said."""
    if not isinstance(model_info, dict):
        return None
    arch = model_info.get("general.architecture")
    preferred = model_info.get(f"{arch}.context_length") if isinstance(arch, str) else None
    if type(preferred) is int:
        return preferred
    for key, value in model_info.items():
        if key.endswith(".context_length") and type(value) is int:
            return value
    return None
