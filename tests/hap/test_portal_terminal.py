"""`bzzz hap` end to end in a real terminal (tmux, 80x24): on a home where no agent runs
it starts the node itself, shows the home screen, takes a task with two keys and stops
its node on quit; on an agent's home it attaches to the running agent and leaves it
running."""

from __future__ import annotations

import os
import shlex
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from bzzz.agent.control import ask
from bzzz.hap.launch import answers
from bzzz.tasks.local import write_task
from tests.support.agents import Agent, found, free_port, invite_token, join, stop_all, wait_for

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(shutil.which("tmux") is None, reason="needs tmux (Debian: tmux)"),
]
ROOT = Path(__file__).resolve().parents[2]
SIZE = ("-x", "80", "-y", "24")


class Tmux:
    """A tmux server of our own (its own socket), killed at the end."""

    def __init__(self) -> None:
        self.socket = f"bzzz-hap-test-{os.getpid()}"

    def run(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            ["tmux", "-L", self.socket, *args], capture_output=True, text=True, timeout=20
        )

    def start(self, name: str, command: list[str]) -> None:
        line = f"cd {shlex.quote(str(ROOT))} && exec {shlex.join(command)}"
        env = {k: v for k, v in os.environ.items() if not k.startswith("BZZZ_")}
        result = subprocess.run(
            ["tmux", "-L", self.socket, "new-session", "-d", *SIZE, "-s", name, line],
            capture_output=True,
            text=True,
            timeout=20,
            env={**env, "TERM": "xterm-256color"},
        )
        assert result.returncode == 0, result.stderr

    def screen(self, name: str) -> str:
        return self.run("capture-pane", "-p", "-t", name).stdout

    def keys(self, name: str, *keys: str) -> None:
        assert self.run("send-keys", "-t", name, *keys).returncode == 0

    def alive(self, name: str) -> bool:
        return self.run("has-session", "-t", name).returncode == 0

    def wait_screen(self, name: str, *words: str, timeout: float = 30) -> str:
        def shows() -> str | None:
            text = self.screen(name)
            return text if all(w in text for w in words) else None

        try:
            return str(wait_for(shows, timeout, f"{words} on the screen"))
        except AssertionError:
            raise AssertionError(f"not on the screen: {words}\n{self.screen(name)}") from None

    def kill(self) -> None:
        self.run("kill-server")


@pytest.fixture
def tmux() -> Iterator[Tmux]:
    t = Tmux()
    try:
        yield t
    finally:
        t.kill()


def with_tasks(home: Path, tasks: dict[str, object]) -> None:
    path = home / "config.yaml"
    data = yaml.safe_load(path.read_text())
    path.write_text(yaml.safe_dump({**data, "tasks": tasks}))


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[tuple[Agent, Path, Path]]:
    folder = tmp_path / "tasks"
    folder.mkdir()
    tasks = {"poll_s": 0.5, "sources": [{"type": "local", "path": str(folder)}]}
    a = found(tmp_path)
    with_tasks(a.home, tasks)
    a.start()
    try:
        person = join(tmp_path, "person", a, invite_token(a, role="architect"))
        with_tasks(person.home, tasks)  # whichever node is admin polls the folder
        yield a, person.home, folder
    finally:
        stop_all([a])


def test_the_portal_in_a_real_terminal(
    cluster: tuple[Agent, Path, Path], tmux: Tmux, tmp_path: Path
) -> None:
    a, home, folder = cluster
    _, spec = write_task(folder, "Check the runbook", needs=["architect"], priority=0)
    peering = ["--peer", a.address, "--listen", f"127.0.0.1:{free_port()}"]
    tmux.start(
        "own",
        [sys.executable, "-m", "bzzz", "hap", "--home", str(home), "--no-mdns", *peering],
    )
    tmux.wait_screen("own", "person (architect)", "own node", spec.id, "Context")
    # the person's node votes too: either may be the admin
    screen = wait_for(
        lambda: next(
            (s for s in [tmux.screen("own")] if "admin n0" in s or "admin you" in s), None
        ),
        30,
        "an admin shown",
    )
    (tmp_path / "home-screen.txt").write_text(screen)
    print("\n" + screen)
    assert "Needs you" in screen and "Tasks (1)" in screen and "Threads" in screen
    assert max(len(line) for line in screen.splitlines()) <= 80

    tmux.keys("own", "?")
    tmux.wait_screen("own", "Human Agent Portal", "bzzz hmmm object")
    tmux.keys("own", "Escape")  # alone: an escape and a key at once read as alt+key
    tmux.wait_screen("own", "Tasks (1)")
    tmux.keys("own", "2")
    time.sleep(0.3)  # a person's pace: the focus moves before the next key
    tmux.keys("own", "t")
    tmux.wait_screen("own", "Take the task", "same as: bzzz claim request")
    tmux.keys("own", "C-s")
    tmux.wait_screen("own", f"claimed  p0  {spec.id}  you")
    # the other node sees the grant once the grant and the proof of its term reach it
    wait_for(
        lambda: (
            (answer := ask(a.home, {"op": "task", "task": spec.id})) is not None
            and answer["task"]["holder_name"] == "person"
        ),
        20,
        "n0 to show the person holding the task",
    )

    tmux.keys("own", "q")
    wait_for(lambda: not tmux.alive("own"), 20, "the portal to quit")
    wait_for(lambda: not answers(home), 20, "its node to stop")
    assert not (home / "agent.sock").exists()

    tmux.start("attached", [sys.executable, "-m", "bzzz", "hap", "--home", str(a.home)])
    tmux.wait_screen("attached", "n0 (admin)", "· attached", spec.id)
    tmux.keys("attached", "q")
    wait_for(lambda: not tmux.alive("attached"), 20, "the portal to quit")
    assert a.running() and answers(a.home)  # the agent it attached to goes on
