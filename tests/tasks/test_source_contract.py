"""The contract every `TaskSource` keeps, run against each implementation (the local
folder, GitHub against its stand-in, Hive against its stand-in), as eventsourcing's
recorder test cases run one set of tests against every recorder.

Each test drives a source through a small driver (`add`, `edit`, `remove`, `fail`) and
feeds its polls through the admin's `plan_sync`, folding what the admin would write into
a `Board`, as `IntakeService._sync` does.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from bzzz.domain import board as bd
from bzzz.domain import task_entries as te
from bzzz.domain.intake import SourcePoll, SyncPlan, plan_sync
from bzzz.domain.payload import encode_payload
from bzzz.domain.tasks import TaskState, github_id, task_id_problem
from bzzz.errors import SourceError
from bzzz.home.config import TasksConfig
from bzzz.runtime.assembly import sources_of
from bzzz.services.ports import TaskSource
from bzzz.tasks.github_source import github_source_of
from bzzz.tasks.local import write_task
from tests.support.github_standin import FakeClock, GitHubStandIn
from tests.support.hive_standin import HiveStandin

TOKEN = "tok-C0ntract-S3cret-0123456789abcdef"
ADMIN = b"\x01" * 32
LEADERS = {1: ADMIN}
TERM = 1
REPO = "octo/app"
LABEL = "bzzz-task"
PROJECT = 7
HIVE_TOKEN_ENV = "BZZZ_CONTRACT_HIVE_TOKEN"
IMPLEMENTATIONS = ["local", "github", "hive"]
# How a source can misbehave: a failing server (or a folder that is a file now), a
# server gone (or a folder removed), a task whose labels are odd but legal (or a file
# that is not UTF-8), fields of the wrong JSON type (or front matter of the wrong types).
FAILURES = ["error", "gone", "garbage", "shape"]


def _node(home: Path, tasks: dict[str, Any]) -> Any:
    """What `sources_of` reads of a node: its home and its tasks section."""
    return SimpleNamespace(home=home, config=SimpleNamespace(tasks=TasksConfig(**tasks)))


class LocalDriver:
    kind = "local"

    def __init__(self, home: Path) -> None:
        self.home = home
        self.folder = (home / "tasks").resolve()
        self.folder.mkdir(parents=True)
        self.priorities: dict[str, int] = {}
        self.away = home / "tasks.away"

    def build(self) -> TaskSource:
        sources, _ = sources_of(_node(self.home, {"sources": [{"type": "local"}]}))
        return sources[0]

    def tick(self) -> None:
        pass

    def _path(self, task: str) -> Path:
        return self.folder / f"{task.removeprefix('local:')}.md"

    def add(self, title: str, priority: int) -> str:
        _, spec = write_task(self.folder, title, priority=priority)
        self.priorities[spec.id] = priority
        return spec.id

    def edit(self, task: str, title: str) -> None:
        text = f"---\ntitle: {json.dumps(title)}\npriority: {self.priorities[task]}\n---\n"
        self._path(task).write_text(text)

    def remove(self, task: str) -> None:
        self._path(task).unlink()

    def fail(self, how: str) -> None:
        if how == "error":  # the folder is a file now
            self.folder.rename(self.away)
            self.folder.write_text("not a folder")
        elif how == "gone":
            shutil.rmtree(self.folder)
        elif how == "garbage":
            (self.folder / "junk.md").write_bytes(b"---\ntitle: \xff\xfe\n---\n")
        else:
            (self.folder / "odd.md").write_text("---\ntitle: [1]\npriority: x\nneeds: 5\n---\n")

    def heal(self) -> None:
        if self.away.exists():
            self.folder.unlink()
            self.away.rename(self.folder)


class GitHubDriver:
    kind = "github"

    def __init__(self, home: Path, gh: GitHubStandIn, clock: FakeClock) -> None:
        self.home = home
        self.gh = gh
        self.clock = clock
        self.url = gh.url  # kept: a stopped stand-in has none
        gh.add_repo(REPO)

    def build(self) -> TaskSource:
        from bzzz.home.config import GitHubSourceConfig

        config = GitHubSourceConfig.model_validate(
            {"type": "github", "repos": [REPO], "api_url": self.url, "label": LABEL}
        )
        return github_source_of(config, self.home, {"GITHUB_TOKEN": TOKEN}, self.clock.ms)

    def tick(self) -> None:
        self.clock.advance(10)

    def add(self, title: str, priority: int) -> str:
        self.tick()
        number = self.gh.add_issue(REPO, title, "", [LABEL, f"priority-{priority}"])
        return github_id(*REPO.split("/"), number)

    def _number(self, task: str) -> int:
        return int(task.rpartition("#")[2])

    def edit(self, task: str, title: str) -> None:
        self.tick()
        self.gh.edit_issue(REPO, self._number(task), title=title)

    def remove(self, task: str) -> None:
        self.tick()
        self.gh.close_issue(REPO, self._number(task))

    def fail(self, how: str) -> None:
        self.tick()
        if how == "error":
            self.gh.fail_next(1, status=500)
        elif how == "gone":
            self.gh.stop()
        elif how == "garbage":  # any text is a legal GitHub label
            self.gh.add_issue(REPO, "odd labels", "", [LABEL, "priority-\u00b2"])
        else:  # a server that sends `labels` as a number
            original = self.gh._issue

            def odd(repo: Any, issue: Any) -> dict[str, Any]:
                body = original(repo, issue)
                body["labels"] = 5
                return body

            self.gh._issue = odd  # type: ignore[method-assign]
            self.gh.add_issue(REPO, "odd shape", "", [LABEL])

    def heal(self) -> None:
        self.clock.advance(3600)  # past any backoff


class HiveDriver:
    kind = "hive"

    def __init__(self, home: Path, hive: HiveStandin, stop: ExitStack) -> None:
        self.home = home
        self.hive = hive
        self.stop = stop
        self.labels: dict[str, list[str]] = {}
        self.numbers = 0
        hive.add_project(PROJECT, repository="app")

    def build(self) -> TaskSource:
        source = {"type": "hive", "url": self.hive.url, "token_env": HIVE_TOKEN_ENV}
        sources, _ = sources_of(_node(self.home, {"sources": [source]}))
        return sources[0]

    def tick(self) -> None:
        pass

    def add(self, title: str, priority: int) -> str:
        self.numbers += 1
        task = f"hive:{PROJECT}/{self.numbers}"
        self.labels[task] = [LABEL, f"priority-{priority}"]
        self.hive.add_task(PROJECT, self.numbers, title, labels=self.labels[task])
        return task

    def edit(self, task: str, title: str) -> None:
        number = int(task.rpartition("/")[2])
        self.hive.add_task(PROJECT, number, title, labels=self.labels[task])

    def remove(self, task: str) -> None:
        self.hive.remove_task(PROJECT, int(task.rpartition("/")[2]))

    def fail(self, how: str) -> None:
        if how == "error":
            self.hive.fail_next(1, status=500)
        elif how == "gone":
            self.stop.close()
        elif how == "garbage":
            self.hive.add_task(PROJECT, 900, "odd labels", labels=[LABEL, "priority-\u00b2"])
        else:
            self.hive.add_task(PROJECT, 901, "odd shape", labels=5, description=["x"])

    def heal(self) -> None:
        pass


Driver = LocalDriver | GitHubDriver | HiveDriver


@pytest.fixture(params=IMPLEMENTATIONS)
def driver(
    request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Driver]:
    kind = request.param
    if kind == "local":
        yield LocalDriver(tmp_path / "home")
        return
    if kind == "github":
        clock = FakeClock()
        with GitHubStandIn(token=TOKEN, clock=clock) as gh:
            yield GitHubDriver(tmp_path, gh, clock)
        return
    monkeypatch.setenv(HIVE_TOKEN_ENV, TOKEN)
    with ExitStack() as stack:
        hive = stack.enter_context(HiveStandin(token=TOKEN))
        yield HiveDriver(tmp_path, hive, stack)


class Admin:
    """The elected admin's side of one source: poll from the recorded cursor, plan,
    write what the plan says, fold it."""

    def __init__(self, source: TaskSource) -> None:
        self.source = source
        self.board = bd.Board()
        self.lamport = 0
        self.polls: list[SourcePoll] = []

    def cursor(self) -> Any:
        last = self.board.cursors.get(self.source.name)
        return last.cursor if last is not None else None

    async def sync(self) -> SyncPlan:
        try:
            poll = await self.source.poll(self.cursor())
        except SourceError as error:  # as IntakeService._sync records it
            poll = SourcePoll(problems=(str(error),))
        self.polls.append(poll)
        plan = plan_sync(self.board, self.source.name, poll, TERM)
        self.write([*plan.entries, *([(te.SYNCED, plan.synced)] if plan.synced else [])])
        return plan

    def write(self, entries: list[tuple[str, dict[str, Any]]]) -> None:
        folded = []
        for kind, body in entries:
            self.lamport += 1
            digest = self.lamport.to_bytes(32, "big")
            folded.append(
                bd.BoardEntry(
                    ADMIN, kind, encode_payload(body), digest, 1000 + self.lamport, self.lamport
                )
            )
        bd.apply_board(self.board, folded, LEADERS)
        assert self.board.ignored == [], self.board.ignored

    def states(self) -> dict[str, TaskState]:
        return {task: found.state for task, found in self.board.tasks.items()}


def changes(plan: SyncPlan) -> list[tuple[str, str]]:
    """(kind, task id) of each task entry of a plan."""
    return [
        (kind, body["spec"]["id"] if "spec" in body else body["task"])
        for kind, body in plan.entries
    ]


async def settled(driver: Driver, count: int = 3) -> tuple[Admin, list[str]]:
    """`count` tasks, synced once, and a second sync that must have found nothing."""
    tasks = [driver.add(f"Task number {n}", n) for n in range(count)]
    admin = Admin(driver.build())
    driver.tick()
    first = await admin.sync()
    assert sorted(changes(first)) == sorted((te.OPENED, t) for t in tasks)
    driver.tick()
    again = await admin.sync()
    assert (again.entries, again.synced) == ([], None)
    return admin, tasks


async def quiet(admin: Admin, driver: Driver) -> None:
    """Nothing changed since the last sync: no task entry, and once the cursor has
    settled no sync note either. (GitHub's first poll after a change gets a new ETag,
    for the `since` that moved, so one more note records it; then nothing.)"""
    driver.tick()
    plan = await admin.sync()
    assert plan.entries == [], changes(plan)
    driver.tick()
    plan = await admin.sync()
    assert (plan.entries, plan.synced) == ([], None), (changes(plan), plan.synced)


# (a) the first poll lists every open task once, with valid ids and stable scopes


async def test_first_poll_lists_every_open_task_once(driver: Driver) -> None:
    tasks = [driver.add(f"Task number {n}", n) for n in range(3)]
    source = driver.build()
    driver.tick()
    poll = await source.poll(None)
    assert poll.problems == ()
    listed = [(spec.id, change.scope) for change in poll.changes for spec in change.specs]
    assert sorted(task for task, _ in listed) == sorted(tasks)  # each once
    assert all(task_id_problem(task) is None for task, _ in listed)
    specs = {spec.id: spec for change in poll.changes for spec in change.specs}
    assert {t: (s.title, s.priority) for t, s in specs.items()} == {
        task: (f"Task number {n}", n) for n, task in enumerate(tasks)
    }
    scopes = dict(listed)
    # Another instance (a new admin, after a restart) puts each task in the same scope.
    driver.tick()
    again = await driver.build().poll(None)
    assert {spec.id: change.scope for change in again.changes for spec in change.specs} == scopes
    # Folded, every task is open under the scope it was listed in.
    admin = Admin(source)
    plan = plan_sync(admin.board, source.name, poll, TERM)
    assert plan.problems == ()
    admin.write(plan.entries)
    assert admin.states() == dict.fromkeys(tasks, TaskState.OPEN)
    assert {t: found.scope for t, found in admin.board.tasks.items()} == scopes
    assert all(len(scope) <= te.MAX_SCOPE for scope in scopes.values())


# (b) nothing changed: nothing written


async def test_an_unchanged_source_costs_no_entry(driver: Driver) -> None:
    admin, tasks = await settled(driver)
    first = admin.polls[0]
    # The cursor the log holds is the one the poll returned.
    assert admin.board.cursors[admin.source.name].cursor == (
        None if first.cursor is None else json.loads(json.dumps(first.cursor))
    )
    await quiet(admin, driver)
    await quiet(admin, driver)
    assert admin.states() == dict.fromkeys(tasks, TaskState.OPEN)


# (c) an edit is one task.updated


async def test_an_edit_is_exactly_one_update(driver: Driver) -> None:
    admin, tasks = await settled(driver)
    driver.edit(tasks[1], "A better title")
    driver.tick()
    plan = await admin.sync()
    assert changes(plan) == [(te.UPDATED, tasks[1])]
    assert admin.board.tasks[tasks[1]].spec.title == "A better title"
    assert admin.states() == dict.fromkeys(tasks, TaskState.OPEN)
    await quiet(admin, driver)


# (d) a removal is one task.closed; the rest stay


async def test_a_removal_is_exactly_one_close(driver: Driver) -> None:
    admin, tasks = await settled(driver)
    driver.remove(tasks[0])
    driver.tick()
    plan = await admin.sync()
    assert changes(plan) == [(te.CLOSED, tasks[0])]
    assert admin.states() == {
        tasks[0]: TaskState.CLOSED,
        tasks[1]: TaskState.OPEN,
        tasks[2]: TaskState.OPEN,
    }
    await quiet(admin, driver)


# (e) a new task after that is one task.opened


async def test_a_new_task_after_a_removal_is_exactly_one_open(driver: Driver) -> None:
    admin, tasks = await settled(driver)
    driver.remove(tasks[2])
    driver.tick()
    assert changes(await admin.sync()) == [(te.CLOSED, tasks[2])]
    new = driver.add("Something new", 4)
    driver.tick()
    plan = await admin.sync()
    assert changes(plan) == [(te.OPENED, new)]
    assert admin.board.tasks[new].spec.priority == 4
    assert admin.states() == {
        tasks[0]: TaskState.OPEN,
        tasks[1]: TaskState.OPEN,
        tasks[2]: TaskState.CLOSED,
        new: TaskState.OPEN,
    }
    await quiet(admin, driver)


# (f) the cursor goes into the log: JSON, no secret


async def test_the_cursor_is_json_and_holds_no_secret(driver: Driver) -> None:
    admin, tasks = await settled(driver)
    driver.edit(tasks[0], "Edited")
    driver.remove(tasks[1])
    driver.add("Another", 1)
    driver.tick()
    await admin.sync()
    await quiet(admin, driver)
    for poll in admin.polls:
        text = json.dumps(poll.cursor)  # raises on anything JSON has no word for
        assert json.loads(text) == (None if poll.cursor is None else dict(poll.cursor))
        assert TOKEN not in text
        assert TOKEN not in repr(poll)
    for cursor in admin.board.cursors.values():
        assert TOKEN not in json.dumps(cursor.cursor)


async def test_a_cursor_that_is_not_ours_is_read_as_none_and_changes_nothing(
    driver: Driver,
) -> None:
    """The cursor comes back from the log: a malformed one (an older version, a bad
    admin) must not break the poll nor close anything."""
    admin, tasks = await settled(driver)
    for cursor in (
        {},
        {"repos": 5, "projects": 5},
        {"repos": {REPO: {"since": 5, "etag": ["x"]}}, "projects": [None, 5, "../x", ""]},
        {"repos": {REPO: {"since": "2000-01-01T00:00:00Z", "etag": 'W/"nope"'}}},
    ):
        driver.tick()
        poll = await admin.source.poll(cursor)
        plan = plan_sync(admin.board, admin.source.name, poll, TERM)
        assert plan.entries == [], (cursor, changes(plan))
        assert plan.problems == ()
    assert admin.states() == dict.fromkeys(tasks, TaskState.OPEN)


# (g) the name is stable


async def test_the_name_is_stable_across_instances_of_one_config(driver: Driver) -> None:
    one, two = driver.build(), driver.build()
    assert isinstance(one.name, str) and one.name
    assert one.name == two.name
    assert TOKEN not in one.name
    assert len(one.name) <= te.MAX_SCOPE  # the fold reads a sync's source up to this


# (h) poll raises nothing but SourceError, and a failure closes nothing


# A label like "priority-\u00b2" ('\u00b2'.isdigit() is True, int() refuses it) and a
# `labels` that is a number both escaped `poll` as ValueError / TypeError at 1b5bddb.
FAILING = [
    pytest.param(kind, how, id=f"{kind}-{how}") for kind in IMPLEMENTATIONS for how in FAILURES
]


@pytest.mark.parametrize(("driver", "how"), FAILING, indirect=["driver"])
async def test_a_misbehaving_source_raises_only_source_error_and_closes_nothing(
    driver: Driver, how: str
) -> None:
    admin, tasks = await settled(driver)
    driver.fail(how)
    driver.tick()
    if how == "gone":
        # A new admin (or a restart) against the dead server. The same GitHub source
        # would reuse its kept-alive connection, which the stand-in's handler thread
        # still serves after `stop()`: not what a dead server does.
        admin.source = driver.build()
    try:
        poll = await admin.source.poll(admin.cursor())
    except SourceError as error:
        assert TOKEN not in str(error) and TOKEN not in repr(error)
        poll = SourcePoll(problems=(str(error),))
    assert all(TOKEN not in line for line in poll.problems)
    plan = plan_sync(admin.board, admin.source.name, poll, TERM)
    assert [kind for kind, _ in plan.entries if kind == te.CLOSED] == []
    assert [task for kind, task in changes(plan) if task in tasks] == []
    if how in ("error", "gone"):
        assert plan.problems, "a failure is a problem line"
    admin.write([*plan.entries, *([(te.SYNCED, plan.synced)] if plan.synced else [])])
    assert all(admin.states()[task] is TaskState.OPEN for task in tasks)
    if how == "error":  # once the source is back, the board is as it was
        driver.heal()
        driver.tick()
        back = await admin.sync()
        assert changes(back) == []
        assert admin.states() == dict.fromkeys(tasks, TaskState.OPEN)


# A limit of the entries, not of the sources: the scope and name must fit an entry.


async def test_a_local_folder_with_a_long_path_settles(tmp_path: Path) -> None:
    """At 1b5bddb the scope was 'local:' + the whole path; the fold ignores an entry whose
    scope or source is longer than MAX_SCOPE, so every poll opened every task again."""
    home = tmp_path / ("d" * 200) / ("e" * 100)
    driver = LocalDriver(home)
    tasks = [driver.add("One", 1)]
    admin = Admin(driver.build())
    assert changes(await admin.sync()) == [(te.OPENED, tasks[0])]
    await quiet(admin, driver)
