"""The agent's profile in its log: an `agent.profile` entry whenever what it can do
(capabilities, models, how many tasks at once) differs from its last one."""

from __future__ import annotations

import asyncio

from bzzz.domain.payload import decode_payload
from bzzz.domain.profile import PROFILE, Profile
from bzzz.errors import EntryError
from bzzz.services.ports import Replica


async def record_profile(replica: Replica, profile: Profile) -> bool:
    """Log the profile unless the latest one says the same; whether it was logged."""
    body = profile.body()
    latest = await asyncio.to_thread(replica.store.latest, 1, kinds=[PROFILE], author=replica.me)
    if latest:
        try:
            previous = decode_payload(latest[0].decode().body)
        except EntryError:
            previous = None
        if previous == body:
            return False
    await replica.append(PROFILE, body)
    return True
