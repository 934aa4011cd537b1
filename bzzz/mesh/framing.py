"""Reading and writing length-prefixed frames on an SSH channel, never past the cap.
Where a session's bytes meet the channel, asyncssh's and the OS's errors become
`ConnectionClosed`."""

from __future__ import annotations

import asyncio
from typing import Protocol

import asyncssh

from bzzz.domain.wire import LENGTH, Message, decode_message, encode_message, frame_length
from bzzz.errors import ConnectionClosed


class ByteReader(Protocol):
    async def readexactly(self, n: int) -> bytes: ...


class ByteWriter(Protocol):
    def write(self, data: bytes) -> None: ...

    async def drain(self) -> None: ...


async def read_message(reader: ByteReader) -> Message:
    """The next message. The body is read only after its announced length passed the
    cap, so a hostile peer cannot make us buffer more than one capped frame."""
    try:
        prefix = await reader.readexactly(LENGTH.size)
        data = await reader.readexactly(frame_length(prefix))
    except asyncio.IncompleteReadError:
        raise ConnectionClosed("the peer closed the connection") from None
    except (asyncssh.Error, OSError) as error:
        raise ConnectionClosed(f"connection lost: {error}") from None
    return decode_message(data)


async def write_message(writer: ByteWriter, message: Message) -> None:
    """Write one frame and wait while the channel's window is full (backpressure)."""
    try:
        writer.write(encode_message(message))
        await writer.drain()
    except (asyncssh.Error, OSError) as error:
        raise ConnectionClosed(f"connection lost: {error}") from None
