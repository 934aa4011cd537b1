"""An agent's profile: what it can do (capabilities, models) and how much at once. It is
logged as an `agent.profile` entry when it changes, and announced in availability
messages; the claim rules read its `max_tasks`."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from bzzz.domain.payload import payload_map

PROFILE = "agent.profile"


@dataclass(frozen=True, slots=True)
class Profile:
    capabilities: tuple[str, ...] = ()
    models: tuple[str, ...] = ()
    max_tasks: int = 1

    def body(self) -> dict[str, Any]:
        return {
            "capabilities": sorted(self.capabilities),
            "models": sorted(self.models),
            "max_tasks": self.max_tasks,
        }


def max_tasks_of(body: bytes) -> int | None:
    """The `max_tasks` a profile entry's body gives, if it is well formed."""
    data = payload_map(body)
    count = data.get("max_tasks") if data is not None else None
    return count if type(count) is int and count >= 0 else None
