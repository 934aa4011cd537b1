"""The HMMM service: every node keeps the threads current; a holder's plan waits out its
objection window and the node then proceeds, releases or escalates as `hmmm.next_step`
says; the built-in rule reviewer objects to the plans of others; and the commands of
people and scripts (`bzzz hmmm ...`) are checked against the same fold before anything is
written, so a message the threads would leave out is refused with the rule it breaks.

Revising a plan needs someone to write the new plan: a person (`bzzz hmmm plan`) today,
a model once execution exists (issue 20). Until then an objected plan waits for a
revision, and its thread escalates when its time to live runs out."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
from typing import Any

from bzzz.clock import now_ms
from bzzz.domain import alerts
from bzzz.domain import claims as cl
from bzzz.domain import hmmm as hm
from bzzz.domain import task_entries as te
from bzzz.domain.hmmm_review import review
from bzzz.domain.payload import encode_payload, payload_map
from bzzz.domain.roles import Authority
from bzzz.domain.tasks import TaskState, task_id_problem
from bzzz.errors import BzzzError, UsageError
from bzzz.projections.threads import ThreadsProjection
from bzzz.services.background import Background
from bzzz.services.board import BoardService
from bzzz.services.election import ElectionRunner
from bzzz.services.ports import Replica

log = logging.getLogger("bzzz.hmmm")
TICK_S = 0.5  # windows close on the clock, not on entries: look this often
ERROR_PAUSE_S = 1.0
MAX_REPORTED_LINES = 10_000
ALERT_AFTER_MS = 5_000  # a message left out this long is reported as an alert
MAX_ALERTS = 100  # per pass
IN_FLIGHT = (hm.ThreadState.WINDOW, hm.ThreadState.READY, hm.ThreadState.RESOLVED)


class HmmmService:
    def __init__(
        self,
        replica: Replica,
        election: ElectionRunner,
        board: BoardService,
        limits: hm.Limits,
        rule_reviewer: bool = True,
    ) -> None:
        self.replica = replica
        self.election = election
        self.board = board
        self.limits = limits
        self.rule_reviewer = rule_reviewer
        self.projection = ThreadsProjection(replica.feed(hm.KINDS).fresh, limits)
        self._wake = replica.watch(hm.KINDS)
        self._board_changed = board.listen()
        self._reviewed: set[bytes] = set()  # plans this node's rule reviewer looked at
        self._acted: set[tuple[bytes, str]] = set()  # (plan or thread root, step) done
        self._reported: set[str] = set()  # lines logged already
        self.deciders: set[bytes] = set()  # as of the last refresh
        self._alerts = replica.feed([alerts.HMMM_RULE])
        self._alerted: set[bytes] = set()  # left-out entries an alert names
        self._left_out_since: dict[bytes, int] = {}
        self._background = Background()

    async def start(self) -> None:
        await self.refresh()
        self._background.run(self._loop())

    async def stop(self) -> None:
        await self._background.stop()

    @property
    def threads(self) -> dict[str, hm.Thread]:
        return self.projection.threads.threads

    async def _deciders(self) -> set[bytes]:
        """Who may end a thread beside its participants: every proven leader, and the
        members whose role has decision authority or more."""
        proof = await self.election.leadership()
        found = {p.leader for p in proof.proven.values()}
        for member in self.replica.membership.members.values():
            role = self.replica.roles.get(member.role)
            if role is not None and role.authority >= Authority.DECISION:
                found.add(member.agent_id)
        return found

    async def refresh(self) -> None:
        await self.board.refresh()
        self.deciders = await self._deciders()
        await self.projection.update(self.board.board, self.deciders)
        for line in self.projection.threads.ignored:
            if line not in self._reported and len(self._reported) < MAX_REPORTED_LINES:
                self._reported.add(line)
                log.warning("hmmm: left out %s", line)

    async def _loop(self) -> None:
        while True:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(TICK_S):
                    await self._wake.wait()
            self._wake.clear()
            self._board_changed.clear()
            try:
                await self.refresh()
                await self._alert_left_out()
                await self._act_as_holder()
                if self.rule_reviewer:
                    await self._review()
            except BzzzError as error:
                log.error("hmmm: %s", error)
            except Exception:
                log.exception("hmmm: unexpected error; going on")
                await asyncio.sleep(ERROR_PAUSE_S)

    # Alerts: the admin reports each message left out by the rules, once

    async def _alert_left_out(self) -> None:
        for entry in await self._alerts.fresh():
            data = payload_map(entry.body)
            found = data.get("entry") if data is not None else None
            if isinstance(found, bytes):
                self._alerted.add(found)
        e = self.election.election
        now = now_ms()
        if e.leader != self.replica.me or not e.has_lease(now):
            return
        items = []
        for thread in self.threads.values():
            for entry_hash, author, rule in thread.ignored:
                if entry_hash in self._alerted:
                    continue
                # A plan can come before the grant it cites: wait before calling it a
                # breach, so that only what stays left out is reported.
                first = self._left_out_since.setdefault(entry_hash, now)
                if now - first < ALERT_AFTER_MS:
                    continue
                self._alerted.add(entry_hash)
                items.append(
                    (alerts.HMMM_RULE, alerts.hmmm_rule_body(author, thread.id, entry_hash, rule))
                )
        if items:
            await self.replica.append_many(items[:MAX_ALERTS])

    # The holder's flow

    async def _act_as_holder(self) -> None:
        now = now_ms()
        for grant in self.board.claims.book.live_grants(now, self.replica.me):
            thread = self.threads.get(grant.task)
            if thread is None or not thread.messages:
                continue
            v = hm.view(thread, now, self.limits)
            step, why = hm.next_step(v, self.limits)
            about = thread.plan.hash if thread.plan is not None else thread.messages[0].hash
            key = (about, step.value)
            if step in (hm.Next.WAIT, hm.Next.NOTHING, hm.Next.REVISE) or key in self._acted:
                continue
            self._acted.add(key)
            if step is hm.Next.PROCEED:
                await self.replica.append_many(
                    [
                        (hm.RESOLUTION, _resolution(thread, "proceed", why)),
                        (cl.PROGRESS, te.outcome_body(grant.task, grant.token, phase="working")),
                    ]
                )
                log.info("%s: proceeding (%s)", grant.task, why)
            elif step is hm.Next.RELEASE:
                await self.replica.append_many(
                    [
                        (hm.RESOLUTION, _resolution(thread, "release", why)),
                        (cl.RELEASED, cl.token_body(grant.task, grant.token)),
                    ]
                )
                log.info("%s: released (%s)", grant.task, why)
            else:
                await self.replica.append(hm.ESCALATION, _escalation(thread, why, "humans"))
                log.warning("%s: escalated (%s)", grant.task, why)
            await self.refresh()

    # The rule reviewer

    async def _review(self) -> None:
        now = now_ms()
        views = {t: hm.view(th, now, self.limits) for t, th in self.threads.items()}
        in_flight = [
            v.thread.plan
            for v in views.values()
            if v.thread.plan is not None and v.state in IN_FLIGHT and self._working(v)
        ]
        for v in views.values():
            plan = v.thread.plan
            if plan is None or plan.hash in self._reviewed or v.state is not hm.ThreadState.WINDOW:
                continue
            self._reviewed.add(plan.hash)
            if plan.message.author == self.replica.me:
                continue
            task = self.board.view(plan.task)
            waiting = task.waiting_for if task is not None else ()
            raised = {
                str(m.data.get("rule"))
                for m in v.thread.objections(plan)
                if isinstance(m.data.get("rule"), str)
            }
            others = [p for p in in_flight if p is not None and p.hash != plan.hash]
            for finding in review(plan, others, waiting):
                if finding.rule in raised:
                    continue  # another reviewer said it already
                body = {
                    "thread": v.thread.id,
                    "parent": plan.hash,
                    "severity": finding.severity,
                    "reason": finding.reason,
                    "resolve": finding.resolve,
                    "rule": finding.rule,
                }
                if (
                    self.projection.would_take(
                        self.board.board, self.deciders, self._draft(hm.OBJECTION, body)
                    )
                    is None
                ):
                    await self.replica.append(hm.OBJECTION, body)
                    log.info("%s: objected: %s", plan.task, finding.reason)

    def _working(self, v: hm.ThreadView) -> bool:
        """A plan counts as in flight while its task is held and not done."""
        task = self.board.view(v.thread.task) if v.thread.task else None
        return task is not None and task.state not in (
            TaskState.DONE,
            TaskState.CLOSED,
            TaskState.RELEASED,
            TaskState.FAILED,
        )

    # Commands (the control socket)

    def _draft(self, kind: str, body: dict[str, Any]) -> cl.ClaimEntry:
        """The entry as it would be written now, for the fold to judge."""
        lamport = max((m.lamport for t in self.threads.values() for m in t.messages), default=0)
        return cl.ClaimEntry(
            self.replica.me, kind, encode_payload(body), os.urandom(32), now_ms(), lamport + 1
        )

    async def post(self, kind: str, body: dict[str, Any]) -> dict[str, Any]:
        """Write one HMMM entry if the threads would take it; UsageError naming the rule
        it breaks otherwise."""
        await self.refresh()
        why = self.projection.would_take(self.board.board, self.deciders, self._draft(kind, body))
        if why is not None:
            raise UsageError(f"refused, {why}")
        items: list[tuple[str, dict[str, Any]]] = [(kind, body)]
        if kind == hm.PLAN:
            task = self.board.view(str(body["task"]))
            if task is not None and task.state in (TaskState.CLAIMED, TaskState.PLANNING):
                token = (int(body["term"]), int(body["grant"]))
                items.append(
                    (cl.PROGRESS, te.outcome_body(str(body["task"]), token, phase="planning"))
                )
        entries = await self.replica.append_many(items)
        await self.refresh()
        return {"ok": True, "thread": body["thread"], "entry": entries[0].hash.hex()}

    async def plan(self, task: str, text: str, files: list[str], **more: Any) -> dict[str, Any]:
        problem = task_id_problem(task)
        if problem is not None:
            raise UsageError(problem)
        await self.board.claims.refresh()
        grant = self.board.claims.book.live(task, now_ms())
        if grant is None or grant.claimant != self.replica.me:
            raise UsageError(f"this agent holds no live grant on {task}: only its holder plans")
        await self.refresh()
        current = self.threads.get(task)
        body: dict[str, Any] = {
            "thread": task,
            "task": task,
            "term": grant.token[0],
            "grant": grant.token[1],
            "text": text,
            "files": files,
            **{k: v for k, v in more.items() if v is not None},
        }
        if current is not None and current.plan is not None:
            body["replaces"] = current.plan.hash
        return await self.post(hm.PLAN, body)

    def current_plan(self, thread: str) -> bytes:
        found = self.threads.get(thread)
        if found is None or found.plan is None:
            raise UsageError(f"thread {thread!r} has no plan to answer")
        return found.plan.hash


def _resolution(thread: hm.Thread, outcome: str, why: str) -> dict[str, Any]:
    of = thread.plan.hash if thread.plan is not None else None
    return {"thread": thread.id, "outcome": outcome, "why": why, "of": of}


def _escalation(thread: hm.Thread, reason: str, to: str) -> dict[str, Any]:
    return {"thread": thread.id, "reason": reason, "to": to}
