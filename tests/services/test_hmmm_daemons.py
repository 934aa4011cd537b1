"""HMMM between real daemons: a plan draws the rule reviewer's objection naming the
overlapping task, a revision passes its window and the holder proceeds; a blocking
objection escalates and a person decides; hostile messages are left out everywhere."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from bzzz.agent.control import ask
from bzzz.tasks.local import write_task
from tests.services.test_task_daemons import board, configure
from tests.support.agents import Agent, claim, found, join, proven_leader, stop_all, wait_for
from tests.support.cli import assert_one_line_error, bzzz
from tests.support.webhook_receiver import WebhookReceiver

pytestmark = pytest.mark.slow


def thread(agent: Agent, task: str) -> dict[str, Any] | None:
    answer = ask(agent.home, {"op": "thread", "thread": task}, timeout=10)
    assert answer is not None
    return answer["thread"] if answer.get("ok") else None


def state(agent: Agent, task: str) -> str | None:
    found_ = thread(agent, task)
    return found_["state"] if found_ else None


@pytest.fixture
def trio(tmp_path: Path) -> Iterator[list[Agent]]:
    folder = tmp_path / "tasks"
    for title in ("Login", "Session"):
        write_task(folder, title)
    tasks = {"poll_s": 1.0, "sources": [{"type": "local", "path": str(folder), "name": "team"}]}
    hmmm = {"objection_window_s": 6.0, "max_revisions": 1}
    a = found(tmp_path)
    configure(a, tasks=tasks, hmmm=hmmm)
    agents = [a.start()]
    try:
        for name in ("b", "c"):
            node = join(tmp_path, name, a)
            node.peers = [x.address for x in agents]
            configure(node, tasks=tasks, hmmm=hmmm)
            agents.append(node.start())
        wait_for(lambda: proven_leader(agents), timeout=30, what="a proven leader")
        wait_for(lambda: len(board(agents[2])) == 2, timeout=30, what="the tasks listed")
        yield agents
    finally:
        stop_all(agents)


def hmmm(agent: Agent, *args: str) -> Any:
    return bzzz("hmmm", *args, "--home", str(agent.home))


def test_an_overlap_objection_a_revision_and_the_holder_proceeds(trio: list[Agent]) -> None:
    _, b, c = trio
    assert claim(c, "local:session")["status"] == "granted"
    assert claim(b, "local:login")["status"] == "granted"
    hmmm(c, "plan", "local:session", "--text", "rework sessions", "--files", "app/session.py")
    wait_for(lambda: state(c, "local:session") == "resolved", timeout=20, what="c proceeding")
    assert board(c)["local:session"]["state"] == "working"

    hmmm(
        b,
        "plan",
        "local:login",
        "--text",
        "fix login",
        "--files",
        "app/login.py",
        "--files",
        "app/session.py",
    )
    wait_for(lambda: state(b, "local:login") == "objected", timeout=20, what="an objection")
    row = thread(b, "local:login")
    assert row is not None
    objections = [m for m in row["messages"] if m["kind"] == "hmmm.objection"]
    assert objections and all(m["rule"] == "files-overlap" for m in objections)
    assert "local:session: app/session.py" in objections[0]["text"]
    assert board(b)["local:login"]["state"] == "planning"

    hmmm(b, "plan", "local:login", "--text", "fix login only", "--files", "app/login.py")
    assert state(b, "local:login") == "window"
    wait_for(lambda: state(b, "local:login") == "resolved", timeout=20, what="b proceeding")
    wait_for(
        lambda: all(board(a)["local:login"]["state"] == "working" for a in trio),
        timeout=20,
        what="working on every board",
    )
    row = thread(c, "local:login")
    assert row is not None and row["plan"]["revision"] == 1
    assert row["messages"][-1]["outcome"] == "proceed"
    md = hmmm(c, "transcript", "local:login", "--verify")
    assert md.code == 0, md
    assert "# HMMM thread local:login" in md.out and "verified: " in md.out
    as_json = json.loads(hmmm(b, "transcript", "local:login", "--format", "json").out)
    assert [m["entry"] for m in as_json["messages"]] == [m["entry"] for m in row["messages"]]


def test_a_blocking_objection_escalates_and_a_person_decides(trio: list[Agent]) -> None:
    admin, b, c = trio
    assert claim(b, "local:login")["status"] == "granted"
    hmmm(b, "plan", "local:login", "--text", "drop the users table", "--files", "db.sql")
    hmmm(c, "object", "local:login", "--severity", "blocking", "--reason", "data loss")
    wait_for(lambda: state(admin, "local:login") == "escalated", timeout=20, what="escalation")
    wait_for(
        lambda: any(
            m["kind"] == "hmmm.escalation"
            for m in thread(admin, "local:login")["messages"]  # type: ignore[index]
        ),
        timeout=20,
        what="the holder's escalation entry",
    )
    refused = hmmm(c, "resolve", "local:login", "--why", "fine")  # c objected: a participant
    assert refused.code == 0, refused
    assert state(admin, "local:login") in ("resolved", "escalated")
    hmmm(admin, "resolve", "local:login", "--why", "back it up first, then go")
    wait_for(lambda: state(b, "local:login") == "resolved", timeout=20, what="the decision")


def test_hostile_messages_are_left_out_and_refused_with_the_rule(trio: list[Agent]) -> None:
    _, b, c = trio
    assert claim(b, "local:login")["status"] == "granted"
    hmmm(b, "plan", "local:login", "--text", "fix login", "--files", "app/login.py")
    # a forged parent and hop count, written around the checks with `bzzz log append`
    forged = json.dumps(
        {
            "thread": "local:login",
            "parent": None,
            "hop_count": 99,
            "query_type": "concern",
            "text": "loop",
            "parameters": {},
        }
    )
    appended = bzzz("log", "append", "--home", str(c.home), "--kind", "hmmm.msg", "--data", forged)
    assert appended.code == 0, appended
    wait_for(
        lambda: any(
            "hop_count 99" in bad["rule"] or "names its parent" in bad["rule"]
            for bad in thread(b, "local:login")["ignored"]  # type: ignore[index]
        ),
        timeout=20,
        what="the forged message left out on b",
    )
    refused = hmmm(
        c, "say", "local:login", "--type", "concern", "--text", "x", "--parent", "ab" * 32
    )
    assert_one_line_error(refused, "refused", "parent is not a message of this thread")
    bad_type = hmmm(c, "say", "local:login", "--type", "rant", "--text", "x")
    assert_one_line_error(bad_type, "--type")
    not_holder = hmmm(c, "plan", "local:login", "--text", "mine now")
    assert_one_line_error(not_holder, "holds no live grant")


@pytest.fixture
def receiver() -> Iterator[WebhookReceiver]:
    with WebhookReceiver(secret="hook-secret") as hook:
        yield hook


def test_an_escalation_reaches_a_failing_webhook_once_across_an_admin_kill(
    tmp_path: Path, receiver: WebhookReceiver, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("BZZZ_TEST_HOOK_SECRET", "hook-secret")
    folder = tmp_path / "tasks"
    write_task(folder, "Login")
    tasks = {"poll_s": 1.0, "sources": [{"type": "local", "path": str(folder), "name": "team"}]}
    hook = {"url": receiver.url, "secret_env": "BZZZ_TEST_HOOK_SECRET"}
    hmmm_config = {"objection_window_s": 6.0, "escalation": {"webhooks": [hook]}}
    receiver.fail_next(10_000, status=503, retry_after="1")
    a = found(tmp_path)
    configure(a, tasks=tasks, hmmm=hmmm_config)
    agents = [a.start()]
    try:
        for name in ("b", "c"):
            node = join(tmp_path, name, a)
            node.peers = [x.address for x in agents]
            configure(node, tasks=tasks, hmmm=hmmm_config)
            agents.append(node.start())
        first = wait_for(lambda: proven_leader(agents), timeout=30, what="a proven leader")
        wait_for(lambda: len(board(agents[1])) == 1, timeout=30, what="the task listed")
        holder = next(x for x in agents if x.agent_id != first)
        other = next(x for x in agents if x.agent_id not in (first, holder.agent_id))
        assert claim(holder, "local:login")["status"] == "granted"
        hmmm(holder, "plan", "local:login", "--text", "rewrite auth", "--files", "auth.py")
        hmmm(other, "object", "local:login", "--severity", "blocking", "--reason", "no tests")
        wait_for(lambda: len(receiver.requests) >= 2, timeout=30, what="failed attempts")
        assert not receiver.unique  # every attempt so far answered 503
        old = next(x for x in agents if x.agent_id == first)
        old.kill()  # the admin dies while the escalation is still owed
        rest = [x for x in agents if x is not old]
        wait_for(
            lambda: (leader := proven_leader(rest)) not in (None, first) and leader,
            timeout=30,
            what="a new admin",
        )
        receiver.stop_failing()
        wait_for(lambda: len(receiver.unique) == 1, timeout=40, what="the delivery")
        time.sleep(3)  # a few more passes of the new admin: nothing is posted again
        assert len(receiver.unique) == 1 and len(receiver.received) == 1
        (delivered,) = receiver.unique.values()
        assert delivered.signature_ok and delivered.json["task"] == "local:login"
        assert delivered.json["reason"] == "a blocking objection"
        assert [m["kind"] for m in delivered.json["transcript"]][:2] == [
            "hmmm.plan",
            "hmmm.objection",
        ]
        shown = bzzz("log", "show", "--kind", "hmmm.delivered", "--home", str(rest[0].home))
        assert shown.code == 0 and "hmmm.delivered" in shown.out
    finally:
        stop_all(agents)


def test_a_flood_from_one_agent_is_cut_by_every_node(trio: list[Agent], tmp_path: Path) -> None:
    _, b, c = trio
    assert claim(b, "local:login")["status"] == "granted"
    hmmm(b, "plan", "local:login", "--text", "fix login", "--files", "app/login.py")
    plan = thread(b, "local:login")["plan"]["entry"]  # type: ignore[index]
    batch = tmp_path / "flood.jsonl"
    line = {
        "kind": "hmmm.msg",
        "data": {
            "thread": "local:login",
            "parent": plan,  # hex: what a script writing JSON can give
            "query_type": "concern",
            "text": "again",
            "parameters": {},
        },
    }
    batch.write_text("".join(json.dumps(line) + "\n" for _ in range(30)))
    appended = bzzz("log", "append", "--home", str(c.home), "--batch", str(batch))
    assert appended.code == 0, appended

    def cut(agent: Agent) -> bool:
        row = thread(agent, "local:login")
        if row is None:
            return False
        mine = [m for m in row["messages"] if m["author"] == c.agent_id]
        rate = [x for x in row["ignored"] if "in a minute" in x["rule"]]
        return len(mine) == 6 and len(rate) == 24

    wait_for(lambda: all(cut(a) for a in trio), timeout=30, what="the flood cut on every node")

    def alerted() -> list[Any]:
        shown = bzzz("log", "show", "--kind", "alert.hmmm_rule", "--home", str(b.home), "--json")
        return [e for e in shown.lines() if e["data"]["rule"].startswith("more than 6")]

    alerts = wait_for(lambda: len(alerted()) >= 24 and alerted(), timeout=30, what="alerts")
    assert len(alerts) == 24  # once per message left out, by the admin alone
    assert len({e["author"] for e in alerts}) == 1
    refused = hmmm(c, "say", "local:login", "--type", "concern", "--text", "more", "--parent", plan)
    assert_one_line_error(refused, "refused", "in a minute")
