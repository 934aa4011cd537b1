"""A member's log that arrives before its admission is refused as not-member (its
sender will not send it again on that link) and parked: once the admission arrives and
the fold admits the author, the parked entries are stored."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path
from types import SimpleNamespace

import pytest

from bzzz.domain import membership as ms
from bzzz.domain.entry import Entry, create_entry
from bzzz.domain.identity import Ed25519Signer
from bzzz.domain.invite import secret_hash
from bzzz.domain.payload import encode_payload
from bzzz.home.node import open_node
from bzzz.runtime.assembly import mesh_of
from tests.support.agents import found


def _log(
    signer: Ed25519Signer, start: int, items: list[tuple[str, dict[str, object]]]
) -> list[Entry]:
    entries: list[Entry] = []
    for n, (kind, body) in enumerate(items):
        entries.append(
            create_entry(
                signer,
                seq=n + 1,
                prev=entries[-1].hash if entries else None,
                lamport=start + n,
                ts=1,
                kind=kind,
                body=encode_payload(body),
            )
        )
    return entries


@pytest.mark.parametrize("continuation", ["none", "with the admission", "right after it"])
def test_a_log_that_came_before_its_admission_is_stored_when_the_admission_comes(
    tmp_path: Path, continuation: str
) -> None:
    """Seqs 1-3 come before the admission and are parked; seq 4 may come with the
    admission or in the very next batch, before the parked entries were stored: it
    continues the log, and is no reason to call the sender a misbehaving peer."""
    admin, newcomer = Ed25519Signer(os.urandom(32)), Ed25519Signer(os.urandom(32))
    to_admin, to_newcomer = secret_hash(b"a" * 16), secret_hash(b"b" * 16)

    async def scenario() -> None:
        with open_node(found(tmp_path).home) as node:
            founder = node.identity.signer
            for kind, body in (
                (ms.INVITED, ms.invited_body(to_admin, "admin", 10**13)),
                (ms.ADMITTED, ms.admitted_body(admin.public_key, "c", "admin", to_admin)),
            ):
                node.store.append(founder, kind, encode_payload(body), 1)
            admissions = _log(
                admin,
                100,
                [
                    (ms.INVITED, ms.invited_body(to_newcomer, "developer", 10**13)),
                    (
                        ms.ADMITTED,
                        ms.admitted_body(newcomer.public_key, "b", "developer", to_newcomer),
                    ),
                ],
            )
            log = _log(newcomer, 200, [("task.note", {"n": n}) for n in range(4)])
            early, later = log[:3], log[3:]
            mesh = mesh_of(node)
            await mesh.refresh()
            peer = SimpleNamespace(peer=admin.public_key, their_heads={})
            assert await mesh.ingest_from(peer, [e.raw for e in early]) == {}  # type: ignore[arg-type]
            assert node.store.head(newcomer.public_key) is None
            if continuation == "with the admission":
                await mesh.ingest_from(peer, [e.raw for e in admissions + later])  # type: ignore[arg-type]
            else:
                await mesh.ingest_from(peer, [e.raw for e in admissions])  # type: ignore[arg-type]
                if continuation == "right after it":
                    await mesh.ingest_from(peer, [e.raw for e in later])  # type: ignore[arg-type]
            want = 3 if continuation == "none" else 4
            async with asyncio.timeout(5):
                while (head := node.store.head(newcomer.public_key)) is None or head.seq < want:
                    await asyncio.sleep(0.01)
            assert mesh.heads[newcomer.public_key] == want
            await mesh.stop()

    asyncio.run(scenario())
