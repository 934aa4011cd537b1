"""`bzzz task ...` through the real command: bad input is exit 2 and one `error:` line
naming what was wrong, never a traceback, and nothing on disk changes."""

from __future__ import annotations

import hashlib
import json
import shutil
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.support.agents import Agent, found, stop_all
from tests.support.cli import Run, assert_one_line_error, bzzz, make_home

LOCAL = {"sources": [{"type": "local", "path": "tasks"}]}


def configure(home: Path, **sections: Any) -> None:
    """Set sections of the node's config.yaml (replacing them)."""
    path = home / "config.yaml"
    data = yaml.safe_load(path.read_text())
    data.update(sections)
    path.write_text(yaml.safe_dump(data))


def snapshot(home: Path) -> dict[str, str]:
    """Every file and folder under the home, with a hash of each file's bytes."""
    return {
        str(p.relative_to(home)): "dir"
        if p.is_dir()
        else hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(home.rglob("*"))
    }


@pytest.fixture(scope="module")
def blank(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One `bzzz init`, copied for each test (an init is a second of CPU)."""
    return make_home(tmp_path_factory.mktemp("template") / "node")


def fresh(blank: Path, where: Path, tasks: dict[str, Any] | None = None) -> Path:
    shutil.copytree(blank, where)
    if tasks is not None:
        configure(where, tasks=tasks)
    if tasks == LOCAL:
        (where / "tasks").mkdir(mode=0o700)
    return where


@pytest.fixture
def home(blank: Path, tmp_path: Path) -> Path:
    """A home with a local task source whose folder exists."""
    return fresh(blank, tmp_path / "node", LOCAL)


Outcome = tuple[Run, dict[str, str], dict[str, str]]


def run_all(jobs: dict[str, tuple[Path, list[str]]]) -> dict[str, Outcome]:
    """Run `bzzz ARGS --home HOME` for each job, two at a time (each is mostly Python's
    start-up), with a snapshot of its home before and after."""

    def one(job: tuple[Path, list[str]]) -> Outcome:
        where, args = job
        before = snapshot(where)
        result = bzzz(*args, "--home", str(where))
        return result, before, snapshot(where)

    with ThreadPoolExecutor(max_workers=2) as pool:
        return dict(zip(jobs, pool.map(one, jobs.values()), strict=True))


def lazily(compute: Callable[[], dict[str, Outcome]]) -> Callable[[str], Outcome]:
    found: dict[str, Outcome] = {}

    def get(key: str) -> Outcome:
        if not found:
            found.update(compute())
        return found[key]

    return get


BAD_INPUT = [
    (["list", "--state", "bogus"], ["--state", "'bogus'", "known: open"]),
    (["show", "local:nope"], ["'local:nope'", "not on the task board"]),
    (["show", "not an id"], ["'not an id'"]),
    (["add", "--title", ""], ["title"]),
    (["add", "--title", "   "], ["title"]),
    (["add", "--title", "T", "--priority", "12"], ["priority", "0", "9"]),
    (["add", "--title", "T", "--priority", "-1"], ["priority"]),
    (["add", "--title", "T", "--priority", "x"], ["--priority"]),
    (["add", "--title", "T", "--needs", "Bad Cap"], ["needs"]),
    (["add", "--title", "T", "--type", "Bad Type"], ["type"]),
    (["add", "--title", "T", "--depends-on", "Not An Id"], ["depends_on"]),
    (["add"], ["--title"]),
    (["done", "local:x"], ["no agent is running", "bzzz agent"]),
    (["fail", "local:x", "--reason", "r"], ["no agent is running"]),
    (["progress", "local:x", "--phase", "working"], ["no agent is running"]),
    (["sync"], ["no agent is running", "bzzz agent"]),
    pytest.param(
        ["list", "--state", ":x:"],
        ["':x:'"],
        id="emoji-in-error",
    ),
]


def _args(case: Any) -> list[str]:
    return list(case.values[0] if hasattr(case, "values") else case[0])


@pytest.fixture(scope="module")
def bad_input(blank: Path, tmp_path_factory: pytest.TempPathFactory) -> Callable[[str], Outcome]:
    def compute() -> dict[str, Outcome]:
        root = tmp_path_factory.mktemp("bad-input")
        jobs = {}
        for n, case in enumerate(BAD_INPUT):
            args = _args(case)
            jobs[" ".join(args)] = (fresh(blank, root / f"node{n}", LOCAL), ["task", *args])
        return run_all(jobs)

    return lazily(compute)


@pytest.mark.parametrize(
    ("args", "words"),
    BAD_INPUT,
    ids=lambda value: " ".join(value) if isinstance(value, list) else None,
)
def test_bad_input_is_one_error_line_and_changes_nothing(
    bad_input: Callable[[str], Outcome], args: list[str], words: list[str]
) -> None:
    result, before, after = bad_input(" ".join(args))
    assert_one_line_error(result, *words)
    assert result.out == ""
    assert after == before


def test_a_refused_add_makes_no_folder(blank: Path, tmp_path: Path) -> None:
    where = fresh(blank, tmp_path / "node")
    configure(where, tasks=LOCAL)
    before = snapshot(where)
    assert_one_line_error(
        bzzz("task", "add", "--title", "T", "--priority", "12", "--home", str(where)), "priority"
    )
    assert snapshot(where) == before


def test_add_without_a_local_source_says_how_to_add_one(blank: Path, tmp_path: Path) -> None:
    where = fresh(blank, tmp_path / "node")
    before = snapshot(where)
    result = bzzz("task", "add", "--title", "T", "--home", str(where))
    assert_one_line_error(result, "no local task source", "type: local", "config.yaml")
    assert snapshot(where) == before


def test_add_writes_the_file_and_the_board_lists_it_only_after_the_admin_did(
    home: Path,
) -> None:
    added = bzzz(
        "task", "add", "--title", "Fix the login", "--priority", "1", "--home", str(home), "--json"
    )
    assert added.code == 0, added
    answer = json.loads(added.out)
    assert answer["id"] == "local:fix-the-login"
    path = Path(answer["path"])
    assert path == (home / "tasks" / "fix-the-login.md").resolve() and path.is_file()
    assert "title: Fix the login" in path.read_text()
    listed = bzzz("task", "list", "--home", str(home), "--json")
    assert listed.code == 0, listed
    assert json.loads(listed.out) == {"running": False, "tasks": [], "sources": []}


BAD_TASKS = [
    pytest.param(
        {"sources": [{"type": "local", "path": "t", "colour": "red"}]},
        ["tasks.sources.0.colour", "unknown key"],
        id="unknown-key",
    ),
    pytest.param({"sources": [{"type": "nope"}]}, ["tasks.sources.0", "'nope'"], id="type-nope"),
    pytest.param({"sources": [{"path": "x"}]}, ["tasks.sources.0", "'type'"], id="no-type"),
    pytest.param(
        {"sources": [{"type": "github", "repos": ["bad"]}]},
        ["tasks.sources.0.repos", "'bad' is not OWNER/REPO"],
        id="github-repos",
    ),
    pytest.param(
        {"sources": [{"type": "github", "repos": []}]},
        ["tasks.sources.0.repos"],
        id="github-no-repos",
    ),
    pytest.param(
        {"sources": [{"type": "hive", "url": "ftp://x"}]},
        ["tasks.sources.0.url", "http(s) URL"],
        id="hive-url",
    ),
    pytest.param({"poll_s": 0}, ["tasks.poll_s", "greater than 0"], id="poll-0"),
    pytest.param({"bogus": 1}, ["tasks.bogus", "unknown key"], id="tasks-unknown"),
    pytest.param(
        {"sources": [{"type": "local", "name": "a"}, {"type": "local", "path": "b", "name": "a"}]},
        ["tasks.sources", "'a'"],
        id="same-name",
    ),
    pytest.param(
        {"sources": [{"type": "local", "name": "Bad Name"}]},
        ["tasks.sources.0.name"],
        id="bad-name",
    ),
    pytest.param(
        {"sources": [{"type": "hive", "url": "http://h", "token_env": "two words"}]},
        ["tasks.sources.0.token_env"],
        id="bad-token-env",
    ),
]


COMMANDS = [["task", "list"], ["status"]]


def _config_key(case: Any, command: list[str]) -> str:
    return f"{' '.join(command)} {case.id}"


@pytest.fixture(scope="module")
def bad_config(blank: Path, tmp_path_factory: pytest.TempPathFactory) -> Callable[[str], Outcome]:
    def compute() -> dict[str, Outcome]:
        root = tmp_path_factory.mktemp("bad-config")
        jobs = {}
        for n, case in enumerate(BAD_TASKS):
            for command in COMMANDS if n < 3 else COMMANDS[:1]:
                where = fresh(blank, root / f"{case.id}-{command[-1]}", case.values[0])
                jobs[_config_key(case, command)] = (where, command)
        return run_all(jobs)

    return lazily(compute)


@pytest.mark.parametrize(
    ("command", "case"),
    [
        pytest.param(command, case, id=_config_key(case, command), marks=case.marks)
        for n, case in enumerate(BAD_TASKS)
        for command in (COMMANDS if n < 3 else COMMANDS[:1])
    ],
)
def test_a_bad_tasks_section_is_one_line_naming_the_key(
    bad_config: Callable[[str], Outcome], command: list[str], case: Any
) -> None:
    """Any command that loads the config refuses it, naming the file and the key."""
    result, before, after = bad_config(_config_key(case, command))
    assert_one_line_error(result, "config.yaml", *case.values[1])
    assert after == before


def test_the_agent_refuses_two_sources_of_one_name_at_once(blank: Path, tmp_path: Path) -> None:
    where = fresh(blank, tmp_path / "node")
    sources = [{"type": "local", "name": "a"}, {"type": "local", "path": "b", "name": "a"}]
    configure(where, tasks={"sources": sources})
    result = bzzz("agent", "--home", str(where), "--listen", "127.0.0.1:0", "--no-mdns", timeout=30)
    assert_one_line_error(result, "tasks.sources", "'a'")


@pytest.fixture
def agent(tmp_path: Path) -> Iterator[Agent]:
    node = found(tmp_path).start()
    try:
        yield node
    finally:
        stop_all([node])


@pytest.mark.slow
def test_a_running_agent_refuses_reports_on_tasks_it_does_not_hold(agent: Agent) -> None:
    where = str(agent.home)
    before = snapshot(agent.home / "tasks") if (agent.home / "tasks").exists() else {}
    assert_one_line_error(
        bzzz("task", "done", "not an id", "--home", where), "'not an id' is not a task id"
    )
    assert_one_line_error(
        bzzz("task", "progress", "local:y", "--phase", "bogus", "--home", where),
        "a phase is one of",
    )
    assert_one_line_error(
        bzzz("task", "fail", "local:nope", "--reason", "r", "--home", where),
        "no live grant on local:nope",
    )
    assert_one_line_error(
        bzzz("task", "show", "local:nope", "--home", where), "'local:nope' is not on the task board"
    )
    listed = json.loads(bzzz("task", "list", "--home", where, "--json").out)
    assert listed == {"running": True, "tasks": [], "sources": []}
    assert (snapshot(agent.home / "tasks") if (agent.home / "tasks").exists() else {}) == before


@pytest.mark.slow
def test_a_refusal_names_the_task_as_given(agent: Agent) -> None:
    result = bzzz("task", "done", "local:x", "--home", str(agent.home))
    assert_one_line_error(result, "no live grant on local:x:")
