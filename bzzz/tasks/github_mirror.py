"""Claims shown on GitHub issues: the ``bzzz-in-progress`` label and one comment per
claim and per completion. Every call is idempotent: the issue's comments are read and a
comment is posted only when none starts with its marker
(``<!-- bzzz:claimed:CLAIMHEX -->``), so a retry, a crash between two calls or a new
admin repeating them never posts twice. Text that comes from agents (names, results,
links) is cut short and cannot hold a marker of its own."""

from __future__ import annotations

import asyncio
import re
from collections.abc import Callable, Iterable
from typing import TypeVar

import requests
from github import GithubException
from github.Issue import Issue

from bzzz.domain.intake import Tenure
from bzzz.domain.tasks import task_id_problem
from bzzz.errors import SourceError
from bzzz.tasks.github import GitHubClient

IN_PROGRESS = "bzzz-in-progress"
MAX_NAME = 64
MAX_RESULT = 4000
MAX_LINK = 500
MIRROR_PAUSE_S = 60.0  # after an unreadable answer
_GITHUB_ID = re.compile(r"github:(?P<repo>[^#]+)#(?P<number>[0-9]+)")
_HEX = re.compile(r"[0-9a-f]{1,128}")
T = TypeVar("T")


def marker(event: str, claim: str) -> str:
    return f"<!-- bzzz:{event}:{_hex(claim)} -->"


def neutral(text: str, limit: int) -> str:
    """Agent text safe to put into a comment: at most `limit` characters, and no HTML
    comment can open in it (so it cannot forge a marker nor hide anything)."""
    cut = text if len(text) <= limit else text[: limit - 1] + "…"
    return cut.replace("<!--", "&lt;!--").replace("-->", "--&gt;")


def _inline(text: str, limit: int) -> str:
    """One line for a code span: no newline, no backtick."""
    flat = " ".join(text.split()).replace("`", "'")
    return neutral(flat, limit)


def _hex(text: str) -> str:
    return text if _HEX.fullmatch(text) else _inline(text, 128)


def claimed_comment(tenure: Tenure) -> str:
    who = f"**{_inline(tenure.agent_name, MAX_NAME)}** " if tenure.agent_name else ""
    term, seq = tenure.token
    return (
        f"{marker('claimed', tenure.claim)}\n"
        f"Claimed through BZZZ by agent {who}(`{_hex(tenure.agent_id)}`).\n\n"
        f"- claim: `{_hex(tenure.claim)}`\n"
        f"- token: `{int(term)}.{int(seq)}`\n"
    )


def completed_comment(tenure: Tenure, result: str, link: str | None) -> str:
    who = f"**{_inline(tenure.agent_name, MAX_NAME)}** " if tenure.agent_name else ""
    lines = [
        marker("completed", tenure.claim),
        f"Completed through BZZZ by agent {who}(`{_hex(tenure.agent_id)}`), "
        f"claim `{_hex(tenure.claim)}`.",
    ]
    if link:
        shown = _inline(link, MAX_LINK)
        lines.append(f"\nLink: {shown}" if re.match(r"https?://", shown) else f"\nLink: `{shown}`")
    if result.strip():
        lines.append(
            "\nResult:\n\n"
            + "\n".join("> " + line for line in neutral(result.strip(), MAX_RESULT).splitlines())
        )
    return "\n".join(lines) + "\n"


class GitHubMirror:
    """The `TaskMirror` of the issues of `repos` (``OWNER/REPO``)."""

    def __init__(self, client: GitHubClient, repos: Iterable[str], enabled: bool) -> None:
        self.client = client
        self.repos = {r.lower(): r for r in repos}
        self.enabled = enabled and client.token is not None  # writes need a token

    def issue_of(self, task: str) -> tuple[str, int] | None:
        """The configured repository and the issue number of `task`, if it is ours."""
        found = _GITHUB_ID.fullmatch(task)
        if found is None or task_id_problem(task) is not None:
            return None
        repo = self.repos.get(found["repo"].lower())
        return (repo, int(found["number"])) if repo is not None else None

    def mirrors(self, task: str) -> bool:
        return self.enabled and self.issue_of(task) is not None

    async def claimed(self, tenure: Tenure) -> None:
        issue = self._issue(tenure.task)
        body = claimed_comment(tenure)
        await self._run(tenure.task, lambda: self._claimed(issue, body, tenure.claim))

    async def released(self, tenure: Tenure) -> None:
        issue = self._issue(tenure.task)
        await self._run(tenure.task, lambda: self._unlabel(issue))

    async def completed(self, tenure: Tenure, result: str, link: str | None) -> None:
        issue = self._issue(tenure.task)
        body = completed_comment(tenure, result, link)
        await self._run(tenure.task, lambda: self._completed(issue, body, tenure.claim))

    def _issue(self, task: str) -> Issue:
        found = self.issue_of(task)
        if found is None or not self.enabled:
            raise SourceError(f"github: {task[:100]!r} is not an issue this mirror shows")
        repo, number = found
        return self.client.gh.get_repo(repo).get_issue(number)  # lazy: no request

    async def _run(self, task: str, work: Callable[[], T]) -> T:
        try:
            return await asyncio.to_thread(work)
        except GithubException as exc:
            raise self.client.error_of(exc, task) from None
        except (requests.RequestException, OSError, RuntimeError, AssertionError) as exc:
            # no connection, a timeout; PyGithub's refusal of a redirect to another host
            raise SourceError(
                f"github: {task}: no answer from {self.client.api_url} ({type(exc).__name__})",
                retry_after_s=2.0,
            ) from None
        except Exception as exc:  # an answer of the wrong shape (PyGithub's own errors)
            raise SourceError(
                f"github: {task}: an answer BZZZ cannot read ({type(exc).__name__})",
                retry_after_s=MIRROR_PAUSE_S,
            ) from None

    @staticmethod
    def _has(issue: Issue, mark: str) -> bool:
        return any((c.body or "").startswith(mark) for c in issue.get_comments())

    def _claimed(self, issue: Issue, body: str, claim: str) -> None:
        # Not `issue.add_to_labels`: it sends a bare list, which GitHub accepts but its
        # OpenAPI description does not; the described (and recommended) form is this.
        self.client.gh.requester.requestJsonAndCheck(
            "POST", f"{issue.url}/labels", input={"labels": [IN_PROGRESS]}
        )
        if not self._has(issue, marker("claimed", claim)):
            issue.create_comment(body)

    def _completed(self, issue: Issue, body: str, claim: str) -> None:
        self._unlabel(issue)
        if not self._has(issue, marker("completed", claim)):
            issue.create_comment(body)

    @staticmethod
    def _unlabel(issue: Issue) -> None:
        try:
            issue.remove_from_labels(IN_PROGRESS)
        except GithubException as exc:
            if exc.status != 404:  # the label was not there: nothing to remove
                raise
