"""The mesh side of `bzzz join`: log in to the inviter with the token, have the hellos
agree on the cluster (the inviter admits us only then), and copy every log it holds.
Implements the services' `Inviters` port."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from bzzz.domain.invite import InviteToken, join_username
from bzzz.errors import ConnectionClosed
from bzzz.mesh.mesh import Mesh
from bzzz.mesh.session import PeerSession
from bzzz.mesh.transport import dial

JOIN_TIMEOUT_S = 600.0
POLL_S = 0.05


class MeshInviters:
    def __init__(self, make_mesh: Callable[[InviteToken], Mesh]) -> None:
        """`make_mesh`: this node's mesh, set up for the cluster a token names."""
        self._make_mesh = make_mesh

    async def join(self, token: InviteToken, name: str) -> None:
        mesh = self._make_mesh(token)
        await mesh.refresh()
        address = f"{token.host}:{token.port}"
        conn, peer, streams = await dial(
            mesh.identity,
            token.host,
            token.port,
            lambda key: key == token.inviter,
            join_username(token.secret, name),
        )
        async with conn:
            session = PeerSession(mesh, peer, address, True, streams, conn.close)
            await session.open()
            runner = asyncio.create_task(session.run())
            try:
                async with asyncio.timeout(JOIN_TIMEOUT_S):
                    while not _caught_up(mesh, session):
                        if runner.done():
                            runner.result()
                            raise ConnectionClosed("the inviter closed the connection")
                        await asyncio.sleep(POLL_S)
            finally:
                runner.cancel()
                await asyncio.gather(runner, return_exceptions=True)
        await mesh.refresh()


def _caught_up(mesh: Mesh, session: PeerSession) -> bool:
    """Whether we are admitted and hold the log of every member the inviter holds, as
    far as it does (its hello and what it sent say how far). Logs of keys that never
    were members it does not send, and we would not store."""
    membership = mesh.membership
    if not membership.is_member(mesh.me):
        return False
    return all(
        mesh.heads.get(author, 0) >= seq
        for author, seq in session.their_heads.items()
        if membership.ever_member(author)
    )
