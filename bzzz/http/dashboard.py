"""The mesh dashboard: the page and its script (files in `static/`, served as they are:
no build step, nothing from elsewhere), the node's state as JSON (`/api/v1/state`), and
that state pushed as server-sent events (`/dashboard/events`) whenever it changes.

Everything the page shows is data from others (agent names, task titles from GitHub,
HMMM messages): the script puts it in the page only as text (`textContent`), links only
http(s) URLs, and the page's Content-Security-Policy allows no script but its own.

*Why one poller*: the state is read once a second while any page is open, whatever
the number of pages, and a page gets it only when it changed; between changes a comment
line every 15 s keeps proxies and the page's watchdog from taking the stream for dead."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import AsyncGenerator, Awaitable, Callable
from functools import partial
from importlib import resources
from typing import Any

from bzzz.http.readings import RUNNING, Snapshot, readiness

log = logging.getLogger("bzzz.http")

POLL_S = 1.0
KEEPALIVE_S = 15.0
MAX_STREAMS = 16  # open event streams; the server takes at most 64 connections in all
RETRY_MS = 2000  # what the stream tells a client to wait before it reconnects

STATIC = {
    "/dashboard": ("dashboard.html", "text/html; charset=utf-8"),
    "/dashboard/dashboard.js": ("dashboard.js", "text/javascript; charset=utf-8"),
    "/dashboard/dashboard.css": ("dashboard.css", "text/css; charset=utf-8"),
}
# The page runs its own script and styles only, talks to its own origin only, and may
# not be framed (its token is in its memory).
CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; "
    "img-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
)
PAGE_HEADERS = (
    ("Content-Security-Policy", CSP),
    ("Referrer-Policy", "no-referrer"),
    ("X-Frame-Options", "DENY"),
)


def static_file(name: str) -> bytes | None:
    """A file of the page, or None when this installation lacks it."""
    try:
        return (resources.files("bzzz.http") / "static" / name).read_bytes()
    except (FileNotFoundError, NotADirectoryError, ModuleNotFoundError):
        return None


def _hex(key: bytes | None) -> str | None:
    return key.hex() if key is not None else None


def state_of(s: Snapshot, max_lag: int) -> dict[str, Any]:
    """The node's state as the page reads it (a snapshot taken with `detail`)."""
    checks = readiness(s, max_lag)
    node = {
        "agent_id": s.agent_id.hex(),
        "name": s.name,
        "role": s.role,
        "cluster": s.cluster,
        "member": s.member,
        "ready": all(c.ok for c in checks),
        "reasons": [c.detail for c in checks if not c.ok],
    }
    if s.phase != RUNNING or s.detail is None:
        return {"phase": s.phase, "node": node}
    d = s.detail
    return {
        "phase": s.phase,
        "node": node,
        "election": {
            "term": s.term,
            "role": s.election_role,
            "leader": _hex(s.leader),
            "leader_name": s.leader_name,
            "leader_proven": s.leader_proven,
            "proven_terms": s.proven_terms,
            "leader_changes": s.leader_changes,
        },
        "counts": {
            "members": s.members,
            "logs": s.logs,
            "appended": s.appended,
            "ingested": s.ingested,
            "peers_connected": len(s.peers),
            "grants": s.grants,
            "refusals": s.refusals,
            "live_claims": s.live_claims,
            "pending_requests": s.pending_requests,
            "escalations": s.escalations,
            "tasks": dict(s.tasks),
            "threads": dict(s.threads),
            "alerts": dict(s.alerts),
            "audit_findings": dict(s.findings),
        },
        "agents": [
            {
                "agent_id": a.agent_id.hex(),
                "name": a.name,
                "role": a.role,
                "me": a.me,
                "connected": a.connected,
                "leader": a.leader,
                "head": a.head,
                "state": a.state,
                "tasks": list(a.tasks),
                "we_lack": a.we_lack,
                "they_lack": a.they_lack,
            }
            for a in d.agents
        ],
        "tasks": [
            {
                "id": t.id,
                "title": t.title,
                "state": t.state,
                "holder": _hex(t.holder),
                "holder_name": t.holder_name,
                "priority": t.priority,
                "url": t.url,
            }
            for t in d.tasks
        ],
        "tasks_total": d.tasks_total,
        "threads": [
            {
                "id": t.id,
                "task": t.task,
                "state": t.state,
                "why": t.why,
                "messages": t.messages,
                "participants": list(t.participants),
                "last_author": t.last_author,
                "last_kind": t.last_kind,
                "last_text": t.last_text,
            }
            for t in d.threads
        ],
        "threads_live": d.threads_live,
        "heads": [
            {"agent_id": author.hex(), "name": name, "seq": seq} for author, name, seq in d.heads
        ],
    }


def encode_state(state: dict[str, Any]) -> bytes:
    return json.dumps(state, ensure_ascii=False, sort_keys=True).encode()


class TooManyStreams(Exception):
    pass


class StatePusher:
    """The state, read by one poller while any stream is open, and the streams that get
    it: an `event: state` with the JSON whenever it changed, a comment line to keep an
    idle stream alive."""

    def __init__(
        self,
        read: Callable[[], Awaitable[dict[str, Any]]],
        poll_s: float = POLL_S,
        keepalive_s: float = KEEPALIVE_S,
        max_streams: int = MAX_STREAMS,
    ) -> None:
        self._read = read
        self.poll_s, self.keepalive_s, self.max_streams = poll_s, keepalive_s, max_streams
        self._data = b""
        self._version = 0
        self._changed = asyncio.Condition()
        self.streams = 0
        self._poller: asyncio.Task[None] | None = None

    async def _poll(self) -> None:
        while True:
            try:
                data = encode_state(await self._read())
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("http: reading the dashboard's state failed")
            else:
                if data != self._data:
                    async with self._changed:
                        self._data = data
                        self._version += 1
                        self._changed.notify_all()
            await asyncio.sleep(self.poll_s)

    def open(self) -> Callable[[], AsyncGenerator[bytes, None]]:
        """A stream's body; raises `TooManyStreams` when `max_streams` are open."""
        if self.streams >= self.max_streams:
            raise TooManyStreams
        return self._events

    async def _events(self) -> AsyncGenerator[bytes, None]:
        self.streams += 1
        try:
            if self._poller is None or self._poller.done():
                self._poller = asyncio.create_task(self._poll())
            yield f"retry: {RETRY_MS}\n: stream open\n\n".encode()
            seen = 0
            while True:
                async with self._changed:
                    if self._version == seen:
                        with contextlib.suppress(TimeoutError):
                            async with asyncio.timeout(self.keepalive_s):
                                await self._changed.wait_for(partial(self._moved_from, seen))
                    version, data = self._version, self._data
                if version == seen:
                    yield b": keep-alive\n\n"
                    continue
                seen = version
                yield b"event: state\ndata: " + data + b"\n\n"
        finally:
            self.streams -= 1
            if self.streams == 0 and self._poller is not None:
                self._poller.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await self._poller
                self._poller = None
                self._data, self._version = b"", 0

    def _moved_from(self, seen: int) -> bool:
        return self._version != seen

    async def stop(self) -> None:
        if self._poller is not None:
            self._poller.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._poller
            self._poller = None
