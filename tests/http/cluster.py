"""Three in-memory nodes (an admin and two developers) running the real election, claim,
board, HMMM and intake services on `tests/support/memory_replica.py`, each with its HTTP
endpoints served on 127.0.0.1 by the step the runtime uses (`http_step`). The hub
stands in for the mesh: `MemoryMesh` gives a replica the mesh's status view."""

from __future__ import annotations

import asyncio
import os
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace
from typing import Any

from bzzz.domain import hmmm as hm
from bzzz.domain import membership as ms
from bzzz.domain.election import Settings
from bzzz.domain.identity import Ed25519Signer
from bzzz.domain.invite import secret_hash
from bzzz.domain.membership import Membership
from bzzz.domain.payload import encode_payload
from bzzz.domain.presence import Availability
from bzzz.home.roles import load_roles
from bzzz.http import HttpStep, http_step
from bzzz.services.board import BoardService
from bzzz.services.claims import ClaimService
from bzzz.services.election import ElectionRunner
from bzzz.services.hmmm import HmmmService
from bzzz.services.intake import IntakeService
from bzzz.store import EventStore
from bzzz.store.feed import Feed
from bzzz.store.urls import resolve_store_url
from bzzz.tasks.local import LocalFolderSource
from tests.support.memory_replica import Hub, MemoryReplica

ROLES = load_roles(None)
FAST = Settings(heartbeat_ms=20, election_min_ms=150, election_max_ms=300)
LIMITS = hm.Limits(window_ms=200)


@dataclass(frozen=True)
class PeerStatus:
    agent_id: bytes
    name: str
    ours: dict[bytes, int]
    theirs: dict[bytes, int]
    availability: Availability | None = None


@dataclass(frozen=True)
class MeshStatus:
    agent_id: bytes
    name: str
    role: str
    cluster: str | None
    member: bool
    heads: dict[bytes, int]
    peers: list[PeerStatus]


class MemoryMesh:
    """A replica seen as the mesh: its status view with the peers the hub links it to
    (their heads are what a session would have heard)."""

    def __init__(self, replica: MemoryReplica) -> None:
        self.replica = replica

    @property
    def membership(self) -> Membership:
        return self.replica.membership

    def feed(self, kinds: Any) -> Feed:
        return self.replica.feed(kinds)

    def view(self) -> MeshStatus:
        r = self.replica
        members = r.membership.members
        me = members.get(r.me)
        peers = [
            PeerStatus(
                key, members[key].name if key in members else "", dict(r.heads), dict(o.heads)
            )
            for key in sorted(r.connected())
            if (o := r.hub.replicas.get(key)) is not None
        ]
        return MeshStatus(
            r.me,
            me.name if me else "?",
            me.role if me else "developer",
            r.membership.cluster,
            me is not None,
            dict(r.heads),
            peers,
        )


@dataclass
class Node:
    replica: MemoryReplica
    mesh: MemoryMesh
    election: ElectionRunner
    claims: ClaimService
    board: BoardService
    hmmm: HmmmService
    intake: IntakeService
    http: HttpStep

    @property
    def url(self) -> str:
        host, port = self.http.server.bound
        return f"http://{host}:{port}"

    @property
    def token(self) -> str:
        token = self.http.endpoints.token
        assert token is not None
        return token.reveal()


class Cluster:
    def __init__(self, root: Path, size: int = 3) -> None:
        self.root = root
        self.size = size
        self.folder = root / "tasks"
        self.folder.mkdir(parents=True)
        self.nodes: list[Node] = []
        self.stores: list[EventStore] = []
        self._started: list[Any] = []

    def build(self) -> Cluster:
        signers = [Ed25519Signer(os.urandom(32)) for _ in range(self.size)]
        self.stores = [
            EventStore(resolve_store_url(f"sqlite:///{self.root / f's{n}.db'}"))
            for n in range(self.size)
        ]
        founder = signers[0]
        founding = self.stores[0].append(
            founder, ms.FOUNDED, encode_payload(ms.founded_body("c", "n0", "admin")), 1
        )
        for n, member in enumerate(signers[1:], start=1):
            token = secret_hash(bytes([n]) * 16)
            body = ms.invited_body(token, "developer", 10**13)
            self.stores[0].append(founder, ms.INVITED, encode_payload(body), 2)
            body = ms.admitted_body(member.public_key, f"n{n}", "developer", token)
            self.stores[0].append(founder, ms.ADMITTED, encode_payload(body), 3)
        raws = [s.raw for s in self.stores[0].notifications(after=0)]
        for store in self.stores[1:]:
            store.ingest(raws)
        hub = Hub()
        source = LocalFolderSource(self.folder, "team")
        for store, signer in zip(self.stores, signers, strict=True):
            replica = MemoryReplica(hub, store, signer, ROLES, founding.hash)
            election = ElectionRunner(replica, FAST)
            claims = ClaimService(replica, election, 60_000)
            board = BoardService(replica, election, claims)
            claims.vet = board.vet
            claims.before_vet = board.refresh
            hmmm = HmmmService(replica, election, board, LIMITS, rule_reviewer=False)
            intake = IntakeService(replica, election, board, [source], [], 0.2)

            async def on_admin(on: bool, c: ClaimService = claims, i: Any = intake) -> None:
                await c.set_admin(on)
                await i.set_admin(on)

            election.on_admin = on_admin
            mesh = MemoryMesh(replica)
            home = self.root / f"home{len(self.nodes)}"
            home.mkdir()
            parts = SimpleNamespace(
                node=SimpleNamespace(config=SimpleNamespace(), home=home),
                mesh=mesh,
                election=election,
                claims=claims,
                board=board,
                hmmm=hmmm,
            )
            step = http_step(parts, listen="127.0.0.1:0")
            assert step is not None
            self.nodes.append(Node(replica, mesh, election, claims, board, hmmm, intake, step))
        return self

    async def serve(self) -> None:
        """The HTTP endpoints only: the services are not running yet."""
        for node in self.nodes:
            await node.http.start()
            self._started.append(node.http)

    async def start(self) -> None:
        """The services, then the endpoints told the node runs (as the runtime does)."""
        for node in self.nodes:
            for service in (node.claims, node.board, node.hmmm, node.intake, node.election):
                await service.start()
                self._started.append(service)
            await node.http.running()

    async def stop(self) -> None:
        while self._started:
            await self._started.pop().stop()
        for store in self.stores:
            store.close()

    async def leader(self, timeout: float = 10.0) -> bytes:
        async with asyncio.timeout(timeout):
            while True:
                leaders = {await n.election.proven_leader() for n in self.nodes}
                if len(leaders) == 1 and (leader := leaders.pop()) is not None:
                    return leader
                await asyncio.sleep(0.02)
