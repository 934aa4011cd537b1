"""The properties, judged after the run: from the answers the clients got (History),
what an observer saw during the run (leaders by term), what the webhook sink received,
and the stores themselves, read after the daemons stopped."""

from __future__ import annotations

import collections
import itertools
import json
import subprocess
import sys
import threading
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bzzz.agent.control import ask
from bzzz.domain import claims as cl
from bzzz.domain import hmmm as hm
from bzzz.domain.entry import Entry
from bzzz.domain.leadership import LEADER
from bzzz.domain.leadership_audit import audit_leadership
from bzzz.domain.payload import payload_map
from bzzz.home.node import open_home_store
from bzzz.home.roles import load_roles
from nemesis.cluster import Cluster
from nemesis.workload import History

ENDED = ("resolved", "escalated")


@dataclass
class Verdict:
    name: str
    ok: bool
    detail: str = ""
    problems: list[str] = field(default_factory=list)

    def line(self) -> str:
        head = f"{'PASS' if self.ok else 'FAIL'} {self.name}"
        return f"{head}: {self.detail}" if self.detail else head


class Observer:
    """Asks every running node for its election view once a second; remembers who said
    it was leader in which term (two in one term: split brain seen live)."""

    def __init__(self, cluster: Cluster) -> None:
        self.cluster = cluster
        self.leaders: dict[int, set[str]] = collections.defaultdict(set)
        self.samples = 0

    def run(self, stop: threading.Event) -> None:
        while not stop.wait(1.0):
            for node in self.cluster.running():
                try:
                    answer = ask(node.home, {"op": "election"}, timeout=2.0)
                except Exception:
                    continue
                view = answer.get("election") if answer else None
                if isinstance(view, dict) and view.get("role") == "leader":
                    self.leaders[int(view["term"])].add(node.name)
                    self.samples += 1

    def verdict(self) -> Verdict:
        two = {t: sorted(w) for t, w in self.leaders.items() if len(w) > 1}
        problems = [f"term {t}: {', '.join(w)} each said it led" for t, w in sorted(two.items())]
        detail = f"{self.samples} leader answers over {len(self.leaders)} terms"
        return Verdict("one leader per term (seen live)", not two, detail, problems)


# Read back


@dataclass
class StoreCopy:
    node: str
    entries: list[Entry]

    def by_hash(self) -> dict[str, Entry]:
        return {e.hash.hex(): e for e in self.entries}


def read_store(home: Path, node: str) -> StoreCopy:
    store = open_home_store(home)
    try:
        entries = [stored.decode() for author in store.heads() for stored in store.entries(author)]
    finally:
        store.close()
    return StoreCopy(node, entries)


# The properties


def acked_entries_kept(history: History, copies: list[StoreCopy]) -> Verdict:
    problems = []
    for copy in copies:
        held = copy.by_hash()
        for ack in history.acks:
            entry = held.get(ack.hash)
            if entry is None:
                problems.append(f"{copy.node} lacks {ack.kind} {ack.hash[:16]} by {ack.node}")
            elif ack.seq is not None and (entry.seq != ack.seq or entry.author.hex() != ack.author):
                problems.append(
                    f"{copy.node}: {ack.hash[:16]} is at seq {entry.seq}, acked {ack.seq}"
                )
    detail = f"{len(history.acks)} acknowledged entries in each of {len(copies)} stores"
    return Verdict("no acknowledged entry lost", not problems, detail, problems[:20])


def audits_clean(cluster: Cluster) -> Verdict:
    problems = []
    for node in cluster.nodes:
        result = subprocess.run(
            [sys.executable, "-m", "bzzz", "audit", "--home", str(node.home), "--json"],
            capture_output=True,
            text=True,
            timeout=300,
        )
        try:
            report = json.loads(result.stdout)
        except ValueError:
            problems.append(f"{node.name}: audit gave no report: {result.stderr.strip()[-300:]}")
            continue
        for finding in report.get("findings", []):
            problems.append(f"{node.name}: {finding}")
    return Verdict(
        "every store audits clean", not problems, f"{len(cluster.nodes)} audits", problems[:20]
    )


def leaders_in_logs(copies: list[StoreCopy]) -> Verdict:
    problems = []
    terms = 0
    for copy in copies:
        by_term: dict[int, set[str]] = collections.defaultdict(set)
        for e in copy.entries:
            if e.kind == LEADER:
                data = payload_map(e.body)
                if data is not None and type(data.get("term")) is int:
                    by_term[int(data["term"])].add(e.author.hex()[:12])
        terms = max(terms, len(by_term))
        problems += [
            f"{copy.node}: term {t} claimed by {', '.join(sorted(w))}"
            for t, w in sorted(by_term.items())
            if len(w) > 1
        ]
    return Verdict("one leader per term (logs)", not problems, f"{terms} terms led", problems)


def _grants(entries: list[Entry]) -> tuple[list[tuple[cl.Grant, int]], dict[Any, list[Entry]]]:
    proof = audit_leadership(entries, load_roles(None)).proof
    leaders = {t: p.leader for t, p in proof.proven.items()}
    grants: list[tuple[cl.Grant, int]] = []
    followups: dict[Any, list[Entry]] = collections.defaultdict(list)
    for e in entries:
        data = payload_map(e.body)
        if data is None:
            continue
        if e.kind == cl.GRANTED:
            for item in cl.grant_maps(data) or []:
                grant = cl.parse_grant(e.author, e.ts, item, leaders)
                if isinstance(grant, cl.Grant):
                    grants.append((grant, e.lamport))
        elif e.kind in (cl.RELEASED, cl.PROGRESS):
            term, number = data.get("term"), data.get("grant")
            if type(term) is int and type(number) is int:
                followups[(data.get("task"), (term, number), e.author)].append(e)
    return grants, followups


def one_live_grant(copies: list[StoreCopy]) -> Verdict:
    """Within a term (one leader), a task is granted again only after its grant was
    released (a release the leader could have seen: earlier in Lamport order) or had
    expired by the leader's clock, renewals counted. Across terms the older grant
    stops being live when the newer term is proven (the design)."""
    grants, followups = _grants(copies[0].entries)
    by_task: dict[str, list[tuple[cl.Grant, int]]] = collections.defaultdict(list)
    for grant, lamport in grants:
        by_task[grant.task].append((grant, lamport))
    problems = []
    for task, items in sorted(by_task.items()):
        items.sort(key=lambda x: x[0].token)
        for (g1, _), (g2, lamport2) in itertools.pairwise(items):
            if g1.term != g2.term or g1.token == g2.token:
                continue
            after = followups.get((task, g1.token, g1.claimant), [])
            released = any(e.kind == cl.RELEASED and e.lamport < lamport2 for e in after)
            renewed = [e.ts for e in after if e.kind == cl.PROGRESS and e.ts <= g2.ts]
            expires = max([g1.ts, *renewed]) + g1.lease_ms
            if not released and g2.ts < expires:
                problems.append(
                    f"{task}: grant {list(g2.token)} to {g2.claimant.hex()[:12]} at ts {g2.ts} "
                    f"while {list(g1.token)} to {g1.claimant.hex()[:12]} was live until {expires}"
                )
    detail = f"{len(grants)} grants of {len(by_task)} tasks"
    return Verdict("never two live grants of one task", not problems, detail, problems[:20])


def threads_end(views: dict[str, list[dict[str, Any]]]) -> Verdict:
    """`views`: per node, its `threads` answer rows, asked after every ttl passed."""
    problems = []
    states: dict[str, set[str]] = collections.defaultdict(set)
    for node, rows in views.items():
        for row in rows:
            states[row["id"]].add(row["state"])
            if row["state"] not in ENDED:
                problems.append(f"{node}: thread {row['id']} is {row['state']} ({row['why']})")
    problems += [
        f"thread {t}: nodes disagree: {sorted(s)}" for t, s in states.items() if len(s) > 1
    ]
    return Verdict("every HMMM thread ends", not problems, f"{len(states)} threads", problems[:20])


def escalations_of(rows: Iterable[dict[str, Any]]) -> dict[str, str]:
    """escalation entry hash -> its thread, from `threads` answer rows."""
    return {
        m["entry"]: row["id"] for row in rows for m in row["messages"] if m["kind"] == hm.ESCALATION
    }


def escalations_delivered(escalations: dict[str, str], deliveries: list[dict[str, Any]]) -> Verdict:
    """Each escalation reached the webhook, every POST of it under the same
    Idempotency-Key (so a receiver that drops repeats acts on it once)."""
    posts: dict[str, list[dict[str, Any]]] = collections.defaultdict(list)
    for post in deliveries:
        posts[str(post.get("escalation"))].append(post)
    problems = [
        f"escalation {h[:16]} of {t} never delivered"
        for h, t in escalations.items()
        if h not in posts
    ]
    for entry, got in posts.items():
        keys = {p.get("key") for p in got}
        if len(keys) != 1 or None in keys:
            problems.append(f"escalation {entry[:16]} posted under keys {sorted(map(str, keys))}")
    repeats = sum(len(got) - 1 for got in posts.values())
    detail = (
        f"{len(escalations)} escalations, {len(deliveries)} posts ({repeats} repeats, same key)"
    )
    return Verdict("every escalation delivered once", not problems, detail, problems[:20])


def tasks_listed(tasks: list[str], boards: dict[str, set[str]]) -> Verdict:
    problems = [
        f"{node}: {len(missing)} tasks missing, e.g. {sorted(missing)[:3]}"
        for node, board in boards.items()
        if (missing := set(tasks) - board)
    ]
    return Verdict(
        "every task written is on every board", not problems, f"{len(tasks)} tasks", problems
    )


def stores_converge(copies: list[StoreCopy], stopping_ms: int) -> Verdict:
    """Every store holds every entry, except those written while the nodes were being
    stopped one by one (a holder renews its lease every second: the last ones cannot
    reach a peer that stopped first)."""
    union: dict[bytes, Entry] = {}
    for copy in copies:
        union.update((e.hash, e) for e in copy.entries)
    problems, late = [], 0
    for copy in copies:
        held = {e.hash for e in copy.entries}
        for entry_hash, entry in union.items():
            if entry_hash in held:
                continue
            if entry.ts >= stopping_ms - 2000:
                late += 1
            else:
                problems.append(
                    f"{copy.node} lacks {entry.kind} {entry.author.hex()[:12]}#{entry.seq}"
                )
    detail = f"{len(union)} entries; {late} missing ones were written while stopping"
    return Verdict("stores converge", not problems, detail, problems[:20])
