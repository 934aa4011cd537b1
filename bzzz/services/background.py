"""The one background loop a service runs between its start and its stop, and the
shape most of those loops share (`rounds`)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
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
