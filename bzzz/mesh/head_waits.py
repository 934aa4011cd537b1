"""Waits for heads: callers that need this node to hold a log up to some seq (an agent
waiting for an entry it was told of to arrive) park a future here, and the mesh
(`mesh.py`) says when its heads moved, which settles those that are reached."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from typing import Protocol


class HeadsHost(Protocol):
    """Whose heads are waited for (the `Mesh`)."""

    @property
    def heads(self) -> Mapping[bytes, int]: ...


class HeadWaits:
    """The waits not reached yet, each an (author, seq, future)."""

    def __init__(self, host: HeadsHost) -> None:
        self._host = host
        self._waiters: list[tuple[bytes, int, asyncio.Future[None]]] = []

    def settle(self) -> None:
        """The heads moved: end the waits they reach (and those given up on)."""
        if not self._waiters:
            return
        heads = self._host.heads
        waiting = []
        for author, seq, future in self._waiters:
            if heads.get(author, 0) >= seq:
                if not future.done():
                    future.set_result(None)
            elif not future.done():
                waiting.append((author, seq, future))
        self._waiters = waiting

    async def wait(self, author: bytes, seq: int, timeout: float) -> bool:
        """Wait until the host holds `author`'s log up to `seq`; False on timeout."""
        if self._host.heads.get(author, 0) >= seq:
            return True
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiters.append((author, seq, future))
        try:
            async with asyncio.timeout(timeout):
                await future
        except TimeoutError:
            return False
        return True
