"""The portal's only way to its node: the control socket (`bzzz/agent/control.py`), the
same requests the `bzzz` commands send. A typed method per request; a refusal is a
`UsageError` with the node's one-line reason."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

from bzzz.agent.control import socket_path
from bzzz.errors import UsageError

MAX_ANSWER = 64 * 1024 * 1024  # a board or a set of threads can be large
ANSWER_TIMEOUT_S = 30.0


class _Line:
    """One connection: one request and one answer at a time."""

    def __init__(self, home: Path) -> None:
        self.home = home
        self._reader: asyncio.StreamReader | None = None
        self._writer: asyncio.StreamWriter | None = None
        self._lock = asyncio.Lock()

    async def ask(self, request: dict[str, Any], timeout: float) -> dict[str, Any]:
        async with self._lock:
            try:
                async with asyncio.timeout(timeout):
                    if self._writer is None:
                        self._reader, self._writer = await asyncio.open_unix_connection(
                            str(socket_path(self.home)), limit=MAX_ANSWER
                        )
                    assert self._reader is not None
                    self._writer.write(json.dumps(request).encode() + b"\n")
                    await self._writer.drain()
                    line = await self._reader.readline()
            except (OSError, TimeoutError, ValueError) as error:
                self.close()
                what = "no answer in time" if isinstance(error, TimeoutError) else str(error)
                raise UsageError(f"the node on {self.home} did not answer: {what}") from None
            if not line:
                self.close()
                raise UsageError(f"the node on {self.home} hung up (did it stop?)")
        try:
            answer = json.loads(line)
        except ValueError:
            raise UsageError(f"the node on {self.home} gave an unreadable answer") from None
        if not isinstance(answer, dict):
            raise UsageError(f"the node on {self.home} gave an unreadable answer")
        if not answer.get("ok"):
            raise UsageError(str(answer.get("error", "the node refused the request")))
        return answer

    def close(self) -> None:
        if self._writer is not None:
            self._writer.close()
        self._reader = self._writer = None


class NodeClient:
    """The requests the portal makes. Reads and writes share one connection; the wait
    for news has its own, so that a long poll never holds up a send."""

    def __init__(self, home: Path) -> None:
        self.home = home
        self._line = _Line(home)
        self._news = _Line(home)

    async def ask(
        self, request: dict[str, Any], timeout: float = ANSWER_TIMEOUT_S
    ) -> dict[str, Any]:
        return await self._line.ask(request, timeout)

    # Reading

    async def status(self) -> dict[str, Any]:
        return dict((await self.ask({"op": "status"}))["status"])

    async def election(self) -> dict[str, Any]:
        return dict((await self.ask({"op": "election"}))["election"])

    async def inbox(self) -> list[dict[str, Any]]:
        return list((await self.ask({"op": "inbox"}))["inbox"])

    async def threads(self) -> list[dict[str, Any]]:
        return list((await self.ask({"op": "threads"}))["threads"])

    async def thread(self, thread: str) -> dict[str, Any]:
        return dict((await self.ask({"op": "thread", "thread": thread}))["thread"])

    async def tasks(self) -> list[dict[str, Any]]:
        return list((await self.ask({"op": "tasks"}))["tasks"])

    async def task(self, task: str) -> dict[str, Any]:
        return dict((await self.ask({"op": "task", "task": task}))["task"])

    async def claims(self) -> dict[str, Any]:
        return await self.ask({"op": "claims"})

    async def ucxl_search(self, pattern: str) -> dict[str, Any]:
        """Every piece of context `pattern` matches: `found` rows and how many `more`."""
        return await self.ask({"op": "ucxl_search", "pattern": pattern})

    async def ucxl_history(self, address: str) -> dict[str, Any]:
        """Every version of the piece of context at `address`, oldest first."""
        return await self.ask({"op": "ucxl_history", "address": address})

    async def changes(self, since: int | None, wait: float) -> int:
        """The node's version once it moved past `since`, or after `wait` seconds."""
        request = {"op": "changes", "since": since, "wait": wait}
        return int((await self._news.ask(request, wait + ANSWER_TIMEOUT_S))["version"])

    # Writing: exactly the requests the `bzzz` commands send

    async def send(self, request: dict[str, Any]) -> dict[str, Any]:
        wait = request.get("wait")
        extra = float(wait) if isinstance(wait, int | float) else 0.0
        return await self.ask(request, ANSWER_TIMEOUT_S + extra)

    def close(self) -> None:
        self._line.close()
        self._news.close()
