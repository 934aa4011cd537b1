"""Where a node home is (--home, else BZZZ_HOME, else the XDG data dir), and keeping it private.

A node home holds secrets (keys) and everything the node knows (config.yaml, the store), so
the folder is 0700 and its files 0600 whatever the umask or the folder's previous mode.
"""

from __future__ import annotations

import contextlib
import os
import shlex
import stat
from collections.abc import Iterable, Iterator
from pathlib import Path

from bzzz.errors import ConfigError, one_line

HOME_MODE = 0o700
FILE_MODE = 0o600
# SQLite keeps these beside a database file; it creates them with the database's mode.
SQLITE_SIDE_FILES = ("-wal", "-shm", "-journal")


def default_home() -> Path:
    explicit = os.environ.get("BZZZ_HOME")
    if explicit:
        return Path(explicit).expanduser()
    data = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(data) / "bzzz"


def resolve_home(home: Path | None) -> Path:
    return (home.expanduser() if home is not None else default_home()).absolute()


def check_home_path(path: Path) -> None:
    """Refuse, with one line saying what to do, a home path that cannot become a folder:
    a file (or a device like /dev/null), a path below a file, or on a read-only file
    system. Changes nothing."""
    try:
        _check_home_path(path)
    except OSError as exc:  # e.g. a name too long for the file system
        raise ConfigError(f"cannot use {path} as a node home: {one_line(exc)}") from None


def _check_home_path(path: Path) -> None:
    if path.exists() or path.is_symlink():
        if not path.is_dir():
            raise ConfigError(
                f"{path} exists and is not a folder: give --home a folder (new or existing)"
            )
        if not os.access(path, os.W_OK | os.X_OK):
            raise ConfigError(f"{path} is not writable: give --home a folder you can write")
        return
    parent = path.parent
    while not (parent.exists() or parent.is_symlink()):
        parent = parent.parent
    if not parent.is_dir():
        raise ConfigError(
            f"{path} is below {parent}, which is not a folder: give --home a path of folders"
        )
    if not os.access(parent, os.W_OK | os.X_OK):
        raise ConfigError(
            f"cannot create {path}: {parent} is not writable (read-only?): "
            "give --home a folder you can write"
        )


def make_private_home(path: Path) -> None:
    """Create the home folder (and its parents) if needed and make it 0700, also when it
    already existed with a looser mode. ConfigError says what is wrong."""
    check_home_path(path)
    try:
        path.mkdir(mode=HOME_MODE, parents=True, exist_ok=True)
        os.chmod(path, HOME_MODE)
    except OSError as exc:
        raise ConfigError(f"cannot make the node home {path}: {one_line(exc)}") from None


def make_private_files(paths: Iterable[Path]) -> None:
    """Make each of these files that exists 0600 (a missing one is skipped)."""
    for path in paths:
        try:
            if path.is_file() and not path.is_symlink():
                os.chmod(path, FILE_MODE)
        except OSError as exc:
            raise ConfigError(f"cannot make {path} private: {one_line(exc)}") from None


def sqlite_files(database: Path) -> list[Path]:
    """An SQLite database file and the files SQLite keeps beside it."""
    return [database, *(database.with_name(database.name + s) for s in SQLITE_SIDE_FILES)]


@contextlib.contextmanager
def private_umask() -> Iterator[None]:
    """Create files 0600 and folders 0700 inside the block (SQLite, for one, creates its
    files with the umask). The umask is the process's: use it where no other thread
    creates files."""
    old = os.umask(0o077)
    try:
        yield
    finally:
        os.umask(old)


def _problem(path: Path, mode: int, wanted: int) -> str:
    what = "folder" if stat.S_ISDIR(mode) else "file"
    return (
        f"{path}: {what} mode {stat.S_IMODE(mode):04o} lets other users at it, not only its "
        f"owner (fix: chmod {wanted:o} {shlex.quote(str(path))})"
    )


def private_file_problems(home: Path, also: Iterable[Path] = ()) -> list[str]:
    """Every entry of the home folder (and the home itself, and `also`: e.g. a store file
    kept elsewhere) that group or other users may read, write or enter: one line each.
    Symlinks and missing paths are skipped."""
    problems: list[str] = []
    try:
        home_mode = home.lstat().st_mode
    except OSError:
        return problems
    if stat.S_ISDIR(home_mode) and home_mode & 0o077:
        problems.append(_problem(home, home_mode, HOME_MODE))
    try:
        inside = sorted(home.iterdir())
    except OSError:
        inside = []
    seen = set(inside)
    for path in [*inside, *(p for p in also if p not in seen)]:
        try:
            mode = path.lstat().st_mode
        except OSError:
            continue
        if stat.S_ISLNK(mode) or not mode & 0o077:
            continue
        problems.append(_problem(path, mode, HOME_MODE if stat.S_ISDIR(mode) else FILE_MODE))
    return problems
