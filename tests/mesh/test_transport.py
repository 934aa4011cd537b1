"""The SSH transport on its own: a real asyncssh server and client on 127.0.0.1."""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import Iterator

import asyncssh
import pyrage
import pytest

from bzzz.domain.identity import Ed25519Signer
from bzzz.home.keys import Identity
from bzzz.mesh.transport import CIPHERS, Gate, Login, Streams, dial, start_server
from tests.support.agents import free_port


def _identity() -> Identity:
    return Identity(Ed25519Signer(os.urandom(32)), pyrage.x25519.Identity.generate())


@pytest.fixture
def packet_log(caplog: pytest.LogCaptureFixture) -> Iterator[pytest.LogCaptureFixture]:
    """asyncssh's own log of every packet it sends and receives."""
    asyncssh.set_debug_level(3)
    caplog.set_level(logging.DEBUG, logger="asyncssh")
    try:
        yield caplog
    finally:
        asyncssh.set_debug_level(1)


async def _echo_over_ssh(messages: int, packet_log: pytest.LogCaptureFixture) -> list[str]:
    """Connect, echo `messages` small writes, and return the packets logged meanwhile."""
    server_id, client_id = _identity(), _identity()

    async def member(key: bytes) -> bool:
        return key == client_id.public_key

    async def nobody(secret: bytes) -> bool:
        return False

    async def echo(login: Login, streams: Streams, address: str, close: object) -> None:
        reader, writer = streams
        while data := await reader.read(65536):
            writer.write(data)

    port = free_port()
    server = await start_server(server_id, "127.0.0.1", port, Gate(member, nobody), echo)
    try:
        conn, peer, (reader, writer) = await dial(
            client_id, "127.0.0.1", port, lambda key: key == server_id.public_key
        )
        assert peer == server_id.public_key
        assert conn.get_extra_info("send_cipher") in CIPHERS
        async with conn:
            await asyncio.sleep(0.1)  # the server's side of the channel opening settles
            packet_log.clear()
            for n in range(messages):
                payload = f"message {n}".encode()
                writer.write(payload)
                assert await reader.readexactly(len(payload)) == payload
            sent = [r.getMessage() for r in packet_log.records if "Sent MSG_" in r.getMessage()]
    finally:
        server.close()
        await server.wait_closed()
    return sent


def test_an_established_connection_sends_no_ignore_packets(
    packet_log: pytest.LogCaptureFixture,
) -> None:
    """Each message is one SSH packet each way, not an empty MSG_IGNORE and then the data
    (asyncssh's defence for CBC ciphers, which the mesh never negotiates)."""
    sent = asyncio.run(_echo_over_ssh(20, packet_log))
    data = [line for line in sent if "MSG_CHANNEL_DATA" in line]
    assert len(data) == 40, sent  # 20 from the client, 20 echoed by the server
    assert not [line for line in sent if "MSG_IGNORE" in line], sent
