"""The portal driven by Textual's headless pilot against real daemons on 127.0.0.1: an
admin (`bzzz agent`), a developer agent whose replayed model plans and works the tasks
it takes, and a person's node started as `bzzz hap` starts it (the agent's own
decisions off). An escalation arrives and is shown; a person objects to a plan through a
template and the agent revises it; a person resolves an escalation; a person takes a
task, reports on it and marks it done; bad input is said in the form and nothing is
written."""

from __future__ import annotations

import asyncio
import json
import re
import statistics
import time
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from textual.pilot import Pilot
from textual.widgets import DataTable, Input, Static, TextArea

from bzzz.agent.context_requests import MAX_FOUND
from bzzz.agent.control import Control, ask
from bzzz.domain import context as cx
from bzzz.domain import hmmm as hm
from bzzz.errors import UsageError
from bzzz.hap.app import HapApp
from bzzz.hap.client import NodeClient
from bzzz.hap.context_screens import ContextScreen, HistoryScreen
from bzzz.hap.form import FormScreen
from bzzz.hap.launch import StartedNode, start_node
from bzzz.hap.templates import load_templates
from bzzz.home.node import open_home_store
from bzzz.tasks.local import write_task
from tests.services.exec_team import call, make_origin
from tests.support.agents import (
    Agent,
    found,
    free_port,
    invite_token,
    join,
    proven_leader,
    stop_all,
    wait_for,
)
from tests.support.cli import assert_one_line_error, bzzz

pytestmark = pytest.mark.slow
WINDOW_S = 6.0  # the objection window: long enough for the pilot to object in


def configure(home: Path, **sections: dict[str, Any]) -> None:
    path = home / "config.yaml"
    data = yaml.safe_load(path.read_text())
    for key, value in sections.items():
        data[key] = {**(data.get(key) or {}), **value}
    path.write_text(yaml.safe_dump(data))


def record(folder: Path, task: str, turns: list[dict[str, Any]]) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    name = re.sub(r"[^a-z0-9._-]+", "-", task.lower()) + ".json"
    (folder / name).write_text(json.dumps({"format": "bzzz-replay/1", "turns": turns}))


class Team:
    def __init__(self, root: Path) -> None:
        self.root = root
        self.folder = root / "tasks"
        self.recordings = root / "recordings"
        self.origin = make_origin(root)
        self.agents: list[Agent] = []
        self.person: StartedNode | None = None
        self.person_home = root / "h"

    def start(self) -> None:
        self.folder.mkdir()
        tasks = {"poll_s": 0.5, "sources": [{"type": "local", "path": str(self.folder)}]}
        hmmm = {"objection_window_s": WINDOW_S}
        a = found(self.root)
        configure(a.home, tasks=tasks, hmmm=hmmm)
        self.agents.append(a.start())
        b = join(self.root, "b", a)
        b.peers = [a.address]
        configure(
            b.home,
            tasks=tasks,
            hmmm=hmmm,
            agent={"auto_claim": True, "max_tasks": 1},
            reasoning={"backend": "replay", "recordings": str(self.recordings)},
            sandbox={"backend": "bwrap", "limits": {"wall_s": 20}},
        )
        self.agents.append(b.start())
        h = join(self.root, "h", a, invite_token(a, role="architect"))
        configure(h.home, tasks=tasks, hmmm=hmmm)
        # The person's node as `bzzz hap` starts it when no agent runs on the home.
        self.person = start_node(h.home, listen=h.address, peers=[a.address, b.address], mdns=False)
        wait_for(lambda: proven_leader(self.agents), timeout=30, what="a proven leader")

    @property
    def admin(self) -> Agent:
        return self.agents[0]

    @property
    def agent(self) -> Agent:
        return self.agents[1]

    def stop(self) -> None:
        if self.person is not None:
            self.person.stop()
        stop_all(self.agents)


@pytest.fixture(scope="module")
def team(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Team]:
    t = Team(tmp_path_factory.mktemp("hap"))
    try:
        t.start()
        yield t
    finally:
        t.stop()


@pytest.fixture
async def portal(team: Team) -> AsyncIterator[tuple[HapApp, Pilot[None]]]:
    app = HapApp(
        NodeClient(team.person_home),
        team.person_home,
        load_templates(None),
        mode="own node",
        poll_wait=0.5,
    )
    async with app.run_test(size=(80, 24)) as pilot:
        await until(pilot, lambda: app.status is not None and app.reloads > 0, "the first read")
        yield app, pilot


async def until(
    pilot: Pilot[None], check: Callable[[], Any], what: str, timeout: float = 30
) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        await pilot.pause(0.05)


async def pick(pilot: Pilot[None], app: HapApp, table: str, key: Callable[[str], bool]) -> None:
    """Go to a table with its number key and walk the cursor down to the row."""
    await pilot.press({"needs": "1", "tasks": "2", "threads": "3"}[table])
    rows = app.home_screen.rows[table]
    index = next(i for i, r in enumerate(rows) if key(r.key))
    widget: DataTable[str] = app.home_screen.query_one(f"#{table}", DataTable)
    while widget.cursor_row < index:
        await pilot.press("down")
    while widget.cursor_row > index:
        await pilot.press("up")


async def write(pilot: Pilot[None], text: str) -> None:
    await pilot.press(*["space" if c == " " else c for c in text])


def form_of(app: HapApp) -> FormScreen:
    assert isinstance(app.screen, FormScreen), app.screen
    return app.screen


def form_error(app: HapApp) -> str:
    return str(form_of(app).query_one("#form-error", Static).render())


def thread_on(agent_home: Path, thread: str) -> dict[str, Any] | None:
    answer = ask(agent_home, {"op": "thread", "thread": thread}, timeout=10)
    assert answer is not None
    return answer["thread"] if answer.get("ok") else None


def kinds_written(team: Team) -> list[str]:
    """The kinds in the person's own log."""
    status = ask(team.person_home, {"op": "status"})
    assert status is not None
    me = bytes.fromhex(status["status"]["agent_id"])
    with open_home_store(team.person_home) as store:
        return [e.kind for e in store.entries(me)]


async def escalate(team: Team, thread: str, reason: str) -> str:
    """The admin escalates a thread (as `bzzz hmmm escalate` does); the entry's hash."""
    request = {"op": "hmmm", "what": "escalate", "thread": thread, "reason": reason}
    answer = await asyncio.to_thread(ask, team.admin.home, request, 15.0)
    assert answer is not None and answer["ok"], answer
    return str(answer["entry"])


async def test_escalations_arrive_and_are_shown_with_their_delay(
    team: Team, portal: tuple[HapApp, Pilot[None]]
) -> None:
    app, pilot = portal
    delays = []
    for n in range(5):
        entry = await escalate(team, f"local:outage-{n}", f"the database is down ({n})")
        await until(pilot, lambda e=entry: e in app.shown_after_ms, "the escalation shown")
        delays.append(app.shown_after_ms[entry])
        row = next(r for r in app.home_screen.rows["needs"] if r.key.endswith(entry))
        assert row.cells[0] == "ESCALATED" and row.cells[1] == f"local:outage-{n}"
        assert row.cells[2] == "n0"  # who escalated, by name
    title = str(app.home_screen.query_one("#needs-title", Static).render())
    assert title.startswith("Needs you (")
    print(
        f"\nescalation entry to display: median {statistics.median(delays):.0f} ms, "
        f"max {max(delays):.0f} ms over {len(delays)}"
    )
    assert max(delays) < 5000


async def test_a_person_resolves_an_escalation(
    team: Team, portal: tuple[HapApp, Pilot[None]]
) -> None:
    app, pilot = portal
    entry = await escalate(team, "local:api-freeze", "freeze the API before the release?")
    await until(pilot, lambda: entry in app.shown_after_ms, "the escalation shown")
    await pick(pilot, app, "needs", lambda key: key.endswith(entry))
    await pilot.press("e")
    form = form_of(app)
    assert form.template.name == "resolution"
    assert form.query_one("#field-thread", Input).value == "local:api-freeze"
    await write(pilot, "freeze it from Monday")
    await pilot.press("ctrl+s")
    await until(pilot, lambda: not isinstance(app.screen, FormScreen), "the form sent")
    row = await asyncio.to_thread(thread_on, team.admin.home, "local:api-freeze")
    assert row is not None and row["state"] == "resolved", row
    last = row["messages"][-1]
    assert last["kind"] == hm.RESOLUTION and last["text"] == "freeze it from Monday"
    assert last["outcome"] == "decided" and last["author_name"] == "h"
    await until(
        pilot,
        lambda: not any(r.key.endswith(entry) for r in app.home_screen.rows["needs"]),
        "the escalation gone from Needs you",
    )


async def test_a_question_to_the_persons_role_is_shown_and_answered(
    team: Team, portal: tuple[HapApp, Pilot[None]]
) -> None:
    app, pilot = portal

    async def ask_as_admin(thread: str, to: str) -> str:
        request = {
            "op": "hmmm",
            "what": "say",
            "thread": thread,
            "query_type": "clarification_needed",
            "text": f"which schema version, {to}?",
            "to": to,
        }
        answer = await asyncio.to_thread(ask, team.admin.home, request, 15.0)
        assert answer is not None and answer["ok"], answer
        return str(answer["entry"])

    other = await ask_as_admin("local:schema-q", "developer")  # not for this person
    mine = await ask_as_admin("local:schema-q2", "architect")
    await until(pilot, lambda: mine in app.shown_after_ms, "the question shown")
    assert other not in app.shown_after_ms
    await pick(pilot, app, "needs", lambda key: key.endswith(mine))
    await pilot.press("r")
    form = form_of(app)
    assert form.query_one("#field-parent", Input).value == mine
    await write(pilot, "version 3")
    await pilot.press("ctrl+s")
    await until(pilot, lambda: not isinstance(app.screen, FormScreen), "the answer sent")
    row = await asyncio.to_thread(thread_on, team.admin.home, "local:schema-q2")
    assert row is not None
    answer = row["messages"][-1]
    assert answer["parent"] == mine and answer["query_type"] == "answer"
    assert answer["text"] == "version 3" and answer["author_name"] == "h"
    await until(
        pilot,
        lambda: not any(r.key.endswith(mine) for r in app.home_screen.rows["needs"]),
        "the question answered",
    )


def test_the_inbox_is_a_command_too(team: Team) -> None:
    request = {
        "op": "hmmm",
        "what": "say",
        "thread": "local:inbox-q",
        "query_type": "clarification_needed",
        "text": "ship it [bold]today[/bold]?",
        "to": "architect",
    }
    asked = ask(team.admin.home, request, 15.0)
    assert asked is not None and asked["ok"], asked
    rows = json.loads(bzzz("hmmm", "inbox", "--home", str(team.person_home), "--json").out)
    mine = [r for r in rows["inbox"] if r["thread"] == "local:inbox-q"]
    assert len(mine) == 1 and mine[0]["text"] == "ship it [bold]today[/bold]?", rows
    shown = bzzz("hmmm", "inbox", "--home", str(team.person_home)).out
    assert "local:inbox-q" in shown and "[bold]today[/bold]" in shown  # shown, not markup
    refused = bzzz("hmmm", "inbox", "--home", str(team.root / "nowhere"))
    assert_one_line_error(refused)


async def test_a_person_objects_and_the_agent_revises_its_plan(
    team: Team, portal: tuple[HapApp, Pilot[None]]
) -> None:
    app, pilot = portal
    task = "local:add-a-farewell"
    record(
        team.recordings,
        task,
        [
            {"content": "Add farewell() in a new module.\nFiles: farewell.py"},
            {"content": "Add farewell() beside greet(), as asked.\nFiles: greet.py"},
            call("write_file", path="greet.py", content="def greet():\n    return 'hi'\n"),
            call("finish", summary="Added farewell()."),
        ],
    )
    write_task(team.folder, "Add a farewell", "Say bye.", needs=["python"], repo=str(team.origin))

    def plan_row() -> bool:
        return any(r.key.startswith(f"plan:{task}:") for r in app.home_screen.rows["needs"])

    await until(pilot, plan_row, "the agent's plan waiting for review")
    await pick(pilot, app, "needs", lambda key: key.startswith(f"plan:{task}:"))
    await pilot.press("o")
    form = form_of(app)
    assert form.template.name == "objection"
    assert form.query_one("#field-thread", Input).value == task
    await write(pilot, "keep it beside greet")
    await pilot.press("ctrl+s")
    await until(pilot, lambda: not isinstance(app.screen, FormScreen), "the objection sent")

    def revised() -> dict[str, Any] | None:
        found_ = next((t for t in app.threads if t["id"] == task), None)
        return found_ if found_ and found_["plan"] and found_["plan"]["revision"] == 1 else None

    thread = await until(pilot, revised, "the revised plan", timeout=30)
    objection = next(m for m in thread["messages"] if m["kind"] == hm.OBJECTION)
    assert objection["author_name"] == "h" and objection["severity"] == "major"
    assert objection["text"] == "keep it beside greet"
    assert "beside greet()" in thread["plan"]["text"]
    assert thread["plan"]["author"] != objection["author"]
    # the revision waits for review again, and the person sees it in Needs you
    await until(
        pilot,
        lambda: any(
            r.selection.entry == thread["plan"]["entry"] for r in app.home_screen.rows["needs"]
        ),
        "the revision in Needs you",
    )


async def test_a_person_takes_a_task_reports_and_marks_it_done(
    team: Team, portal: tuple[HapApp, Pilot[None]]
) -> None:
    app, pilot = portal
    _, spec = write_task(team.folder, "Review the schema", needs=["architect"], priority=0)
    await until(pilot, lambda: spec.id in app.known_tasks(), "the task on the board")
    await pick(pilot, app, "tasks", lambda key: key == spec.id)
    await pilot.press("t")
    assert form_of(app).query_one("#field-task", Input).value == spec.id
    await pilot.press("ctrl+s")
    await until(pilot, lambda: not isinstance(app.screen, FormScreen), "the claim granted", 30)
    assert app.sent[-1].answer["status"] == "granted"

    def row() -> dict[str, Any]:
        return next(t for t in app.tasks if t["id"] == spec.id)

    await until(pilot, lambda: row()["holder"] == app.status["agent_id"], "the task held")  # type: ignore[index]
    table_row = next(r for r in app.home_screen.rows["tasks"] if r.key == spec.id)
    assert table_row.cells[3] == "you"

    await pilot.press("p")  # progress: planning (the default)
    await pilot.press("ctrl+s")
    await until(pilot, lambda: row()["state"] == "planning", "planning")
    await pilot.press("p")
    await pilot.press("tab", "enter", "down", "enter")  # the phase: working
    await pilot.press("ctrl+s")
    await until(pilot, lambda: row()["state"] == "working", "working")
    await pilot.press("f")
    assert form_of(app).template.name == "done"
    await write(pilot, "schema reviewed")
    await pilot.press("tab")
    await write(pilot, "https://example.org/pr/7")
    await pilot.press("ctrl+s")
    await until(pilot, lambda: row()["state"] == "done", "done")
    assert row()["link"] == "https://example.org/pr/7" and row()["result"] == "schema reviewed"
    board = await asyncio.to_thread(ask, team.admin.home, {"op": "task", "task": spec.id})
    assert board is not None and board["task"]["state"] == "done"


async def test_bad_input_is_said_in_the_form_and_nothing_is_written(
    team: Team, portal: tuple[HapApp, Pilot[None]]
) -> None:
    app, pilot = portal
    before = await asyncio.to_thread(kinds_written, team)
    # an unknown task
    await pilot.press("t")
    form = form_of(app)
    form.query_one("#field-task", Input).value = "local:no-such-task"
    await pilot.press("ctrl+s")
    assert "'local:no-such-task' is not on the task board" in form_error(app)
    await pilot.press("escape")
    # an empty reason
    await pilot.press("o")
    form = form_of(app)
    form.query_one("#field-thread", Input).value = "local:add-a-farewell"
    await pilot.press("ctrl+s")
    assert form_error(app) == "Why: required"
    # text over the size limit
    form.query_one("#field-reason", TextArea).text = "x" * (hm.MAX_TEXT + 1)
    await pilot.press("ctrl+s")
    assert f"at most {hm.MAX_TEXT} characters" in form_error(app)
    # not a thread at all
    form.query_one("#field-thread", Input).value = "DROP TABLE"
    form.query_one("#field-reason", TextArea).text = "r"
    await pilot.press("ctrl+s")
    assert "Thread: a task id" in form_error(app)
    # what the node refuses: a reply to a message that is not in the thread
    await pilot.press("escape")
    await pilot.press("r")
    form = form_of(app)
    form.query_one("#field-thread", Input).value = "local:outage-0"
    form.query_one("#field-parent", Input).value = "ab" * 32
    form.query_one("#field-text", TextArea).text = "an answer to nothing"
    await pilot.press("ctrl+s")
    await until(pilot, lambda: "refused" in form_error(app), "the node's refusal")
    assert "parent is not a message of this thread" in form_error(app)
    await pilot.press("escape")
    assert not isinstance(app.screen, FormScreen)
    after = await asyncio.to_thread(kinds_written, team)
    new = [k for k in after[len(before) :] if k.startswith(("hmmm.", "task."))]
    assert not new, new


async def test_help_palette_theme_and_the_context_note(
    team: Team, portal: tuple[HapApp, Pilot[None]]
) -> None:
    app, pilot = portal
    peers = str(app.home_screen.query_one("#peers", Static).render())
    assert "u: shared context" in peers
    who = str(app.home_screen.query_one("#who", Static).render())
    assert "h (architect)" in who and "own node" in who
    await until(pilot, lambda: app.election and app.election["leader"], "an admin")
    who = str(app.home_screen.query_one("#who", Static).render())
    assert "admin none" not in who
    await pilot.press("question_mark")
    assert type(app.screen).__name__ == "HelpScreen"
    await pilot.press("escape")
    dark = app.theme
    await pilot.press("ctrl+t")
    assert app.theme != dark and not app.current_theme.dark
    commands = [c.title for c in app.get_system_commands(app.screen)]
    assert "Object to the plan" in commands and "Take the task" in commands
    assert "Context" in commands
    await escalate(team, "local:help-detail", "a thread to open in full")
    await until(pilot, lambda: app.home_screen.rows.get("threads"), "a thread on the home screen")
    await pilot.press("3")
    await pilot.press("enter")  # a thread in full
    assert type(app.screen).__name__ == "DetailScreen"
    await pilot.press("escape")


def test_a_second_node_on_a_home_in_use_is_refused(team: Team) -> None:
    """One process writes an identity's log: the portal attaches to the running node, and
    a second node on the home is refused by the home lock."""
    with pytest.raises(UsageError, match=r"a node already runs on .*: attach to it"):
        start_node(team.person_home, mdns=False)
    listen = f"127.0.0.1:{free_port()}"
    second = bzzz("hap", "--home", str(team.person_home), "--node-only", "--listen", listen)
    assert_one_line_error(second, "another bzzz agent", "is running on")


@pytest.mark.parametrize(
    ("request_", "words"),
    [
        ({"op": "changes", "since": "7"}, "changes needs"),
        ({"op": "changes", "since": -1}, "changes needs"),
        ({"op": "changes", "since": True}, "changes needs"),
        ({"op": "changes", "since": 0, "wait": 10**9}, "a wait is 0 to 600 seconds"),
        ({"op": "changes", "since": 0, "wait": "1"}, "a wait is 0 to 600 seconds"),
        (
            {
                "op": "hmmm",
                "what": "say",
                "thread": "local:x",
                "query_type": "concern",
                "text": "t",
                "to": "x" * 201,
            },
            "to: an agent id",
        ),
        (
            {
                "op": "hmmm",
                "what": "say",
                "thread": "local:x",
                "query_type": "concern",
                "text": "t",
                "to": ["a"],
            },
            "to: an agent id",
        ),
    ],
)
def test_the_new_requests_refuse_hostile_input(
    team: Team, request_: dict[str, Any], words: str
) -> None:
    answer = ask(team.person_home, request_)
    assert answer is not None and not answer["ok"] and words in answer["error"], answer


def test_changes_answers_at_once_with_news_and_waits_without(team: Team) -> None:
    first = ask(team.person_home, {"op": "changes"})
    assert first is not None and first["ok"] and first["changed"]
    started = time.monotonic()
    later = ask(team.person_home, {"op": "changes", "since": first["version"] - 1, "wait": 5})
    assert later is not None and later["changed"] and time.monotonic() - started < 1
    inbox = ask(team.person_home, {"op": "inbox"})
    assert inbox is not None and inbox["ok"] and isinstance(inbox["inbox"], list)


# Shared context by UCXL address: the control requests and the portal's screens


def person(team: Team) -> tuple[str, str]:
    """The person's agent id and the cluster's UCXL project."""
    status = ask(team.person_home, {"op": "status"})
    assert status is not None and status["ok"], status
    return str(status["status"]["agent_id"]), cx.project_name(status["status"]["cluster"])


def put_versions(team: Team, task: str, texts: list[str]) -> str:
    """Write versions of notes.md under `task` as the person, with `bzzz ucxl put` on the
    running node's home; the item's ~latest address."""
    me, project = person(team)
    address = f"ucxl://{me}:architect@{project}:{task}/~latest/notes.md"
    for text in texts:
        put = bzzz("ucxl", "put", address, "--text", text, "--home", str(team.person_home))
        assert put.code == 0, put
    return address


HOSTILE = "[bold]third[/bold] [/oops] draft\nand a second line"


def test_context_requests_search_history_and_refusals(team: Team) -> None:
    address = put_versions(team, "local:ctx-ops", ["first draft", "second draft", HOSTILE])
    me, project = person(team)
    found = ask(team.person_home, {"op": "ucxl_search", "pattern": address})
    assert found is not None and found["ok"], found
    assert found["more"] == 0 and len(found["found"]) == 1
    row = found["found"][0]
    assert row["latest"] == address and row["address"].endswith("/~v3/notes.md")
    assert row["version"] == row["versions"] == 3 and row["text"] == HOSTILE
    assert row["author"] == me and row["author_name"] == "h" and row["kind"] == cx.PUT
    # the same JSON as `bzzz ucxl search --json`
    cli = json.loads(bzzz("ucxl", "search", address, "--json", "--home", str(team.person_home)).out)
    assert cli["found"] == [row]  # the CLI asks the running agent
    history = ask(team.person_home, {"op": "ucxl_history", "address": address})
    assert history is not None and history["ok"], history
    assert history["address"] == address and history["more"] == 0
    assert [v["text"] for v in history["versions"]] == ["first draft", "second draft", HOSTILE]
    assert [v["version"] for v in history["versions"]] == [1, 2, 3]
    cut = ask(team.person_home, {"op": "ucxl_history", "address": address, "limit": 2})
    assert cut is not None and [v["version"] for v in cut["versions"]] == [2, 3], cut
    assert cut["more"] == 1
    # a prefix of the agent id names the same item
    short_ = address.replace(me, me[:12])
    again = ask(team.person_home, {"op": "ucxl_history", "address": short_})
    assert again is not None and len(again["versions"]) == 3, again
    everything = ask(
        team.person_home, {"op": "ucxl_search", "pattern": f"ucxl://*:*@{project}:*/~latest"}
    )
    assert everything is not None and any(r["latest"] == address for r in everything["found"])


def test_a_search_is_cut_at_the_cap_and_says_how_many_more(team: Team) -> None:
    _, project = person(team)
    control = Control.connect(team.person_home)
    assert control is not None
    with control:
        for n in range(MAX_FOUND + 3):
            body = cx.put_body("local:ctx-many", (f"n{n}.md",), f"note {n}")
            answer = control.ask({"op": "append", "kind": cx.PUT, "data": body})
            assert answer is not None and answer["ok"], answer
    pattern = f"ucxl://*:*@{project}:local:ctx-many/~latest"
    found = ask(team.person_home, {"op": "ucxl_search", "pattern": pattern}, timeout=30)
    assert found is not None and found["ok"], found
    assert len(found["found"]) == MAX_FOUND and found["more"] == 3
    some = ask(team.person_home, {"op": "ucxl_search", "pattern": pattern, "limit": 10})
    assert some is not None and len(some["found"]) == 10 and some["more"] == MAX_FOUND - 7


@pytest.mark.parametrize(
    ("request_", "words"),
    [
        ({"op": "ucxl_search"}, "pattern: a UCXL address"),
        ({"op": "ucxl_search", "pattern": 7}, "pattern: a UCXL address"),
        ({"op": "ucxl_search", "pattern": "ucxl://nope"}, "pattern: "),
        ({"op": "ucxl_search", "pattern": "x" * 5000}, "pattern: "),
        ({"op": "ucxl_search", "pattern": "ucxl://*:*@p:*/~latest\n[x]"}, "pattern: "),
        ({"op": "ucxl_search", "pattern": "ucxl://*:*@p:*/~latest", "limit": 0}, "limit: "),
        ({"op": "ucxl_search", "pattern": "ucxl://*:*@p:*/~latest", "limit": 501}, "limit: "),
        ({"op": "ucxl_search", "pattern": "ucxl://*:*@p:*/~latest", "limit": True}, "limit: "),
        ({"op": "ucxl_history", "address": "ucxl://*:*@p:*/~latest"}, "has a *"),
        ({"op": "ucxl_history", "address": "ucxl://abcd:dev@p:t/~latest/x"}, "nothing at"),
        ({"op": "ucxl_history", "address": ["a"]}, "address: a UCXL address"),
    ],
)
def test_the_context_requests_refuse_hostile_input(
    team: Team, request_: dict[str, Any], words: str
) -> None:
    answer = ask(team.person_home, request_)
    assert answer is not None and not answer["ok"], answer
    assert words in answer["error"] and "\n" not in answer["error"], answer


async def test_a_person_browses_context_and_its_history(
    team: Team, portal: tuple[HapApp, Pilot[None]]
) -> None:
    app, pilot = portal
    texts = ["first draft", "second draft", HOSTILE]
    address = await asyncio.to_thread(put_versions, team, "local:ctx-pilot", texts)
    _, project = await asyncio.to_thread(person, team)
    await pilot.press("u")
    screen = app.screen
    assert isinstance(screen, ContextScreen), screen
    pattern_input = screen.query_one("#pattern", Input)
    assert pattern_input.value == f"ucxl://*:*@{project}:*/~latest"
    await until(pilot, lambda: screen.searches > 0, "the first search")
    # a bad pattern is said in one line, and nothing is listed
    pattern_input.value = "ucxl://nope"
    pattern_input.focus()
    await pilot.press("enter")
    title = screen.query_one("#matches-title", Static)
    await until(pilot, lambda: "pattern:" in str(title.render()), "the refusal")
    assert not screen.rows and "\n" not in str(title.render())
    # the pilot's task only
    pattern_input.value = f"ucxl://*:*@{project}:local:ctx-pilot/~latest"
    await pilot.press("enter")
    await until(pilot, lambda: [r.key for r in screen.rows] == [address], "the match")
    cells = screen.rows[0].cells
    assert cells[1] == "h" and cells[2] == "v3 of 3" and cells[4].startswith("[bold]third[/bold]")
    table = screen.query_one("#matches", DataTable)
    assert "[bold]third[/bold] [/oops]" in str(table.get_row_at(0)[4])  # shown, not markup
    assert table.has_focus
    await pilot.press("enter")
    history = app.screen
    assert isinstance(history, HistoryScreen), history
    await until(pilot, lambda: len(history.versions) == 3, "the history")
    assert [v["version"] for v in history.versions] == [3, 2, 1]  # newest first
    assert all(v["author_name"] == "h" for v in history.versions)
    shown = history.shown()
    assert "[bold]third[/bold] [/oops] draft" in shown and "and a second line" in shown
    assert "version 3 of 3" in shown
    await pilot.press("down")
    await until(pilot, lambda: "second draft" in history.shown(), "version 2 in full")
    await pilot.press("down")
    await until(pilot, lambda: "first draft" in history.shown(), "version 1 in full")
    await pilot.press("escape")
    assert app.screen is screen
    await pilot.press("escape")
    assert type(app.screen).__name__ == "HomeScreen"
