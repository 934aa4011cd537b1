"""The board service: every node keeps its task board (a projection) current, answers
what the board shows, and lets the holder of a task report on it (a phase, done,
failed), each report carrying the token of its hold."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any

from bzzz.clock import now_ms
from bzzz.domain import board as bd
from bzzz.domain import claims as cl
from bzzz.domain import leadership as lead
from bzzz.domain import task_entries as te
from bzzz.domain.tasks import TaskEvent, TaskState, step, task_id_problem
from bzzz.errors import BzzzError, UsageError
from bzzz.projections.board import KINDS as WATCHED
from bzzz.projections.board import BoardProjection
from bzzz.services.background import Background
from bzzz.services.claims import ClaimService
from bzzz.services.election import ElectionRunner
from bzzz.services.ports import Replica

ERROR_PAUSE_S = 1.0  # after an unexpected error, before the loop goes on
log = logging.getLogger("bzzz.board")
REPORTED = {te.COMPLETED: TaskEvent.COMPLETED, te.FAILED: TaskEvent.FAILED}
REFRESH_S = 1.0  # with nothing new, how often leases are looked at again
MAX_REPORTED = 100  # ignored entries logged; the rest are counted


class BoardService:
    def __init__(self, replica: Replica, election: ElectionRunner, claims: ClaimService) -> None:
        self.replica = replica
        self.election = election
        self.claims = claims
        self.projection = BoardProjection(replica.feed(WATCHED).fresh)
        self.changed = asyncio.Event()  # set when the board may have changed; readers clear
        self._listeners: list[asyncio.Event] = [self.changed]
        self._wake = replica.watch([*WATCHED, *lead.KINDS])
        self._reading = asyncio.Lock()
        self._reported = 0
        self._let_go_of: set[tuple[str, cl.Token]] = set()  # releases written
        self._background = Background()

    @property
    def board(self) -> bd.Board:
        return self.projection.board

    def listen(self) -> asyncio.Event:
        """An event of one's own, set whenever the board may have changed."""
        event = asyncio.Event()
        self._listeners.append(event)
        return event

    async def start(self) -> None:
        await self.refresh()
        self._background.run(self._loop())

    async def stop(self) -> None:
        await self._background.stop()

    async def _loop(self) -> None:
        while True:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(REFRESH_S):
                    await self._wake.wait()
            self._wake.clear()
            try:
                await self.refresh()
                await self._let_go()
            except BzzzError as error:  # this round failed; the next may not
                log.error("board: %s", error)
            except Exception:  # a bug must not end the duty for the node's lifetime
                log.exception("board: unexpected error; going on")
                await asyncio.sleep(ERROR_PAUSE_S)

    async def refresh(self) -> None:
        async with self._reading:
            proof = await self.election.leadership()
            leaders = {term: p.leader for term, p in proof.proven.items()}
            changed = await self.projection.update(leaders, proof.ends())
        ignored = self.board.ignored
        while self._reported < min(len(ignored), MAX_REPORTED):
            # Often transient: an entry that came before the grant it answers is folded
            # again when the grant arrives. `bzzz task show` tells what stands.
            log.debug("board: ignored %s", ignored[self._reported])
            self._reported += 1
        if changed:
            for event in self._listeners:
                event.set()

    async def _let_go(self) -> None:
        """Release our grants on tasks that are closed at the source or done (a grant
        made from a board that had not seen the completion yet)."""
        items = []
        for grant in self.claims.book.live_grants(now_ms(), self.replica.me):
            task = self.board.tasks.get(grant.task)
            over = task is not None and task.state in (TaskState.CLOSED, TaskState.DONE)
            if over and (grant.task, grant.token) not in self._let_go_of:
                self._let_go_of.add((grant.task, grant.token))
                items.append((cl.RELEASED, cl.token_body(grant.task, grant.token)))
                assert task is not None
                log.info("released %s: it is %s", grant.task, task.state.value)
        if items:
            await self.replica.append_many(items)
            await self.claims.refresh()

    # What the board shows

    def views(self, now: int | None = None) -> list[bd.TaskView]:
        return self.board.views(now_ms() if now is None else now, self.live)

    def view(self, task: str, now: int | None = None) -> bd.TaskView | None:
        if task not in self.board.tasks:
            return None
        return self.board.view(task, now_ms() if now is None else now, self.live)

    def live(self, task: str) -> cl.Grant | None:
        return self.claims.book.live(task, now_ms())

    async def push_problem(self, task: str, token: cl.Token, agent: bytes) -> str | None:
        """Why a push of `task`'s branch by `agent` with `token` must be refused, or
        None: the token must be of `agent`'s live hold (the newest grant, or an earlier
        token of the same uninterrupted hold, re-issued by a new leader)."""
        await self.claims.refresh()
        await self.refresh()
        grant = self.live(task)
        if grant is None:
            return f"{task} has no live grant: the work belongs to whoever holds it next"
        if grant.claimant != agent:
            return f"{task} is held by another agent now (token {list(grant.token)})"
        if token == grant.token:
            return None
        held = self.board.tasks.get(task)
        hold = held.hold if held is not None else None
        if hold is not None and hold.holder == agent and token in hold.tokens:
            return None
        return f"token {list(token)} was superseded by {list(grant.token)}"

    def vet(self, task: str) -> str | None:
        """Why the admin must not grant `task` now, or None. A name that is not on the
        board (a claim on anything else) is the claim book's business alone."""
        view = self.view(task)
        if view is None and task_id_problem(task) is None:
            return f"{task} is not on the task board (yet): `bzzz task sync`, then ask again"
        if view is None or view.claimable or view.state in bd.HELD:
            return None  # held: the claim book says by whom
        if view.state is TaskState.BLOCKED:
            return f"{task} is blocked: waiting for {', '.join(view.waiting_for)}"
        return f"{task} is {view.state.value}"

    # The holder's reports

    async def report(self, task: str, kind: str, **fields: Any) -> dict[str, Any]:
        """Write a holder's entry (`task.completed`, `task.failed`, a phase) with the
        token of our hold; refused when we hold no live grant on the task."""
        problem = task_id_problem(task)
        if problem is not None:
            raise UsageError(problem)
        await self.claims.refresh()
        await self.refresh()
        grant = self.claims.book.live(task, now_ms())
        if grant is None or grant.claimant != self.replica.me:
            raise UsageError(
                f"this agent holds no live grant on {task}: ask for one with "
                f"`bzzz claim request {task}`"
            )
        view = self.view(task)
        if view is None:
            raise UsageError(f"{task} is not on the task board (`bzzz task list`)")
        event = REPORTED.get(kind) or TaskEvent(str(fields.get("phase")))
        problem = step(view.state, event)
        if not isinstance(problem, TaskState):
            raise UsageError(f"{task}: {problem}")
        items = [(kind, te.outcome_body(task, grant.token, **fields))]
        if kind in REPORTED:  # the work is over: so is the claim
            items.append((cl.RELEASED, cl.token_body(task, grant.token)))
        entry = (await self.replica.append_many(items))[0]
        await self.refresh()
        after = self.view(task)
        return {
            "ok": True,
            "task": task,
            "token": list(grant.token),
            "entry": entry.hash.hex(),
            "state": after.state.value if after else None,
        }

    async def request_sync(self) -> int:
        """Ask the admin to poll its sources now; the Lamport clock of the request."""
        entry = await self.replica.append(te.SYNC_REQUESTED, {})
        return entry.lamport

    async def wait_synced(self, after: int, timeout: float) -> list[bd.Cursor]:
        """The sources' sync notes written after Lamport `after` (waits for the first)."""
        listener = self.listen()
        deadline = asyncio.get_running_loop().time() + timeout
        while True:
            done = [c for c in self.board.cursors.values() if c.lamport > after]
            left = deadline - asyncio.get_running_loop().time()
            if done or left <= 0:
                self._listeners.remove(listener)
                return done
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(left):
                    await listener.wait()
            listener.clear()
