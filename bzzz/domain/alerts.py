"""Alerts: entries a node writes about what it saw go wrong, for people and the audit.

Every node reads them as they replicate; none of them changes any state by itself."""

from __future__ import annotations

from typing import Any

PEER_REFUSED = "alert.peer_refused"  # a peer broke the protocol and was disconnected
FORK = "alert.fork"  # an author signed two entries at one seq
SPLIT_BRAIN = "alert.split_brain"  # two leaders proven in one term
HMMM_RULE = "alert.hmmm_rule"  # an HMMM message broke a limit: left out of its thread
KINDS = (PEER_REFUSED, FORK, SPLIT_BRAIN, HMMM_RULE)


def peer_refused_body(peer: bytes, address: str, code: str, reason: str) -> dict[str, Any]:
    return {"peer": peer, "address": address, "code": code, "reason": reason}


def fork_body(author: bytes, seq: int, via: bytes) -> dict[str, Any]:
    return {"author": author, "seq": seq, "via": via}


def split_brain_body(term: int, leaders: list[bytes]) -> dict[str, Any]:
    return {"term": term, "leaders": sorted(leaders)}


def hmmm_rule_body(author: bytes, thread: str, entry: bytes, rule: str) -> dict[str, Any]:
    return {"author": author, "thread": thread, "entry": entry, "rule": rule[:500]}
