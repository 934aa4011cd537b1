"""What the running agent answers about the task board: list, show, sync, and the
holder's reports (a phase, done, failed)."""

from __future__ import annotations

from typing import Any

from bzzz.agent.arguments import Answer, seconds
from bzzz.cli.views import cursor_json, task_detail_json, task_json
from bzzz.domain import task_entries as te
from bzzz.domain.identity import parse_agent_id
from bzzz.domain.tasks import MAX_LINK, TaskState
from bzzz.errors import UsageError
from bzzz.home.keys import ssh_public_key_of
from bzzz.mesh.mesh import Mesh
from bzzz.services.board import BoardService

REPORTS = {"done": te.COMPLETED, "failed": te.FAILED, "phase": "task.progress"}


class TaskRequests:
    """The task board's requests."""

    def __init__(self, board: BoardService, mesh: Mesh) -> None:
        self.board, self.mesh = board, mesh

    def _names(self) -> dict[bytes, str]:
        return {m.agent_id: m.name for m in self.mesh.membership.members.values()}

    async def tasks(self, request: dict[str, Any]) -> Answer:
        state = request.get("state")
        if state is not None and state not in {s.value for s in TaskState}:
            known = ", ".join(s.value for s in TaskState)
            raise UsageError(f"no task state {state!r}; known: {known}")
        await self.board.refresh()
        names = self._names()
        rows = [task_json(v, names) for v in self.board.views()]
        if state is not None:
            rows = [r for r in rows if r["state"] == state]
        sources = [cursor_json(c) for c in self.board.board.cursors.values()]
        return {"ok": True, "tasks": rows, "sources": sources}

    async def task(self, request: dict[str, Any]) -> Answer:
        task = request.get("task")
        if not isinstance(task, str):
            raise UsageError('task needs {"task": id}')
        await self.board.refresh()
        view = self.board.view(task)
        if view is None:
            raise UsageError(f"{task[:200]!r} is not on the task board (`bzzz task list`)")
        return {"ok": True, "task": task_detail_json(view, self._names())}

    async def push_check(self, request: dict[str, Any]) -> Answer:
        """May `agent` push `task`'s branch with `token` (a pre-receive hook asks)?"""
        task, token, agent = request.get("task"), request.get("token"), request.get("agent")
        if (
            not isinstance(task, str)
            or not isinstance(token, list)
            or len(token) != 2
            or not all(type(t) is int for t in token)
            or not isinstance(agent, str)
        ):
            raise UsageError('push_check needs {"task": id, "token": [term, n], "agent": hex}')
        agent_id = parse_agent_id(agent)
        problem = await self.board.push_problem(task, (token[0], token[1]), agent_id)
        member = self.mesh.membership.members.get(agent_id)
        if problem is None and member is None:
            problem = "the agent is not a member of the cluster"
        return {
            "ok": True,
            "allowed": problem is None,
            "why": problem,
            # The key its commits must be signed with, for the hook to verify.
            "ssh_key": ssh_public_key_of(agent_id) if member is not None else None,
        }

    async def task_sync(self, request: dict[str, Any]) -> Answer:
        wait = seconds(request.get("wait", 30))
        lamport = await self.board.request_sync()
        synced = await self.board.wait_synced(lamport, wait)
        return {"ok": True, "synced": [cursor_json(c) for c in synced]}

    async def task_report(self, request: dict[str, Any]) -> Answer:
        task, what = request.get("task"), request.get("what")
        if not isinstance(task, str) or what not in REPORTS:
            raise UsageError(f'task_report needs {{"task": id, "what": {"|".join(REPORTS)}}}')
        fields: dict[str, Any] = {}
        for key in ("result", "link", "reason", "phase"):
            value = request.get(key)
            if value is not None:
                if not isinstance(value, str):
                    raise UsageError(f"{key} must be text")
                fields[key] = value
        if what == "phase" and fields.get("phase") not in te.PHASES:
            raise UsageError(f"a phase is one of: {', '.join(te.PHASES)}")
        for key in ("result", "reason"):
            if len(fields.get(key, "")) > te.MAX_TEXT:
                raise UsageError(f"a {key} is at most {te.MAX_TEXT} characters")
        for key, value in fields.items():
            if not value.isascii():
                try:
                    value.encode("utf-8")
                except UnicodeEncodeError:
                    raise UsageError(f"{key}: not valid text (a lone surrogate)") from None
        if len(fields.get("link") or "") > MAX_LINK:
            raise UsageError(f"a link is at most {MAX_LINK} characters")
        return await self.board.report(task, REPORTS[what], **fields)
