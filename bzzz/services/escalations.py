"""Escalations reach people: the admin, and only it, posts each `hmmm.escalation` to the
configured webhooks (N8N, Slack, any JSON receiver), retrying with backoff until one
answers 2xx, and records each delivery as `hmmm.delivered` in its log. A new admin (or a
restarted one) reads those records and posts only what is still owed, and the
escalation's entry hash is the idempotency key, so a receiver can drop a repeat that a
crash between the post and its record may cause.

Every HAP (issue 22) and `bzzz hmmm threads` show escalations from the logs directly.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from bzzz.clock import now_ms
from bzzz.domain import hmmm as hm
from bzzz.domain.payload import payload_map
from bzzz.errors import BzzzError, StoreError
from bzzz.services.background import Background
from bzzz.services.election import ElectionRunner
from bzzz.services.hmmm import HmmmService
from bzzz.services.ports import Notifier, Replica

log = logging.getLogger("bzzz.escalations")
DELIVERED = "hmmm.delivered"  # {term, escalation, target}: the admin posted it, 2xx
EVENT = "hmmm.escalation"
TICK_S = 0.25  # how soon an escalation entry is posted
FIRST_RETRY_S = 2.0
MAX_RETRY_S = 300.0
MAX_TRANSCRIPT = 50  # messages in a payload: the latest


@dataclass
class _Owed:
    failures: int = 0
    at: float = 0.0  # monotonic time of the next attempt


def backoff_s(failures: int, retry_after: float | None, rng: random.Random) -> float:
    """The wait before the next attempt: exponential from FIRST_RETRY_S, jittered in the
    upper half, capped, and never shorter than what the receiver asked for."""
    base = min(FIRST_RETRY_S * 2 ** max(failures - 1, 0), MAX_RETRY_S)
    wait = base * (0.5 + rng.random() / 2)
    return float(max(wait, min(retry_after or 0.0, 6 * 3600.0)))


def payload_of(
    thread: hm.Thread, escalation: hm.Message, names: dict[bytes, str]
) -> dict[str, Any]:
    """What a receiver gets: the task, the thread, the reason, who is asked, and the
    transcript (the latest messages, each with its author, time and entry hash)."""
    return {
        "event": EVENT,
        "task": thread.task,
        "thread": thread.id,
        "reason": escalation.text,
        "to": escalation.data.get("to") if isinstance(escalation.data.get("to"), str) else None,
        "escalation": escalation.hash.hex(),
        "escalated_by": escalation.author.hex(),
        "escalated_by_name": names.get(escalation.author),
        "ts": escalation.ts,
        "transcript": [
            {
                "entry": m.hash.hex(),
                "author": m.author.hex(),
                "author_name": names.get(m.author),
                "kind": m.kind,
                "ts": m.ts,
                "text": m.text,
            }
            for m in thread.messages[-MAX_TRANSCRIPT:]
        ],
        "see": f"bzzz hmmm transcript {thread.id} --verify",
    }


class EscalationService:
    def __init__(
        self,
        replica: Replica,
        election: ElectionRunner,
        hmmm: HmmmService,
        notifiers: Sequence[Notifier],
        rng: random.Random | None = None,
    ) -> None:
        self.replica = replica
        self.election = election
        self.hmmm = hmmm
        self.notifiers = list(notifiers)
        self.rng = rng or random.Random()
        self._admin = asyncio.Event()
        self._owed: dict[tuple[bytes, str], _Owed] = {}
        self._feed = replica.feed([DELIVERED])
        self._delivered: set[tuple[bytes, str]] = set()
        self._background = Background()
        self.posts = 0  # attempts, for status and tests

    async def start(self) -> None:
        if self.notifiers:
            self._background.run(self._loop())

    async def stop(self) -> None:
        await self._background.stop()

    async def set_admin(self, on: bool) -> None:
        if on:
            self._admin.set()
        else:
            self._admin.clear()

    async def _read_records(self) -> None:
        proof = await self.election.leadership()
        leaders = {p.leader for p in proof.proven.values()}
        for entry in await self._feed.fresh():
            data = payload_map(entry.body)
            if data is None or entry.author not in leaders:
                continue
            escalation, target = data.get("escalation"), data.get("target")
            if isinstance(escalation, bytes) and isinstance(target, str):
                self._delivered.add((escalation, target))

    def _term_led(self) -> int | None:
        e = self.election.election
        if e.leader != self.replica.me or not e.has_lease(now_ms()):
            return None
        return e.term

    async def _loop(self) -> None:
        while True:
            await self._admin.wait()
            await asyncio.sleep(TICK_S)
            try:
                await self._read_records()
                await self.deliver_owed()
            except StoreError as error:
                log.error("escalations: %s", error)
            except BzzzError as error:
                log.error("escalations: %s", error)
            except Exception:
                log.exception("escalations: unexpected error; going on")

    async def deliver_owed(self) -> None:
        names = {m.agent_id: m.name for m in self.replica.membership.members.values()}
        for thread in list(self.hmmm.threads.values()):
            for message in thread.messages:
                if message.kind != hm.ESCALATION:
                    continue
                for notifier in self.notifiers:
                    key = (message.hash, notifier.name)
                    if key in self._delivered:
                        continue
                    owed = self._owed.setdefault(key, _Owed())
                    if time.monotonic() < owed.at:
                        continue
                    term = self._term_led()
                    if term is None:
                        return
                    await self._post(thread, message, notifier, owed, names, term)

    async def _post(
        self,
        thread: hm.Thread,
        message: hm.Message,
        notifier: Notifier,
        owed: _Owed,
        names: dict[bytes, str],
        term: int,
    ) -> None:
        self.posts += 1
        result = await notifier.post(message.hash.hex(), EVENT, payload_of(thread, message, names))
        key = (message.hash, notifier.name)
        if result.delivered:
            body = {"term": term, "escalation": message.hash, "target": notifier.name}
            await self.replica.append(DELIVERED, body)
            self._delivered.add(key)
            self._owed.pop(key, None)
            log.info("escalation of %s delivered to %s", thread.id, notifier.name)
            return
        owed.failures += 1
        wait = backoff_s(owed.failures, result.retry_after_s, self.rng)
        owed.at = time.monotonic() + wait
        log.warning(
            "escalation of %s not delivered to %s (%s); again in %.0f s",
            thread.id,
            notifier.name,
            result.error,
            wait,
        )
