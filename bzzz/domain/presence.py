"""Signed ephemeral messages: heartbeats, availability (with the node's standing as a
leader candidate) and election messages. They travel on mesh connections and are never
logged; the signature stops one peer speaking for another.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

import cbor2

from bzzz.domain.election import EVERY_VOTER, Kind, Message
from bzzz.domain.identity import Signer, verify_signature
from bzzz.domain.limits import KEY_BYTES, MAX_UINT, SIGNATURE_BYTES
from bzzz.domain.standing import Standing
from bzzz.errors import ProtocolError

PREFIX = b"bzzz/ephemeral/v1\n"
STATES = ("ready", "working", "busy")
MAX_LIST = 32
MAX_ITEM = 64
State = Literal["ready", "working", "busy"]


@dataclass(frozen=True, slots=True)
class Heartbeat:
    agent: bytes
    ts: int
    counter: int
    # The newest heartbeat we had from the receiver and how long we held it before this
    # one left: the receiver's round trip, on its own clock alone.
    echo: int = 0
    held_us: int = 0


@dataclass(frozen=True, slots=True)
class Availability:
    agent: bytes
    ts: int
    state: str
    current_tasks: int
    max_tasks: int
    capabilities: tuple[str, ...]
    models: tuple[str, ...]
    standing: Standing


@dataclass(frozen=True, slots=True)
class ElectionMessage:
    """An election message (`bzzz.domain.election.Message`), signed by its sender."""

    message: Message

    @property
    def agent(self) -> bytes:
        return self.message.src


Presence = Heartbeat | Availability | ElectionMessage


def _fields(message: Presence) -> list[Any]:
    if isinstance(message, Heartbeat):
        b = message
        return ["heartbeat", b.agent, b.ts, b.counter, b.echo, b.held_us]
    if isinstance(message, ElectionMessage):
        m = message.message
        return ["election", m.src, m.kind.value, m.term, m.dst, m.granted, m.stamp, m.target]
    return [
        "availability",
        message.agent,
        message.ts,
        message.state,
        message.current_tasks,
        message.max_tasks,
        list(message.capabilities),
        list(message.models),
        message.standing.uptime_s,
        message.standing.load_permille,
        message.standing.mem_free_mb,
        message.standing.rtt_us or 0,  # 0: not measured yet
    ]


def sign_presence(signer: Signer, message: Presence) -> bytes:
    unsigned = cbor2.dumps(_fields(message), canonical=True)
    return cbor2.dumps([unsigned, signer.sign(PREFIX + unsigned)], canonical=True)


def _count(value: Any) -> int:
    if type(value) is not int or not 0 <= value <= MAX_UINT:
        raise ProtocolError("malformed", "ephemeral: counts must be whole numbers")
    return value


def _names(value: Any) -> tuple[str, ...]:
    if not isinstance(value, list) or len(value) > MAX_LIST:
        raise ProtocolError("malformed", f"ephemeral: at most {MAX_LIST} names in a list")
    if not all(isinstance(v, str) and 0 < len(v) <= MAX_ITEM for v in value):
        raise ProtocolError("malformed", f"ephemeral: names are text of 1-{MAX_ITEM} characters")
    return tuple(value)


def open_presence(signed: bytes) -> Presence:
    """Check the signature and the fields of a signed ephemeral message."""
    try:
        outer: Any = cbor2.loads(signed)
        unsigned, signature = outer
        fields: Any = cbor2.loads(unsigned)
    except Exception:
        raise ProtocolError("malformed", "ephemeral: not a signed message") from None
    if type(unsigned) is not bytes or type(signature) is not bytes:
        raise ProtocolError("malformed", "ephemeral: not a signed message")
    if not isinstance(fields, list) or len(fields) < 4:
        raise ProtocolError("malformed", "ephemeral: too few fields")
    kind, agent = fields[0], fields[1]
    if type(agent) is not bytes or len(agent) != KEY_BYTES or len(signature) != SIGNATURE_BYTES:
        raise ProtocolError("malformed", "ephemeral: bad agent key or signature size")
    if not verify_signature(agent, PREFIX + unsigned, signature):
        raise ProtocolError("bad-signature", "ephemeral: signature does not verify")
    if kind == "heartbeat" and len(fields) == 6:
        counts = [_count(f) for f in fields[2:]]
        return Heartbeat(agent, *counts)
    if kind == "availability" and len(fields) == 12:
        state = fields[3]
        if state not in STATES:
            raise ProtocolError("malformed", f"ephemeral: state must be one of {STATES}")
        return Availability(
            agent,
            _count(fields[2]),
            state,
            _count(fields[4]),
            _count(fields[5]),
            _names(fields[6]),
            _names(fields[7]),
            _standing(fields),
        )
    if kind == "election" and len(fields) == 8:
        return _election(agent, fields)
    raise ProtocolError("malformed", "ephemeral: unknown message")


def _standing(fields: list[Any]) -> Standing:
    uptime, load, memory, rtt = (_count(f) for f in fields[8:12])
    return Standing(uptime, len(fields[6]), load, memory, rtt or None)


def _election(agent: bytes, fields: list[Any]) -> ElectionMessage:
    _, _, kind, term, dst, granted, stamp, target = fields
    try:
        parsed = Kind(kind)
    except ValueError:
        raise ProtocolError("malformed", "election: unknown message kind") from None
    anyone = parsed == Kind.BEAT and dst == EVERY_VOTER
    if type(dst) is not bytes or (len(dst) != KEY_BYTES and not anyone):
        raise ProtocolError("malformed", "election: bad destination")
    if type(granted) is not bool:
        raise ProtocolError("malformed", "election: bad grant")
    if type(target) is not bytes or len(target) not in (0, KEY_BYTES):
        raise ProtocolError("malformed", "election: bad transfer target")
    message = Message(parsed, _count(term), agent, dst, granted, _count(stamp), target)
    return ElectionMessage(message)
