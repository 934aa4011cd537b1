"""The services on their port: the `Replica` contract, run against the mesh and the
in-memory stand-in, then the election and claim services on in-memory replicas (no
SSH, no processes): a leader is elected and proven, grants claims with fencing tokens,
and a new leader takes over when the old one is cut off."""

from __future__ import annotations

import asyncio
import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from bzzz.domain import membership as ms
from bzzz.domain.election import Settings
from bzzz.domain.identity import Ed25519Signer
from bzzz.domain.invite import secret_hash
from bzzz.domain.payload import encode_payload
from bzzz.home.node import cluster_id_of, open_node
from bzzz.home.roles import load_roles
from bzzz.runtime.assembly import mesh_of
from bzzz.services.claims import ClaimService
from bzzz.services.election import ElectionRunner
from bzzz.services.ports import Replica
from bzzz.store import EventStore
from bzzz.store.urls import resolve_store_url
from tests.support.agents import found
from tests.support.memory_replica import Hub, MemoryReplica

ROLES = load_roles(None)
FAST = Settings(heartbeat_ms=20, election_min_ms=150, election_max_ms=300)


def _cluster(tmp_path: Path, size: int) -> tuple[list[EventStore], list[Ed25519Signer], bytes]:
    """`size` stores that each hold the same founding and admissions."""
    signers = [Ed25519Signer(os.urandom(32)) for _ in range(size)]
    stores = [
        EventStore(resolve_store_url(f"sqlite:///{tmp_path / f's{n}.db'}")) for n in range(size)
    ]
    founder = signers[0]
    founding = stores[0].append(
        founder, ms.FOUNDED, encode_payload(ms.founded_body("c", "n0", "admin")), 1
    )
    for n, member in enumerate(signers[1:], start=1):
        token = secret_hash(bytes([n]) * 16)
        body = ms.invited_body(token, "developer", 10**13)
        stores[0].append(founder, ms.INVITED, encode_payload(body), 2)
        body = ms.admitted_body(member.public_key, f"n{n}", "developer", token)
        stores[0].append(founder, ms.ADMITTED, encode_payload(body), 3)
    raws = [s.raw for s in stores[0].notifications(after=0)]
    for store in stores[1:]:
        store.ingest(raws)
    return stores, signers, founding.hash


@pytest.fixture
def memory_cluster(tmp_path: Path) -> Iterator[list[MemoryReplica]]:
    stores, signers, cluster_id = _cluster(tmp_path, 3)
    hub = Hub()
    yield [
        MemoryReplica(hub, st, sg, ROLES, cluster_id)
        for st, sg in zip(stores, signers, strict=True)
    ]
    for store in stores:
        store.close()


# The Replica contract, for every implementation


@pytest.fixture(params=["memory", "mesh"])
def replica(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Replica]:
    if request.param == "memory":
        stores, signers, cluster_id = _cluster(tmp_path, 1)
        yield MemoryReplica(Hub(), stores[0], signers[0], ROLES, cluster_id)
        stores[0].close()
        return
    with open_node(found(tmp_path).home) as node:
        mesh = mesh_of(node)
        asyncio.run(mesh.refresh())
        assert mesh.cluster_id == cluster_id_of(node.config)
        yield mesh


def test_a_replica_appends_feeds_watches_and_knows_its_membership(replica: Replica) -> None:
    async def scenario() -> None:
        feed = replica.feed(["task.note"])
        assert [e.kind for e in await feed.fresh()] == []  # a new feed reads the store
        watch = replica.watch(["task.note"])
        watch.clear()
        first = await replica.append("task.note", {"n": 1})
        more = await replica.append_many([("task.note", {"n": 2}), ("task.other", {})])
        assert watch.is_set() and replica.changed.is_set()
        assert [e.seq for e in await feed.fresh()] == [first.seq, more[0].seq]
        assert replica.heads[replica.me] == more[-1].seq
        assert await replica.wait_for_head(replica.me, more[-1].seq, 0.1)
        assert not await replica.wait_for_head(replica.me, more[-1].seq + 1, 0.05)
        assert replica.me in replica.membership.members
        assert replica.me not in replica.connected()
        assert replica.standing().uptime_s >= 0

    asyncio.run(scenario())


# The election and claim services on in-memory replicas


async def _proven_leader(runners: list[ElectionRunner], timeout: float = 10.0) -> bytes:
    async with asyncio.timeout(timeout):
        while True:
            leaders = {await r.proven_leader() for r in runners}
            if len(leaders) == 1 and (leader := leaders.pop()) is not None:
                return leader
            await asyncio.sleep(0.02)


def test_services_elect_grant_and_fail_over_on_in_memory_replicas(
    memory_cluster: list[MemoryReplica],
) -> None:
    async def scenario() -> None:
        runners = [ElectionRunner(r, FAST) for r in memory_cluster]
        claims = [
            ClaimService(r, e, lease_ms=60_000)
            for r, e in zip(memory_cluster, runners, strict=True)
        ]
        for runner, service in zip(runners, claims, strict=True):
            runner.on_admin = service.set_admin
            await service.start()
            await runner.start()
        try:
            leader = await _proven_leader(runners)
            by_key = {r.me: n for n, r in enumerate(memory_cluster)}
            asker = next(n for n, r in enumerate(memory_cluster) if r.me != leader)
            granted = await claims[asker].request("task-1", [], 10)
            assert granted["status"] == "granted", granted
            term, number = granted["token"]
            assert term == runners[by_key[leader]].election.term and number >= 1
            other = next(n for n in range(len(memory_cluster)) if n not in (asker, by_key[leader]))
            taken = await claims[other].request("task-1", [], 10)
            assert taken["status"] == "refused" and "already held" in taken["reason"]
            # Cut the leader off: the other two elect a new one, who re-issues the live
            # grant in its own term and grants new claims there.
            hub = memory_cluster[0].hub
            for replica in memory_cluster:
                if replica.me != leader:
                    hub.cut(leader, replica.me)
            survivors = [runners[n] for n in (asker, other)]
            async with asyncio.timeout(10):
                while (new := await _proven_leader(survivors)) == leader:
                    await asyncio.sleep(0.02)
            assert new != leader
            second = await claims[other].request("task-2", [], 10)
            assert second["status"] == "granted" and second["token"][0] > term, second
        finally:
            for runner, service in zip(runners, claims, strict=True):
                await runner.stop()
                await service.stop()

    asyncio.run(scenario())
