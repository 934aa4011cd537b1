"""The agent's choice (`agent.auto_claim`): pick the next task from the board and ask
the admin for it, never holding more than `agent.max_tasks` at once.

Candidates are the tasks the board shows claimable (open, released or failed, and not
blocked) whose needs the agent's role fits, most urgent first, then oldest. Agents
racing for one board spread over it: a task another agent has already asked for (its
request is in the claim book, unanswered) is skipped, the pick is random among the
oldest few of the most urgent candidates, and a refused task rests a while before it
is tried again.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time

from bzzz.clock import now_ms
from bzzz.domain import board as bd
from bzzz.domain.claims import may_take
from bzzz.domain.roles import Role
from bzzz.errors import BzzzError
from bzzz.services.background import Background
from bzzz.services.board import BoardService
from bzzz.services.claims import ClaimService
from bzzz.services.ports import Replica

ERROR_PAUSE_S = 1.0  # after an unexpected error, before the loop goes on
log = logging.getLogger("bzzz.chooser")
SPREAD = 4  # the pick is random among this many of the most urgent candidates
REST_S = 30.0  # a refused task is not asked for again before this
ANSWER_WAIT_S = 10.0
IDLE_S = 1.0


def candidates(views: list[bd.TaskView], role: Role | None, skip: set[str]) -> list[bd.TaskView]:
    """The tasks worth asking for: claimable, fitting the role, not in `skip`, of the
    most urgent priority among them, oldest first."""
    fit = [
        v
        for v in views
        if v.claimable and v.id not in skip and may_take(role, v.task.spec.needs) is None
    ]
    return [v for v in fit if v.task.spec.priority == fit[0].task.spec.priority] if fit else []


class AutoClaim:
    def __init__(
        self,
        replica: Replica,
        board: BoardService,
        claims: ClaimService,
        max_tasks: int,
        rng: random.Random | None = None,
    ) -> None:
        self.replica = replica
        self.board = board
        self.claims = claims
        self.max_tasks = max_tasks
        self.rng = rng or random.Random()
        self._changed = board.listen()
        self._resting: dict[str, float] = {}
        self._background = Background()
        self.asked = 0
        self.granted = 0
        self.refused = 0

    async def start(self) -> None:
        self._background.run(self._loop())

    async def stop(self) -> None:
        await self._background.stop()

    def _role(self) -> Role | None:
        member = self.replica.membership.members.get(self.replica.me)
        return self.replica.roles.get(member.role) if member else None

    async def _loop(self) -> None:
        while True:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(IDLE_S * (0.5 + self.rng.random())):
                    await self._changed.wait()
            self._changed.clear()
            try:
                while await self.pick_one():
                    pass
            except BzzzError as error:  # this round failed; the next may not
                log.error("auto-claim: %s", error)
            except Exception:  # a bug must not end the duty for the node's lifetime
                log.exception("auto-claim: unexpected error; going on")
                await asyncio.sleep(ERROR_PAUSE_S)

    async def pick_one(self) -> bool:
        """Ask for one task if we have room and there is one; True when granted."""
        now = time.monotonic()
        self._resting = {t: until for t, until in self._resting.items() if until > now}
        book = self.claims.book
        if book.load(self.replica.me, now_ms()) >= self.max_tasks:
            return False
        await self.board.refresh()  # not a task whose completion arrived a moment ago
        # Not what another agent has asked for already, nor what someone holds.
        skip = {r.task for r in book.pending() if r.author != self.replica.me}
        skip |= set(self._resting) | {g.task for g in book.live_grants(now_ms())}
        found = candidates(self.board.views(), self._role(), skip)
        if not found:
            return False
        choice = self.rng.choice(found[:SPREAD])
        self.asked += 1
        answer = await self.claims.request(choice.id, list(choice.task.spec.needs), ANSWER_WAIT_S)
        if answer.get("status") == "granted":
            self.granted += 1
            log.info("took %s (token %s): %s", choice.id, answer["token"], choice.task.spec.title)
            await self.board.refresh()
            return True
        self.refused += 1
        self._resting[choice.id] = now + REST_S * (0.5 + self.rng.random())
        log.info("not granted %s: %s", choice.id, answer.get("reason", answer.get("status")))
        return False
