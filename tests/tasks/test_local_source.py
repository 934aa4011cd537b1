"""The local folder source: real files in a temporary folder."""

from __future__ import annotations

from pathlib import Path

import pytest

from bzzz.domain.tasks import TaskSpec
from bzzz.errors import UsageError
from bzzz.tasks.local import MAX_FILE_BYTES, LocalFolderSource, write_task


async def test_task_files_become_a_complete_report(tmp_path: Path) -> None:
    (tmp_path / "fix-login.md").write_text(
        "---\ntitle: Fix the login\npriority: 1\ntype: bug\nneeds: [python]\n"
        "depends_on: [db-schema, 'github:octo/app#3']\nrepo: /srv/app\n---\n\nDetails.\n"
    )
    (tmp_path / "notes.txt").write_text("not a task")
    source = LocalFolderSource(tmp_path)
    poll = await source.poll(None)
    assert poll.problems == () and poll.cursor is None and poll.requests == 0
    (change,) = poll.changes
    assert change.scope == f"local:{tmp_path}" and change.complete and change.keep == ()
    assert change.specs == (
        TaskSpec(
            id="local:fix-login",
            title="Fix the login",
            body="Details.",
            priority=1,
            type="bug",
            needs=("python",),
            repo="/srv/app",
            depends_on=("local:db-schema", "github:octo/app#3"),
        ),
    )
    assert source.name == change.scope


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("no fence\n", "no front matter"),
        ("---\ntitle: x\n", "no closing '---'"),
        ("---\ntitle: [x\n---\n", "not YAML (line 3)"),
        ("---\n- a list\n---\n", "must be a mapping"),
        ("---\ntitle: x\nowner: me\n---\n", "unknown key 'owner'"),
        ("---\ntitle: x\npriority: urgent\n---\n", "priority: a whole number"),
        ("---\npriority: 1\n---\n", "title: 1 to"),
        ("---\ntitle: x\nneeds: [Python Stuff]\n---\n", "needs: a list"),
        ("---\ntitle: x\ndepends_on: [{a: 1}]\n---\n", "depends_on: a list of task ids"),
    ],
)
async def test_a_bad_file_is_one_line_naming_it_and_its_task_is_kept(
    tmp_path: Path, text: str, problem: str
) -> None:
    (tmp_path / "good.md").write_text("---\ntitle: Good\n---\n")
    (tmp_path / "bad.md").write_text(text)
    poll = await LocalFolderSource(tmp_path).poll(None)
    (line,) = poll.problems
    assert line.startswith(f"{tmp_path / 'bad.md'}: ") and problem in line, line
    (change,) = poll.changes
    assert [s.id for s in change.specs] == ["local:good"]
    assert change.keep == ("local:bad",)  # an edit in progress does not close the task


async def test_files_that_cannot_be_read_are_problems_too(tmp_path: Path) -> None:
    (tmp_path / "binary.md").write_bytes(b"---\ntitle: \xff\xfe\n---\n")
    (tmp_path / "huge.md").write_text("---\ntitle: x\n---\n" + "x" * MAX_FILE_BYTES)
    (tmp_path / "Bad Name.md").write_text("---\ntitle: x\n---\n")
    (tmp_path / "folder.md").mkdir()
    poll = await LocalFolderSource(tmp_path).poll(None)
    assert sorted(p.split(": ", 1)[1] for p in poll.problems) == sorted(
        [
            "file name 'Bad Name': use lowercase letters, digits, '.', '_' and '-'",
            "not a regular file",
            "not UTF-8 text",
            f"larger than {MAX_FILE_BYTES} bytes",
        ]
    )
    assert poll.changes[0].keep == ("local:binary", "local:folder", "local:huge")


async def test_a_missing_folder_reports_no_change_at_all(tmp_path: Path) -> None:
    poll = await LocalFolderSource(tmp_path / "nope").poll(None)
    assert poll.changes == ()  # not "every task is gone"
    assert poll.problems == (f"{tmp_path / 'nope'}: no such folder (tasks.sources)",)


async def test_write_task_never_overwrites_and_reads_back_as_written(tmp_path: Path) -> None:
    folder = tmp_path / "tasks"
    one, spec = write_task(folder, "Fix: the login!", "Body.", priority=0, needs=["python"])
    two, again = write_task(folder, "Fix: the login!")
    assert (one.name, two.name) == ("fix-the-login.md", "fix-the-login-2.md")
    assert (spec.id, again.id) == ("local:fix-the-login", "local:fix-the-login-2")
    poll = await LocalFolderSource(folder).poll(None)
    assert poll.problems == () and spec in poll.changes[0].specs
    with pytest.raises(UsageError, match="priority"):
        write_task(folder, "x", priority=12)
    assert sorted(p.name for p in folder.iterdir()) == ["fix-the-login-2.md", "fix-the-login.md"]
