"""`bzzz repo protect PATH`: a ``pre-receive`` hook for a local or self-hosted repository
the agents push to. It refuses a push to a ``bzzz/*`` branch unless its tip commit
carries the ``Bzzz-Task``, ``Bzzz-Token`` and ``Bzzz-Agent`` trailers of a live hold (the
agent running beside the repository says, from the cluster's logs) and is signed by that
agent's key. So a deposed holder, a holder whose lease lapsed while it worked, or anyone
writing another agent's trailers, cannot land work on the task's branch.

`bzzz repo check-push` is what the hook runs (git gives it the pushed refs on stdin)."""

from __future__ import annotations

import os
import shlex
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Annotated

import typer

from bzzz.agent.control import ask
from bzzz.cli.options import HomeOption
from bzzz.cli.render import err, out
from bzzz.domain.work import TRAILER_AGENT, TRAILER_TASK, TRAILER_TOKEN, parse_token, trailers
from bzzz.errors import UsageError
from bzzz.home.location import resolve_home
from bzzz.home.node import open_config

app = typer.Typer(help="Repositories the agents push to.", no_args_is_help=True)
MARKER = "# bzzz: refuses stale pushes to bzzz/* branches (bzzz repo protect)"
ZERO = "0" * 40
ASK_TIMEOUT_S = 20.0


def hooks_folder(repo: Path) -> Path:
    """Where `repo`'s hooks live: a bare repository's own, or its .git's."""
    if (repo / "HEAD").is_file() and (repo / "objects").is_dir():
        return repo / "hooks"
    if (repo / ".git" / "HEAD").is_file():
        return repo / ".git" / "hooks"
    raise UsageError(f"{repo} is not a git repository (no HEAD, nor .git/HEAD)")


def hook_text(python: str, home: Path) -> str:
    return (
        "#!/bin/sh\n"
        f"{MARKER}\n"
        f"exec {shlex.quote(python)} -m bzzz repo check-push --home {shlex.quote(str(home))}\n"
    )


@app.command("protect")
def protect(
    path: Annotated[Path, typer.Argument(help="The repository (bare, or a working copy).")],
    force: Annotated[
        bool, typer.Option(help="Replace a pre-receive hook that is not BZZZ's.")
    ] = False,
    home: HomeOption = None,
) -> None:
    """Refuse pushes to bzzz/* branches whose token is stale (a pre-receive hook that
    asks the agent of HOME, which must run beside the repository)."""
    where = resolve_home(home)
    open_config(where)  # a node home, or a clear error
    hooks = hooks_folder(path.resolve())
    hook = hooks / "pre-receive"
    if hook.exists() and MARKER not in hook.read_text(errors="replace") and not force:
        raise UsageError(f"{hook} exists and is not BZZZ's: --force replaces it")
    hooks.mkdir(exist_ok=True)
    temporary = hook.with_suffix(".bzzz-new")
    temporary.write_text(hook_text(sys.executable, where))
    temporary.chmod(0o755)
    os.replace(temporary, hook)
    out.print(f"protected {path}: pushes to bzzz/* are checked against the agent at {where}")


def _git(*args: str) -> subprocess.CompletedProcess[str]:
    # The hook's environment is git's (GIT_DIR, the quarantine of the pushed objects).
    return subprocess.run(["git", *args], capture_output=True, text=True, check=False)


def _verify(commit: str, agent: str, ssh_key: str) -> str | None:
    with tempfile.TemporaryDirectory(prefix="bzzz-hook-") as folder:
        signers = Path(folder) / "allowed_signers"
        signers.write_text(f"{agent[:16]}@agents.bzzz {ssh_key}\n")
        done = _git("-c", f"gpg.ssh.allowedSignersFile={signers}", "verify-commit", commit)
    if done.returncode != 0:
        return f"commit {commit[:12]} is not signed by agent {agent[:12]}"
    return None


def _problem(home: Path, new: str) -> str | None:
    shown = _git("log", "-1", "--format=%B", new)
    if shown.returncode != 0:
        return f"cannot read commit {new[:12]}"
    found = trailers(shown.stdout)
    task, agent = found.get(TRAILER_TASK), found.get(TRAILER_AGENT)
    token = parse_token(found.get(TRAILER_TOKEN, ""))
    if task is None or token is None or agent is None:
        return (
            f"the tip commit carries no {TRAILER_TASK}, {TRAILER_TOKEN} and "
            f"{TRAILER_AGENT} trailers: bzzz/* branches are the agents'"
        )
    request = {"op": "push_check", "task": task, "token": list(token), "agent": agent}
    answer = ask(home, request, timeout=ASK_TIMEOUT_S)
    if answer is None:
        return f"no agent runs at {home} to check the token: start it (bzzz agent)"
    if not answer.get("ok"):
        return str(answer.get("error", "the agent refused the question"))
    if not answer.get("allowed"):
        return str(answer.get("why"))
    return _verify(new, agent, str(answer.get("ssh_key")))


@app.command("check-push", hidden=True)
def check_push(home: HomeOption = None) -> None:
    """The pre-receive hook: each pushed ref on stdin as git gives it."""
    where = resolve_home(home)
    refused = 0
    for line in sys.stdin:
        parts = line.split()
        if len(parts) != 3:
            continue
        _, new, ref = parts
        if not ref.startswith("refs/heads/bzzz/") or new == ZERO:
            continue  # other branches are not ours to judge; deleting is the owner's call
        problem = _problem(where, new)
        if problem is not None:
            refused += 1
            err.print(f"bzzz: refused {ref}: {problem}", markup=False, highlight=False)
    if refused:
        raise typer.Exit(1)
