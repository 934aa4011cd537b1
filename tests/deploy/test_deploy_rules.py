"""The deployment's rules (`bzzz.domain.deploy`): targets, where a retry resumes, what a
failed step does to the steps after it, the state file's JSON, and the decisions each
step makes from what it found on the host."""

from __future__ import annotations

import json

import pytest

from bzzz.domain import deploy as rules
from bzzz.domain.deploy import HostFacts, HostPlan, Target, parse_target
from bzzz.errors import UsageError


def test_targets_parse_with_and_without_a_port() -> None:
    assert parse_target("root@10.0.0.5") == Target("root", "10.0.0.5", 22)
    assert parse_target("bzzz@node-2.lan:2222") == Target("bzzz", "node-2.lan", 2222)
    assert parse_target("me@[fe80::1]:2200") == Target("me", "fe80::1", 2200)
    assert str(parse_target("me@[fe80::1]:2200")) == "me@[fe80::1]:2200"
    assert str(parse_target("root@h")) == "root@h:22"


@pytest.mark.parametrize(
    ("text", "says"),
    [
        ("10.0.0.5", "USER@HOST"),
        ("root@", "neither an IP address nor a host name"),
        ("root@h:0", "SSH port"),
        ("root@h:ssh", "SSH port"),
        ("root@[::1", "brackets"),
        ("ro ot@h", "USER@HOST"),
    ],
)
def test_bad_targets_say_what_is_wrong(text: str, says: str) -> None:
    with pytest.raises(UsageError, match=says):
        parse_target(text)


def _plan(**changes: object) -> HostPlan:
    return HostPlan(target=Target("root", "10.1.2.3", 22), **changes)  # type: ignore[arg-type]


def test_a_plan_resolves_home_relative_paths_and_names_its_node() -> None:
    plan = rules.resolve_paths(_plan(), "/home/ops")
    assert plan.prefix == "/home/ops/.local/share/bzzz-deploy"
    assert plan.home_path == "/home/ops/.local/share/bzzz-deploy/home"
    assert _plan().node_name == "node-10-1-2-3"
    assert HostPlan(target=Target("u", "build-7.lan")).node_name == "build-7"
    with pytest.raises(UsageError, match="--listen"):
        rules.check_plan(_plan(listen="nowhere"))
    with pytest.raises(UsageError, match="--prefix"):
        rules.check_plan(_plan(prefix="relative/path"))


def test_a_failed_step_resets_the_later_ones_and_a_retry_starts_there() -> None:
    record = rules.start_record(_plan(), 1)
    assert rules.resume_at(record) == "check"
    assert rules.steps_from(record) == rules.STEPS
    for name in ("check", "stop", "install", "home", "join", "service"):
        record = rules.record_step(record, name, "done", "ok", 2, 0.5)
    record = rules.record_step(record, "verify", "done", "ok", 2, 0.5)
    assert record.finished and rules.steps_from(record) == ()
    record = rules.record_step(record, "install", "failed", "disk full", 3, 1.0)
    assert not record.finished
    assert record.failed is not None and record.failed.said == "disk full"
    assert [s.state for s in record.steps] == [
        "done",
        "done",
        "failed",
        "pending",
        "pending",
        "pending",
        "pending",
    ]
    # the check step runs again before the step that resumes (the host's facts)
    assert rules.steps_from(record) == ("check", "install", "home", "join", "service", "verify")


def test_records_survive_the_state_file() -> None:
    record = rules.start_record(_plan(role="admin", systemd="no", unit_dir="/u"), 5)
    record = rules.record_step(record, "check", "failed", "why", 6, 0.25)
    text = rules.records_to_json({record.key: record})
    again = rules.records_from_json(text, "deploy.json")
    assert again == {record.key: record}
    with pytest.raises(UsageError, match=r"deploy\.json is damaged"):
        rules.records_from_json('{"version": 1, "hosts": [{"target": 3}]}', "deploy.json")
    with pytest.raises(UsageError, match="damaged"):
        rules.records_from_json(json.dumps({"version": 99, "hosts": []}), "deploy.json")


def _facts(**changes: object) -> HostFacts:
    base: dict[str, object] = {
        "os": "Debian GNU/Linux 12 (bookworm)",
        "machine": "x86_64",
        "python": (3, 11, 2),
        "python_path": "/usr/bin/python3",
        "has_venv": True,
        "uid": 0,
        "user_home": "/root",
        "free_bytes": 10 * 1024**3,
        "free_at": "/",
        "systemd": False,
        "init": "bash",
    }
    base.update(changes)
    return HostFacts(**base)  # type: ignore[arg-type]


def test_the_check_finds_what_stops_an_install() -> None:
    assert rules.facts_problems(_facts()) == []
    problems = rules.facts_problems(
        _facts(python=(3, 9, 2), has_venv=False, free_bytes=20 * 1024**2, free_at="/small")
    )
    assert len(problems) == 3
    assert "3.9.2" in problems[0] and "python3-venv" in problems[1]
    assert "only 20 MiB free at /small" in problems[2]
    line = json.dumps(
        {
            "os": "X",
            "machine": "aarch64",
            "python": [3, 12, 1],
            "executable": "/p",
            "uid": 1000,
            "home": "/h",
            "venv": True,
            "free_bytes": 5,
            "free_at": "/h",
            "systemd": True,
            "init": "systemd",
        }
    )
    facts = rules.parse_facts("noise\n" + line)
    assert facts.python_tag == "cp312" and facts.machine == "aarch64" and facts.systemd
    with pytest.raises(UsageError, match="not understood"):
        rules.parse_facts("Traceback (most recent call last):")


def test_idempotency_decisions() -> None:
    assert not rules.install_needed("abc", "abc", runs=True)
    assert rules.install_needed("abc", "abc", runs=False)
    assert rules.install_needed("old", "abc", runs=True)
    assert rules.install_needed(None, "abc", runs=True)
    assert rules.join_action(None, "c1", "/h") == "join"
    assert rules.join_action("c1", "c1", "/h") == "skip"
    with pytest.raises(UsageError, match="another cluster"):
        rules.join_action("c2", "c1", "/h")
    assert rules.service_mode("auto", True, "systemd")[0] == "systemd"
    mode, why = rules.service_mode("auto", False, "bash")
    assert mode == "detached" and "PID 1 is bash" in why
    assert rules.service_mode("no", True, "systemd")[0] == "detached"
    with pytest.raises(UsageError, match="--systemd yes"):
        rules.service_mode("yes", False, "bash")
