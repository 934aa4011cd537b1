"""Git for the execution loop (issue 20): a local mirror per repository (never the
user's checkout), one worktree and branch per task, commits signed with the agent's
Ed25519 key through git's SSH signing (``gpg.format ssh``), verification against the
cluster's member keys, and the push.

Branches are named ``bzzz/<task>-<agent short id>``, so two holders of one task over
time never share a branch. Every git command runs with a clean environment: no
credential helper, no user config, no terminal prompt; a failure is a `WorkspaceError`
with git's own first line.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import re
import tempfile
from collections.abc import Mapping
from pathlib import Path

from bzzz.domain.execution import Remote, Worktree
from bzzz.errors import WorkspaceError
from bzzz.execution.files import WorktreeFiles

GIT_TIMEOUT_S = 300.0
_SAFE = re.compile(r"[^a-z0-9_-]+")


def branch_of(task: str, agent_id: bytes) -> str:
    """``bzzz/<task as a name>-<first 8 hex of the agent id>``."""
    name = _SAFE.sub("-", task.lower()).strip("-.")[:80] or "task"
    return f"bzzz/{name}-{agent_id.hex()[:8]}"


def _environment(home: Path) -> dict[str, str]:
    """What git runs with: nothing of the caller's (no tokens, no config, no agent)."""
    return {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": str(home),
        "GIT_CONFIG_NOSYSTEM": "1",
        "GIT_CONFIG_GLOBAL": os.devnull,
        "GIT_TERMINAL_PROMPT": "0",
        "GIT_ASKPASS": "/bin/false",
        "SSH_ASKPASS": "/bin/false",
        "LC_ALL": "C",
    }


def _subcommand(args: tuple[str, ...]) -> str:
    """git's subcommand among its arguments (past -c NAME=VALUE and --git-dir DIR)."""
    skip = False
    for arg in args:
        if skip:
            skip = False
        elif arg in ("-c", "--git-dir", "-C"):
            skip = True
        elif not arg.startswith("-"):
            return arg
    return "?"


class Workspace:
    """Mirrors and worktrees under one folder of the node (e.g. ``HOME/work``)."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.mirrors = root / "mirrors"
        # One fetch or clone per mirror at a time: two tasks of one repository share it.
        self._locks: dict[Path, asyncio.Lock] = {}
        self.trees = root / "trees"
        self._home = root / "git-home"  # git's HOME: empty, ours

    async def git(
        self,
        *args: str,
        cwd: Path | None = None,
        stdin: bytes | None = None,
        env: Mapping[str, str] | None = None,
    ) -> str:
        """Run git; its output, or `WorkspaceError` with its first line of complaint.
        `env`: more environment for this one command (a remote's credentials)."""
        self._home.mkdir(parents=True, exist_ok=True)
        process = await asyncio.create_subprocess_exec(
            "git",
            *args,
            cwd=cwd,
            env={**_environment(self._home), **(env or {})},
            stdin=asyncio.subprocess.PIPE if stdin is not None else asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        try:
            async with asyncio.timeout(GIT_TIMEOUT_S):
                out, err = await process.communicate(stdin)
        except TimeoutError:
            process.kill()
            await process.wait()
            raise WorkspaceError(
                f"git {_subcommand(args)}: no answer within {GIT_TIMEOUT_S:.0f} s"
            ) from None
        if process.returncode != 0:
            lines = (err or out).decode("utf-8", "replace").strip().splitlines()
            said = next((line for line in lines if line.strip()), f"exit {process.returncode}")
            raise WorkspaceError(f"git {_subcommand(args)}: {said[:300]}")
        return out.decode("utf-8", "replace")

    def mirror_of(self, repo: str) -> Path:
        name = hashlib.sha256(repo.encode()).hexdigest()[:16]
        return self.mirrors / f"{name}.git"

    async def mirror(self, repo: str | Remote) -> Path:
        """A bare copy of `repo` (a URL or a path) whose remote branches are fetched up
        to date under refs/remotes/origin (its local branches are the tasks')."""
        remote = repo if isinstance(repo, Remote) else Remote(repo)
        mirror = self.mirror_of(remote.url)
        async with self._locks.setdefault(mirror, asyncio.Lock()):
            return await self._update(mirror, remote)

    async def _update(self, mirror: Path, remote: Remote) -> Path:
        if not mirror.exists():
            self.mirrors.mkdir(parents=True, exist_ok=True)
            await self.git(
                "clone", "--bare", "--quiet", "--", remote.url, str(mirror), env=remote.env
            )
            await self.git(
                "--git-dir", str(mirror),
                "config", "remote.origin.fetch", "+refs/heads/*:refs/remotes/origin/*",
            )  # fmt: skip
        await self.git(
            "--git-dir", str(mirror), "fetch", "--quiet", "--prune", "origin", env=remote.env
        )
        return mirror

    async def worktree(self, repo: str | Remote, task: str, agent_id: bytes) -> Worktree:
        """A fresh worktree of `repo`'s default branch on the task's branch."""
        mirror = await self.mirror(repo)
        branch = branch_of(task, agent_id)
        path = self.trees / branch.removeprefix("bzzz/")
        if path.exists():
            await self.git("--git-dir", str(mirror), "worktree", "remove", "--force", str(path))
        self.trees.mkdir(parents=True, exist_ok=True)
        default = await self.git("--git-dir", str(mirror), "symbolic-ref", "--short", "HEAD")
        ref = f"refs/remotes/origin/{default.strip()}"
        base = (await self.git("--git-dir", str(mirror), "rev-parse", ref)).strip()
        await self.git(
            "--git-dir", str(mirror), "worktree", "add", "--force", "-B", branch, str(path), base
        )
        return Worktree(path, branch, mirror, base)

    async def commit(
        self, tree: Worktree, message: str, *, name: str, email: str, signing_key_pem: bytes
    ) -> str | None:
        """Commit everything changed, signed with the agent's key; the commit's hash, or
        None when nothing changed. The key is written to a private file outside the
        worktree for the signature and removed at once."""
        await self.git("add", "--all", cwd=tree.path)
        status = await self.git("status", "--porcelain", cwd=tree.path)
        if not status.strip():
            return None
        with tempfile.TemporaryDirectory(prefix="bzzz-sign-") as folder:
            key = Path(folder) / "agent.key"
            fd = os.open(key, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "wb") as handle:
                handle.write(signing_key_pem)
            await self.git(
                "-c", f"user.name={name}",
                "-c", f"user.email={email}",
                "-c", "gpg.format=ssh",
                "-c", f"user.signingkey={key}",
                "-c", "commit.gpgsign=true",
                "commit", "--quiet", "--file", "-",
                cwd=tree.path,
                stdin=message.encode("utf-8", "replace"),
            )  # fmt: skip
        return (await self.git("rev-parse", "HEAD", cwd=tree.path)).strip()

    async def verify(self, tree: Worktree, commit: str, allowed_signers: str) -> bool:
        """Whether `commit` is signed by one of `allowed_signers` (git's format:
        ``EMAIL ssh-ed25519 KEY`` per line)."""
        with tempfile.TemporaryDirectory(prefix="bzzz-verify-") as folder:
            signers = Path(folder) / "allowed_signers"
            signers.write_text(allowed_signers)
            try:
                await self.git(
                    "-c", f"gpg.ssh.allowedSignersFile={signers}",
                    "verify-commit", commit,
                    cwd=tree.path,
                )  # fmt: skip
            except WorkspaceError:
                return False
        return True

    async def push(self, tree: Worktree, remote: str | Remote) -> None:
        """Push the task's branch to `remote` (a URL or a path); never force."""
        where = remote if isinstance(remote, Remote) else Remote(remote)
        await self.git(
            "push", "--quiet", "--", where.url, f"{tree.branch}:{tree.branch}",
            cwd=tree.path, env=where.env,
        )  # fmt: skip

    def files(self, tree: Worktree) -> WorktreeFiles:
        """The file tools on `tree`."""
        return WorktreeFiles(tree.path)

    async def message(self, tree: Worktree, commit: str) -> str:
        """The full message of `commit`."""
        return await self.git("log", "-1", "--format=%B", commit, cwd=tree.path)
