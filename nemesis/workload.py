"""What the clients do while the nemesis strikes: on every node a thread that appends
notes, claims tasks and releases or finishes them, plans the tasks it holds, objects to
others' plans, and opens, answers, resolves and escalates HMMM threads; and a writer
that adds task files to the folder the admin polls. Every answer that says ok is
recorded (an acknowledged entry: its author, seq if given, and hash); refusals and
timeouts are counted, never failures: under a nemesis they are expected."""

from __future__ import annotations

import collections
import random
import threading
import time
from dataclasses import dataclass, field
from typing import Any

from bzzz.agent.control import ask
from bzzz.tasks.local import write_task
from nemesis.cluster import Cluster, Node

OPS = {  # op -> weight
    "append": 6,
    "claim": 3,
    "plan": 2,
    "object": 1,
    "discuss": 2,
    "reply": 2,
    "end": 2,
    "release": 1,
    "done": 1,
}
TASK_EVERY_S = 4.0
ASK_TIMEOUT_S = 8.0


@dataclass(frozen=True)
class Ack:
    node: str
    author: str
    kind: str
    seq: int | None
    hash: str


@dataclass(frozen=True)
class Granted:
    node: str
    task: str
    token: tuple[int, int]


@dataclass
class History:
    acks: list[Ack] = field(default_factory=list)
    grants: list[Granted] = field(default_factory=list)
    tasks: list[str] = field(default_factory=list)  # ids of the task files written
    threads: dict[str, int] = field(default_factory=dict)  # discussion -> who opened it
    ended: set[str] = field(default_factory=set)
    roots: dict[str, str] = field(default_factory=dict)  # discussion -> its first message
    plans: dict[str, int] = field(default_factory=dict)  # task -> who planned it
    done: collections.Counter[str] = field(default_factory=collections.Counter)
    refused: collections.Counter[str] = field(default_factory=collections.Counter)
    reasons: dict[str, set[str]] = field(default_factory=dict)  # op -> a few refusals
    lock: threading.Lock = field(default_factory=threading.Lock)

    def summary(self) -> str:
        ok = ", ".join(f"{k} {v}" for k, v in sorted(self.done.items()))
        no = ", ".join(f"{k} {v}" for k, v in sorted(self.refused.items()))
        why = "".join(
            f"\n    {op}: {reason}" for op, seen in sorted(self.reasons.items()) for reason in seen
        )
        return f"acknowledged: {ok or 'nothing'}; refused or no answer: {no or 'none'}{why}"


class Workload:
    def __init__(self, cluster: Cluster, seed: int, history: History) -> None:
        self.cluster, self.seed, self.history = cluster, seed, history
        self.held: dict[int, set[str]] = {n.index: set() for n in cluster.nodes}

    def run(self, stop: threading.Event) -> None:
        workers = [
            threading.Thread(target=self._client, args=(n, stop), daemon=True)
            for n in self.cluster.nodes
        ]
        workers.append(threading.Thread(target=self._tasks, args=(stop,), daemon=True))
        for worker in workers:
            worker.start()
        for worker in workers:
            worker.join()

    def _tasks(self, stop: threading.Event) -> None:
        count = 0
        while not stop.wait(TASK_EVERY_S if count else 0.0):
            count += 1
            _, spec = write_task(self.cluster.tasks, f"nemesis task {count}")
            with self.history.lock:
                self.history.tasks.append(spec.id)

    def _client(self, node: Node, stop: threading.Event) -> None:
        rng = random.Random(self.seed * 7919 + node.index)
        ops, weights = list(OPS), list(OPS.values())
        while not stop.is_set():
            op = rng.choices(ops, weights)[0]
            if node.agent.running():
                done = getattr(self, f"_{op}")(node, rng)
                with self.history.lock:
                    if done is None:
                        pass  # nothing to do it on
                    elif done:
                        self.history.done[op] += 1
                    else:
                        self.history.refused[op] += 1
            stop.wait(rng.uniform(0.05, 0.4))

    # One request; the answer if it says ok

    def _ask(self, node: Node, request: dict[str, Any]) -> dict[str, Any] | None:
        try:
            answer = ask(node.home, request, timeout=ASK_TIMEOUT_S)
        except Exception as error:
            answer = {"ok": False, "error": f"no answer: {error}"}
        if answer is not None and answer.get("ok"):
            return answer
        why = str((answer or {}).get("error", "no daemon"))[:160]
        with self.history.lock:
            seen = self.history.reasons.setdefault(str(request.get("what", request["op"])), set())
            if len(seen) < 4:
                seen.add(why)
        return None

    def _ack(self, node: Node, kind: str, answer: dict[str, Any]) -> None:
        seq = answer.get("seq")
        entry = answer.get("hash") or answer.get("entry")
        ack = Ack(node.name, node.agent_id, kind, seq if type(seq) is int else None, str(entry))
        with self.history.lock:
            self.history.acks.append(ack)

    # The operations: True done, False refused or unanswered, None nothing to do

    def _append(self, node: Node, rng: random.Random) -> bool:
        data = {"by": node.name, "n": rng.randrange(1 << 30), "at": time.time()}
        answer = self._ask(node, {"op": "append", "kind": "task.note", "data": data})
        if answer is None:
            return False
        self._ack(node, "task.note", answer)
        return True

    def _claim(self, node: Node, rng: random.Random) -> bool | None:
        with self.history.lock:
            tasks = list(self.history.tasks)
        if not tasks:
            return None
        task = rng.choice(tasks)
        answer = self._ask(node, {"op": "claim", "task": task, "needs": [], "wait": 3})
        if answer is None or answer.get("status") != "granted":
            return False
        token = answer.get("token") or [0, 0]
        with self.history.lock:
            self.history.grants.append(Granted(node.name, task, (int(token[0]), int(token[1]))))
        self.held[node.index].add(task)
        return True

    def _held(self, node: Node, rng: random.Random) -> str | None:
        held = sorted(self.held[node.index])
        return rng.choice(held) if held else None

    def _plan(self, node: Node, rng: random.Random) -> bool | None:
        task = self._held(node, rng)
        if task is None:
            return None
        files = [f"src/{task.split(':', 1)[1]}.py", rng.choice(["src/shared.py", "README.md"])]
        request = {"op": "hmmm", "what": "plan", "thread": task, "text": "a plan", "files": files}
        answer = self._ask(node, request)
        if answer is None:
            return False
        self._ack(node, "hmmm.plan", answer)
        with self.history.lock:
            self.history.plans[task] = node.index
        return True

    def _object(self, node: Node, rng: random.Random) -> bool | None:
        with self.history.lock:
            others = sorted(t for t, who in self.history.plans.items() if who != node.index)
        if not others:
            return None
        severity = rng.choice(["minor", "major", "blocking"])
        request = {
            "op": "hmmm",
            "what": "object",
            "thread": rng.choice(others),
            "severity": severity,
            "reason": f"nemesis objects ({severity})",
        }
        answer = self._ask(node, request)
        if answer is None:
            return False
        self._ack(node, "hmmm.objection", answer)
        return True

    def _discuss(self, node: Node, rng: random.Random) -> bool:
        thread = f"x:{rng.randrange(1 << 64):016x}"
        answer = self._ask(node, _say(thread, "suggestion", "shall we?"))
        if answer is None:
            return False
        self._ack(node, "hmmm.msg", answer)
        with self.history.lock:
            self.history.threads[thread] = node.index
            self.history.roots[thread] = str(answer["entry"])
        return True

    def _open_threads(self, mine: int | None = None) -> list[str]:
        with self.history.lock:
            return sorted(
                t
                for t, who in self.history.threads.items()
                if t not in self.history.ended and (mine is None or who == mine)
            )

    def _reply(self, node: Node, rng: random.Random) -> bool | None:
        threads = self._open_threads()
        if not threads:
            return None
        thread = rng.choice(threads)
        with self.history.lock:
            parent = self.history.roots[thread]
        request = {**_say(thread, "concern", "what if it breaks?"), "parent": parent}
        answer = self._ask(node, request)
        if answer is None:
            return False
        self._ack(node, "hmmm.msg", answer)
        return True

    def _end(self, node: Node, rng: random.Random) -> bool | None:
        """Resolve or escalate a thread this node opened; some are left to their ttl."""
        threads = self._open_threads(node.index)
        if not threads:
            return None
        thread = rng.choice(threads)
        if rng.random() < 0.5:
            request = {"op": "hmmm", "what": "resolve", "thread": thread, "why": "settled"}
            kind = "hmmm.resolution"
        else:
            request = {"op": "hmmm", "what": "escalate", "thread": thread, "reason": "stuck"}
            kind = "hmmm.escalation"
        answer = self._ask(node, request)
        if answer is None:
            return False
        self._ack(node, kind, answer)
        with self.history.lock:
            self.history.ended.add(thread)
        return True

    def _release(self, node: Node, rng: random.Random) -> bool | None:
        task = self._held(node, rng)
        if task is None:
            return None
        self.held[node.index].discard(task)
        return self._ask(node, {"op": "release", "task": task}) is not None

    def _done(self, node: Node, rng: random.Random) -> bool | None:
        task = self._held(node, rng)
        if task is None:
            return None
        self.held[node.index].discard(task)
        request = {"op": "task_report", "task": task, "what": "done", "result": "done"}
        return self._ask(node, request) is not None


def _say(thread: str, query_type: str, text: str) -> dict[str, Any]:
    return {"op": "hmmm", "what": "say", "thread": thread, "query_type": query_type, "text": text}
