"""The portal's context screens: search shared context by a UCXL pattern (the node's
`ucxl_search`, as `bzzz ucxl search`), and every version of one piece of it, the picked
one in full (`ucxl_history`, as `bzzz ucxl history`). Everything shown is the network's
text: table cells are plain `Text`, the rest escaped markup."""

from __future__ import annotations

from typing import Any, ClassVar

from rich.markup import escape
from rich.text import Text
from textual import work
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import VerticalScroll
from textual.screen import Screen
from textual.widgets import DataTable, Footer, Input, Static

from bzzz.errors import UsageError
from bzzz.hap.client import NodeClient
from bzzz.hap.rows import Row, context_rows, version_rows, version_text

MATCH_COLUMNS = ("address", "author", "version", "when", "text")
VERSION_COLUMNS = ("version", "author", "when", "kind", "text")


def fill(table: DataTable[Any], rows: list[Row]) -> None:
    table.clear()
    for row in rows:
        table.add_row(*(Text(cell) for cell in row.cells), key=row.key)


class ContextScreen(Screen[None]):
    """A pattern, and the pieces of context it matches at the version it names."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape", "app.pop_screen", "Back"),
        Binding("ctrl+f", "focus_pattern", "Pattern"),
    ]
    DEFAULT_CSS = """
    #pattern { margin: 0 1; }
    #matches-title { height: 1; color: $accent; text-style: bold; padding: 0 1; }
    #matches { height: 1fr; }
    """

    def __init__(self, client: NodeClient, pattern: str) -> None:
        super().__init__()
        self.client = client
        self.pattern = pattern
        self.rows: list[Row] = []
        self.more = 0
        self.searches = 0  # answers shown, refusals included

    def compose(self) -> ComposeResult:
        yield Input(value=self.pattern, id="pattern", placeholder="ucxl://*:*@PROJECT:*/~latest")
        yield Static("searching ...", id="matches-title")
        table: DataTable[Any] = DataTable(id="matches", cursor_type="row", zebra_stripes=True)
        table.add_columns(*MATCH_COLUMNS)
        yield table
        yield Footer()

    def on_mount(self) -> None:
        self.search(self.pattern)

    def action_focus_pattern(self) -> None:
        self.query_one("#pattern", Input).focus()

    def on_input_submitted(self, event: Input.Submitted) -> None:
        self.search(event.value.strip())

    @work(exclusive=True, group="context-search")
    async def search(self, pattern: str) -> None:
        title = self.query_one("#matches-title", Static)
        table: DataTable[Any] = self.query_one("#matches", DataTable)
        try:
            answer = await self.client.ucxl_search(pattern)
        except UsageError as error:
            self.rows, self.more = [], 0
            fill(table, [])
            title.update(f"[red]{escape(str(error))}[/red]")
            self.searches += 1
            return
        self.pattern = pattern
        self.rows, self.more = context_rows(list(answer["found"])), int(answer.get("more", 0))
        fill(table, self.rows)
        count = f"{len(self.rows)} found" if self.rows else "nothing matches"
        more = f", {self.more} more not shown (narrow the pattern)" if self.more else ""
        title.update(f"{count}{more} · enter opens the history")
        if self.rows:
            table.focus()
        self.searches += 1

    def on_data_table_row_selected(self, event: DataTable.RowSelected) -> None:
        if 0 <= event.cursor_row < len(self.rows):
            address = self.rows[event.cursor_row].key
            self.app.push_screen(HistoryScreen(self.client, address))


class HistoryScreen(Screen[None]):
    """Every version of one piece of context, newest first; the picked one in full."""

    BINDINGS: ClassVar[list[BindingType]] = [Binding("escape,q", "app.pop_screen", "Back")]
    DEFAULT_CSS = """
    #history-title { height: 1; color: $accent; text-style: bold; padding: 0 1; }
    #versions { height: 2fr; min-height: 3; }
    #version-scroll { height: 3fr; border-top: solid $accent; }
    #version { padding: 0 1; }
    """

    def __init__(self, client: NodeClient, address: str) -> None:
        super().__init__()
        self.client = client
        self.address = address
        self.versions: list[dict[str, Any]] = []  # newest first, as the table shows them
        self.problem: str | None = None

    def compose(self) -> ComposeResult:
        yield Static(escape(self.address), id="history-title")
        table: DataTable[Any] = DataTable(id="versions", cursor_type="row", zebra_stripes=True)
        table.add_columns(*VERSION_COLUMNS)
        yield table
        with VerticalScroll(id="version-scroll"):
            yield Static("loading ...", id="version")
        yield Footer()

    def on_mount(self) -> None:
        self.load()

    @work(exclusive=True, group="context-history")
    async def load(self) -> None:
        title = self.query_one("#history-title", Static)
        try:
            answer = await self.client.ucxl_history(self.address)
        except UsageError as error:
            self.problem = str(error)
            self.query_one("#version", Static).update(f"[red]{escape(self.problem)}[/red]")
            return
        versions = list(answer["versions"])
        more = int(answer.get("more", 0))
        self.versions = list(reversed(versions))
        table: DataTable[Any] = self.query_one("#versions", DataTable)
        fill(table, version_rows(versions))
        older = f", {more} older not shown" if more else ""
        title.update(f"{escape(str(answer['address']))} · {len(versions)} versions{older}")
        table.focus()
        self.show(0)

    def show(self, index: int) -> None:
        if 0 <= index < len(self.versions):
            self.query_one("#version", Static).update(version_text(self.versions[index]))

    def on_data_table_row_highlighted(self, event: DataTable.RowHighlighted) -> None:
        self.show(event.cursor_row)

    def shown(self) -> str:
        """What the version pane shows now (for tests and the terminal check)."""
        return str(self.query_one("#version", Static).render())
