"""Task intake: the elected admin, and only it, polls the task sources and writes what
changed (`task.opened`, `task.updated`, `task.closed`, then `task.synced` with the
source's cursor), and shows holds where people look (the mirrors). A new admin resumes
from the cursors and mirror notes the log holds: nothing is listed or posted twice.

Writes happen only while this node leads a term the logs prove and holds its lease,
and the entries name that term: an admin that lost its lease writes nothing, and the
board ignores task entries of anyone who did not lead their term.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass

from bzzz.clock import now_ms
from bzzz.domain import board as bd
from bzzz.domain import task_entries as te
from bzzz.domain.intake import SourcePoll, Tenure, plan_sync
from bzzz.domain.tasks import TaskState
from bzzz.errors import BzzzError, ConfigError, SourceError, StoreError
from bzzz.services.background import Background
from bzzz.services.board import BoardService
from bzzz.services.election import ElectionRunner
from bzzz.services.ports import Replica, TaskMirror, TaskSource

ERROR_PAUSE_S = 1.0  # after an unexpected error, before the loop goes on
log = logging.getLogger("bzzz.intake")
IDLE_S = 1.0  # an admin looks at least this often for due polls and mirror work
MIRROR_RETRY_S = 30.0  # after a mirror failed
# A hold whose grant is not live is shown released only after this long: a failover
# leaves grants unlive until the new admin re-issues them.
LAPSE_GRACE_MS = 30_000


@dataclass
class _Due:
    at: float = 0.0  # monotonic time of the next poll
    failures: int = 0
    asked: int = 0  # the latest request to poll now that was taken up


class IntakeService:
    def __init__(
        self,
        replica: Replica,
        election: ElectionRunner,
        board: BoardService,
        sources: Sequence[TaskSource],
        mirrors: Sequence[TaskMirror],
        poll_s: float,
    ) -> None:
        self.replica = replica
        self.election = election
        self.board = board
        self.sources = list(sources)
        self.mirrors = list(mirrors)
        self.poll_s = poll_s
        self._admin = asyncio.Event()
        self._changed = board.listen()
        self._due = {s.name: _Due() for s in self.sources}
        self._mirror_after = 0.0
        self._not_live: dict[bytes, int] = {}  # claim -> when its grant was first not live
        self._background = Background()
        self._term = 0
        self.polls = 0  # for status and tests
        names = [s.name for s in self.sources]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ConfigError(
                f"tasks.sources: two sources are named {dupes[0]!r}; give each a name"
            )

    async def start(self) -> None:
        if self.sources or self.mirrors:
            self._background.run(self._loop())

    async def stop(self) -> None:
        await self._background.stop()

    async def set_admin(self, on: bool) -> None:
        if on:
            self._admin.set()
            for due in self._due.values():  # a new admin polls at once
                due.at = 0.0
            self._mirror_after = 0.0
        else:
            self._admin.clear()
        if self.sources:
            log.info(
                "admin duties %s: polling %d task sources", "on" if on else "off", len(self.sources)
            )

    def _term_led(self) -> int | None:
        """The term we lead, proven by the logs and leased; None otherwise."""
        e = self.election.election
        if e.leader != self.replica.me or not e.has_lease(now_ms()):
            return None
        return e.term if self.board.claims.book.current_term == e.term else None

    async def _loop(self) -> None:
        while True:
            await self._admin.wait()
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(IDLE_S):
                    await self._changed.wait()
            self._changed.clear()
            try:
                await self.board.refresh()
                if self._term_led() is None:
                    continue
                for source in self.sources:
                    if self._is_due(source.name):
                        await self._sync_one(source)
                if self.mirrors and time.monotonic() >= self._mirror_after:
                    await self._mirror()
            except BzzzError as error:  # this round failed; the next may not
                log.error("intake: %s", error)
            except Exception:  # a bug must not end the duty for the node's lifetime
                log.exception("intake: unexpected error; going on")
                await asyncio.sleep(ERROR_PAUSE_S)

    def _is_due(self, name: str) -> bool:
        """Due by the clock, or asked to poll now (each request answered once)."""
        due = self._due[name]
        cursor = self.board.board.cursors.get(name)
        requested = self.board.board.sync_requested
        asked = (cursor is None or requested > cursor.lamport) and requested > due.asked
        return asked or time.monotonic() >= due.at

    async def _sync_one(self, source: TaskSource) -> None:
        """Poll one source; whatever goes wrong with it, the others and the mirror go
        on, and it is tried again after a pause, not on every round."""
        due = self._due[source.name]
        due.asked = self.board.board.sync_requested
        try:
            await self._sync(source)
        except StoreError:
            raise  # the store, not the source: the whole round failed
        except Exception as error:
            due.failures += 1
            due.at = time.monotonic() + min(self.poll_s * 2**due.failures, 3600.0)
            if isinstance(error, BzzzError):
                log.error("task source %s: %s", source.name, error)
            else:
                log.exception("task source %s: unexpected error", source.name)

    async def _sync(self, source: TaskSource) -> None:
        due = self._due[source.name]
        last = self.board.board.cursors.get(source.name)
        self.polls += 1
        try:
            poll = await source.poll(last.cursor if last else None)
        except SourceError as error:
            due.failures += 1
            wait = error.retry_after_s or min(self.poll_s * 2**due.failures, 3600.0)
            due.at = time.monotonic() + wait
            log.warning("task source %s: %s (next try in %.0f s)", source.name, error, wait)
            poll = SourcePoll(
                cursor=None,
                problems=(str(error),),
                retry_at_ms=now_ms() + int(wait * 1000),
            )
        else:
            due.failures = 0
            due.at = time.monotonic() + self.poll_s
            if poll.retry_at_ms is not None:
                due.at = max(due.at, time.monotonic() + (poll.retry_at_ms - now_ms()) / 1000)
            for problem in poll.problems:
                if not last or problem not in last.problems:
                    log.warning("task source %s: %s", source.name, problem)
        term = self._term_led()
        if term is None:
            return  # the lease lapsed while we polled: the next admin polls again
        plan = plan_sync(self.board.board, source.name, poll, term)
        entries = plan.entries
        batches = [
            entries[i : i + te.ENTRIES_PER_BATCH]
            for i in range(0, len(entries), te.ENTRIES_PER_BATCH)
        ] or [[]]
        if plan.synced is not None:
            batches[-1] = [*batches[-1], (te.SYNCED, plan.synced)]
        for batch in batches:
            if not batch:
                continue
            if self._term_led() != term:
                log.warning("lost the lease during a sync of %s; stopping", source.name)
                return
            await self.replica.append_many(batch)
        if entries:
            log.info("task source %s: %d changes", source.name, len(entries))
        await self.board.refresh()

    async def _mirror(self) -> None:
        """Show each hold where people look, once per hold and step."""
        board = self.board.board
        names = {m.agent_id: m.name for m in self.replica.membership.members.values()}
        now = now_ms()
        for task_id, task in list(board.tasks.items()):
            mirror = next((m for m in self.mirrors if m.mirrors(task_id)), None)
            if mirror is None:
                continue
            view = board.view(task_id, now, self.board.live)
            held = task.hold is not None and view.holder is None and task.state in bd.HELD
            since = self._not_live.setdefault(task.hold.claim, now) if held and task.hold else None
            if task.hold is not None and not held:
                self._not_live.pop(task.hold.claim, None)
            lapsed = since is not None and now - since >= LAPSE_GRACE_MS
            for hold, step in _mirror_steps(task, view, lapsed):
                term = self._term_led()
                if term is None:
                    return
                tenure = Tenure(
                    task_id,
                    hold.holder.hex(),
                    names.get(hold.holder),
                    hold.claim.hex(),
                    hold.token,
                )
                try:
                    if step == "claimed":
                        await mirror.claimed(tenure)
                    elif step == "released":
                        await mirror.released(tenure)
                    else:
                        await mirror.completed(tenure, task.result or "", task.link)
                except SourceError as error:
                    log.warning("mirror of %s: %s", task_id, error)
                    self._mirror_after = time.monotonic() + (error.retry_after_s or MIRROR_RETRY_S)
                    return
                await self.replica.append(
                    te.MIRRORED, te.mirrored_body(term, task_id, hold.claim, step)
                )
                task.mirrored.add((hold.claim, step))


def _mirror_steps(
    task: bd.BoardTask, view: bd.TaskView, lapsed: bool = True
) -> list[tuple[bd.Hold, str]]:
    """What is still to show of a task's holds, in order. The current hold whose grant
    is not live (`lapsed`: for longer than a failover takes) shows as released."""
    todo: list[tuple[bd.Hold, str]] = []
    holds = [*task.ended, *([task.hold] if task.hold else [])]
    for hold in holds:
        shown = {step for claim, step in task.mirrored if claim == hold.claim}
        if "completed" in shown or "released" in shown:
            continue
        current = hold is task.hold
        if current and task.state is TaskState.DONE:
            todo.append((hold, "completed"))
        elif current and view.holder == hold.holder:
            if "claimed" not in shown:
                todo.append((hold, "claimed"))
        elif "claimed" in shown and (not current or lapsed):
            todo.append((hold, "released"))
    return todo
