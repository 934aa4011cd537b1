"""The tool contract (`bzzz.domain.tools`): every call a model makes is checked before
anything runs, and a hostile call is an error the model can read, never a crash."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bzzz.domain.execution import ToolCall
from bzzz.domain.payload import encode_payload
from bzzz.domain.tools import (
    MAX_RECORDED,
    TOOL_NAMES,
    Action,
    ToolError,
    check_call,
    result_body,
    step_body,
    worktree_path,
)


def call(name: str, arguments: Any) -> Action | ToolError:
    return check_call(ToolCall(name, arguments))


def test_exactly_the_six_tools_with_strict_schemas() -> None:
    assert TOOL_NAMES == ("read_file", "write_file", "list_files", "run", "ask", "finish")
    assert call("read_file", {"path": "src/./app.py"}) == Action(
        "read_file", {"path": "src/app.py"}
    )
    assert call("write_file", {"path": "a/b.txt", "content": ""}) == Action(
        "write_file", {"path": "a/b.txt", "content": ""}
    )
    assert call("list_files", {"path": "."}) == Action("list_files", {"path": "."})
    assert call("run", {"command": "pytest -q"}) == Action("run", {"command": "pytest -q"})


@pytest.mark.parametrize(
    ("name", "arguments", "says"),
    [
        ("rm_rf", {}, "there is no tool 'rm_rf'"),
        ("run", '{"command": ', "must be a JSON object"),
        ("run", {}, "command must be text"),
        ("run", {"command": "ls", "sudo": True}, "unknown argument 'sudo'"),
        ("run", {"command": 7}, "command must be text"),
        ("run", {"command": "   "}, "command is empty"),
        ("run", {"command": "x" * 9000}, "longer than 8192"),
        ("read_file", {"path": "/etc/passwd"}, "relative to the repository"),
        ("read_file", {"path": "~/.ssh/id_ed25519"}, "relative to the repository"),
        ("read_file", {"path": "../../home/bzzz/agent.key"}, "outside the repository"),
        ("read_file", {"path": "src/../../x"}, "outside the repository"),
        ("read_file", {"path": "a\x00b"}, "NUL"),
        ("write_file", {"path": "a", "content": "é" * 300_000}, "content is longer"),
        ("finish", {"summary": None}, "summary must be text"),
    ],
)
def test_a_hostile_call_is_an_error_the_model_can_read(
    name: str, arguments: Any, says: str
) -> None:
    found = call(name, arguments)
    assert isinstance(found, ToolError) and says in found.message, found


@given(st.text(max_size=300))
def test_no_path_leaves_the_worktree(path: str) -> None:
    found = worktree_path(path)
    if isinstance(found, str):
        assert not found.startswith(("/", "../")) and found != ".." and "\x00" not in found


def test_steps_and_results_are_recorded_cut_and_digested() -> None:
    big = "x" * 100_000
    body = step_body("local:a", (2, 7), 3, ToolCall("write_file", {"path": "f", "content": big}))
    assert body["arguments"]["content"]["chars"] == 100_000 and body["term"] == 2
    encode_payload(body)  # fits an entry
    garbage = step_body("local:a", (2, 7), 4, ToolCall("run", "not json" * 10_000, id="c1"))
    assert len(garbage["arguments"]) < MAX_RECORDED + 100 and garbage["call_id"] == "c1"
    result = result_body("local:a", (2, 7), 3, False, big, exit_code=1, seconds=0.1234)
    assert result["output"].endswith("more characters not shown]") and result["seconds"] == 0.123
    assert len(result["output_sha256"]) == 64
    encode_payload(result)


@pytest.mark.parametrize("path", ["\\", "\\etc\\passwd", "..\\..\\x", "C:\\x", "//x"])
def test_backslashes_and_drives_do_not_escape_either(path: str) -> None:
    assert isinstance(worktree_path(path), ToolError)
