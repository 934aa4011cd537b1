"""Folding a task's exec entries into runs: steps paired with their results, a run per
start, hostile bodies skipped."""

from __future__ import annotations

from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from bzzz.domain import tools as tl
from bzzz.domain.trajectory import Recorded, fold_trajectory

A, B = b"\x01" * 32, b"\x02" * 32
T = "local:x"


def rec(author: bytes, kind: str, ts: int, **data: Any) -> Recorded:
    return Recorded(author, kind, ts, bytes([ts % 256]) * 32, {"task": T, **data})


def test_runs_pair_steps_with_results_and_a_second_holder_starts_fresh() -> None:
    token = {"term": 1, "grant": 2}
    entries = [
        rec(A, tl.STARTED, 1, backend="replay", model="m", sandbox="bwrap", branch="b1", **token),
        rec(A, tl.STEP, 2, n=1, tool="run", arguments={"command": "ls"}, sandbox="bwrap", **token),
        rec(A, tl.RESULT, 3, n=1, ok=True, output="x", exit_code=0, seconds=0.1, **token),
        rec(A, tl.STEP, 4, n=2, tool="read_file", arguments={"path": "a"}, **token),
        # A dies mid-step; B gets the task later under a new token
        rec(B, tl.STARTED, 5, backend="ollama", model="q", sandbox="bwrap", term=2, grant=1),
        rec(B, tl.STEP, 6, n=1, tool="finish", arguments={"summary": "s"}, term=2, grant=1),
        rec(B, tl.RESULT, 7, n=1, ok=True, output="s", term=2, grant=1),
        rec(B, tl.ENDED, 8, outcome="finished", why="done", term=2, grant=1),
        rec(B, tl.STEP, 9, n=2, tool="run", term=2, grant=1),  # after the end: no run
    ]
    first, second = fold_trajectory(T, entries)
    assert (first.author, first.token, first.branch) == (A, (1, 2), "b1")
    assert [(s.tool, s.ok) for s in first.steps] == [("run", True), ("read_file", None)]
    assert first.ended is None and first.steps[0].exit_code == 0
    assert second.ended is not None and second.ended["outcome"] == "finished"
    assert [s.tool for s in second.steps] == ["finish"]


@given(
    st.lists(
        st.dictionaries(
            st.sampled_from(["task", "term", "grant", "n", "ok", "tool"]),
            st.one_of(st.none(), st.integers(), st.text(max_size=5)),
        )
    )
)
def test_hostile_bodies_never_break_the_fold(bodies: list[dict[str, Any]]) -> None:
    entries = [
        Recorded(A, tl.KINDS[i % 4], i, b"\x00" * 32, {**b, "task": T})
        for i, b in enumerate(bodies)
    ]
    for run in fold_trajectory(T, entries):
        assert all(isinstance(s.n, int) for s in run.steps)
