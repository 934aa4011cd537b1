"""`/metrics`: a node's state in Prometheus's text format (or OpenMetrics, when the
scraper asks for it), from a registry of its own (never prometheus-client's global one,
so two nodes in one process never mix) holding one collector that turns a `Snapshot`
into metric families at scrape time.

Counters are totals over the logs this node holds (its own log's length, the grants in
its claim book, the alert entries it stored): they survive restarts, and every caught-up
node of a cluster reports the same cluster-wide values."""

from __future__ import annotations

from collections.abc import Iterator

from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    InfoMetricFamily,
    Metric,
)
from prometheus_client.exposition import choose_encoder
from prometheus_client.registry import CollectorRegistry

from bzzz.domain.election import LEADER
from bzzz.http.readings import NodeReadings, Snapshot, readiness

# name: help. The names follow Prometheus's conventions: `bzzz_` prefix, the unit as a
# suffix, `_total` on counters.
HELP = {
    "bzzz_node": "This node: its agent id, name, role and cluster.",
    "bzzz_ready": "1 when /readyz answers 200 (member, connected, caught up, leader proven).",
    "bzzz_cluster_members": "Members of the cluster, as the logs this node holds say.",
    "bzzz_logs": "Member logs this node holds.",
    "bzzz_entries_appended_total": "Entries this node signed into its own log.",
    "bzzz_entries_ingested_total": "Entries of other members' logs this node verified and stored.",
    "bzzz_peers_connected": "Peers this node has a live session with.",
    "bzzz_replication_lag_entries": (
        "Entries one side lacks: side=we_lack what a connected peer holds and this node "
        "does not, side=they_lack the reverse (heads as last announced)."
    ),
    "bzzz_election_term": "The election term this node is in.",
    "bzzz_election_leader": "1 while this node follows (or is) a leader, 0 without one.",
    "bzzz_election_is_leader": "1 while this node is the leader.",
    "bzzz_election_proven_terms": "Terms whose leader the logs held prove.",
    "bzzz_election_leader_changes_total": (
        "Proven terms whose leader differs from the previous proven term's (the first "
        "leader counted)."
    ),
    "bzzz_claim_grants_total": "Claim requests answered with a grant, in the claim book.",
    "bzzz_claim_refusals_total": "Claim requests answered with a refusal, in the claim book.",
    "bzzz_claims_live": "Grants live now (not released, not expired, of the newest term).",
    "bzzz_claim_requests_pending": "Claim requests no leader has answered yet.",
    "bzzz_tasks": "Tasks on the board, by state.",
    "bzzz_hmmm_threads": "HMMM threads, by state.",
    "bzzz_hmmm_escalations_total": "HMMM escalation entries: a person was asked to decide.",
    "bzzz_alerts_total": (
        "Alert entries stored (what nodes saw go wrong and the audit reports: fork, "
        "split_brain, peer_refused, hmmm_rule), by kind."
    ),
    "bzzz_audit_findings": (
        "What the leadership audit's rules (those of `bzzz audit`) find in the logs this "
        "node holds now, by check: split-brain, double-vote, unproven-leader."
    ),
}


def families(s: Snapshot, max_lag: int) -> Iterator[Metric]:
    """The metric families of one snapshot."""

    def gauge(name: str, value: float) -> GaugeMetricFamily:
        return GaugeMetricFamily(name, HELP[name], value=value)

    def counter(name: str, value: float) -> CounterMetricFamily:
        return CounterMetricFamily(name, HELP[name], value=value)

    info = InfoMetricFamily("bzzz_node", HELP["bzzz_node"])
    info.add_metric(
        [],
        {
            "agent_id": s.agent_id.hex(),
            "name": s.name,
            "role": s.role,
            "cluster": s.cluster or "",
        },
    )
    yield info
    yield gauge("bzzz_ready", int(all(c.ok for c in readiness(s, max_lag))))
    yield gauge("bzzz_cluster_members", s.members)
    yield gauge("bzzz_logs", s.logs)
    yield counter("bzzz_entries_appended_total", s.appended)
    yield counter("bzzz_entries_ingested_total", s.ingested)
    yield gauge("bzzz_peers_connected", len(s.peers))
    lag = GaugeMetricFamily(
        "bzzz_replication_lag_entries",
        HELP["bzzz_replication_lag_entries"],
        labels=["peer", "peer_name", "side"],
    )
    for p in s.peers:
        lag.add_metric([p.agent_id.hex(), p.name, "we_lack"], p.we_lack)
        lag.add_metric([p.agent_id.hex(), p.name, "they_lack"], p.they_lack)
    yield lag
    yield gauge("bzzz_election_term", s.term)
    yield gauge("bzzz_election_leader", int(s.leader is not None))
    yield gauge("bzzz_election_is_leader", int(s.election_role == LEADER))
    yield gauge("bzzz_election_proven_terms", s.proven_terms)
    yield counter("bzzz_election_leader_changes_total", s.leader_changes)
    yield counter("bzzz_claim_grants_total", s.grants)
    yield counter("bzzz_claim_refusals_total", s.refusals)
    yield gauge("bzzz_claims_live", s.live_claims)
    yield gauge("bzzz_claim_requests_pending", s.pending_requests)
    for name, by_state in (("bzzz_tasks", s.tasks), ("bzzz_hmmm_threads", s.threads)):
        family = GaugeMetricFamily(name, HELP[name], labels=["state"])
        for state, n in sorted(by_state.items()):
            family.add_metric([state], n)
        yield family
    yield counter("bzzz_hmmm_escalations_total", s.escalations)
    found = CounterMetricFamily("bzzz_alerts_total", HELP["bzzz_alerts_total"], labels=["kind"])
    for kind, n in sorted(s.alerts.items()):
        found.add_metric([kind], n)
    yield found
    audit = GaugeMetricFamily("bzzz_audit_findings", HELP["bzzz_audit_findings"], labels=["check"])
    for check, n in sorted(s.findings.items()):
        audit.add_metric([check], n)
    yield audit


class SnapshotCollector:
    """Yields the families of the snapshot the scrape in progress took."""

    def __init__(self, max_lag: int) -> None:
        self.max_lag = max_lag
        self.snapshot: Snapshot | None = None

    def collect(self) -> Iterator[Metric]:
        if self.snapshot is not None:
            yield from families(self.snapshot, self.max_lag)


class NodeMetrics:
    """One node's metrics: a registry of its own, read at scrape time."""

    def __init__(self, readings: NodeReadings, max_lag: int) -> None:
        self.readings = readings
        self.registry = CollectorRegistry(auto_describe=False)
        self._collector = SnapshotCollector(max_lag)
        self.registry.register(self._collector)

    async def scrape(self, accept: str = "") -> tuple[bytes, str]:
        """The exposition (in the format `accept` asks for) and its content type. Only
        once the node runs: before, its counters would read zero (nothing read yet) and
        a scraper would take the jump to the logs' totals for new entries."""
        snapshot = await self.readings.snapshot()
        encode, content_type = choose_encoder(accept)
        # No await from here on: a concurrent scrape cannot swap the snapshot mid-way.
        self._collector.snapshot = snapshot
        return encode(self.registry), content_type
