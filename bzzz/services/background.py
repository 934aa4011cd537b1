"""The one background loop a service runs between its start and its stop."""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from typing import Any


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
