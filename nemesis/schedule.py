"""What the nemesis will do, as data: a list of faults, each with when it starts (seconds
after the workload starts), how long it holds, whom it hits and how hard. Made from a
seed alone (`make_schedule`), with no clock and no I/O, so a schedule can be printed,
saved as JSON and replayed; the executor applies it, the checker judges the run.

A fault's `nodes` are node indexes (0-based), or `LEADER` (-1) for the node that leads
when the fault starts: the executor resolves it and logs whom it hit.
"""

from __future__ import annotations

import json
import random
from dataclasses import asdict, dataclass, field
from typing import Any

LEADER = -1

# kind -> what it does; `arg` means what the comment says
KINDS = {
    "isolate": "one node's links to every other node are cut both ways",
    "split": "the nodes split in a minority and a majority that cannot reach each other",
    "bridge": "two halves cut from each other, both still linked to one bridge node",
    "one-way": "what nodes[0] sends to nodes[1] is dropped; the other way still works",
    "kill": "kill -9, restarted when the fault ends",
    "pause": "SIGSTOP, SIGCONT when the fault ends",
    "clock": "the node's wall clock jumps by arg ms (back to normal when it ends)",
    "disk": "the node's home (a small tmpfs) is filled until writes fail; freed at the end",
    "slow": "the node's link is limited to arg kbit/s each way (tc tbf)",
    "lossy": "the node's link delays and drops packets (tc netem; arg = loss %)",
}
# netem is not in every kernel: the executor leaves it out, saying why.
NEEDS_NETEM = ("lossy",)
WARM_UP_S = 8.0  # quiet time before the first fault: a leader, some acknowledged work
MIN_HOLD_S, MAX_HOLD_S = 3.0, 14.0
MIN_GAP_S, MAX_GAP_S = 1.0, 6.0
OVERLAP = 0.25  # the chance a fault starts while the previous one still holds


@dataclass(frozen=True)
class Fault:
    at_s: float
    kind: str
    nodes: tuple[int, ...]
    hold_s: float
    arg: int = 0

    @property
    def ends_s(self) -> float:
        return self.at_s + self.hold_s

    def describe(self) -> str:
        who = ",".join("leader" if n == LEADER else f"n{n + 1}" for n in self.nodes)
        more = f" arg={self.arg}" if self.arg else ""
        return f"t={self.at_s:7.1f}s +{self.hold_s:4.1f}s  {self.kind:8} {who}{more}"


@dataclass(frozen=True)
class Schedule:
    seed: int
    nodes: int
    seconds: float
    faults: tuple[Fault, ...] = field(default_factory=tuple)

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=1)

    @staticmethod
    def from_json(text: str) -> Schedule:
        data: dict[str, Any] = json.loads(text)
        faults = tuple(
            Fault(
                float(f["at_s"]),
                str(f["kind"]),
                tuple(int(n) for n in f["nodes"]),
                float(f["hold_s"]),
                int(f.get("arg", 0)),
            )
            for f in data["faults"]
        )
        schedule = Schedule(int(data["seed"]), int(data["nodes"]), float(data["seconds"]), faults)
        problem = schedule_problem(schedule)
        if problem is not None:
            raise ValueError(problem)
        return schedule

    def describe(self) -> str:
        head = f"schedule seed={self.seed} nodes={self.nodes} seconds={self.seconds:.0f}"
        return "\n".join([head, *(f.describe() for f in self.faults)])

    def without(self, kinds: tuple[str, ...]) -> Schedule:
        kept = tuple(f for f in self.faults if f.kind not in kinds)
        return Schedule(self.seed, self.nodes, self.seconds, kept)


def schedule_problem(schedule: Schedule) -> str | None:
    """Why a schedule (read from a file, say) cannot run, or None."""
    if schedule.nodes < 3:
        return f"a nemesis needs at least 3 nodes, not {schedule.nodes}"
    for fault in schedule.faults:
        if fault.kind not in KINDS:
            return f"unknown fault kind {fault.kind!r}; known: {', '.join(KINDS)}"
        if not fault.nodes or any(n != LEADER and not 0 <= n < schedule.nodes for n in fault.nodes):
            return f"{fault.describe()}: a node index out of range"
        if fault.hold_s <= 0 or fault.at_s < 0:
            return f"{fault.describe()}: negative time"
    return None


def make_schedule(
    seed: int, seconds: float, nodes: int, kinds: tuple[str, ...] = tuple(KINDS)
) -> Schedule:
    """Faults from `WARM_UP_S` until `seconds`, one after another, some overlapping,
    each on nodes picked by the seeded random source."""
    if nodes < 3:
        raise ValueError(f"a nemesis needs at least 3 nodes, not {nodes}")
    unknown = [k for k in kinds if k not in KINDS]
    if unknown or not kinds:
        raise ValueError(f"fault kinds: some of {', '.join(KINDS)}, not {unknown or 'none'}")
    rng = random.Random(seed)
    faults: list[Fault] = []
    t = WARM_UP_S
    while True:
        hold = round(rng.uniform(MIN_HOLD_S, MAX_HOLD_S), 1)
        if t + hold > seconds:
            break
        kind = rng.choice(kinds)
        targets = _targets(rng, kind, nodes)
        arg = rng.randint(1, (nodes - 1) // 2) if kind == "split" else _arg(rng, kind)
        faults.append(Fault(round(t, 1), kind, targets, hold, arg))
        if rng.random() < OVERLAP:
            t += rng.uniform(0.5, hold)  # the next one starts while this one holds
        else:
            t += hold + rng.uniform(MIN_GAP_S, MAX_GAP_S)
    return Schedule(seed, nodes, seconds, tuple(faults))


def _targets(rng: random.Random, kind: str, nodes: int) -> tuple[int, ...]:
    everyone = list(range(nodes))
    rng.shuffle(everyone)
    if kind in ("isolate", "kill", "pause", "clock", "disk", "slow", "lossy"):
        # Half the time the leader: losing it is what tests an election.
        return (LEADER,) if rng.random() < 0.5 else (everyone[0],)
    if kind in ("split", "bridge"):
        # split: the first `arg` nodes are the minority; bridge: the first is the bridge
        return tuple(everyone)
    return (everyone[0], everyone[1])  # one-way: from, to


def _arg(rng: random.Random, kind: str) -> int:
    if kind == "clock":
        # Forward or back, by seconds to minutes: leases, windows and ttl read it.
        return rng.choice((-1, 1)) * rng.randint(5, 120) * 1000
    if kind == "slow":
        return rng.choice((32, 64, 128, 256))
    if kind == "lossy":
        return rng.choice((5, 10, 20))
    return 0


def cut_pairs(fault: Fault) -> set[tuple[int, int]]:
    """The directed links (from, to) a network fault cuts, with its nodes resolved."""
    n = fault.nodes
    if fault.kind == "isolate":
        return set()  # the executor cuts the node from every other: it knows them all
    if fault.kind == "one-way":
        return {(n[0], n[1])}
    if fault.kind == "split":
        minority, majority = n[: fault.arg], n[fault.arg :]
    elif fault.kind == "bridge":
        rest = n[1:]
        minority, majority = rest[: len(rest) // 2], rest[len(rest) // 2 :]
    else:
        return set()
    return {(a, b) for a in minority for b in majority} | {
        (b, a) for a in minority for b in majority
    }
