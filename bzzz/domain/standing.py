"""How fit a node is to lead, and when a leader should hand over.

The score only picks *whom* leadership is transferred to; who leads is still decided by
Raft's votes. Hysteresis keeps it from flapping: the other node must be better by a clear
margin, stay so for a while, and the leader must have led for a while first.
"""

from __future__ import annotations

from dataclasses import dataclass

# What each input is worth (the score runs 0-100), and where each stops counting.
WEIGHTS = {"uptime": 25.0, "capabilities": 20.0, "cpu": 20.0, "memory": 15.0, "network": 20.0}
UPTIME_FULL_S = 3600  # an hour up counts as fully settled
CAPABILITIES_FULL = 8
MEMORY_FULL_MB = 4096
RTT_HALF_US = 20_000  # a 20 ms median round trip halves the network share


@dataclass(frozen=True, slots=True)
class Standing:
    """A node's own account of itself, sent in its signed availability messages."""

    uptime_s: int
    capabilities: int
    load_permille: int  # run-queue load per core: 1000 is every core busy
    mem_free_mb: int
    rtt_us: int | None  # median heartbeat round trip to its peers; None before any


def candidate_score(s: Standing) -> float:
    uptime = min(s.uptime_s / UPTIME_FULL_S, 1.0)
    capabilities = min(s.capabilities / CAPABILITIES_FULL, 1.0)
    cpu = max(0.0, 1.0 - s.load_permille / 1000)
    memory = min(s.mem_free_mb / MEMORY_FULL_MB, 1.0)
    network = 0.5 if s.rtt_us is None else RTT_HALF_US / (RTT_HALF_US + s.rtt_us)
    parts = {
        "uptime": uptime,
        "capabilities": capabilities,
        "cpu": cpu,
        "memory": memory,
        "network": network,
    }
    return round(sum(WEIGHTS[k] * v for k, v in parts.items()), 2)


@dataclass(frozen=True, slots=True)
class TransferPolicy:
    margin: float = 15.0  # score points the other node must lead by
    sustain_ms: int = 30_000  # for this long without a break
    min_tenure_ms: int = 60_000  # and the leader has led at least this long


@dataclass(frozen=True, slots=True)
class Watch:
    """A better node the leader has been watching since `since`."""

    candidate: bytes
    since: int


def pick_successor(
    policy: TransferPolicy,
    mine: float,
    others: dict[bytes, float],
    watch: Watch | None,
    now: int,
    elected_at: int,
) -> tuple[bytes | None, Watch | None]:
    """Whom to transfer to now (or None), and what to keep watching. `others` holds
    only healthy voters: connected, answering beats, with a recent availability."""
    if not others:
        return None, None
    best = max(others, key=lambda k: (others[k], k))
    if others[best] < mine + policy.margin:
        return None, None
    if watch is None or watch.candidate != best:
        watch = Watch(best, now)
    settled = now - watch.since >= policy.sustain_ms
    if settled and now - elected_at >= policy.min_tenure_ms:
        return best, None
    return None, watch
