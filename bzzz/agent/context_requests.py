"""What the running agent answers about shared context by UCXL address: the version an
address names (`ucxl_get`), the pieces a pattern matches (`ucxl_search`), every version
of one piece (`ucxl_history`), and a new version written by this node (`ucxl_put`, a
`context.put` or a `decision.made`, sealed for a role if asked), in the JSON of
`bzzz ucxl ... --json` plus each author's member name. The control socket and UCXI
(`bzzz.http.ucxi`) answer with these.

The context is folded from the store on a worker thread, again only when the store
holds entries it did not hold at the last fold (so a run of reads costs one fold); at
most `MAX_FOUND` rows an answer (`more` says how many were left out)."""

from __future__ import annotations

import asyncio
from typing import Any

from bzzz.agent.arguments import Answer
from bzzz.domain import context as cx
from bzzz.domain import ucxl
from bzzz.domain.context_write import Writer, check_text, check_write
from bzzz.domain.roles import can_make_decisions
from bzzz.errors import NotFoundError, UsageError
from bzzz.mesh.mesh import Mesh
from bzzz.projections.context import read_context, version_json
from bzzz.services.keys import KeyService

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


def _one(context: cx.Context, address: ucxl.Address) -> cx.Item:
    if address.is_pattern:
        raise UsageError("address has a *: that is a search (ucxl_search)")
    found = context.find(address)
    if len(found) > 1:
        raise UsageError(f"the agent {address.agent} begins {len(found)} ids: give more of it")
    if not found:
        raise NotFoundError(f"nothing at {address} (ucxl_search lists what there is)")
    return found[0]


class ContextRequests:
    def __init__(self, mesh: Mesh, keys: KeyService | None = None) -> None:
        self.mesh = mesh
        self.keys = keys
        self._folded: tuple[int, cx.Context] | None = None  # at which store position
        self._folding = asyncio.Lock()

    def _read(self) -> tuple[int, cx.Context]:
        """The cluster's context now, and the store position it was read at (blocking:
        run on a worker thread)."""
        mesh = self.mesh
        position = mesh.store.max_position()
        if self._folded is not None and self._folded[0] == position:
            return self._folded
        project = cx.project_name(mesh.cluster)
        return position, read_context(mesh.store, mesh.roles, mesh.cluster_id, project)

    async def _context(self) -> cx.Context:
        async with self._folding:  # one fold at a time; the others take its result
            self._folded = await asyncio.to_thread(self._read)
            return self._folded[1]

    def _row(self, item: cx.Item, version: cx.Version) -> dict[str, Any]:
        row = version_json(item, version)
        member = self.mesh.membership.members.get(version.author)
        if member is None:
            member = self.mesh.membership.removed.get(version.author)
        row["author_name"] = member.name if member is not None else None
        return row

    async def get(self, request: dict[str, Any]) -> Answer:
        address = _address(request, "address")
        item = _one(await self._context(), address)
        version = cx.pick(item.versions, address.temporal)
        if version is None:
            raise NotFoundError(
                f"{item.address} has {len(item.versions)} versions: none is {address.temporal}"
            )
        return {"ok": True, "version": self._row(item, version)}

    async def search(self, request: dict[str, Any]) -> Answer:
        pattern, limit = _address(request, "pattern"), _limit(request)
        found = (await self._context()).search(pattern)
        rows = [self._row(item, version) for item, version in found[:limit]]
        more = max(0, len(found) - limit)
        return {"ok": True, "pattern": str(pattern), "found": rows, "more": more}

    async def history(self, request: dict[str, Any]) -> Answer:
        address, limit = _address(request, "address"), _limit(request)
        item = _one(await self._context(), address)
        shown = item.versions[-limit:]  # the newest, oldest first
        return {
            "ok": True,
            "address": str(item.address),
            "versions": [self._row(item, version) for version in shown],
            "more": len(item.versions) - len(shown),
        }

    def _writer(self) -> Writer:
        mesh = self.mesh
        member = mesh.membership.members.get(mesh.me)
        if member is None:
            raise UsageError("this node is not a member of a cluster (`bzzz join`)")
        role = mesh.roles.get(member.role)
        may_decide = role is not None and can_make_decisions(role)
        return Writer(mesh.me.hex(), member.role, may_decide, cx.project_name(mesh.cluster))

    async def put(self, request: dict[str, Any]) -> Answer:
        """A new version at `address` in this node's log: `{"address", "text",
        "decision": bool, "seal_for": role or null}`."""
        address, text = _address(request, "address"), request.get("text")
        decision, seal_for = request.get("decision", False), request.get("seal_for")
        if not isinstance(text, str):
            raise UsageError("text: the version's text")
        if not isinstance(decision, bool):
            raise UsageError("decision: true for a decision (decision.made), else false")
        if seal_for is not None and not isinstance(seal_for, str):
            raise UsageError("seal_for: a role's name")
        check_text(text)
        kind = cx.DECISION if decision else cx.PUT
        at = check_write(address, kind, self._writer())
        data = cx.put_body(at.task, at.path, text)
        if seal_for is not None:
            if self.keys is None:
                raise UsageError("this agent runs no key service: it cannot seal")
            data = await self.keys.seal(kind, data, seal_for)
        entry = await self.mesh.append(kind, data)
        item = (await self._context()).history(at)
        version = next((v for v in item.versions if v.hash == entry.hash), None) if item else None
        if item is None or version is None:
            # Sealed for a role this node may not read: written, not readable here.
            return {"ok": True, "version": None, "entry": entry.hash.hex(), "seq": entry.seq}
        return {"ok": True, "version": self._row(item, version)}
