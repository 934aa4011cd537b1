"""UCXI's questions (`bzzz.http.ucxi.UcxiBackend`) put to the running agent's own
control requests, so that UCXI, the control socket, the CLI and the portal answer alike."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

Handle = Callable[[dict[str, Any]], Awaitable[dict[str, Any]]]


class RequestsBackend:
    def __init__(self, handle: Handle) -> None:
        self._handle = handle

    async def resolve(self, address: str) -> dict[str, Any]:
        return await self._handle({"op": "ucxl_get", "address": address})

    async def history(self, address: str, limit: int) -> dict[str, Any]:
        return await self._handle({"op": "ucxl_history", "address": address, "limit": limit})

    async def search(self, pattern: str, limit: int) -> dict[str, Any]:
        return await self._handle({"op": "ucxl_search", "pattern": pattern, "limit": limit})

    async def put(
        self, address: str, text: str, decision: bool, seal_for: str | None
    ) -> dict[str, Any]:
        request = {"op": "ucxl_put", "address": address, "text": text, "decision": decision}
        return await self._handle({**request, "seal_for": seal_for})

    async def status(self) -> dict[str, Any]:
        return await self._handle({"op": "status"})

    async def tasks(self) -> dict[str, Any]:
        return await self._handle({"op": "tasks"})

    async def threads(self) -> dict[str, Any]:
        return await self._handle({"op": "threads"})
