"""The built-in rule reviewer: objections any agent can raise without a model.

A plan draws a major objection when its files overlap those of another plan still in
flight (naming that task, so the planner can wait or leave the files out), and when its
task waits for a dependency that is not done."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from bzzz.domain.hmmm import Plan


@dataclass(frozen=True, slots=True)
class Finding:
    severity: str
    reason: str
    resolve: str
    rule: str  # a stable slug: `files-overlap`, `dependency-not-done`


def review(plan: Plan, in_flight: Iterable[Plan], waiting_for: Iterable[str]) -> list[Finding]:
    """What the rules object to in `plan`, given the other plans in flight and the
    dependencies of its task that are not done."""
    found: list[Finding] = []
    mine = set(plan.files)
    for other in sorted(in_flight, key=lambda p: p.task):
        if other.task == plan.task:
            continue
        shared = sorted(mine & set(other.files))
        if shared:
            listed = ", ".join(shared[:5]) + (
                f" and {len(shared) - 5} more" if len(shared) > 5 else ""
            )
            found.append(
                Finding(
                    "major",
                    f"its files overlap the plan of {other.task}: {listed}",
                    f"wait until {other.task} is done, or leave those files out",
                    "files-overlap",
                )
            )
    for dependency in waiting_for:
        found.append(
            Finding(
                "major",
                f"its task depends on {dependency}, which is not done",
                f"wait until {dependency} is done",
                "dependency-not-done",
            )
        )
    return found
