"""What the running agent answers about HMMM: threads, one thread, what needs this
member now (its inbox: escalations, plans to review, questions to it), and the messages
a person or a script writes (plan, say, object, approve, escalate, resolve)."""

from __future__ import annotations

from typing import Any

from bzzz.agent.arguments import Answer
from bzzz.cli.views import thread_json
from bzzz.clock import now_ms
from bzzz.domain import hmmm as hm
from bzzz.errors import UsageError
from bzzz.mesh.mesh import Mesh
from bzzz.services.hmmm import HmmmService

QUESTIONS = ("clarification_needed", "help_request", "dependency")
MAX_TO = 200  # who a message asks: an agent id, a name, a role, or "humans"
INBOX_ORDER = {"escalation": 0, "plan": 1, "question": 2}


def _text(request: dict[str, Any], key: str, required: bool = True) -> str | None:
    value = request.get(key)
    if value is None and not required:
        return None
    if not isinstance(value, str) or (required and not value.strip()):
        raise UsageError(f"{key}: text is required")
    if len(value) > hm.MAX_TEXT:
        raise UsageError(f"{key}: at most {hm.MAX_TEXT} characters")
    return value


def _thread(request: dict[str, Any]) -> str:
    thread = request.get("thread")
    problem = hm.thread_id_problem(thread)
    if problem is not None:
        raise UsageError(f"{str(thread)[:200]!r}: {problem}")
    assert isinstance(thread, str)
    return thread


def _hash(value: object, what: str) -> bytes:
    if not isinstance(value, str) or len(value) != 64:
        raise UsageError(f"{what}: an entry hash (64 hex digits)")
    try:
        return bytes.fromhex(value)
    except ValueError:
        raise UsageError(f"{what}: an entry hash (64 hex digits)") from None


class HmmmRequests:
    def __init__(self, hmmm: HmmmService, mesh: Mesh) -> None:
        self.hmmm, self.mesh = hmmm, mesh

    def _names(self) -> dict[bytes, str]:
        return {m.agent_id: m.name for m in self.mesh.membership.members.values()}

    async def threads(self, _: dict[str, Any]) -> Answer:
        await self.hmmm.refresh()
        now, names = now_ms(), self._names()
        rows = [
            thread_json(hm.view(t, now, self.hmmm.limits), names)
            for t in sorted(self.hmmm.threads.values(), key=lambda t: t.first_ts)
        ]
        return {"ok": True, "threads": rows}

    async def thread(self, request: dict[str, Any]) -> Answer:
        thread = _thread(request)
        await self.hmmm.refresh()
        found = self.hmmm.threads.get(thread)
        if found is None:
            raise UsageError(f"no thread {thread!r} (`bzzz hmmm threads`)")
        view = hm.view(found, now_ms(), self.hmmm.limits)
        return {"ok": True, "thread": thread_json(view, self._names())}

    async def inbox(self, _: dict[str, Any]) -> Answer:
        """What needs this member now: threads escalated to people, plans of others in
        their objection window that it has not answered, and questions nobody answered
        that ask anyone, or it (its agent id, name or role), or people."""
        await self.hmmm.refresh()
        now, names = now_ms(), self._names()
        me = self.mesh.me
        mine = {me.hex(), self.mesh.name, self.mesh.role, "humans"}
        rows = []
        for thread in self.hmmm.threads.values():
            rows += needs(thread, hm.view(thread, now, self.hmmm.limits), me, mine, names)
        rows.sort(key=lambda r: (INBOX_ORDER[r["kind"]], r["ts"]))
        return {"ok": True, "inbox": rows}

    async def post(self, request: dict[str, Any]) -> Answer:
        what = request.get("what")
        if what == "plan":
            files = request.get("files", [])
            if not isinstance(files, list) or not all(isinstance(f, str) for f in files):
                raise UsageError("files: a list of paths")
            text = _text(request, "text")
            assert text is not None
            more = {k: _text(request, k, False) for k in ("approach", "effort", "risks")}
            return await self.hmmm.plan(_thread(request), text, files, **more)
        thread = _thread(request)
        await self.hmmm.refresh()
        if what == "say":
            parent = request.get("parent")
            body: dict[str, Any] = {
                "thread": thread,
                "parent": _hash(parent, "parent") if parent is not None else None,
                "query_type": request.get("query_type"),
                "text": _text(request, "text"),
                "parameters": {},
            }
            to = request.get("to")
            if to is not None:
                if not isinstance(to, str) or not 0 < len(to) <= MAX_TO:
                    raise UsageError(f"to: an agent id, a name or a role (at most {MAX_TO})")
                body["parameters"] = {"to": to}
            if body["query_type"] not in hm.QUERY_TYPES:
                raise UsageError(f"--type: one of {', '.join(hm.QUERY_TYPES)}")
            return await self.hmmm.post(hm.MSG, body)
        if what == "object":
            if request.get("severity") not in hm.SEVERITIES:
                raise UsageError(f"--severity: one of {', '.join(hm.SEVERITIES)}")
            body = {
                "thread": thread,
                "parent": self.hmmm.current_plan(thread),
                "severity": request["severity"],
                "reason": _text(request, "reason"),
                "resolve": _text(request, "resolve", False) or "",
            }
            return await self.hmmm.post(hm.OBJECTION, body)
        if what == "approve":
            body = {"thread": thread, "parent": self.hmmm.current_plan(thread)}
            return await self.hmmm.post(hm.APPROVAL, body)
        if what == "escalate":
            body = {"thread": thread, "reason": _text(request, "reason"), "to": "humans"}
            return await self.hmmm.post(hm.ESCALATION, body)
        if what == "resolve":
            outcome = request.get("outcome", "decided")
            if outcome not in hm.OUTCOMES:
                raise UsageError(f"--outcome: one of {', '.join(hm.OUTCOMES)}")
            found = self.hmmm.threads.get(thread)
            of = found.plan.hash if found is not None and found.plan is not None else None
            body = {"thread": thread, "outcome": outcome, "why": _text(request, "why"), "of": of}
            return await self.hmmm.post(hm.RESOLUTION, body)
        raise UsageError("what: plan, say, object, approve, escalate or resolve")


def needs(
    thread: hm.Thread, view: hm.ThreadView, me: bytes, mine: set[str], names: dict[bytes, str]
) -> list[dict[str, Any]]:
    """The inbox rows of one thread for the member `me` (also known as `mine`)."""

    def row(kind: str, message: hm.Message | None, text: str) -> dict[str, Any]:
        return {
            "kind": kind,
            "thread": thread.id,
            "task": thread.task,
            "entry": message.hash.hex() if message else None,
            "author": message.author.hex() if message else None,
            "author_name": names.get(message.author) if message else None,
            "ts": message.ts if message else thread.first_ts,
            "text": text,
            "until": view.until,
        }

    found = []
    if view.state is hm.ThreadState.ESCALATED:
        end = hm.last_ending(thread)
        escalation = end if end is not None and end.kind == hm.ESCALATION else None
        found.append(row("escalation", escalation, view.why))
    plan = thread.plan
    if (
        view.state is hm.ThreadState.WINDOW
        and plan is not None
        and plan.message.author != me
        and not any(m.author == me for m in (*thread.objections(plan), *thread.approvals(plan)))
    ):
        found.append(row("plan", plan.message, plan.message.text))
    answered = {m.parent for m in thread.messages if m.parent is not None and m.kind == hm.MSG}
    for m in thread.messages:
        if m.kind != hm.MSG or m.author == me or m.hash in answered:
            continue
        if m.data.get("query_type") not in QUESTIONS:
            continue
        parameters = m.data.get("parameters")
        to = parameters.get("to") if isinstance(parameters, dict) else None
        if isinstance(to, bytes):
            to = to.hex()
        if to is None or to in mine:
            found.append(row("question", m, m.text))
    return found
