"""The two clients over httpx: `UcxiClient` (blocking) and `AsyncUcxiClient`. Each
call is built and read by `calls.py`; these only send it."""

from __future__ import annotations

import json
import ssl
from pathlib import Path
from types import TracebackType
from typing import Any, TypeVar

import httpx

from bzzz.client import calls
from bzzz.client.calls import Call, Found, History, Version, Written
from bzzz.errors import UcxiError

T = TypeVar("T")
DEFAULT_TIMEOUT_S = 10.0
DEFAULT_LIMIT = 100


def _token(token: str | None, token_file: str | Path | None) -> str | None:
    if token is not None and token_file is not None:
        raise ValueError("give token or token_file, not both")
    if token_file is None:
        return token
    path = Path(token_file).expanduser()
    try:
        return path.read_text(encoding="ascii").strip()
    except (OSError, UnicodeDecodeError) as error:
        raise UcxiError(0, f"cannot read the token file {path}: {error}") from None


def _options(
    base_url: str,
    token: str | None,
    token_file: str | Path | None,
    timeout: float,
    cert: tuple[str, str] | None,
    verify: str | bool,
) -> dict[str, Any]:
    secret = _token(token, token_file)
    headers = {"Authorization": f"Bearer {secret}"} if secret else {}
    options: dict[str, Any] = {
        "base_url": base_url.rstrip("/"),
        "headers": headers,
        "timeout": timeout,
        "trust_env": False,  # a proxy from the environment never sees the token
    }
    if cert is not None or verify is not True:
        context = ssl.create_default_context(cafile=verify if isinstance(verify, str) else None)
        if verify is False:
            context.check_hostname = False
            context.verify_mode = ssl.CERT_NONE
        if cert is not None:
            context.load_cert_chain(*cert)
        options["verify"] = context
    return options


def _answer(call: Call[T], response: httpx.Response) -> T:
    if not response.is_success:
        raise calls.error_of(response.status_code, response.content)
    try:
        data = json.loads(response.content)
    except ValueError:
        raise UcxiError(response.status_code, "the server's answer is not JSON") from None
    return call.parse(data)


def _request(call: Call[Any]) -> dict[str, Any]:
    request: dict[str, Any] = {"params": dict(call.params)}
    if call.body is not None:
        request["json"] = dict(call.body)
    return request


def _unreachable(base_url: str, error: httpx.HTTPError) -> UcxiError:
    return UcxiError(0, f"cannot reach UCXI at {base_url}: {error or type(error).__name__}")


class UcxiClient:
    """UCXI from blocking code; a context manager (or call `close`)."""

    def __init__(
        self,
        base_url: str,
        *,
        token: str | None = None,
        token_file: str | Path | None = None,
        timeout: float = DEFAULT_TIMEOUT_S,
        cert: tuple[str, str] | None = None,
        verify: str | bool = True,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        options = _options(base_url, token, token_file, timeout, cert, verify)
        self.base_url = options["base_url"]
        self._http = httpx.Client(**options, transport=transport)

    def _send(self, call: Call[T]) -> T:
        try:
            response = self._http.request(call.method, call.path, **_request(call))
        except httpx.HTTPError as error:
            raise _unreachable(self.base_url, error) from None
        return _answer(call, response)

    def resolve(self, address: str) -> Version:
        return self._send(calls.resolve(address))

    def history(self, address: str, limit: int = DEFAULT_LIMIT) -> History:
        return self._send(calls.history(address, limit))

    def search(self, pattern: str, limit: int = DEFAULT_LIMIT) -> Found:
        return self._send(calls.search(pattern, limit))

    def put(
        self, address: str, text: str, *, decision: bool = False, seal_for: str | None = None
    ) -> Written:
        return self._send(calls.put(address, text, decision, seal_for))

    def status(self) -> dict[str, Any]:
        return self._send(calls.read("status"))

    def tasks(self) -> dict[str, Any]:
        return self._send(calls.read("tasks"))

    def threads(self) -> dict[str, Any]:
        return self._send(calls.read("threads"))

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> UcxiClient:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        trace: TracebackType | None,
    ) -> None:
        self.close()


class AsyncUcxiClient:
    """UCXI from asyncio code; an async context manager (or await `aclose`)."""

    def __init__(
        self,
        base_url: str,
        *,
        token: str | None = None,
        token_file: str | Path | None = None,
        timeout: float = DEFAULT_TIMEOUT_S,
        cert: tuple[str, str] | None = None,
        verify: str | bool = True,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        options = _options(base_url, token, token_file, timeout, cert, verify)
        self.base_url = options["base_url"]
        self._http = httpx.AsyncClient(**options, transport=transport)

    async def _send(self, call: Call[T]) -> T:
        try:
            response = await self._http.request(call.method, call.path, **_request(call))
        except httpx.HTTPError as error:
            raise _unreachable(self.base_url, error) from None
        return _answer(call, response)

    async def resolve(self, address: str) -> Version:
        return await self._send(calls.resolve(address))

    async def history(self, address: str, limit: int = DEFAULT_LIMIT) -> History:
        return await self._send(calls.history(address, limit))

    async def search(self, pattern: str, limit: int = DEFAULT_LIMIT) -> Found:
        return await self._send(calls.search(pattern, limit))

    async def put(
        self, address: str, text: str, *, decision: bool = False, seal_for: str | None = None
    ) -> Written:
        return await self._send(calls.put(address, text, decision, seal_for))

    async def status(self) -> dict[str, Any]:
        return await self._send(calls.read("status"))

    async def tasks(self) -> dict[str, Any]:
        return await self._send(calls.read("tasks"))

    async def threads(self) -> dict[str, Any]:
        return await self._send(calls.read("threads"))

    async def aclose(self) -> None:
        await self._http.aclose()

    async def __aenter__(self) -> AsyncUcxiClient:
        return self

    async def __aexit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        trace: TracebackType | None,
    ) -> None:
        await self.aclose()
