"""The real `bzzz` command as a subprocess, for tests of what a person sees: argv bytes,
stdin, the environment, the umask and the exit code are the process's own."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path


@dataclass
class Run:
    code: int
    out: str
    err: str

    def lines(self) -> list[dict]:  # type: ignore[type-arg]
        return [json.loads(line) for line in self.out.splitlines() if line.strip()]


def bzzz(
    *args: str | bytes,
    stdin: bytes | None = None,
    env: dict[str, str] | None = None,
    umask: int | None = None,
    timeout: float = 60,
) -> Run:
    """Run `python -m bzzz ARGS` (bytes arguments pass through as they are)."""
    environment = {k: v for k, v in os.environ.items() if not k.startswith("BZZZ_")}
    environment.update(env or {})
    result = subprocess.run(
        [sys.executable, "-m", "bzzz", *args],
        input=stdin if stdin is not None else b"",  # never a terminal: nobody answers
        capture_output=True,
        env=environment,
        timeout=timeout,
        preexec_fn=None if umask is None else (lambda: os.umask(umask)),
    )
    return Run(
        result.returncode,
        result.stdout.decode("utf-8", "replace"),
        result.stderr.decode("utf-8", "replace"),
    )


def assert_one_line_error(result: Run, *words: str) -> None:
    """Exit 2 and exactly one `error: ...` line on stderr that holds every word."""
    assert result.code == 2, result
    assert "Traceback" not in result.err, result.err
    lines = result.err.strip().splitlines()
    assert len(lines) == 1, result.err
    assert lines[0].startswith("error: "), result.err
    for word in words:
        assert word in lines[0], (word, lines[0])


def make_home(where: Path, *extra: str) -> Path:
    result = bzzz("init", "--home", str(where), "--name", "alpha", *extra)
    assert result.code == 0, result
    return where
