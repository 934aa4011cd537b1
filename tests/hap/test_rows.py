"""The portal's rows and texts from the node's JSON: what a version's envelope and the
admin's curation say of it is shown, and text from the network stays text."""

from __future__ import annotations

from rich.text import Text

from bzzz.hap.rows import version_text

VERSION = {
    "address": "ucxl://ab12:architect@demo:api/~v2/decisions/auth.md",
    "version": 2,
    "versions": 3,
    "author": "ab12" * 16,
    "author_name": "m1",
    "kind": "decision.made",
    "ts": 0,
    "seq": 7,
    "hash": "cd" * 32,
    "text": "Tokens, [bold]not[/bold] sessions.",
}


def test_a_sealed_linked_superseded_version_says_so() -> None:
    shown = Text.from_markup(
        version_text(
            {
                **VERSION,
                "sealed_for": "architect[/magenta]",
                "links": [{"task": "local:api", "thread": "local:api"}, "junk"],
                "superseded_by": "ef" * 32,
            }
        )
    ).plain
    assert (
        "sealed for architect[/magenta] · from task local:api · superseded by efefefefefef" in shown
    )
    assert "Tokens, [bold]not[/bold] sessions." in shown


def test_a_plain_version_has_no_curation_line() -> None:
    shown = Text.from_markup(version_text(VERSION)).plain
    assert "sealed for" not in shown and "superseded" not in shown and "from task" not in shown
