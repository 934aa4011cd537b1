"""What the agent daemon does with its sandbox, run under a unit's restrictions by
tests/ops/test_bwrap_hardening.py: one command in `BwrapSandbox` with the worktree at
/task, and its result as one JSON line.

    python3 sandbox_probe.py REPO_ROOT WORKDIR
"""

from __future__ import annotations

import asyncio
import json
import sys
from pathlib import Path


async def probe(workdir: Path) -> dict[str, object]:
    from bzzz.domain.execution import RunLimits
    from bzzz.execution.sandbox import BwrapSandbox

    sandbox = BwrapSandbox()
    command = "echo inside; touch /task/written && ls /proc/1/ >/dev/null && echo done"
    result = await sandbox.run(command, workdir, RunLimits(wall_s=30.0), {})
    return {
        "exit_code": result.exit_code,
        "stdout": result.stdout.decode(errors="replace"),
        "stderr": result.stderr.decode(errors="replace"),
        "written": (workdir / "written").exists(),
        "limits_by": sandbox.limits_by,
    }


def main() -> None:
    sys.path.insert(0, sys.argv[1])
    try:
        answer = asyncio.run(probe(Path(sys.argv[2])))
    except Exception as exc:  # the test shows what went wrong
        answer = {"error": f"{type(exc).__name__}: {exc}"}
    print(json.dumps(answer), flush=True)


if __name__ == "__main__":
    main()
