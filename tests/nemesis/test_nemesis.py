"""A short nemesis run on every submission: three real daemons in network namespaces
under the workload while a fixed seed's schedule partitions, kills, pauses, shifts a
clock, fills a disk and slows a link; then every property must hold. Long runs:
`python -m nemesis --seed S --minutes M --nodes N` (or `make nemesis`)."""

from __future__ import annotations

from pathlib import Path

import pytest

from nemesis.run import run
from nemesis.schedule import make_schedule

pytestmark = pytest.mark.slow

FAULT_SECONDS = 40.0


@pytest.mark.parametrize("seed", [3])
def test_every_property_holds_under_a_short_schedule(seed: int, tmp_path: Path) -> None:
    schedule = make_schedule(seed, FAULT_SECONDS, 3)
    assert len(schedule.faults) >= 3, schedule.describe()
    lines: list[str] = []
    outcome = run(schedule, tmp_path, lines.append)
    report = "\n".join([schedule.describe(), *lines, outcome.report()])
    assert outcome.ok, report
    assert len(outcome.verdicts) >= 10, report
