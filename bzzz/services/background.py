"""The one background loop a service runs between its start and its stop, the shape
most of those loops share (`rounds`), and the services built on it whose duties run
while this node is the admin (`AdminRounds`)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from abc import ABC, abstractmethod
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any

from bzzz.errors import BzzzError


class Background:
    def __init__(self) -> None:
        self._task: asyncio.Task[None] | None = None

    def run(self, loop: Coroutine[Any, Any, None]) -> None:
        self._task = asyncio.create_task(loop)

    async def stop(self) -> None:
        """Cancel the loop and wait until it has ended."""
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None


async def rounds(
    log: logging.Logger,
    name: str,
    news: asyncio.Event,
    tick_s: float,
    one_round: Callable[[], Awaitable[None]],
) -> None:
    """Run `one_round` on news, or every `tick_s` without: forever, until cancelled. A
    round's error is logged and the next round runs (a bug must not end a node's duty
    for its lifetime)."""
    while True:
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(tick_s):
                await news.wait()
        news.clear()
        try:
            await one_round()
        except BzzzError as error:
            log.error("%s: %s", name, error)
        except Exception:
            log.exception("%s: unexpected error; going on", name)


class AdminRounds(ABC):
    """A service that runs a round on news (or every `tick_s` without), some of whose
    duties are the elected admin's: `start` reads what is there and starts the rounds,
    `set_admin` (the runtime's leadership callback) turns the admin's duties on or off
    and wakes a round at once."""

    def __init__(self, name: str, log: logging.Logger, news: asyncio.Event, tick_s: float):
        self._name, self._log, self._tick_s = name, log, tick_s
        self._news = news
        self._admin = asyncio.Event()
        self._background = Background()

    @abstractmethod
    async def refresh(self) -> None:
        """Take what arrived."""

    @abstractmethod
    async def _round(self) -> None:
        """One round: what arrived, and what is owed."""

    async def start(self) -> None:
        await self.refresh()
        self._background.run(rounds(self._log, self._name, self._news, self._tick_s, self._round))

    async def stop(self) -> None:
        await self._background.stop()

    async def set_admin(self, on: bool) -> None:
        if on:
            self._admin.set()
            self._news.set()
        else:
            self._admin.clear()
