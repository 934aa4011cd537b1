"""Execution between real daemons on 127.0.0.1: an agent takes a task from a shared
folder, a replayed model plans it through HMMM and works it with the tools in real
bubblewrap on a real git worktree; the branch is pushed, signed by the agent, and the
task is done on every node with every step in the agent's log."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from bzzz.agent.control import ask
from bzzz.domain.trajectory import Run
from bzzz.domain.work import trailers
from bzzz.execution.replay import load_turns
from bzzz.home.node import open_home_store
from bzzz.projections.trajectory import read_trajectory
from bzzz.tasks.local import write_task
from tests.services.exec_team import branches, call, git, make_origin
from tests.support.agents import Agent, found, join, stop_all, wait_for
from tests.support.cli import assert_one_line_error, bzzz
from tests.support.github_standin import GitHubStandIn

pytestmark = pytest.mark.slow


def configure(node: Agent, **sections: dict[str, Any]) -> None:
    path = node.home / "config.yaml"
    data = yaml.safe_load(path.read_text())
    for key, value in sections.items():
        data[key] = {**(data.get(key) or {}), **value}
    path.write_text(yaml.safe_dump(data))


def record(folder: Path, task: str, turns: list[dict[str, Any]]) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    name = re.sub(r"[^a-z0-9._-]+", "-", task.lower()) + ".json"
    (folder / name).write_text(json.dumps({"format": "bzzz-replay/1", "turns": turns}))


def cli_json(*args: str) -> Any:
    return json.loads(bzzz(*args).out)


def board(agent: Agent) -> dict[str, dict[str, Any]]:
    answer = ask(agent.home, {"op": "tasks"}, timeout=10)
    assert answer is not None and answer["ok"], answer
    return {row["id"]: row for row in answer["tasks"]}


@pytest.fixture
def origin(tmp_path: Path) -> Path:
    """The team's repository: a bare one with a first commit on main."""
    return make_origin(tmp_path)


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[tuple[list[Agent], Path, Path]]:
    """An admin, and a developer that takes tasks and works them with a replayed model."""
    folder = tmp_path / "tasks"
    folder.mkdir()
    recordings = tmp_path / "recordings"
    tasks = {"poll_s": 0.5, "sources": [{"type": "local", "path": str(folder), "name": "team"}]}
    hmmm = {"objection_window_s": 0.5}
    a = found(tmp_path)
    configure(a, tasks=tasks, hmmm=hmmm)
    agents = [a.start()]
    try:
        b = join(tmp_path, "b", a)
        b.peers = [a.address]
        configure(
            b,
            tasks=tasks,
            hmmm=hmmm,
            agent={"auto_claim": True, "max_tasks": 1},
            reasoning={"backend": "replay", "recordings": str(recordings)},
            sandbox={"backend": "bwrap", "limits": {"wall_s": 20}},
        )
        agents.append(b.start())
        yield agents, folder, recordings
    finally:
        stop_all(agents)


def test_a_task_is_planned_worked_in_the_sandbox_and_pushed_signed(
    cluster: tuple[list[Agent], Path, Path], origin: Path
) -> None:
    (a, b), folder, recordings = cluster
    record(
        recordings,
        "local:add-a-farewell",
        [
            {"content": "Add a farewell function beside greet.\nFiles: greet.py"},
            call("read_file", path="greet.py"),
            call("list_files", path="../.."),  # refused: outside the repository
            call(
                "write_file",
                path="greet.py",
                content="def greet():\n    return 'hi'\n\n\ndef farewell():\n    return 'bye'\n",
            ),
            {"content": "I think that is it."},  # no tool call: told to use one
            call("run", command="python3 -c 'import greet; print(greet.farewell())'"),
            call(
                "run",
                command="python3 -c 'import urllib.request as u; "
                'u.urlopen("http://1.1.1.1", timeout=2)\'',
            ),
            call("finish", summary="Added farewell() returning 'bye'."),
        ],
    )
    _, spec = write_task(folder, "Add a farewell", "A function that says bye.", repo=str(origin))
    home_b = str(b.home)

    def done() -> dict[str, Any] | None:
        row = board(a).get(spec.id)
        return row if row and row["state"] in ("done", "failed") else None

    row = wait_for(done, timeout=60, what="the task done")
    assert row["state"] == "done", (row, b.log_text()[-3000:])
    assert row["link"].endswith(
        "#" + git("--git-dir", str(origin), "branch", "--list", "bzzz/*").strip()
    )

    branch = git("--git-dir", str(origin), "branch", "--list", "bzzz/*").strip()
    assert branch.startswith("bzzz/local-add-a-farewell-")
    shown = git("--git-dir", str(origin), "show", f"{branch}:greet.py")
    assert "def farewell" in shown
    message = git("--git-dir", str(origin), "log", "-1", "--format=%B", branch)
    found_trailers = trailers(message)
    assert found_trailers["Bzzz-Task"] == spec.id
    assert found_trailers["Bzzz-Agent"] == b.agent_id

    # The commit verifies against the agent's key as the cluster knows it.
    key = json.loads(bzzz("id", "--home", home_b, "--json").out)["public_key"]
    signers = b.home.parent / "allowed_signers"
    signers.write_text(f"{b.agent_id[:16]}@agents.bzzz {key}\n")
    check = subprocess.run(
        ["git", "--git-dir", str(origin), "-c", f"gpg.ssh.allowedSignersFile={signers}",
         "verify-commit", branch],
        capture_output=True, text=True,
    )  # fmt: skip
    assert check.returncode == 0, check.stderr

    # Every step is in b's log, before its result; the refused ones too.
    shown_log = bzzz("log", "show", "--home", home_b, "--json", "--limit", "500").out
    entries = [json.loads(line) for line in shown_log.splitlines() if line.strip()]
    entries = [e for e in entries if e["author"] == b.agent_id and e["kind"].startswith("exec.")]
    kinds = [e["kind"] for e in entries]
    assert kinds[0] == "exec.started" and kinds[-1] == "exec.ended"
    assert kinds.count("exec.step") == kinds.count("exec.result") == 6
    results = [e["data"] for e in entries if e["kind"] == "exec.result"]
    assert not results[1]["ok"] and "outside" in results[1]["output"]
    assert results[3]["ok"] and "bye" in results[3]["output"]
    assert not results[4]["ok"]  # no network in the sandbox

    assert b.status()["execution"]["sandbox"] == "bwrap" and a.status()["execution"] is None
    assert "execution: sandbox bwrap" in bzzz("status", "--home", home_b).out

    # The trajectory, from any node's store; the recorded turns on the node that ran it.
    shown_a = cli_json("task", "trajectory", spec.id, "--home", str(a.home), "--json")
    (run,) = shown_a["runs"]
    assert run["agent"] == b.agent_id and run["backend"] == "replay" and run["sandbox"] == "bwrap"
    assert [st["tool"] for st in run["steps"]][-1] == "finish" and len(run["steps"]) == 6
    assert run["ended"]["outcome"] == "finished" and run["ended"]["branch"] == branch
    text = bzzz("task", "trajectory", spec.id, "--home", str(a.home)).out
    assert "finish" in text and "ended: finished" in text
    saved = b.home.parent / "turns.json"
    bzzz("task", "trajectory", spec.id, "--home", home_b, "--replay", str(saved))
    assert len(load_turns(saved)) == 8  # the plan and seven turns of work
    refused = bzzz("task", "trajectory", spec.id, "--home", str(a.home), "--replay", str(saved))
    assert_one_line_error(refused, "ran no part")


GH_TOKEN = "ghp_standin_exec_0123456789"


def test_a_github_issue_is_worked_and_gets_exactly_one_pull_request(
    tmp_path: Path, origin: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("GH_STANDIN_TOKEN", GH_TOKEN)
    recordings = tmp_path / "recordings"
    with GitHubStandIn(token=GH_TOKEN) as gh:
        gh.set_repo("octo/app", clone_url=str(origin), default_branch="main")
        number = gh.add_issue("octo/app", "Add a farewell", "Say bye.", labels=["bzzz-task"])
        task = f"github:octo/app#{number}"
        record(
            recordings,
            task.replace("/", "-").replace("#", "-"),
            [
                {"content": "Add farewell().\nFiles: greet.py"},
                call("write_file", path="greet.py", content="def farewell():\n    return 'bye'\n"),
                call("finish", summary="farewell() added"),
            ],
        )
        source = {
            "type": "github",
            "repos": ["octo/app"],
            "api_url": gh.url,
            "token_env": "GH_STANDIN_TOKEN",
            "name": "github",
        }
        tasks = {"poll_s": 0.5, "sources": [source]}
        a = found(tmp_path)
        configure(a, tasks=tasks, hmmm={"objection_window_s": 0.5})
        agents = [a.start()]
        try:
            b = join(tmp_path, "b", a)
            b.peers = [a.address]
            configure(
                b,
                tasks=tasks,
                hmmm={"objection_window_s": 0.5},
                agent={"auto_claim": True},
                reasoning={"backend": "replay", "recordings": str(recordings)},
            )
            agents.append(b.start())

            def done() -> dict[str, Any] | None:
                row = board(a).get(task)
                return row if row and row["state"] in ("done", "failed") else None

            row = wait_for(done, timeout=60, what="the issue's task done")
            assert row["state"] == "done", (row, b.log_text()[-3000:])
            (pull,) = gh.pulls("octo/app")
            assert row["link"].endswith(f"/pull/{pull.number}")
            assert pull.head.endswith(":" + branches(origin)[0]) and pull.base == "main"
            assert f"Closes #{number}" in (pull.body or "") and "Fencing token" in (pull.body or "")
            assert GH_TOKEN not in (pull.body or "") and GH_TOKEN not in b.log_text()
            # The admin's mirror says it on the issue, with the pull request.
            wait_for(
                lambda: any(f"/pull/{pull.number}" in c for c in gh.comments("octo/app", number)),
                timeout=20,
                what="the completion mirrored on the issue",
            )
        finally:
            stop_all(agents)


def test_a_paused_holder_loses_the_task_and_its_late_push_is_refused(
    tmp_path: Path, origin: Path
) -> None:
    """b works, is paused (SIGSTOP) past its lease; c takes the task and pushes through
    the hook; b wakes and pushes nothing; a push forged from b's old hold is refused."""
    folder = tmp_path / "tasks"
    folder.mkdir()
    recordings = tmp_path / "recordings"
    record(
        recordings,
        "local:slow-work",
        [
            {"content": "Write the file after a long think.\nFiles: slow.txt"},
            call("run", command="sleep 6"),  # b is paused in here; c's sandbox stops it
            call("write_file", path="slow.txt", content="done\n"),
            call("finish", summary="slow.txt written"),
        ],
    )
    tasks = {"poll_s": 0.5, "sources": [{"type": "local", "path": str(folder), "name": "team"}]}
    hmmm = {"objection_window_s": 0.5}
    a = found(tmp_path)
    configure(a, tasks=tasks, hmmm=hmmm, agent={"claim_lease_ms": 3000})
    agents = [a.start()]
    assert "protected" in bzzz("repo", "protect", str(origin), "--home", str(a.home)).out
    worker = {"backend": "replay", "recordings": str(recordings)}
    try:
        b, c = join(tmp_path, "b", a), join(tmp_path, "c", a)
        for node, wall in ((b, 30), (c, 1)):
            node.peers = [a.address]
            configure(
                node,
                tasks=tasks,
                hmmm=hmmm,
                reasoning=worker,
                agent={"auto_claim": True},
                sandbox={"limits": {"wall_s": wall}},
            )
        agents.append(b.start())
        _, spec = write_task(folder, "Slow work", repo=str(origin))

        wait_for(lambda: stepped(b, spec.id), timeout=40, what="b in its first step")
        old_token = board(a)[spec.id]["token"]
        assert b.proc is not None
        os.kill(b.proc.pid, signal.SIGSTOP)  # b stops renewing its lease
        agents.append(c.start())

        def done() -> dict[str, Any] | None:
            row = board(a).get(spec.id)
            return row if row and row["state"] in ("done", "failed") else None

        row = wait_for(done, timeout=90, what="c to finish the task")
        assert row["state"] == "done" and row["holder"] is None, (row, c.log_text()[-2000:])
        (branch,) = branches(origin)
        assert branch.endswith(c.agent_id[:8])  # c's own branch, through the hook
        os.kill(b.proc.pid, signal.SIGCONT)

        def b_ended() -> dict[str, Any] | None:
            mine = [r for r in runs_of(a, spec.id) if r.author.hex() == b.agent_id]
            return dict(mine[0].ended) if mine and mine[0].ended else None

        ended = wait_for(b_ended, timeout=60, what="b's run to end")
        assert ended["outcome"] == "lost", ended
        assert branches(origin) == [branch]  # b pushed nothing

        # A late push of b's work with b's old token, signed by b: the hook refuses it.
        late = tmp_path / "late"
        git("clone", "-q", str(origin), str(late))
        (late / "slow.txt").write_text("late\n")
        key = b.home / "agent.key"
        message = (
            f"late\n\nBzzz-Task: {spec.id}\nBzzz-Token: {old_token[0]}.{old_token[1]}\n"
            f"Bzzz-Agent: {b.agent_id}\n"
        )
        git("add", ".", cwd=late)
        git(
            "-c", "user.name=b", "-c", f"user.email={b.agent_id[:16]}@agents.bzzz",
            "-c", "gpg.format=ssh", "-c", f"user.signingkey={key}", "-c", "commit.gpgsign=true",
            "commit", "-qm", message, cwd=late,
        )  # fmt: skip
        stale = f"bzzz/local-slow-work-{b.agent_id[:8]}"
        pushed = subprocess.run(
            ["git", "push", "origin", f"HEAD:refs/heads/{stale}"],
            cwd=late, capture_output=True, text=True,
        )  # fmt: skip
        assert pushed.returncode != 0 and "bzzz: refused" in pushed.stderr, pushed.stderr
        assert "no live grant" in pushed.stderr or "another agent" in pushed.stderr
        # Nor may anyone write c's trailers on an unsigned commit.
        forged = message.replace(b.agent_id, c.agent_id)
        git("-c", "user.name=x", "-c", "user.email=x@x", "commit", "-q", "--amend", "-m", forged,
            cwd=late)  # fmt: skip
        pushed = subprocess.run(
            ["git", "push", "origin", f"HEAD:refs/heads/{stale}"],
            cwd=late, capture_output=True, text=True,
        )  # fmt: skip
        assert pushed.returncode != 0 and "bzzz: refused" in pushed.stderr, pushed.stderr
        assert branches(origin) == [branch]
    finally:
        stop_all(agents)


def runs_of(agent: Agent, task: str) -> list[Run]:
    """The task's runs as `agent`'s store holds them (read beside the running agent)."""
    with open_home_store(agent.home) as store:
        return read_trajectory(store, task)


def stepped(agent: Agent, task: str) -> bool:
    me = agent.agent_id
    return any(r.author.hex() == me and r.steps for r in runs_of(agent, task))
