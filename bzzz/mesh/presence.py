"""This node's own presence messages, signed for its sessions to send: the heartbeat
(liveness and round-trip timing) and the availability (what it takes on, and its
standing as a leader candidate). Their format is `bzzz.domain.presence`'s; the sessions
(`session.py`) send them and read the peers'."""

from __future__ import annotations

import statistics
import time
from collections.abc import Mapping
from typing import Protocol

from bzzz.clock import now_ms
from bzzz.domain.presence import Availability, Heartbeat, sign_presence
from bzzz.domain.profile import Profile
from bzzz.domain.standing import Standing
from bzzz.home.keys import Identity
from bzzz.mesh.resources import load_permille, mem_free_mb
from bzzz.mesh.session import PeerSession


class PresenceHost(Protocol):
    """What presence says of the node it speaks for (the `Mesh`)."""

    @property
    def identity(self) -> Identity: ...

    @property
    def me(self) -> bytes: ...

    @property
    def profile(self) -> Profile: ...

    @property
    def started(self) -> float: ...  # time.time() when it started

    @property
    def sessions(self) -> Mapping[bytes, PeerSession]: ...


class Presence:
    """Signs the node's heartbeats and availability messages."""

    def __init__(self, host: PresenceHost) -> None:
        self._host = host

    def heartbeat(self, counter: int, echo: int, held_us: int) -> bytes:
        host = self._host
        beat = Heartbeat(host.me, now_ms(), counter, echo, held_us)
        return sign_presence(host.identity.signer, beat)

    def standing(self) -> Standing:
        """This node as a leader candidate: what its availability messages say."""
        host = self._host
        rtts = [s.rtt_us for s in host.sessions.values() if s.rtt_us is not None]
        return Standing(
            uptime_s=int(time.time() - host.started),
            capabilities=len(host.profile.capabilities),
            load_permille=load_permille(),
            mem_free_mb=mem_free_mb(),
            rtt_us=int(statistics.median(rtts)) if rtts else None,
        )

    def availability(self) -> bytes:
        host = self._host
        profile = host.profile
        state = "ready" if profile.max_tasks > 0 else "busy"
        message = Availability(
            host.me,
            now_ms(),
            state,
            0,
            profile.max_tasks,
            profile.capabilities,
            profile.models,
            self.standing(),
        )
        return sign_presence(host.identity.signer, message)
