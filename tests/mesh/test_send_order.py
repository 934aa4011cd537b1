"""A node sends a new entry of its own to the peers waiting for it before the others
(the leader for a claim request, the claimants for an answer): on a busy node each
write to a peer takes a while, and the others can wait."""

from __future__ import annotations

import asyncio
from pathlib import Path
from types import SimpleNamespace

from bzzz.home.node import open_node
from bzzz.runtime.assembly import mesh_of
from tests.support.agents import found


def test_an_entry_wakes_the_senders_of_the_peers_waiting_for_it_first(tmp_path: Path) -> None:
    agent = found(tmp_path)
    peers = {name: name.encode() * 32 for name in "abcd"}
    woken: list[str] = []

    async def scenario() -> None:
        with open_node(agent.home) as node:
            mesh = mesh_of(node)
            for key in peers.values():
                mesh.sessions[key] = SimpleNamespace(wake=asyncio.Event())  # type: ignore[assignment]

            async def sender(name: str) -> None:
                await mesh.sessions[peers[name]].wake.wait()
                woken.append(name)

            senders = [asyncio.create_task(sender(name)) for name in peers]
            await asyncio.sleep(0)
            await mesh.append("test.note", {"n": 1}, first=[peers["c"], b"z" * 32])
            await asyncio.wait_for(asyncio.gather(*senders), 5)

    asyncio.run(scenario())
    assert woken[0] == "c", woken
    assert sorted(woken) == ["a", "b", "c", "d"]
