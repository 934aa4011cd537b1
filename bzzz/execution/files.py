"""The file tools of the tool contract (`bzzz.domain.tools`) on a real worktree:
`read_file`, `write_file`, `list_files`. The contract already refused paths that leave
the worktree by their text; here the file system has the last word: a path whose real
location (symbolic links followed) is outside the worktree is refused too, and so is
anything under `.git`. Every answer is text the model can read; nothing here raises for
what a model asked."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from bzzz.domain.execution import FileAnswer

MAX_READ = 256 * 1024  # bytes of a file shown to the model
MAX_ENTRIES = 1000  # names a listing shows


class WorktreeFiles:
    def __init__(self, root: Path) -> None:
        self.root = root.resolve()

    def _inside(self, path: str) -> Path | FileAnswer:
        target = (self.root / path).resolve()
        if target != self.root and self.root not in target.parents:
            return FileAnswer(False, f"{path}: it leads outside the repository")
        relative = target.relative_to(self.root)
        if relative.parts[:1] == (".git",):
            return FileAnswer(False, f"{path}: git's own files are not for the tools")
        return target

    def read(self, path: str) -> FileAnswer:
        target = self._inside(path)
        if isinstance(target, FileAnswer):
            return target
        if not target.is_file():
            return FileAnswer(False, f"{path}: no such file")
        with open(target, "rb") as handle:
            data = handle.read(MAX_READ + 1)
        text = data[:MAX_READ].decode("utf-8", "replace")
        if len(data) > MAX_READ:
            text += f"\n[... the file is longer than {MAX_READ} bytes; the rest is not shown]"
        return FileAnswer(True, text)

    def write(self, path: str, content: str) -> FileAnswer:
        target = self._inside(path)
        if isinstance(target, FileAnswer):
            return target
        if target == self.root or target.is_dir():
            return FileAnswer(False, f"{path}: is a folder")
        target.parent.mkdir(parents=True, exist_ok=True)
        if not self._inside_after_mkdir(target):
            return FileAnswer(False, f"{path}: it leads outside the repository")
        data = content.encode("utf-8", "replace")
        # A new, unguessable name (O_EXCL: never through a link a command planted), then
        # a rename, which replaces a link at `target` rather than writing through it.
        fd, temporary = tempfile.mkstemp(dir=target.parent, prefix=".bzzz-")
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
        os.replace(temporary, target)
        return FileAnswer(True, f"wrote {len(data)} bytes to {path}")

    def _inside_after_mkdir(self, target: Path) -> bool:
        real = target.parent.resolve()
        return real == self.root or self.root in real.parents

    def list(self, path: str) -> FileAnswer:
        target = self._inside(path)
        if isinstance(target, FileAnswer):
            return target
        if not target.is_dir():
            return FileAnswer(False, f"{path}: no such folder")
        names = sorted(
            entry.name + ("/" if entry.is_dir() else "")
            for entry in os.scandir(target)
            if not (target == self.root and entry.name == ".git")
        )
        shown = names[:MAX_ENTRIES]
        more = f"\n[... {len(names) - MAX_ENTRIES} more]" if len(names) > MAX_ENTRIES else ""
        return FileAnswer(True, "\n".join(shown) + more if shown else "(empty)")
