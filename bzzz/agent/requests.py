"""What the running agent answers on its control socket: one method per request."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

from bzzz.agent.arguments import Answer, seconds
from bzzz.agent.context_requests import ContextRequests
from bzzz.agent.hmmm_requests import HmmmRequests
from bzzz.agent.key_requests import KeyRequests
from bzzz.agent.task_requests import TaskRequests
from bzzz.cli.views import election_json, mesh_json
from bzzz.domain.identity import parse_agent_id
from bzzz.domain.kinds import check_hand_written
from bzzz.domain.sealing import looks_sealed
from bzzz.errors import EntryError, UsageError
from bzzz.http.ucxi_server import UcxiServer
from bzzz.runtime.assembly import NodeRuntime

CHANGES_POLL_S = 0.02  # how often a `changes` request looks at the heads while it waits


class Requests:
    def __init__(self, runtime: NodeRuntime) -> None:
        self.mesh, self.election, self.claims = runtime.mesh, runtime.election, runtime.claims
        self.execution = runtime.execution
        self.ucxi: UcxiServer | None = None  # set by the daemon when it serves UCXI
        board = TaskRequests(runtime.board, runtime.mesh)
        hmmm = HmmmRequests(runtime.hmmm, runtime.mesh)
        context = ContextRequests(runtime.mesh, runtime.keys)
        # The key service, once the runtime builds it (`bzzz.runtime.keys.keys_of`).
        self.keys = KeyRequests(runtime.keys)
        self._ops: dict[str, Callable[[dict[str, Any]], Awaitable[Answer]]] = {
            "status": self.status,
            "append": self.append,
            "wait": self.wait,
            "refresh": self.refresh,
            "changes": self.changes,
            "election": self.election_status,
            "election_wait": self.election_wait,
            "claim": self.claim,
            "claims": self.claim_list,
            "release": self.release,
            "tasks": board.tasks,
            "task": board.task,
            "task_sync": board.task_sync,
            "task_report": board.task_report,
            "push_check": board.push_check,
            "threads": hmmm.threads,
            "thread": hmmm.thread,
            "inbox": hmmm.inbox,
            "hmmm": hmmm.post,
            "ucxl_get": context.get,
            "ucxl_put": context.put,
            "ucxl_search": context.search,
            "ucxl_history": context.history,
            "keys_status": self.keys.status,
            "keys_split": self.keys.split,
            "keys_reconstruct": self.keys.reconstruct,
            "keys_release": self.keys.release,
        }

    async def handle(self, request: dict[str, Any]) -> Answer:
        op = request.get("op")
        method = self._ops.get(op) if isinstance(op, str) else None
        if method is None:
            raise UsageError(f"unknown request {op!r}; known: {', '.join(self._ops)}")
        return await method(request)

    async def status(self, _: dict[str, Any]) -> Answer:
        entries = await asyncio.to_thread(self.mesh.store.count)
        status = mesh_json(self.mesh.view(), entries)
        status["execution"] = self.execution.status() if self.execution is not None else None
        if self.ucxi is not None and self.ucxi.started:
            status["ucxi"] = {
                "url": f"{self.ucxi.url}/ucxi/v1",
                "token_file": str(self.ucxi.token.path) if self.ucxi.token else None,
            }
        return {"ok": True, "status": status}

    async def append(self, request: dict[str, Any]) -> Answer:
        kind, data = request.get("kind"), request.get("data")
        seal_for = request.get("seal_for")
        if not isinstance(kind, str) or not isinstance(data, dict):
            raise UsageError('append needs {"kind": str, "data": {...}, "seal_for": role?}')
        if seal_for is not None and not isinstance(seal_for, str):
            raise UsageError("seal_for: a role's name")
        try:
            check_hand_written(kind)
        except EntryError as error:
            raise UsageError(str(error)) from None
        if looks_sealed(data):
            raise UsageError(
                "data has exactly a sealed envelope's fields; seal with seal_for instead"
            )
        if seal_for is not None:
            data = await self.keys.seal(kind, data, seal_for)
        entry = await self.mesh.append(kind, data)
        answer: Answer = {"ok": True, "seq": entry.seq, "hash": entry.hash.hex()}
        if seal_for is not None:
            answer["sealed_for"] = seal_for
            answer["generation"] = data["generation"]
        return answer

    async def wait(self, request: dict[str, Any]) -> Answer:
        """Answer once this node holds `author`'s log up to `seq` (or after `timeout`)."""
        author, seq = request.get("author"), request.get("seq")
        try:
            key = parse_agent_id(author) if isinstance(author, str) else b""
        except UsageError:
            key = b""
        timeout = seconds(request.get("timeout", 30))
        if not key or type(seq) is not int:
            raise UsageError('wait needs {"author": agent id, "seq": int, "timeout": seconds}')
        reached = await self.mesh.wait_for_head(key, seq, timeout)
        return {"ok": True, "reached": reached, "seq": self.mesh.heads.get(key, 0)}

    async def refresh(self, _: dict[str, Any]) -> Answer:
        await self.mesh.refresh()
        return {"ok": True}

    def _version(self) -> int:
        """Grows by one with every entry this node stores, of any log."""
        return sum(self.mesh.heads.values())

    async def changes(self, request: dict[str, Any]) -> Answer:
        """Answer once this node holds entries beyond `version` (what an earlier answer
        said), or after `wait` seconds: a front end's cheap poll for news."""
        since = request.get("since")
        if since is not None and (type(since) is not int or since < 0):
            raise UsageError('changes needs {"since": a version from an earlier answer}')
        wait = seconds(request.get("wait", 0))
        deadline = asyncio.get_running_loop().time() + wait
        while since is not None and self._version() == since:
            left = deadline - asyncio.get_running_loop().time()
            if left <= 0:
                break
            await asyncio.sleep(min(CHANGES_POLL_S, left))
        version = self._version()
        return {"ok": True, "version": version, "changed": version != since}

    async def election_status(self, _: dict[str, Any]) -> Answer:
        return {"ok": True, "election": election_json(await self.election.view())}

    async def election_wait(self, request: dict[str, Any]) -> Answer:
        """Answer once this node follows a proven leader other than `other_than`."""
        other = request.get("other_than")
        try:
            old = parse_agent_id(other) if isinstance(other, str) else None
        except UsageError:
            raise UsageError("other_than must be an agent id") from None
        leader = await self.election.wait_leader(old, seconds(request.get("timeout", 30)))
        return {"ok": True, "leader": leader.hex() if leader else None}

    async def claim(self, request: dict[str, Any]) -> Answer:
        task, needs = request.get("task"), request.get("needs", [])
        if not isinstance(task, str) or not isinstance(needs, list):
            raise UsageError('claim needs {"task": str, "needs": [str], "wait": seconds}')
        wait = seconds(request.get("wait", 10))
        return await self.claims.request(task, [str(n) for n in needs], wait)

    async def claim_list(self, _: dict[str, Any]) -> Answer:
        return {"ok": True, **self.claims.status()}

    async def release(self, request: dict[str, Any]) -> Answer:
        task = request.get("task")
        if not isinstance(task, str):
            raise UsageError('release needs {"task": str}')
        return await self.claims.release(task)
