"""Git for the execution loop with real git: a mirror, a worktree per task, a commit
signed with the agent's key and verified against member keys, a push."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from bzzz.errors import WorkspaceError
from bzzz.execution.git import Workspace, branch_of
from bzzz.home.keys import create_identity


def run(*args: str, cwd: Path) -> str:
    env = {"PATH": "/usr/bin:/bin", "HOME": str(cwd), "GIT_CONFIG_NOSYSTEM": "1"}
    return subprocess.run(args, cwd=cwd, env=env, check=True, capture_output=True, text=True).stdout


@pytest.fixture
def origin(tmp_path: Path) -> Path:
    repo = tmp_path / "origin"
    repo.mkdir()
    run("git", "init", "-q", "-b", "main", cwd=repo)
    (repo / "app.py").write_text("print('hello')\n")
    run("git", "add", ".", cwd=repo)
    run("git", "-c", "user.name=t", "-c", "user.email=t@x", "commit", "-qm", "first", cwd=repo)
    run("git", "config", "receive.denyCurrentBranch", "refuse", cwd=repo)
    return repo


def test_branch_names_are_safe_and_per_agent() -> None:
    agent = bytes.fromhex("ab" * 32)
    assert branch_of("github:octo/app#12", agent) == "bzzz/github-octo-app-12-abababab"
    assert branch_of("local:../../etc", agent) == "bzzz/local-etc-abababab"


async def test_a_signed_commit_on_the_tasks_branch_is_pushed(tmp_path: Path, origin: Path) -> None:
    home = tmp_path / "node"
    home.mkdir()
    identity = create_identity(home)
    workspace = Workspace(home / "work")
    tree = await workspace.worktree(str(origin), "local:fix-login", identity.public_key)
    assert tree.path.is_dir() and (tree.path / "app.py").read_text() == "print('hello')\n"
    assert tree.branch == branch_of("local:fix-login", identity.public_key)
    assert (
        await workspace.commit(
            tree, "nothing", name="n", email="n@x", signing_key_pem=identity.ssh_private_pem()
        )
        is None
    )  # nothing changed: no commit
    (tree.path / "app.py").write_text("print('hello, world')\n")
    commit = await workspace.commit(
        tree,
        "Fix the greeting\n\nTask: local:fix-login",
        name="agent n1",
        email=f"{identity.public_key.hex()[:16]}@bzzz",
        signing_key_pem=identity.ssh_private_pem(),
    )
    assert commit is not None
    allowed = f"{identity.public_key.hex()[:16]}@bzzz {identity.ssh_public_key()}\n"
    assert await workspace.verify(tree, commit, allowed)
    stranger = create_identity(
        tmp_path / "other" if (tmp_path / "other").mkdir() is None else tmp_path
    )
    assert not await workspace.verify(
        tree, commit, f"x@bzzz {stranger.ssh_public_key()}\n"
    )  # another key did not sign it
    await workspace.push(tree, str(origin))
    assert run("git", "rev-parse", tree.branch, cwd=origin).strip() == commit
    assert not list(tmp_path.glob("**/bzzz-sign-*"))  # the key file is gone
    # a second holder later starts fresh on its own branch from the same mirror
    again = await workspace.worktree(str(origin), "local:fix-login", bytes(32))
    assert again.branch != tree.branch and (again.path / "app.py").read_text() == "print('hello')\n"


async def test_git_failures_are_one_line(tmp_path: Path) -> None:
    workspace = Workspace(tmp_path / "work")
    with pytest.raises(WorkspaceError, match=r"^git clone: "):
        await workspace.mirror(str(tmp_path / "no-such-repo"))
