"""The local folder source: one Markdown file per task, with YAML front matter.

    ---
    title: Fix the login timeout
    priority: 1            # 0 is the most urgent
    type: bug
    needs: [python]        # capabilities, or a role's name
    depends_on: [other-task]
    repo: https://example.org/app.git
    ---
    The body, in Markdown.

The file's name without `.md` is the task's slug (`local:SLUG`). A file removed closes
its task; a file that cannot be read is one problem line naming it, and its task stays
as it was. Every poll lists the whole folder (it costs no more than a directory scan),
so the report is complete and needs no cursor.
"""

from __future__ import annotations

import asyncio
import os
import re
import tempfile
from pathlib import Path
from typing import Any

import yaml

from bzzz.domain.intake import ScopeChanges, SourcePoll
from bzzz.domain.task_entries import MAX_SCOPE
from bzzz.domain.tasks import (
    DEFAULT_PRIORITY,
    MAX_BODY,
    TaskSpec,
    local_id,
    spec_from_front_matter,
    task_id_problem,
)
from bzzz.errors import UsageError

MAX_FILES = 10_000
MAX_FILE_BYTES = MAX_BODY + 8 * 1024  # the body and its front matter
SUFFIX = ".md"
_FENCE = "---"


def parse_task_file(slug: str, text: str) -> TaskSpec | str:
    """A task file's text as a task, or what is wrong with it."""
    lines = text.splitlines(keepends=True)
    if not lines or lines[0].rstrip("\r\n") != _FENCE:
        return "no front matter: the file must start with a line '---'"
    end = next((i for i, line in enumerate(lines[1:], 1) if line.rstrip("\r\n") == _FENCE), None)
    if end is None:
        return "the front matter has no closing '---' line"
    try:
        data = yaml.safe_load("".join(lines[1:end]))
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        where = f" (line {mark.line + 2})" if mark is not None else ""
        return f"the front matter is not YAML{where}: {getattr(error, 'problem', None) or error}"
    if not isinstance(data, dict):
        return "the front matter must be a mapping of keys (title, priority, ...)"
    return spec_from_front_matter(slug, data, "".join(lines[end + 1 :]).strip("\n"))


class LocalFolderSource:
    def __init__(self, folder: Path, name: str | None = None) -> None:
        self.folder = folder
        # A scope is at most MAX_SCOPE characters; a deep folder is named by its tail.
        where = str(folder)
        if len(where) > MAX_SCOPE - len("local:"):
            where = "..." + where[-(MAX_SCOPE - len("local:...")) :]
        self.scope = f"local:{where}"
        self._name = name or self.scope
        # path -> (mtime_ns, size, what it read): a rescan parses only changed files
        self._cache: dict[Path, tuple[int, int, TaskSpec | str]] = {}

    @property
    def name(self) -> str:
        return self._name

    async def poll(self, cursor: object = None) -> SourcePoll:
        return await asyncio.to_thread(self.scan)

    def scan(self) -> SourcePoll:
        if not self.folder.is_dir():
            return SourcePoll(problems=(f"{self.folder}: no such folder (tasks.sources)",))
        specs: list[TaskSpec] = []
        keep: list[str] = []
        problems: list[str] = []
        paths = sorted(p for p in self.folder.iterdir() if p.suffix == SUFFIX)
        if len(paths) > MAX_FILES:
            problems.append(f"{self.folder}: {len(paths)} task files; only {MAX_FILES} are read")
        for path in paths[:MAX_FILES]:
            slug = path.stem
            spec = self._read(path, slug)
            if isinstance(spec, str):
                problems.append(f"{path}: {spec}")
                if task_id_problem(local_id(slug)) is None:
                    keep.append(local_id(slug))
            else:
                specs.append(spec)
        change = ScopeChanges(self.scope, tuple(specs), keep=tuple(keep))
        return SourcePoll(changes=(change,), problems=tuple(problems))

    def _read(self, path: Path, slug: str) -> TaskSpec | str:
        try:
            if not path.is_file():
                return "not a regular file"
            stat = path.stat()
            cached = self._cache.get(path)
            if cached is not None and cached[:2] == (stat.st_mtime_ns, stat.st_size):
                return cached[2]
            if stat.st_size > MAX_FILE_BYTES:
                return f"larger than {MAX_FILE_BYTES} bytes"
            text = path.read_text(encoding="utf-8")
        except UnicodeDecodeError:
            return "not UTF-8 text"
        except OSError as error:
            return f"cannot read it: {error.strerror or error}"
        found = parse_task_file(slug, text)
        if len(self._cache) > MAX_FILES:
            self._cache.clear()
        self._cache[path] = (stat.st_mtime_ns, stat.st_size, found)
        return found


def slug_of(title: str) -> str:
    """A file name for a title: lowercase words joined by '-'."""
    words = re.sub(r"[^a-z0-9]+", "-", title.lower()).strip("-")
    return words[:60].rstrip("-") or "task"


def write_task(
    folder: Path,
    title: str,
    body: str = "",
    *,
    priority: int = DEFAULT_PRIORITY,
    needs: list[str] | None = None,
    repo: str | None = None,
    type_: str | None = None,
    depends_on: list[str] | None = None,
) -> tuple[Path, TaskSpec]:
    """Write a new task file (never over an existing one); checked as a poll reads it."""
    front: dict[str, Any] = {"title": title, "priority": priority}
    if type_:
        front["type"] = type_
    if needs:
        front["needs"] = needs
    if depends_on:
        front["depends_on"] = depends_on
    if repo:
        front["repo"] = repo
    text = f"{_FENCE}\n{yaml.safe_dump(front, sort_keys=False, allow_unicode=True)}{_FENCE}\n"
    text += body.strip("\n") + "\n" if body else ""
    base = slug_of(title)
    checked = parse_task_file(base, text)  # before anything is made on disk
    if isinstance(checked, str):
        raise UsageError(checked)
    folder.mkdir(parents=True, exist_ok=True)
    for n in range(1, 1000):
        slug = base if n == 1 else f"{base}-{n}"
        spec = parse_task_file(slug, text)
        if isinstance(spec, str):
            raise UsageError(spec)
        path = folder / f"{slug}{SUFFIX}"
        fd, tmp = tempfile.mkstemp(dir=folder, prefix=".task-", suffix=".tmp")
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as handle:
                handle.write(text)
            os.link(tmp, path)  # fails if the name is taken: never overwrites
            return path, spec
        except FileExistsError:
            continue
        finally:
            os.unlink(tmp)
    raise UsageError(f"{folder}: too many tasks named {base!r}")
