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
import contextlib
from dataclasses import dataclass
from typing import Any

from bzzz.agent.arguments import Answer
from bzzz.domain import context as cx
from bzzz.domain import leadership as ld
from bzzz.domain import membership as ms
from bzzz.domain import ucxl
from bzzz.domain.context_write import Writer, check_text, check_write
from bzzz.domain.roles import can_make_decisions
from bzzz.errors import EntryError, NotFoundError, UsageError
from bzzz.mesh.mesh import Mesh
from bzzz.projections.context import (
    READ_KINDS,
    fold_more,
    hidden_json,
    read_context,
    version_json,
)
from bzzz.projections.keyring import KINDS as KEY_KINDS
from bzzz.services.keys import KeyService

MAX_FOUND = 500  # items of a search, versions of a history
CHANGES = (*READ_KINDS, *ms.KINDS, *ld.KINDS, *KEY_KINDS)  # kinds that can change context
MAX_MORE = 2000  # context entries added to a folded context; past them, read it again


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


@dataclass(frozen=True, slots=True)
class _Folded:
    mark: int  # the entries the mesh held (the sum of its heads) when it was read
    position: int  # the store's latest arrival then
    held: int  # role keys this node held then
    context: cx.Context


class ContextRequests:
    def __init__(self, mesh: Mesh, keys: KeyService | None = None) -> None:
        self.mesh = mesh
        self.keys = keys
        self._folded: _Folded | None = None
        self._folding = asyncio.Lock()

    def _mark(self) -> int:
        """A number that grows with every entry the mesh stores or ingests."""
        return sum(self.mesh.heads.values())

    def _held(self) -> int:
        return len(self.keys.keyring.held()) if self.keys is not None else 0

    def _read(self, mark: int, held: int) -> _Folded:
        """The cluster's context now (blocking: run on a worker thread): the last one
        if no entry that can change it arrived since, else read again."""
        mesh, last = self.mesh, self._folded
        position = mesh.store.max_position()
        keyring = self.keys.keyring if self.keys is not None else None
        if last is not None and last.held == held:
            if last.position == position:
                return _Folded(mark, position, held, last.context)
            changes = mesh.store.notifications(
                after=last.position, kinds=CHANGES, limit=MAX_MORE + 1
            )
            if not changes:
                return _Folded(mark, position, held, last.context)
            if len(changes) <= MAX_MORE and all(c.kind in cx.KINDS for c in changes):
                entries = []
                for stored in changes:
                    with contextlib.suppress(EntryError):  # the audit reports damage
                        entries.append(stored.decode())
                more = fold_more(last.context, entries, mesh.roles, mesh.membership, keyring)
                return _Folded(mark, changes[-1].position, held, more)
        project = cx.project_name(mesh.cluster)
        context = read_context(mesh.store, mesh.roles, mesh.cluster_id, project, keyring)
        return _Folded(mark, position, held, context)

    async def _context(self) -> cx.Context:
        """The context, folded again only when entries arrived that can change it:
        context and curation, membership, elections (which prove the curators) and
        keys (sealed versions open with them)."""
        last, mark = self._folded, self._mark()
        if last is not None and last.mark == mark and last.held == self._held():
            return last.context
        async with self._folding:  # one fold at a time; the others take its result
            last, mark = self._folded, self._mark()
            if last is not None and last.mark == mark and last.held == self._held():
                return last.context
            if self.keys is not None:
                await self.keys.refresh()  # the keys the entries so far grant
            self._folded = await asyncio.to_thread(self._read, mark, self._held())
            return self._folded.context

    def _row(self, item: cx.Item, version: cx.Version) -> dict[str, Any]:
        row = version_json(item, version)
        member = self.mesh.membership.members.get(version.author)
        if member is None:
            member = self.mesh.membership.removed.get(version.author)
        row["author_name"] = member.name if member is not None else None
        return row

    async def get(self, request: dict[str, Any]) -> Answer:
        address = _address(request, "address")
        item = cx.one_item(await self._context(), address)
        version = cx.pick(item.versions, address.temporal)
        if version is None:
            raise NotFoundError(
                f"{item.address} has {len(item.versions)} versions: none is {address.temporal}"
            )
        return {"ok": True, "version": self._row(item, version)}

    async def search(self, request: dict[str, Any]) -> Answer:
        pattern, limit = _address(request, "pattern"), _limit(request)
        context = await self._context()
        found = context.search(pattern)
        rows = [self._row(item, version) for item, version in found[:limit]]
        more = max(0, len(found) - limit)
        hidden = hidden_json(context, pattern)
        return {"ok": True, "pattern": str(pattern), "found": rows, "more": more, "hidden": hidden}

    async def history(self, request: dict[str, Any]) -> Answer:
        address, limit = _address(request, "address"), _limit(request)
        item = cx.one_item(await self._context(), address)
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
