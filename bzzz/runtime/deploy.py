"""Putting a deployment together: SSH connections (`bzzz.deploy.remote`), the packages
(`bzzz.deploy.wheels`, built once per Python and machine), the state file
(`bzzz.deploy.state`) and the flow (`bzzz.services.deploy`), for several hosts at once.

Connections are made one host at a time first (a first contact may ask the operator
about a fingerprint); then the hosts deploy side by side. A host that cannot be reached
or whose key is refused fails its check step, recorded like any other failure.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from bzzz.clock import now_ms
from bzzz.deploy import state, wheels
from bzzz.deploy.remote import HostKeyPolicy, SshRemote
from bzzz.domain import deploy as rules
from bzzz.domain.deploy import HostFacts, HostRecord
from bzzz.errors import BzzzError, UsageError
from bzzz.home.node import Node
from bzzz.services.deploy import Deployer, Packages, StepEvent

PARALLEL = 4  # hosts deployed at once


@dataclass(frozen=True)
class Access:
    """How we log in: host key rules, and the key (None: the agent's and ~/.ssh's)."""

    policy: HostKeyPolicy
    identity: Path | None = None


class _Packages:
    """One bundle per (Python, machine), built in a thread the first time it is asked for."""

    def __init__(self, wheel: Path | None) -> None:
        self.wheel = wheel
        self.made: dict[tuple[str, str], wheels.Bundle] = {}
        self.lock = asyncio.Lock()

    async def __call__(self, facts: HostFacts) -> Packages:
        key = (facts.python_tag, facts.machine)
        async with self.lock:
            if key not in self.made:
                self.made[key] = await asyncio.to_thread(
                    wheels.bundle, facts.python_tag, facts.machine, self.wheel
                )
            return self.made[key]


async def deploy_hosts(
    node: Node,
    reach: str,
    records: list[HostRecord],
    access: Access,
    report: Callable[[StepEvent], None],
    poke: Callable[[], None] = lambda: None,
    wheel: Path | None = None,
) -> list[HostRecord]:
    """Deploy (or resume) every record; the records as they end, also saved in the
    node home's state file after every step."""
    saved = state.load_records(node.home)

    def save(record: HostRecord) -> None:
        saved[record.key] = record
        state.save_records(node.home, saved)

    deployer = Deployer(node, reach, _Packages(wheel), save, report, poke)
    remotes: dict[str, SshRemote] = {}
    ended: dict[str, HostRecord] = {}
    for record in records:
        save(record)
        began = time.monotonic()
        try:
            remotes[record.key] = await SshRemote.connect(
                record.plan.target, access.policy, access.identity
            )
        except BzzzError as exc:
            said = " ".join(str(exc).split())
            failed = rules.record_step(
                record, "check", "failed", said, now_ms(), time.monotonic() - began
            )
            save(failed)
            report(StepEvent(record.key, "check", "failed", said, time.monotonic() - began))
            ended[record.key] = failed
    gate = asyncio.Semaphore(PARALLEL)

    async def one(record: HostRecord) -> HostRecord:
        remote = remotes[record.key]
        async with gate:
            try:
                return await deployer.deploy(remote, record)
            finally:
                await remote.close()

    started = [r for r in records if r.key in remotes]
    for record in await asyncio.gather(*(one(r) for r in started)):
        ended[record.key] = record
    return [ended[r.key] for r in records]


def plan_records(
    node_home: Path, plans: list[rules.HostPlan], retry: bool, targets: list[str]
) -> list[HostRecord]:
    """The records to run: fresh ones for `plans`, or with `retry` the saved ones of
    `targets` (every unfinished one when no target is named)."""
    if not retry:
        return [rules.start_record(p, now_ms()) for p in plans]
    saved = state.load_records(node_home)
    if targets:
        missing = [t for t in targets if t not in saved]
        if missing:
            raise UsageError(
                f"nothing to retry for {', '.join(missing)}: no deployment of it is recorded "
                f"in {state.state_path(node_home)} (deploy it without --retry)"
            )
        return [saved[t] for t in targets]
    return [r for r in saved.values() if not r.finished]
