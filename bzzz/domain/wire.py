"""The replication protocol's messages, and the strict decoding of what peers send.

A frame is a 4-byte big-endian length and then the canonical CBOR of ``[type, body]``.
Everything here is pure: the mesh adapter reads bounded frames and hands the bytes in.
Every field is checked for type and size, because every byte from a peer is hostile.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from typing import Any

import cbor2

from bzzz.domain.limits import HASH_BYTES, KEY_BYTES, MAX_ENTRY_BYTES, MAX_UINT
from bzzz.errors import ProtocolError

LENGTH = struct.Struct(">I")
MAX_FRAME_BYTES = 4 * 1024 * 1024
# A batch fills a frame to about this size; a single entry is always below it.
BATCH_TARGET_BYTES = 1024 * 1024
MAX_BATCH_ENTRIES = 4096
MAX_HEADS = 65536
MAX_TEXT = 256


@dataclass(frozen=True, slots=True)
class Hello:
    """First message each way: who we are and how far every log we hold goes."""

    agent: bytes
    name: str
    cluster_id: bytes  # the cluster's founding entry's hash; empty when not yet known
    listen: str
    heads: dict[bytes, int]


@dataclass(frozen=True, slots=True)
class Entries:
    raws: list[bytes]


@dataclass(frozen=True, slots=True)
class Have:
    """The sender's heads after it stored what it received: an acknowledgement."""

    heads: dict[bytes, int]


@dataclass(frozen=True, slots=True)
class Links:
    """The agents the sender is connected to right now. A node does not forward an
    author's log to a peer linked to that author: the author sends it itself."""

    peers: frozenset[bytes]


@dataclass(frozen=True, slots=True)
class Ephemeral:
    """A signed ephemeral message (heartbeat, availability); see `presence`."""

    signed: bytes


Message = Hello | Entries | Have | Links | Ephemeral
MAX_LINKS = 4096


def encode_message(message: Message) -> bytes:
    """The whole frame, length prefix included."""
    body: list[Any]
    if isinstance(message, Hello):
        body = [
            "hello",
            [message.agent, message.name, message.cluster_id, message.listen, message.heads],
        ]
    elif isinstance(message, Entries):
        body = ["entries", message.raws]
    elif isinstance(message, Have):
        body = ["have", message.heads]
    elif isinstance(message, Links):
        body = ["links", sorted(message.peers)]
    else:
        body = ["ephemeral", message.signed]
    data = cbor2.dumps(body, canonical=True)
    return LENGTH.pack(len(data)) + data


def frame_length(prefix: bytes) -> int:
    """The body length a frame's prefix announces; refuses one above the cap unread."""
    length: int = LENGTH.unpack(prefix)[0]
    if length > MAX_FRAME_BYTES:
        raise ProtocolError(
            "oversized-frame", f"frame of {length} bytes; the limit is {MAX_FRAME_BYTES}"
        )
    return length


def decode_message(data: bytes) -> Message:
    try:
        items: Any = cbor2.loads(data)
    except Exception:
        raise ProtocolError("undecodable", "a frame is not valid CBOR") from None
    if not isinstance(items, list) or len(items) != 2 or not isinstance(items[0], str):
        raise ProtocolError("malformed", "a frame is not a [type, body] pair")
    kind, body = items
    if kind == "hello":
        return _hello(body)
    if kind == "entries":
        return Entries(_raws(body))
    if kind == "have":
        return Have(_heads(body))
    if kind == "links":
        return Links(_keys(body))
    if kind == "ephemeral":
        if type(body) is not bytes or len(body) > MAX_TEXT * 16:
            raise ProtocolError("malformed", "an ephemeral message must be bytes, at most 4 KiB")
        return Ephemeral(body)
    raise ProtocolError("unknown-message", f"unknown message type {kind[:40]!r}")


def _text(value: Any, what: str) -> str:
    if not isinstance(value, str) or len(value) > MAX_TEXT:
        raise ProtocolError("malformed", f"{what} must be text of at most {MAX_TEXT} characters")
    return value


def _hello(body: Any) -> Hello:
    if not isinstance(body, list) or len(body) != 5:
        raise ProtocolError("malformed", "hello must have 5 fields")
    agent, name, cluster_id, listen, heads = body
    if type(agent) is not bytes or len(agent) != KEY_BYTES:
        raise ProtocolError("malformed", "hello: agent must be a 32-byte key")
    if type(cluster_id) is not bytes or len(cluster_id) not in (0, HASH_BYTES):
        raise ProtocolError("malformed", "hello: cluster id must be empty or a 32-byte hash")
    return Hello(
        agent,
        _text(name, "hello: name"),
        cluster_id,
        _text(listen, "hello: listen"),
        _heads(heads),
    )


def _heads(value: Any) -> dict[bytes, int]:
    if not isinstance(value, dict) or len(value) > MAX_HEADS:
        raise ProtocolError("malformed", f"heads must be a map of at most {MAX_HEADS} logs")
    for author, seq in value.items():
        if type(author) is not bytes or len(author) != KEY_BYTES:
            raise ProtocolError("malformed", "heads: every author must be a 32-byte key")
        if type(seq) is not int or not 0 <= seq <= MAX_UINT:
            raise ProtocolError("malformed", "heads: every seq must be a whole number")
    return value


def _keys(value: Any) -> frozenset[bytes]:
    if not isinstance(value, list) or len(value) > MAX_LINKS:
        raise ProtocolError("malformed", f"links must be a list of at most {MAX_LINKS} keys")
    if not all(type(k) is bytes and len(k) == KEY_BYTES for k in value):
        raise ProtocolError("malformed", "links: every key must be 32 bytes")
    return frozenset(value)


def _raws(value: Any) -> list[bytes]:
    if not isinstance(value, list) or not 0 < len(value) <= MAX_BATCH_ENTRIES:
        raise ProtocolError(
            "malformed", f"entries must be a list of 1 to {MAX_BATCH_ENTRIES} entries"
        )
    for raw in value:
        if type(raw) is not bytes or len(raw) > MAX_ENTRY_BYTES:
            raise ProtocolError(
                "malformed", f"every entry must be bytes of at most {MAX_ENTRY_BYTES}"
            )
    return value
