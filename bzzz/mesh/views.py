"""What the mesh knows of itself and its peers, as data for status (the front ends
render it: `bzzz.cli.views`)."""

from __future__ import annotations

from dataclasses import dataclass

from bzzz.domain.presence import Availability


@dataclass(frozen=True)
class PeerView:
    """A connected peer as a session sees it, for status."""

    agent_id: bytes
    name: str
    address: str
    listen: str | None
    outbound: bool
    connected_at_ms: int
    last_heard_ms: int
    ours: dict[bytes, int]
    theirs: dict[bytes, int]
    availability: Availability | None


@dataclass(frozen=True)
class DialedView:
    """An address we dial and are not connected to."""

    agent_id: bytes | None
    address: str  # empty when the member has announced none
    last_error: str | None
    name: str | None = None  # the member's, once known


@dataclass(frozen=True)
class MeshView:
    agent_id: bytes
    name: str
    role: str
    authority: str | None
    cluster: str | None
    cluster_id: bytes | None
    member: bool
    listen: str
    started_ms: int
    store: str
    heads: dict[bytes, int]
    members: int
    peers: list[PeerView]
    unreached: list[DialedView]
