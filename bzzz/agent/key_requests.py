"""What the running agent answers about keys: which role keys it holds and the admin
key's ceremonies (`keys_status`), the split (on the admin's node), a request to
reconstruct, a holder's release, and sealing for `append`."""

from __future__ import annotations

from typing import Any

from bzzz.agent.arguments import Answer, seconds
from bzzz.domain.membership import Membership
from bzzz.errors import UsageError
from bzzz.services.keys import KeyService

NOT_RUNNING = (
    "this agent runs no key service (it was started without the keys step: "
    "see bzzz/runtime/keys.py)"
)


def resolve_member(text: str, membership: Membership) -> bytes:
    """A member named by its agent id, a unique prefix of it (4+ hex digits) or its name."""
    wanted = text.strip()
    members = membership.members.values()
    by_name = [m.agent_id for m in members if m.name == wanted]
    if len(by_name) == 1:
        return by_name[0]
    lowered = wanted.lower()
    if len(lowered) >= 4 and all(c in "0123456789abcdef" for c in lowered):
        by_id = [m.agent_id for m in members if m.agent_id.hex().startswith(lowered)]
        if len(by_id) == 1:
            return by_id[0]
        if len(by_id) > 1:
            raise UsageError(f"{wanted!r} starts several members' ids; give more digits")
    if len(by_name) > 1:
        raise UsageError(f"{wanted!r} names several members; give an agent id")
    raise UsageError(f"{wanted[:80]!r}: no member has this name or id (`bzzz member list`)")


class KeyRequests:
    def __init__(self, keys: KeyService | None) -> None:
        self.keys = keys

    def _service(self) -> KeyService:
        if self.keys is None:
            raise UsageError(NOT_RUNNING)
        return self.keys

    async def status(self, _: dict[str, Any]) -> Answer:
        return {"ok": True, "keys": await self._service().status()}

    async def split(self, request: dict[str, Any]) -> Answer:
        keys = self._service()
        holders, threshold = request.get("holders"), request.get("threshold")
        if not isinstance(holders, list) or not all(isinstance(h, str) for h in holders):
            raise UsageError('keys_split needs {"holders": [id or name, ...], "threshold": n}')
        if type(threshold) is not int:
            raise UsageError("--threshold: a whole number")
        membership = keys.replica.membership
        resolved = [resolve_member(h, membership) for h in holders]
        return {"ok": True, **await keys.split(resolved, threshold)}

    async def reconstruct(self, request: dict[str, Any]) -> Answer:
        keys = self._service()
        reason = request.get("reason")
        if not isinstance(reason, str):
            raise UsageError("--reason: say why the admin key is needed")
        wait = seconds(request.get("wait", 0))
        asked = await keys.request_reconstruct(reason)
        outcome = None
        if wait > 0:
            outcome = await keys.wait_outcome(bytes.fromhex(asked["request"]), wait)
        return {"ok": True, **asked, "outcome": outcome}

    async def release(self, request: dict[str, Any]) -> Answer:
        keys = self._service()
        wanted = request.get("request")
        if not isinstance(wanted, str):
            raise UsageError('keys_release needs {"request": the request\'s entry id}')
        return {"ok": True, **await keys.release(wanted)}

    async def seal(self, kind: str, data: dict[str, Any], role: str) -> dict[str, Any]:
        """The envelope body for an `append` with `seal_for`."""
        return await self._service().seal(kind, data, role)
