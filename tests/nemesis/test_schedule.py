"""The schedule is data made from a seed alone: the same seed gives the same faults,
a schedule survives JSON, and bad ones are refused with the reason."""

from __future__ import annotations

import pytest

from nemesis.schedule import KINDS, LEADER, Fault, Schedule, cut_pairs, make_schedule


def test_a_seed_makes_one_schedule_and_json_replays_it() -> None:
    first, again = make_schedule(11, 300, 5), make_schedule(11, 300, 5)
    assert first == again and first != make_schedule(12, 300, 5)
    assert Schedule.from_json(first.to_json()) == first
    assert {f.kind for f in first.faults} <= set(KINDS)
    assert all(f.ends_s <= 300 for f in first.faults)
    assert all(n == LEADER or 0 <= n < 5 for f in first.faults for n in f.nodes)


def test_long_schedules_use_every_kind_asked_for() -> None:
    kinds = {f.kind for f in make_schedule(5, 3600, 5).faults}
    assert kinds == set(KINDS)
    only = make_schedule(5, 600, 3, ("kill", "pause"))
    assert {f.kind for f in only.faults} == {"kill", "pause"}


def test_partitions_cut_the_right_links() -> None:
    split = Fault(0, "split", (4, 1, 0, 2, 3), 5, arg=2)  # 4 and 1 against 0, 2, 3
    pairs = cut_pairs(split)
    assert (4, 0) in pairs and (0, 4) in pairs and (1, 3) in pairs
    assert (4, 1) not in pairs and (0, 2) not in pairs
    bridge = cut_pairs(Fault(0, "bridge", (2, 0, 1), 5))  # 2 bridges 0 and 1
    assert bridge == {(0, 1), (1, 0)}
    assert cut_pairs(Fault(0, "one-way", (1, 2), 5)) == {(1, 2)}


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ('{"seed": 1, "nodes": 2, "seconds": 60, "faults": []}', "at least 3 nodes"),
        (
            '{"seed": 1, "nodes": 3, "seconds": 60, "faults": '
            '[{"at_s": 1, "kind": "flood", "nodes": [0], "hold_s": 2}]}',
            "unknown fault kind",
        ),
        (
            '{"seed": 1, "nodes": 3, "seconds": 60, "faults": '
            '[{"at_s": 1, "kind": "kill", "nodes": [7], "hold_s": 2}]}',
            "out of range",
        ),
    ],
)
def test_a_bad_schedule_is_refused_with_the_reason(text: str, problem: str) -> None:
    with pytest.raises(ValueError, match=problem):
        Schedule.from_json(text)
