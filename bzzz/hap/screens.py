"""The portal's screens: home (what needs you, the board, the threads, the peers), one
thread or task in full, and the help. Each form key opens a template on what is picked."""

from __future__ import annotations

from typing import Any, ClassVar

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import VerticalScroll
from textual.message import Message
from textual.screen import ModalScreen, Screen
from textual.widgets import DataTable, Footer, Markdown, Static

from bzzz.hap.form import Selection
from bzzz.hap.rows import CONTEXT_HINT, Row, reply_to, task_text, thread_text


class OpenDetail(Message):
    """The person opened a row: show its thread or task in full."""

    def __init__(self, selection: Selection, task: bool) -> None:
        super().__init__()
        self.selection = selection
        self.task = task


FORM_KEYS = [
    ("o", "objection", "Object", True),
    ("a", "approval", "Approve", True),
    ("r", "answer", "Answer", True),
    ("c", "clarification", "Ask", False),
    ("e", "resolution", "Resolve", True),
    ("d", "decision", "Decide", False),
    ("s", "escalation", "Escalate", False),
    ("t", "take", "Take", True),
    ("p", "progress", "Progress", False),
    ("f", "done", "Done", False),
    ("g", "fail", "Give up", False),
    ("x", "release", "Release", False),
]
FORM_BINDINGS = [
    Binding(key, f"app.form('{name}')", label, show=show) for key, name, label, show in FORM_KEYS
]
TABLES = {
    "needs": ("Needs you", ("what", "thread", "from", "age", "text")),
    "tasks": ("Tasks", ("state", "p", "task", "holder", "title")),
    "threads": ("Threads", ("state", "thread", "msgs", "why")),
}


class HomeScreen(Screen[None]):
    BINDINGS: ClassVar[list[BindingType]] = [
        *FORM_BINDINGS,
        Binding("1", "pick('needs')", "Needs you", show=False),
        Binding("2", "pick('tasks')", "Tasks", show=False),
        Binding("3", "pick('threads')", "Threads", show=False),
        Binding("u", "app.context", "Context"),
        Binding("q", "app.quit", "Quit"),
    ]
    DEFAULT_CSS = """
    #who { height: 1; background: $boost; padding: 0 1; }
    .table-title { height: 1; color: $accent; text-style: bold; padding: 0 1; }
    HomeScreen DataTable { height: 1fr; min-height: 3; }
    #peers { height: 1; padding: 0 1; }
    """

    def __init__(self) -> None:
        super().__init__()
        self.rows: dict[str, list[Row]] = {name: [] for name in TABLES}

    def compose(self) -> ComposeResult:
        yield Static("connecting ...", id="who")
        for name, (title, columns) in TABLES.items():
            yield Static(title, id=f"{name}-title", classes="table-title")
            table: DataTable[str] = DataTable(id=name, cursor_type="row", zebra_stripes=True)
            table.add_columns(*columns)
            yield table
        yield Static(CONTEXT_HINT, id="peers")
        yield Footer()

    def on_mount(self) -> None:
        self.query_one("#needs", DataTable).focus()

    def action_pick(self, name: str) -> None:
        self.query_one(f"#{name}", DataTable).focus()

    def show_rows(self, name: str, rows: list[Row], empty: str) -> None:
        """Put `rows` in the table, keeping the cursor on the row it was on."""
        table: DataTable[Text] = self.query_one(f"#{name}", DataTable)
        old = self.rows[name]
        was = old[table.cursor_row].key if old and 0 <= table.cursor_row < len(old) else None
        self.rows[name] = rows
        table.clear()
        for row in rows:
            table.add_row(*(Text(cell) for cell in row.cells), key=row.key)  # not markup
        keys = [r.key for r in rows]
        if was in keys:
            table.move_cursor(row=keys.index(was), animate=False)
        title, _ = TABLES[name]
        count = f" ({len(rows)})" if rows else f": {empty}"
        self.query_one(f"#{name}-title", Static).update(f"{title}{count}")

    def selection(self) -> Selection:
        """What the focused table's cursor is on (the needs table when none is focused)."""
        focused = self.focused
        name = focused.id if isinstance(focused, DataTable) and focused.id in TABLES else "needs"
        assert name is not None
        rows = self.rows[name]
        table: DataTable[str] = self.query_one(f"#{name}", DataTable)
        if rows and 0 <= table.cursor_row < len(rows):
            return rows[table.cursor_row].selection
        return Selection()

    def on_data_table_row_selected(self, event: DataTable.RowSelected) -> None:
        name = event.data_table.id
        if name is None or name not in self.rows:
            return
        rows = self.rows[name]
        if 0 <= event.cursor_row < len(rows):
            self.post_message(OpenDetail(rows[event.cursor_row].selection, name == "tasks"))


class DetailScreen(Screen[None]):
    """One thread or one task in full; the form keys act on it. Escape goes back."""

    BINDINGS: ClassVar[list[BindingType]] = [
        *FORM_BINDINGS,
        Binding("escape,q", "app.pop_screen", "Back"),
    ]
    DEFAULT_CSS = """
    #detail { padding: 0 1; }
    """

    def __init__(self, selection: Selection, task: bool) -> None:
        super().__init__()
        self.picked = selection
        self.is_task = task
        self.data: dict[str, Any] | None = None

    def compose(self) -> ComposeResult:
        with VerticalScroll():
            yield Static("loading ...", id="detail")
        yield Footer()

    def selection(self) -> Selection:
        if self.data is not None and not self.is_task:
            return Selection(self.data["id"], self.data.get("task"), reply_to(self.data))
        return self.picked

    def show(self, data: dict[str, Any] | None, problem: str | None = None) -> None:
        self.data = data if data is not None else self.data
        if data is None:
            self.query_one("#detail", Static).update(problem or "not found")
            return
        self.query_one("#detail", Static).update(
            task_text(data) if self.is_task else thread_text(data)
        )


HELP = """\
# BZZZ Human Agent Portal

You act as this node's member: every message and claim is an entry signed with its
key, in its log, like any agent's.

## Keys

| key | does | same as |
|---|---|---|
| `1` `2` `3` | go to Needs you, Tasks, Threads | |
| `↑` `↓` `enter` | pick a row, open it in full | `bzzz hmmm show`, `bzzz task show` |
| `o` | object to the plan | `bzzz hmmm object` |
| `a` | approve the plan | `bzzz hmmm approve` |
| `r` | answer the question | `bzzz hmmm say --type answer --parent ...` |
| `c` | ask for clarification | `bzzz hmmm say --type clarification_needed` |
| `e` | resolve the escalation | `bzzz hmmm resolve --outcome decided` |
| `d` | record a decision (an outcome) | `bzzz hmmm resolve --outcome ...` |
| `s` | escalate to people | `bzzz hmmm escalate` |
| `t` | take the task (a claim) | `bzzz claim request` |
| `p` | report progress | `bzzz task progress` |
| `f` | mark done, with a link | `bzzz task done` |
| `g` | give the task up as failed | `bzzz task fail` |
| `x` | release the task | `bzzz claim release` |
| `u` | search shared context by UCXL address | `bzzz ucxl search PATTERN` |
| `ctrl+p` | command palette (every form, the theme) | |
| `ctrl+t` | light or dark theme | |
| `?` `f1` | this help | |
| `escape` | back, or cancel a form | |
| `q` `ctrl+q` | quit | |

In a form, `tab` moves between fields and `ctrl+s` sends. Each form shows the `bzzz`
command that does the same; anything wrong is said in the form and nothing is sent.

## Templates

{templates}

## Context

`u` opens the shared context: a UCXL pattern (`*` in the agent, role, project or task;
a path matches itself and below; the temporal part, e.g. `~latest` or `~v2`, picks the
version) and the pieces it matches. `enter` in the pattern searches; `enter` on a piece
opens its history (every version, who wrote it and when, newest first; `↑` `↓` show each
in full: `bzzz ucxl history ADDRESS`). `ctrl+f` goes back to the pattern, `escape` back.
"""


class HelpScreen(ModalScreen[None]):
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape,q,question_mark,f1", "dismiss", "Close")
    ]
    DEFAULT_CSS = """
    HelpScreen { align: center middle; }
    #help { width: 100%; max-width: 100; height: 100%; border: round $accent;
            background: $surface; }
    """

    def __init__(self, templates: str) -> None:
        super().__init__()
        self.templates = templates

    def compose(self) -> ComposeResult:
        text = HELP.format(templates=self.templates)
        with VerticalScroll(id="help"):
            yield Markdown(text)
