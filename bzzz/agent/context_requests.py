"""What the running agent answers about shared context by UCXL address: the pieces a
pattern matches (`ucxl_search`) and every version of one piece (`ucxl_history`), in the
JSON of `bzzz ucxl search|history --json` plus each author's member name. Read from the
node's store on a worker thread; at most `MAX_FOUND` rows an answer (`more` says how
many were left out)."""

from __future__ import annotations

import asyncio
from typing import Any

from bzzz.agent.arguments import Answer
from bzzz.domain import context as cx
from bzzz.domain import ucxl
from bzzz.errors import UsageError
from bzzz.mesh.mesh import Mesh
from bzzz.projections.context import read_context, version_json

MAX_FOUND = 500  # items of a search, versions of a history


def _address(request: dict[str, Any], key: str) -> ucxl.Address:
    value = request.get(key)
    if not isinstance(value, str):
        raise UsageError(f"{key}: a UCXL address (ucxl://AGENT:ROLE@PROJECT:TASK/~latest/PATH)")
    try:
        return ucxl.parse(value)
    except UsageError as error:
        raise UsageError(f"{key}: {error}") from None


def _limit(request: dict[str, Any]) -> int:
    value = request.get("limit", MAX_FOUND)
    if type(value) is not int or not 1 <= value <= MAX_FOUND:
        raise UsageError(f"limit: a number of rows from 1 to {MAX_FOUND}")
    return value


class ContextRequests:
    def __init__(self, mesh: Mesh) -> None:
        self.mesh = mesh

    def _read(self) -> cx.Context:
        """The cluster's context now (blocking: run on a worker thread)."""
        mesh = self.mesh
        project = cx.project_name(mesh.cluster)
        return read_context(mesh.store, mesh.roles, mesh.cluster_id, project)

    async def _context(self) -> cx.Context:
        return await asyncio.to_thread(self._read)

    def _row(self, item: cx.Item, version: cx.Version) -> dict[str, Any]:
        row = version_json(item, version)
        member = self.mesh.membership.members.get(version.author)
        if member is None:
            member = self.mesh.membership.removed.get(version.author)
        row["author_name"] = member.name if member is not None else None
        return row

    async def search(self, request: dict[str, Any]) -> Answer:
        pattern, limit = _address(request, "pattern"), _limit(request)
        found = (await self._context()).search(pattern)
        rows = [self._row(item, version) for item, version in found[:limit]]
        more = max(0, len(found) - limit)
        return {"ok": True, "pattern": str(pattern), "found": rows, "more": more}

    async def history(self, request: dict[str, Any]) -> Answer:
        address, limit = _address(request, "address"), _limit(request)
        if address.is_pattern:
            raise UsageError("address has a *: that is a search (ucxl_search)")
        found = (await self._context()).find(address)
        if len(found) > 1:
            raise UsageError(f"the agent {address.agent} begins {len(found)} ids: give more of it")
        if not found:
            raise UsageError(f"nothing at {address} (ucxl_search lists what there is)")
        item = found[0]
        shown = item.versions[-limit:]  # the newest, oldest first
        return {
            "ok": True,
            "address": str(item.address),
            "versions": [self._row(item, version) for version in shown],
            "more": len(item.versions) - len(shown),
        }
