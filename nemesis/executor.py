"""Applies a schedule to a running cluster, fault by fault at its time, and undoes each
when it ends; `heal` undoes whatever still holds and brings every node back. Faults may
overlap: links are cut by a count per directed pair, clocks add up, a disk stays full
while any fault fills it. Every action is logged with the time it happened and, for a
fault aimed at the leader, whom it hit."""

from __future__ import annotations

import collections
import contextlib
import os
import random
import signal
import subprocess
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from nemesis.cluster import Cluster, Node, fill_disk, free_disk
from nemesis.schedule import LEADER, Fault, Schedule, cut_pairs

Undo = Callable[[], None]


@dataclass
class Executor:
    cluster: Cluster
    schedule: Schedule
    log: Callable[[str], None]
    skipped: dict[str, str] = field(default_factory=dict)  # kind -> why it cannot run here
    applied: list[str] = field(default_factory=list)
    killed: set[int] = field(default_factory=set)  # nodes down on purpose now
    died: list[str] = field(default_factory=list)  # nodes found down that nobody killed
    _cuts: collections.Counter[tuple[int, int]] = field(default_factory=collections.Counter)
    _clock: collections.Counter[int] = field(default_factory=collections.Counter)
    _disk: collections.Counter[int] = field(default_factory=collections.Counter)
    _slow: collections.Counter[int] = field(default_factory=collections.Counter)
    _paused: collections.Counter[int] = field(default_factory=collections.Counter)
    _undo: dict[int, Undo] = field(default_factory=dict)
    _began: float = 0.0

    def elapsed(self) -> float:
        return time.monotonic() - self._began

    def _say(self, text: str) -> None:
        line = f"[{self.elapsed():7.1f}s] {text}"
        self.applied.append(line)
        self.log(line)

    def run(self, stop: threading.Event) -> None:
        """Apply every fault at its time; returns at the schedule's end (or on `stop`),
        with the faults that still hold left for `heal`."""
        self._began = time.monotonic()
        events: list[tuple[float, int, int]] = []  # (time, 0 end / 1 start, fault index)
        for i, fault in enumerate(self.schedule.faults):
            events += [(fault.at_s, 1, i), (fault.ends_s, 0, i)]
        for at, start, i in sorted(events):
            if stop.wait(max(0.0, at - self.elapsed())):
                return
            fault = self.schedule.faults[i]
            if fault.kind in self.skipped:
                continue
            try:
                if start:
                    self._undo[i] = self._start(i, fault)
                elif i in self._undo:
                    self._undo.pop(i)()
                    self._say(f"end   #{i} {fault.kind}")
            except Exception as error:  # a fault that could not be applied is logged
                self._say(f"could not {'apply' if start else 'undo'} #{i} {fault.kind}: {error}")
        stop.wait(max(0.0, self.schedule.seconds - self.elapsed()))

    def heal(self) -> None:
        """Undo every fault that still holds, then start every node that is down."""
        for i in sorted(self._undo, reverse=True):
            try:
                self._undo.pop(i)()
            except Exception as error:
                self._say(f"could not undo #{i}: {error}")
        for node in self.cluster.nodes:
            if not node.agent.running():
                self._restart(node)
        self._say("healed")

    # Faults

    def _resolve(self, i: int, fault: Fault) -> tuple[int, ...]:
        if LEADER not in fault.nodes:
            return fault.nodes
        leader = self.cluster.leader()
        if leader is None:
            leader = random.Random(self.schedule.seed * 1009 + i).choice(self.cluster.nodes)
        return tuple(leader.index if n == LEADER else n for n in fault.nodes)

    def _start(self, i: int, fault: Fault) -> Undo:
        nodes = self._resolve(i, fault)
        who = ",".join(f"n{n + 1}" for n in nodes)
        self._say(f"start #{i} {fault.kind} {who}{f' arg={fault.arg}' if fault.arg else ''}")
        node = self.cluster.nodes[nodes[0]]
        if fault.kind == "isolate":
            others = [n.index for n in self.cluster.nodes if n.index != node.index]
            pairs = {(node.index, o) for o in others} | {(o, node.index) for o in others}
            return self._cut(pairs)
        if fault.kind in ("split", "bridge", "one-way"):
            return self._cut(
                cut_pairs(Fault(fault.at_s, fault.kind, nodes, fault.hold_s, fault.arg))
            )
        if fault.kind == "kill":
            return self._kill(node)
        if fault.kind == "pause":
            return self._pause(node)
        if fault.kind == "clock":
            return self._jump(node, fault.arg)
        if fault.kind == "disk":
            return self._fill(node)
        if fault.kind == "slow":
            return self._slow_down(node, fault.arg)
        raise ValueError(f"no way to apply {fault.kind}")

    def _cut(self, pairs: set[tuple[int, int]]) -> Undo:
        hosts = [n.host for n in self.cluster.nodes]
        for a, b in sorted(pairs):
            self._cuts[(a, b)] += 1
            if self._cuts[(a, b)] == 1:
                self.cluster.lan.block(hosts[a], hosts[b])

        def undo() -> None:
            for a, b in sorted(pairs):
                self._cuts[(a, b)] -= 1
                if self._cuts[(a, b)] == 0:
                    self.cluster.lan.unblock(hosts[a], hosts[b])

        return undo

    def _kill(self, node: Node) -> Undo:
        if node.agent.running():
            node.agent.kill()
            self.killed.add(node.index)

        def undo() -> None:
            if not node.agent.running():
                self._restart(node)

        return undo

    def _restart(self, node: Node) -> None:
        if node.index not in self.killed:
            code = node.agent.proc.returncode if node.agent.proc else None
            self.died.append(f"{node.name} exited with {code} at {self.elapsed():.1f}s")
            self._say(f"{node.name} was down though nobody killed it: exit code {code}")
        self._paused[node.index] = 0
        for attempt in range(3):
            try:
                node.agent.start()
                self.killed.discard(node.index)
                self._say(f"{node.name} restarted")
                return
            except AssertionError as error:
                self._say(f"{node.name} did not start (try {attempt + 1}): {str(error)[-300:]}")
                time.sleep(2.0)

    def _signal(self, node: Node, sig: signal.Signals) -> None:
        if node.agent.proc is not None and node.agent.running():
            with contextlib.suppress(ProcessLookupError):
                os.kill(node.agent.proc.pid, sig)

    def _pause(self, node: Node) -> Undo:
        self._paused[node.index] += 1
        self._signal(node, signal.SIGSTOP)
        proc = node.agent.proc

        def undo() -> None:
            self._paused[node.index] = max(0, self._paused[node.index] - 1)
            if self._paused[node.index] == 0 and node.agent.proc is proc:
                self._signal(node, signal.SIGCONT)

        return undo

    def _write_clock(self, node: Node) -> None:
        tmp = node.clock_file.with_suffix(".tmp")
        tmp.write_text(f"{self._clock[node.index]}\n")
        tmp.replace(node.clock_file)

    def _jump(self, node: Node, offset_ms: int) -> Undo:
        self._clock[node.index] += offset_ms
        self._write_clock(node)

        def undo() -> None:
            self._clock[node.index] -= offset_ms
            self._write_clock(node)

        return undo

    def _fill(self, node: Node) -> Undo:
        def undo() -> None:
            self._disk[node.index] -= 1
            if self._disk[node.index] == 0:
                free_disk(node)

        self._disk[node.index] += 1
        if self._disk[node.index] == 1:
            try:
                written = fill_disk(node)
            except BaseException:
                undo()
                raise
            self._say(f"{node.name}'s disk full ({written >> 20} MiB written)")
        return undo

    def _slow_down(self, node: Node, rate_kbit: int) -> Undo:
        self._slow[node.index] += 1
        self.cluster.lan.slow(node.host, rate_kbit)

        def undo() -> None:
            self._slow[node.index] -= 1
            if self._slow[node.index] == 0:
                with contextlib.suppress(subprocess.CalledProcessError):
                    self.cluster.lan.unslow(node.host)

        return undo
