"""A template as a form: its fields, what is wrong with them (shown in the form, nothing
sent), the `bzzz` command that does the same, and the node's answer. What is sent is the
template's control request: the node signs it with this identity's key like any entry."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

from textual import on
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, VerticalScroll
from textual.screen import ModalScreen
from textual.widget import Widget
from textual.widgets import Button, Input, Label, Select, Static, TextArea

from bzzz.errors import UsageError
from bzzz.hap.client import NodeClient
from bzzz.hap.templates import Template, check_values, command_of, request_of


@dataclass(frozen=True)
class Selection:
    """What the person had picked when the form opened: its fields start from it."""

    thread: str | None = None
    task: str | None = None
    entry: str | None = None


@dataclass(frozen=True)
class Sent:
    template: Template
    request: dict[str, Any]
    answer: dict[str, Any]


def initial(template: Template, selection: Selection) -> dict[str, str]:
    values: dict[str, str] = {}
    for f in template.fields:
        picked = {"thread": selection.thread, "task": selection.task, "entry": selection.entry}
        values[f.name] = picked.get(f.type) or f.default
    return values


class FormScreen(ModalScreen[Sent | None]):
    """One template's form. Ctrl+S sends, Escape cancels."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("ctrl+s", "send", "Send", priority=True),
        Binding("escape", "cancel", "Cancel"),
    ]
    DEFAULT_CSS = """
    FormScreen { align: center middle; }
    #form { width: 100%; max-width: 90; height: auto; max-height: 100%;
            border: round $accent; padding: 0 1; background: $surface; }
    #form-title { text-style: bold; }
    #form-help { color: $text-muted; }
    .field-label { margin-top: 1; }
    .field-help { color: $text-muted; }
    FormScreen TextArea { height: 5; }
    #form-error { color: $error; text-style: bold; }
    #form-command { color: $text-muted; }
    #form-buttons { height: auto; margin-top: 1; }
    #form-buttons Button { margin-right: 2; }
    """

    def __init__(
        self,
        template: Template,
        selection: Selection,
        client: NodeClient,
        home: Path,
        known_tasks: Callable[[], set[str]],
    ) -> None:
        super().__init__()
        self.template = template
        self.selection = selection
        self.client = client
        self.home = home
        self.known_tasks = known_tasks
        self.values = initial(template, selection)

    def compose(self) -> ComposeResult:
        t = self.template
        with VerticalScroll(id="form"):
            yield Static(t.title, id="form-title")
            if t.help:
                yield Static(t.help, id="form-help")
            for f in t.fields:
                yield Label(f"{f.label}{' *' if f.required else ''}", classes="field-label")
                yield self._widget(f.name, f.type, f.choices, self.values[f.name], f.max)
                if f.help:
                    yield Static(f.help, classes="field-help")
            yield Static("", id="form-error")
            yield Static("", id="form-command")
            with Horizontal(id="form-buttons"):
                yield Button("Send (ctrl+s)", id="send", variant="primary")
                yield Button("Cancel (esc)", id="cancel")

    def _widget(
        self, name: str, kind: str, choices: tuple[str, ...], value: str, limit: int
    ) -> Widget:
        wid = f"field-{name}"
        if kind == "choice":
            options = [(c, c) for c in choices]
            return Select(options, value=value or choices[0], allow_blank=False, id=wid)
        if kind == "text":
            area = TextArea(value, id=wid, soft_wrap=True)
            area.show_line_numbers = False
            return area
        placeholder = {
            "thread": "a task id (local:SLUG, github:OWNER/REPO#N) or x:HEX",
            "task": "local:SLUG, github:OWNER/REPO#N or hive:PROJECT/ID",
            "entry": "64 hex digits",
        }.get(kind, f"at most {limit} characters")
        return Input(value, placeholder=placeholder, id=wid)

    def on_mount(self) -> None:
        self._show_command()
        first = next((f for f in self.template.fields if not self.values[f.name]), None)
        target = first or (self.template.fields[0] if self.template.fields else None)
        if target is not None:
            self.query_one(f"#field-{target.name}").focus()
        else:
            self.query_one("#send").focus()

    def read(self) -> dict[str, str]:
        values: dict[str, str] = {}
        for f in self.template.fields:
            widget = self.query_one(f"#field-{f.name}")
            if isinstance(widget, Select):
                values[f.name] = "" if widget.value is Select.BLANK else str(widget.value)
            elif isinstance(widget, TextArea):
                values[f.name] = widget.text
            elif isinstance(widget, Input):
                values[f.name] = widget.value
        return values

    def _show_command(self) -> None:
        values = self.read()
        request = request_of(self.template, values)
        self.query_one("#form-command", Static).update(
            f"same as: {command_of(self.template, request, self.home)}"
        )

    @on(Input.Changed)
    @on(Select.Changed)
    @on(TextArea.Changed)
    def _changed(self) -> None:
        self._show_command()

    def problem(self, values: Mapping[str, str]) -> str | None:
        """The first thing wrong with the values, as the form says it."""
        wrong = check_values(self.template, values)
        if wrong:
            return next(iter(wrong.values()))
        task_field = next((f for f in self.template.fields if f.type == "task"), None)
        if task_field is not None:
            task = values.get(task_field.name, "").strip()
            if task not in self.known_tasks():
                return f"{task_field.label}: {task!r} is not on the task board"
        return None

    def say(self, text: str) -> None:
        self.query_one("#form-error", Static).update(text)

    async def action_send(self) -> None:
        values = self.read()
        problem = self.problem(values)
        if problem is not None:
            self.say(problem)
            return
        request = request_of(self.template, values)
        button = self.query_one("#send", Button)
        button.disabled = True
        self.say("sending ...")
        try:
            answer = await self.client.send(request)
        except UsageError as error:
            self.say(str(error))
            return
        finally:
            button.disabled = False
        if answer.get("status") not in (None, "granted"):  # a claim the admin refused
            self.say(f"{answer['status']}: {answer.get('reason') or 'no reason given'}")
            return
        self.dismiss(Sent(self.template, request, answer))

    def action_cancel(self) -> None:
        self.dismiss(None)

    @on(Button.Pressed, "#send")
    async def _send_pressed(self) -> None:
        await self.action_send()

    @on(Button.Pressed, "#cancel")
    def _cancel_pressed(self) -> None:
        self.action_cancel()
