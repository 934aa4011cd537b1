"""A task's trajectory (issue 20): what each holder's run of it did, folded from the
``exec.*`` entries in their logs: when it started (backend, model, sandbox, branch),
each tool call with its outcome, and how it ended. Pure; the bodies come from peers and
are read defensively (a malformed one is skipped, never a crash)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from bzzz.domain import tools as tl


@dataclass(frozen=True, slots=True)
class Recorded:
    """One exec entry as the fold reads it."""

    author: bytes
    kind: str
    ts: int
    hash: bytes
    data: Mapping[str, Any]


@dataclass
class Step:
    n: int
    tool: str
    arguments: Any
    ts: int
    sandbox: str | None = None
    ok: bool | None = None  # None: no result recorded (the run died during the step)
    output: str = ""
    exit_code: int | None = None
    seconds: float = 0.0


@dataclass
class Run:
    author: bytes
    token: tuple[int, int]
    started_ts: int
    backend: str = ""
    model: str = ""
    sandbox: str = ""
    branch: str | None = None
    base: str | None = None
    steps: list[Step] = field(default_factory=list)
    ended: Mapping[str, Any] | None = None  # the exec.ended body


def _token(data: Mapping[str, Any]) -> tuple[int, int] | None:
    term, grant = data.get("term"), data.get("grant")
    if type(term) is int and type(grant) is int:
        return (term, grant)
    return None


def _text(value: object) -> str:
    return value if isinstance(value, str) else ""


def fold_trajectory(task: str, entries: Iterable[Recorded]) -> list[Run]:
    """The runs of `task`, oldest first; a step or end joins the latest run its author
    started (tokens may be re-issued within one hold)."""
    runs: list[Run] = []
    current: dict[bytes, Run] = {}
    for e in entries:
        if e.data.get("task") != task or (token := _token(e.data)) is None:
            continue
        if e.kind == tl.STARTED:
            run = Run(e.author, token, e.ts)
            run.backend, run.model = _text(e.data.get("backend")), _text(e.data.get("model"))
            run.sandbox = _text(e.data.get("sandbox"))
            run.branch = _text(e.data.get("branch")) or None
            run.base = _text(e.data.get("base")) or None
            runs.append(run)
            current[e.author] = run
            continue
        run_of = current.get(e.author)
        n = e.data.get("n")
        if run_of is None:
            continue
        if e.kind == tl.STEP and type(n) is int:
            sandbox = e.data.get("sandbox")
            run_of.steps.append(
                Step(
                    n,
                    _text(e.data.get("tool")),
                    e.data.get("arguments"),
                    e.ts,
                    sandbox if isinstance(sandbox, str) else None,
                )
            )
        elif e.kind == tl.RESULT and type(n) is int:
            step = next((s for s in reversed(run_of.steps) if s.n == n), None)
            if step is not None and step.ok is None:
                step.ok = e.data.get("ok") is True
                step.output = _text(e.data.get("output"))
                code = e.data.get("exit_code")
                step.exit_code = code if type(code) is int else None
                seconds = e.data.get("seconds")
                step.seconds = float(seconds) if isinstance(seconds, int | float) else 0.0
        elif e.kind == tl.ENDED:
            run_of.ended = dict(e.data)
            del current[e.author]
    return runs
