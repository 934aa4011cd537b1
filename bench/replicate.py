"""Replication: catch-up rate, live propagation latency, and the cost of an idle mesh.

- catch-up: a new node joins a daemon that holds N entries (default 200,000) and copies
  them all; entries/s, beside the raw byte rate of an SSH channel with the mesh's settings
  to a sink process, measured in the same run.
- latency: append on one node (through its control socket) until each other node holds
  the entry, p50 and p99, in a 5-node full mesh and a 5-node line (per hop).
- idle: CPU (share of one core) and resident memory of each daemon of the idle mesh,
  beside a 5-member etcd cluster (same heartbeat and election timeout) idle in the same
  run: the reference for what an idle Raft leader and follower cost on this machine.

Targets (issue 3): catch-up >= 20,000 entries/s; p50 <= 10 ms and p99 <= 50 ms per hop;
an idle daemon < 2% of a core and < 150 MB resident.

    python -m bench.replicate [--entries 200000] [--samples 200] [--idle 10]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import asyncssh

from bench.etcd import EtcdCluster
from bench.probe import ingest_us
from bench.procstat import cpu_seconds, rss_mb, wakeups
from bench.stats import percentile
from bzzz.agent.control import SOCKET_FILE, ask
from bzzz.clock import now_ms
from bzzz.domain.invite import decode_token
from bzzz.domain.payload import encode_payload
from bzzz.home.node import init_node, open_node
from bzzz.mesh import transport
from bzzz.runtime.assembly import inviters_of
from bzzz.services.members import join_cluster
from tests.support.agents import Agent, found, free_port, invite_token, join, stop_all, wait_for

BODY = encode_payload({"task": "#42", "note": "progress report", "percent": 50})


def catch_up(root: Path, entries: int) -> dict[str, Any]:
    a = found(root, "origin")
    with open_node(a.home) as node:
        for _ in range(entries // 1000):
            node.store.append_batch(node.identity.signer, [("task.note", BODY)] * 1000, now_ms())
        size = sum(len(s.raw) for s in node.store.entries(node.identity.public_key))
    a.start()
    try:
        token = decode_token(invite_token(a))
        port = free_port()
        node = init_node(
            root / "newcomer", name="newcomer", role="developer", listen=f"127.0.0.1:{port}"
        )
        with node:
            result = asyncio.run(join_cluster(node, token, inviters_of(node)))
    finally:
        stop_all([a])
    return {
        "entries": result.entries,
        "bytes": size,
        "seconds": round(result.seconds, 3),
        "entries_per_s": round(result.entries / result.seconds),
        "mb_per_s": round(size / result.seconds / 1e6, 2),
    }


async def _push(port: int, total: int) -> float:
    key = asyncssh.generate_private_key("ssh-ed25519")
    async with asyncssh.connect(
        "127.0.0.1",
        port,
        username="bench",
        client_keys=[key],
        known_hosts=None,
        encryption_algs=list(transport.CIPHERS),
        compression_algs=None,
        window=transport.WINDOW,
        max_pktsize=transport.PACKET,
        config=[],
        agent_path=None,
    ) as conn:
        writer, reader, _ = await conn.open_session(encoding=None)
        chunk = os.urandom(64 * 1024)
        began = time.perf_counter()
        for _ in range(total // len(chunk)):
            writer.write(chunk)
            await writer.drain()
        writer.write_eof()
        received = int(await reader.read())
        seconds = time.perf_counter() - began
    assert received == (total // len(chunk)) * len(chunk)
    return received / seconds


def raw_channel(total: int) -> dict[str, Any]:
    port = free_port()
    sink = subprocess.Popen(
        [sys.executable, "-m", "bench.ssh_sink", str(port)], stdout=subprocess.PIPE
    )
    try:
        assert sink.stdout is not None and sink.stdout.readline().strip() == b"ready"
        rate = asyncio.run(_push(port, max(total, 64 << 20)))
    finally:
        sink.terminate()
        sink.wait(10)
    return {"mb_per_s": round(rate / 1e6, 2)}


async def _control(home: Path, request: dict[str, Any]) -> tuple[dict[str, Any], float]:
    reader, writer = await asyncio.open_unix_connection(str(home / SOCKET_FILE))
    writer.write(json.dumps(request).encode() + b"\n")
    await writer.drain()
    answer = json.loads(await reader.readline())
    writer.close()
    return answer, time.perf_counter()


async def _sample(origin: Agent, others: list[Agent], author: str, seq: int) -> list[float] | None:
    """Latencies of one append to every other node; None when the origin's log moved
    meanwhile (it appended something of its own), so `seq` was not ours."""
    waits = [
        asyncio.create_task(
            _control(o.home, {"op": "wait", "author": author, "seq": seq, "timeout": 10})
        )
        for o in others
    ]
    await asyncio.sleep(0.02)  # the waits are registered before the append leaves
    sent = time.perf_counter()
    answer, _ = await _control(origin.home, {"op": "append", "kind": "task.note", "data": {}})
    results = await asyncio.gather(*waits)
    if answer["seq"] != seq:
        return None
    assert all(r["reached"] for r, _ in results), results
    return [(done - sent) * 1000 for _, done in results]


# Members announce their addresses and dial each other (one seed is enough): a line's
# nodes announce one where nobody listens, so each links only with its neighbours.
NOWHERE = {"BZZZ_MESH_ADVERTISE": "127.0.0.1:9"}


def mesh(root: Path, shape: str, size: int = 5) -> list[Agent]:
    first = found(root / shape)
    if shape == "line":
        first.env = NOWHERE
    agents = [first.start()]
    for n in range(1, size):
        inviter = agents[0] if shape == "full" else agents[-1]
        node = join(root / shape, f"n{n}", inviter)
        if shape == "full":
            node.peers = [x.address for x in agents[1:]]
        else:
            node.env = NOWHERE
        agents.append(node.start())
    links = size - 1 if shape == "full" else (1 if shape == "line" else 0)
    for agent in agents:
        want = links if shape == "full" else (1 if agent in (agents[0], agents[-1]) else 2)
        wait_for(lambda agent=agent, want=want: len(agent.connected()) == want, 60, "links")
    return agents


def latency(agents: list[Agent], shape: str, samples: int) -> dict[str, Any]:
    ids = [a.agent_id for a in agents]
    by_hops: dict[int, list[float]] = {}
    skipped = 0
    for i in range(samples):
        origin = agents[0] if shape == "line" else agents[i % len(agents)]
        others = [a for a in agents if a is not origin]
        seq = origin.heads().get(ids[agents.index(origin)], 0) + 1
        times = asyncio.run(_sample(origin, others, ids[agents.index(origin)], seq))
        if times is None:
            skipped += 1
            continue
        for other, ms in zip(others, times, strict=True):
            hops = agents.index(other) if shape == "line" else 1
            by_hops.setdefault(hops, []).append(ms)
    report: dict[str, Any] = {
        f"hops_{h}": {
            "p50_ms": round(percentile(v, 0.5), 2),
            "p99_ms": round(percentile(v, 0.99), 2),
        }
        for h, v in sorted(by_hops.items())
    }
    per_hop = [v for h, vs in by_hops.items() for v in (x / h for x in vs)]
    report["samples"], report["skipped"] = samples - skipped, skipped
    report["per_hop_p50_ms"] = round(percentile(per_hop, 0.5), 2)
    report["per_hop_p99_ms"] = round(max(percentile(v, 0.99) / h for h, v in by_hops.items()), 2)
    return report


def idle(agents: list[Agent], seconds: float) -> dict[str, Any]:
    time.sleep(3)  # let the last replication settle
    pids = [a.proc.pid for a in agents if a.proc is not None]
    before = [cpu_seconds(p) for p in pids]
    woke = [wakeups(p) for p in pids]
    time.sleep(seconds)
    cpu = [(cpu_seconds(p) - b) / seconds * 100 for p, b in zip(pids, before, strict=True)]
    woke = [(wakeups(p) - w) / seconds for p, w in zip(pids, woke, strict=True)]
    rss = [rss_mb(p) for p in pids]
    roles = [
        ((ask(a.home, {"op": "election"}) or {}).get("election") or {}).get("role") for a in agents
    ]
    return {
        "cpu_percent_max": round(max(cpu), 2),
        "cpu_percent_mean": round(statistics.mean(cpu), 2),
        "leader_cpu_percent": round(
            sum(c for c, r in zip(cpu, roles, strict=True) if r == "leader"), 2
        ),
        "wakeups_per_s": [round(w) for w in woke],
        "cpu_percent": [round(c, 2) for c in cpu],
        "roles": roles,
        "rss_mb_max": round(max(rss), 1),
    }


def idle_etcd(root: Path, seconds: float) -> dict[str, Any]:
    """The same measurement on an idle 5-member etcd cluster."""
    try:
        cluster = EtcdCluster(root / "etcd", 5)
    except FileNotFoundError as error:
        return {"skipped": str(error)}
    with cluster:
        leader = wait_for(cluster.leader_name, 60, "an etcd leader")
        time.sleep(3)
        pids = {name: proc.pid for name, proc in cluster.procs.items()}
        before = {name: cpu_seconds(pid) for name, pid in pids.items()}
        time.sleep(seconds)
        cpu = {n: (cpu_seconds(pid) - before[n]) / seconds * 100 for n, pid in pids.items()}
        rss = [rss_mb(pid) for pid in pids.values()]
    followers = [c for name, c in cpu.items() if name != leader]
    return {
        "leader_cpu_percent": round(cpu[leader], 2),
        "follower_cpu_percent_mean": round(statistics.mean(followers), 2),
        "rss_mb_max": round(max(rss), 1),
    }


def _vs_etcd(bzzz: dict[str, Any], etcd: dict[str, Any]) -> dict[str, Any]:
    """BZZZ's idle leader and followers as multiples of etcd's in the same run."""
    if "skipped" in etcd:
        return {}
    cpu, roles = bzzz["cpu_percent"], bzzz["roles"]
    followers = [c for c, r in zip(cpu, roles, strict=True) if r != "leader"]
    return {
        "leader_vs_etcd_leader": round(
            bzzz["leader_cpu_percent"] / max(etcd["leader_cpu_percent"], 0.01), 2
        ),
        "followers_vs_etcd_followers": round(
            statistics.mean(followers) / max(etcd["follower_cpu_percent_mean"], 0.01), 2
        ),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--entries", type=int, default=200_000)
    parser.add_argument("--samples", type=int, default=200)
    parser.add_argument("--idle", type=float, default=10.0)
    args = parser.parse_args()
    # the machine's speed around the run: CPU per single-entry ingest (bench/probe.py)
    out: dict[str, Any] = {"bench": "replicate", "probe_ingest_us": [ingest_us()]}
    with tempfile.TemporaryDirectory(prefix="bzzz-bench-") as folder:
        root = Path(folder)
        out["catch_up"] = catch_up(root, args.entries)
        out["ssh_raw"] = raw_channel(out["catch_up"]["bytes"])
        out["catch_up_share_of_raw_bytes"] = round(
            out["catch_up"]["mb_per_s"] / out["ssh_raw"]["mb_per_s"], 3
        )
        for shape in ("full", "line"):
            agents = mesh(root, shape)
            try:
                out[f"latency_{shape}"] = latency(agents, shape, args.samples)
                if shape == "full":
                    out["idle_5_nodes"] = idle(agents, args.idle)
            finally:
                stop_all(agents)
        out["idle_etcd_5"] = idle_etcd(root, args.idle)
        out["idle_5_nodes"].update(_vs_etcd(out["idle_5_nodes"], out["idle_etcd_5"]))
    out["probe_ingest_us"].append(ingest_us())
    out["targets"] = {
        "catch_up_entries_per_s": 20_000,
        "per_hop_p50_ms": 10,
        "per_hop_p99_ms": 50,
        "idle_cpu_percent": 2,
        "idle_rss_mb": 150,
    }
    worst_p50 = max(out[f"latency_{s}"]["per_hop_p50_ms"] for s in ("full", "line"))
    worst_p99 = max(out[f"latency_{s}"]["per_hop_p99_ms"] for s in ("full", "line"))
    out["met"] = (
        out["catch_up"]["entries_per_s"] >= 20_000
        and worst_p50 <= 10
        and worst_p99 <= 50
        and out["idle_5_nodes"]["cpu_percent_max"] < 2
        and out["idle_5_nodes"]["rss_mb_max"] < 150
    )
    sys.stdout.write(json.dumps(out) + "\n")


if __name__ == "__main__":
    main()
