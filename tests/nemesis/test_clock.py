"""The test-only clock offset (bzzz/clock.py): fixed from the environment, and live from
a file the nemesis rewrites while the process runs."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

READ = (
    "import sys, time\n"
    "from bzzz.clock import now_ms\n"
    "for line in sys.stdin:\n"
    "    time.sleep(0.15)\n"
    "    print(now_ms() - time.time_ns() // 1_000_000, flush=True)\n"
)


def _env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("BZZZ_TEST_CLOCK")}
    return {**env, **extra}


def test_the_offset_file_moves_the_clock_while_the_process_runs(tmp_path: Path) -> None:
    offset = tmp_path / "clock"
    offset.write_text("0\n")
    env = _env(BZZZ_TEST_CLOCK_FILE=str(offset), BZZZ_TEST_CLOCK_OFFSET_MS="1000")
    proc = subprocess.Popen(
        [sys.executable, "-c", READ],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        env=env,
    )
    assert proc.stdin is not None and proc.stdout is not None

    def shift() -> int:
        assert proc.stdin is not None and proc.stdout is not None
        proc.stdin.write("\n")
        proc.stdin.flush()
        return int(proc.stdout.readline())

    try:
        assert abs(shift() - 1000) < 50
        offset.write_text("-90000\n")
        time.sleep(0.2)
        assert abs(shift() - (1000 - 90000)) < 50
        offset.unlink()  # gone: counts as 0
        assert abs(shift() - 1000) < 50
    finally:
        proc.stdin.close()
        proc.wait(10)


def test_without_the_variables_the_clock_is_the_wall_clock() -> None:
    out = subprocess.run(
        [sys.executable, "-c", READ], input="\n", capture_output=True, text=True, env=_env()
    )
    assert abs(int(out.stdout)) < 50


def test_a_bad_offset_is_one_line_naming_the_variable() -> None:
    out = subprocess.run(
        [sys.executable, "-c", "import bzzz.clock"],
        capture_output=True,
        text=True,
        env=_env(BZZZ_TEST_CLOCK_OFFSET_MS="soon"),
    )
    assert out.returncode == 1
    assert (
        out.stderr.strip()
        == "BZZZ_TEST_CLOCK_OFFSET_MS must be an integer (milliseconds), not 'soon'"
    )
