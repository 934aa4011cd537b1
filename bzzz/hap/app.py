"""The Human Agent Portal: a full-screen terminal front end on a node, for a person
who decides instead of the agent's loop. It asks the node through its control socket
(`NodeClient`) for what needs this member, the board, the threads and the peers, waits
for news with the `changes` request, and sends what the person writes through the
templates' forms: the requests the `bzzz` commands send."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any, ClassVar

from textual import work
from textual.app import App, SystemCommand
from textual.binding import Binding, BindingType
from textual.css.query import NoMatches
from textual.screen import Screen

from bzzz.errors import UsageError
from bzzz.hap.client import NodeClient
from bzzz.hap.context_screens import ContextScreen
from bzzz.hap.form import FormScreen, Selection, Sent
from bzzz.hap.rows import context_pattern, needs_rows, peers_line, task_rows, thread_rows, who_line
from bzzz.hap.screens import DetailScreen, HelpScreen, HomeScreen, OpenDetail
from bzzz.hap.templates import Templates

POLL_WAIT_S = 1.0  # a `changes` request waits this long for news
BOARD_EVERY_S = 2.0  # the board and threads are read again at least this often (windows close)
STATUS_EVERY_S = 2.0  # peers and the admin
MIN_GAP_S = 0.05  # between two reads, however busy the node
RETRY_S = 1.0  # after the node did not answer
DARK, LIGHT = "textual-dark", "textual-light"


class HapApp(App[None]):
    TITLE = "BZZZ HAP"
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("question_mark,f1", "help", "Help"),
        Binding("ctrl+t", "toggle_theme", "Theme", show=False),
        Binding("ctrl+q", "quit", "Quit", show=False, priority=True),
    ]

    def __init__(
        self,
        client: NodeClient,
        home: Path,
        templates: Templates,
        *,
        mode: str = "attached",
        light: bool = False,
        poll_wait: float = POLL_WAIT_S,
    ) -> None:
        super().__init__()
        self.client = client
        self.home = home
        self.templates = templates
        self.mode = mode
        self.poll_wait = poll_wait
        self.theme = LIGHT if light else DARK
        self.status: dict[str, Any] | None = None
        self.election: dict[str, Any] | None = None
        self.inbox: list[dict[str, Any]] = []
        self.tasks: list[dict[str, Any]] = []
        self.threads: list[dict[str, Any]] = []
        self.problem: str | None = None
        self.version: int | None = None
        # entry -> ms from its signed timestamp to its first display (the figures)
        self.shown_after_ms: dict[str, float] = {}
        self.sent: list[Sent] = []
        self.home_screen = HomeScreen()
        self.reloads = 0

    def on_mount(self) -> None:
        self.push_screen(self.home_screen)
        for problem in self.templates.problems:
            self.notify(problem, title="template left out", severity="warning", timeout=10)
        self.watch_node()

    async def on_unmount(self) -> None:
        self.client.close()

    # Reading the node

    @work(exclusive=True, group="watch")
    async def watch_node(self) -> None:
        last_board = last_status = 0.0
        while True:
            try:
                version = await self.client.changes(self.version, self.poll_wait)
                now = time.monotonic()
                changed = version != self.version
                self.version = version
                if self.status is None or now - last_status >= STATUS_EVERY_S:
                    await self.read_status()
                    last_status = now
                if changed or now - last_board >= BOARD_EVERY_S:
                    await self.read_board()
                    last_board = now
                if self.problem is not None:
                    self.problem = None
                    self.show_status()
            except UsageError as error:
                self.problem = str(error)
                self.show_status()
                await asyncio.sleep(RETRY_S)
                continue
            await asyncio.sleep(MIN_GAP_S)

    async def read_status(self) -> None:
        self.status = await self.client.status()
        self.election = await self.client.election()
        self.show_status()

    async def read_board(self) -> None:
        inbox = await self.client.inbox()
        tasks = await self.client.tasks()
        threads = await self.client.threads()
        self.inbox, self.tasks, self.threads = inbox, tasks, threads
        self.reloads += 1
        me = self.status["agent_id"] if self.status else None
        home = self.home_screen
        home.show_rows("needs", needs_rows(inbox), "nothing now")
        home.show_rows("tasks", task_rows(tasks, me), "no tasks")
        home.show_rows("threads", thread_rows(threads), "no threads")
        now = time.time() * 1000
        for item in inbox:
            entry, ts = item.get("entry"), item.get("ts")
            if entry and isinstance(ts, int) and entry not in self.shown_after_ms:
                self.shown_after_ms[entry] = now - ts
        if isinstance(self.screen, DetailScreen):
            self.show_detail(self.screen)

    def show_status(self) -> None:
        from textual.widgets import Static

        if not self.home_screen.is_mounted:
            return
        try:
            who, peers = (self.home_screen.query_one(f"#{n}", Static) for n in ("who", "peers"))
        except NoMatches:  # the screen is being taken down (the portal quits)
            return
        who.update(who_line(self.status, self.election, self.mode, self.problem))
        peers.update(peers_line(self.status, self.election))

    def show_detail(self, screen: DetailScreen) -> None:
        picked = screen.picked
        if screen.is_task:
            found = next((t for t in self.tasks if t["id"] == picked.task), None)
            if found is not None:
                self.fetch_task(screen, str(found["id"]))
            else:
                screen.show(None, f"{picked.task} is not on the board")
            return
        thread = next((t for t in self.threads if t["id"] == picked.thread), None)
        screen.show(thread, f"no thread {picked.thread} yet")

    @work(group="detail")
    async def fetch_task(self, screen: DetailScreen, task: str) -> None:
        try:
            screen.show(await self.client.task(task))
        except UsageError as error:
            screen.show(None, str(error))

    # What the person does

    def known_tasks(self) -> set[str]:
        return {str(t["id"]) for t in self.tasks}

    def current_selection(self) -> Selection:
        screen = self.screen
        if isinstance(screen, HomeScreen | DetailScreen):
            return screen.selection()
        return Selection()

    def action_form(self, name: str) -> None:
        self.open_form(name, self.current_selection())

    def open_form(self, name: str, selection: Selection) -> None:
        template = self.templates.get(name)
        if template is None:
            self.notify(f"no template {name!r}", severity="error")
            return
        form = FormScreen(template, selection, self.client, self.home, self.known_tasks)
        self.push_screen(form, self._sent)

    def _sent(self, sent: Sent | None) -> None:
        if sent is None:
            return
        self.sent.append(sent)
        answer = sent.answer
        if answer.get("entry"):
            what = f"written to {answer.get('thread')} ({str(answer['entry'])[:12]})"
        elif answer.get("status") == "granted":
            what = f"granted, token {answer.get('token')}"
        elif "state" in answer:
            what = f"the task is {answer['state']}"
        else:
            what = "done"
        self.notify(f"{sent.template.title}: {what}")
        self.version = None  # read everything again now

    def on_open_detail(self, message: OpenDetail) -> None:
        self.open_detail(message.selection, message.task)

    def open_detail(self, selection: Selection, task: bool) -> None:
        screen = DetailScreen(selection, task)
        self.push_screen(screen)
        self.call_after_refresh(self.show_detail, screen)

    def action_context(self) -> None:
        if isinstance(self.screen, ContextScreen):
            return
        self.push_screen(ContextScreen(self.client, context_pattern(self.status)))

    def action_help(self) -> None:
        if isinstance(self.screen, HelpScreen):
            return
        self.push_screen(HelpScreen(self.templates_text()))

    def templates_text(self) -> str:
        lines = [
            f"- `{t.name}`: {t.title} ({t.action}; from {t.source})"
            for t in sorted(self.templates.by_name.values(), key=lambda t: t.name)
        ]
        lines += [f"- left out: {p}" for p in self.templates.problems]
        return "\n".join(lines)

    def action_toggle_theme(self) -> None:
        self.theme = LIGHT if self.theme == DARK else DARK

    def get_system_commands(self, screen: Screen[Any]) -> Iterable[SystemCommand]:
        yield from super().get_system_commands(screen)
        selection = self.current_selection()
        for template in sorted(self.templates.by_name.values(), key=lambda t: t.title):
            picked = getattr(selection, template.on) or "nothing picked"
            yield SystemCommand(
                template.title,
                f"{template.help or template.action} (on {picked})",
                lambda t=template.name, s=selection: self.open_form(t, s),
            )
        yield SystemCommand(
            "Context", "Search shared context by UCXL address (u)", self.action_context
        )
        yield SystemCommand("Help", "The keys and templates", self.action_help)
        yield SystemCommand("Light or dark", "Switch the theme", self.action_toggle_theme)
