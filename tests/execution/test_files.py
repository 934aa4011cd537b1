"""The file tools on a real folder: symbolic links and .git cannot take a model's
reads or writes outside the worktree."""

from __future__ import annotations

from pathlib import Path

from bzzz.execution.files import MAX_READ, WorktreeFiles


def test_read_write_list_inside_the_worktree(tmp_path: Path) -> None:
    tree = tmp_path / "tree"
    (tree / ".git").mkdir(parents=True)
    files = WorktreeFiles(tree)
    assert files.write("src/app.py", "print(1)\n").ok
    assert files.read("src/app.py").text == "print(1)\n"
    assert files.list(".").text == "src/"  # .git is not shown
    assert files.list("src").text == "app.py"
    assert not files.read("src").ok and not files.write("src", "x").ok
    assert files.read("nope").text == "nope: no such file"
    (tree / "big").write_bytes(b"x" * (MAX_READ + 10))
    assert files.read("big").text.endswith("the rest is not shown]")


def test_links_and_git_cannot_lead_outside(tmp_path: Path) -> None:
    tree = tmp_path / "tree"
    (tree / ".git").mkdir(parents=True)
    (tree / ".git" / "config").write_text("[core]\n")
    secret = tmp_path / "agent.key"
    secret.write_text("SECRET")
    (tree / "key").symlink_to(secret)
    (tree / "out").symlink_to(tmp_path)
    files = WorktreeFiles(tree)
    assert "outside the repository" in files.read("key").text
    assert "outside the repository" in files.write("out/planted", "x").text
    assert not (tmp_path / "planted").exists()
    assert "outside the repository" in files.list("out").text
    assert "git's own files" in files.read(".git/config").text
    assert "git's own files" in files.write(".git/hooks/post-commit", "x").text
    assert secret.read_text() == "SECRET"
