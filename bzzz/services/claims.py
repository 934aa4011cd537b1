"""The claim service: every node keeps its claim book (a projection) current; the admin
answers requests while it holds its lease in a term it has proven; holders renew their
grants."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any

from bzzz.clock import now_ms, until_tick
from bzzz.domain import claims as cl
from bzzz.domain import leadership as lead
from bzzz.errors import StoreError, UsageError
from bzzz.projections.claim_book import KINDS as WATCHED
from bzzz.projections.claim_book import ClaimBookProjection
from bzzz.services.background import Background
from bzzz.services.election import ElectionRunner
from bzzz.services.ports import Replica

log = logging.getLogger("bzzz.claims")

# The admin and a node with a request waiting read claim entries as they come; the
# others only keep their book current for status and renewals, and a two-core machine
# running ten agents cannot afford them all re-reading on every claim entry.
IDLE_REFRESH_S = 0.2
RENEW_CHECK_S = 1.0  # with nothing new, only our own renewals are looked at
STALLED_CHECK_S = 0.05  # an admin with requests it could not answer yet looks this often
MAX_ANSWERS = 500


class ClaimService:
    def __init__(self, replica: Replica, election: ElectionRunner, lease_ms: int) -> None:
        self.replica = replica
        self.election = election
        self.lease_ms = lease_ms
        self.claims = ClaimBookProjection(replica.feed(WATCHED).fresh)
        self._admin = False
        self._reissued_term = 0
        # Another leader's grant arrived (or the proven terms changed): a live grant of an
        # earlier term may be new to us, and the leader carries it forward when it learns
        # of it, not only when its term begins (a grant written just before its leader
        # was cut off can reach us through a third node seconds later).
        self._carry_forward = False
        self._waiting: dict[bytes, asyncio.Future[dict[str, Any]]] = {}
        self._renewed: dict[str, int] = {}
        self._background = Background()
        self._wake = replica.watch([*WATCHED, *lead.KINDS])
        self._next_renew = 0.0
        self._reading = asyncio.Lock()
        self._urgent = asyncio.Event()  # a request of ours, or admin duties: no idling
        # Why a task must not be granted now beyond the claim book's rules (the task
        # board's: done, closed, blocked), or None; set by the runtime.
        self.vet: Callable[[str], str | None] | None = None
        # Brings what `vet` reads up to date; awaited before each batch of answers.
        self.before_vet: Callable[[], Awaitable[None]] | None = None

    async def start(self) -> None:
        self._background.run(self._loop())

    async def stop(self) -> None:
        await self._background.stop()

    async def set_admin(self, on: bool) -> None:
        self._admin = on
        log.info("admin duties %s: claim granting", "on" if on else "off")
        self._poke()

    def _poke(self) -> None:
        self._wake.set()
        self._urgent.set()

    async def _loop(self) -> None:
        while True:
            # An admin with requests it could not answer yet (no lease: a new term whose
            # beats are not answered yet) looks again soon, with or without new entries.
            stalled = self._admin and bool(self.book.unanswered)
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(
                    STALLED_CHECK_S if stalled else until_tick(RENEW_CHECK_S)
                ):
                    await self._wake.wait()
            woke = self._wake.is_set() or stalled
            self._wake.clear()
            try:
                if woke:  # claim or election entries came: read them, answer what is pending
                    await self.refresh()
                    if self._admin:
                        await self._answer()
                if time.monotonic() >= self._next_renew:
                    # A little under the period: the next tick is one period away, give
                    # or take the two clocks' rounding.
                    self._next_renew = time.monotonic() + RENEW_CHECK_S * 0.9
                    await self._renew()
            except StoreError as error:
                log.error("claims: %s", error)
            if not (self._admin or self._waiting):
                # Idle: what comes meanwhile is read in one go, unless we need it now.
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(IDLE_REFRESH_S):
                        await self._urgent.wait()
            self._urgent.clear()

    async def refresh(self) -> None:
        async with self._reading:  # the loop and a request may both ask; read once
            await self._refresh_book()

    @property
    def book(self) -> cl.ClaimBook:
        return self.claims.book

    async def _refresh_book(self) -> None:
        new = await self.claims.read()
        proof = await self.election.leadership()
        if any(e.kind == cl.GRANTED and e.author != self.replica.me for e in new):
            self._carry_forward = True
        leaders = {term: p.leader for term, p in proof.proven.items()}
        if self.claims.fold(new, leaders):  # grants' validity changed: all folded anew
            self._carry_forward = True
        self._settle_waiters()

    def _leads_proven_term(self) -> int | None:
        e = self.election.election
        now = now_ms()
        if e.leader != self.replica.me or not e.has_lease(now):
            return None
        return e.term if self.book.current_term == e.term else None

    async def _answer(self) -> None:
        term = self._leads_proven_term()
        if term is None:
            return
        now = now_ms()
        grants: list[cl.Grant] = []
        refusals: list[tuple[str, dict[str, Any]]] = []
        if self._reissued_term != term or self._carry_forward:
            for grant in cl.reissues(self.book, leader=self.replica.me, term=term, now=now):
                grants.append(grant)
                self.book.hold(grant)
            self._reissued_term, self._carry_forward = term, False
        roles, members = self.replica.roles, self.replica.membership.members
        if self.before_vet is not None and self.book.pending():
            await self.before_vet()  # a completion written with its release is seen
        for request in self.book.pending()[:MAX_ANSWERS]:
            member = members.get(request.author)
            problem = self.vet(request.task) if self.vet is not None else None
            answer: cl.Grant | cl.Refusal = (
                cl.Refusal(request.task, request.author, problem, request.hash)
                if problem is not None
                else cl.decide(
                    self.book,
                    request,
                    leader=self.replica.me,
                    term=term,
                    now=now,
                    max_tasks=self.claims.max_tasks.get(request.author, 1),
                    role=roles.get(member.role) if member else None,
                    lease_ms=self.lease_ms,
                )
            )
            if isinstance(answer, cl.Grant):
                grants.append(answer)
                self.book.hold(answer)
            else:
                refusals.append((cl.REFUSED, cl.refusal_body(answer)))
            self.book.answer(request.hash)
        items = [(cl.GRANTED, body) for body in cl.grant_bodies(grants)] + refusals
        if not items:
            return
        if self._leads_proven_term() == term:  # still leased after deciding
            waiting = [g.claimant for g in grants] + [body["claimant"] for _, body in refusals]
            await self.replica.append_many(items, first=waiting)
        else:  # the book now holds answers that were never written: rebuild it
            self.claims.invalidate()

    async def _renew(self) -> None:
        """Keep our own live grants alive: a progress entry each third of the lease."""
        now = now_ms()
        items = []
        for grant in self.book.live_grants(now, self.replica.me):
            claim = self.book.tasks[grant.task]
            third = grant.lease_ms // 3
            due = now - max(claim.grant.ts, claim.renewed_ts) >= third
            if due and self._renewed.get(grant.task, 0) < now - third:
                items.append((cl.PROGRESS, cl.token_body(grant.task, grant.token)))
                self._renewed[grant.task] = now
        if items:
            await self.replica.append_many(items)

    # Requests from the control socket

    async def request(self, task: str, needs: list[str], wait_s: float) -> dict[str, Any]:
        if not task or len(task) > cl.MAX_TASK:
            raise UsageError(f"a task name is 1 to {cl.MAX_TASK} characters")
        # Asking for what our own book shows another agent holding would only earn a
        # refusal, after two entries every node stores: say so at once instead.
        await self.refresh()
        held = self.book.live(task, now_ms())
        if held is not None and held.claimant != self.replica.me:
            whose = held.claimant.hex()[:12]
            return {
                "ok": True,
                "task": task,
                "status": "refused",
                "reason": f"already held by {whose} (token {list(held.token)}), as this "
                "node's claim book shows; not asked",
            }
        leader = self.election.election.leader
        entry = await self.replica.append(
            cl.REQUESTED, cl.request_body(task, needs), first=[leader] if leader else []
        )
        future: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self._waiting[entry.hash] = future
        self._poke()
        try:
            async with asyncio.timeout(wait_s):
                return await future
        except TimeoutError:
            return {
                "ok": True,
                "task": task,
                "status": "pending",
                "reason": "no answer yet: is there a leader? (bzzz election status)",
            }
        finally:
            self._waiting.pop(entry.hash, None)

    def _settle_waiters(self) -> None:
        if not self._waiting:
            return
        answers: dict[bytes, dict[str, Any]] = {}
        for waiting in self._waiting:
            grant = self.book.by_request.get(waiting)
            if grant is not None and self.book.tasks[grant.task].grant == grant:
                answers[waiting] = {"status": "granted", "token": list(grant.token)}
            elif (reason := self.book.refused.get(waiting)) is not None:
                answers[waiting] = {"status": "refused", "reason": reason}
        for request, answer in answers.items():
            future = self._waiting.get(request)
            if future is not None and not future.done():
                future.set_result({"ok": True, **answer})

    async def release(self, task: str) -> dict[str, Any]:
        grant = self.book.live(task, now_ms())
        if grant is None or grant.claimant != self.replica.me:
            raise UsageError(f"this agent holds no live grant on {task!r}")
        await self.replica.append(cl.RELEASED, cl.token_body(task, grant.token))
        return {"ok": True, "task": task, "released": list(grant.token)}

    def status(self) -> dict[str, Any]:
        now = now_ms()
        names = {m.agent_id: m.name for m in self.replica.membership.members.values()}
        rows = []
        for task, claim in sorted(self.book.tasks.items()):
            g = claim.grant
            rows.append(
                {
                    "task": task,
                    "holder": g.claimant.hex(),
                    "name": names.get(g.claimant),
                    "token": list(g.token),
                    "live": self.book.live(task, now) is not None,
                    "expires": claim.expires(),
                    "released": claim.released,
                }
            )
        return {"term": self.book.current_term, "claims": rows, "pending": len(self.book.pending())}
