"""python -m nemesis --seed S --minutes M --nodes N [--print] [--replay FILE] [--kinds K,..]

Exit 0: every property held; 1: one failed (the report says which, with the seed that
reproduces it); 2: the run could not be made (bad arguments, not root, ...)."""

from __future__ import annotations

import argparse
import os
import random
import shutil
import signal
import sys
import tempfile
import time
from pathlib import Path
from types import FrameType

from nemesis.schedule import KINDS, Schedule, make_schedule


def _interrupt(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m nemesis", description=__doc__)
    parser.add_argument("--seed", type=int, help="the schedule's seed (default: a random one)")
    parser.add_argument("--minutes", type=float, default=2.0, help="faults for this long")
    parser.add_argument("--nodes", type=int, default=3, help="daemons (3 to 9)")
    parser.add_argument("--kinds", help=f"fault kinds, comma-separated: {','.join(KINDS)}")
    parser.add_argument("--replay", type=Path, help="run this schedule (JSON from --print)")
    parser.add_argument(
        "--print", action="store_true", help="print the schedule as JSON, run nothing"
    )
    parser.add_argument("--keep", action="store_true", help="keep the run's folder even if clean")
    return parser


def _schedule(args: argparse.Namespace) -> Schedule:
    if args.replay is not None:
        try:
            return Schedule.from_json(args.replay.read_text())
        except (OSError, ValueError, KeyError, TypeError) as error:
            raise SystemExit(f"--replay {args.replay}: not a schedule ({error})") from None
    if not 3 <= args.nodes <= 9:
        raise SystemExit(f"--nodes: 3 to 9, not {args.nodes}")
    if not 0.25 <= args.minutes <= 24 * 60:
        raise SystemExit(f"--minutes: 0.25 to 1440, not {args.minutes:g}")
    kinds = tuple(k.strip() for k in args.kinds.split(",")) if args.kinds else tuple(KINDS)
    unknown = [k for k in kinds if k not in KINDS]
    if unknown:
        raise SystemExit(f"--kinds: unknown {', '.join(unknown)}; known: {', '.join(KINDS)}")
    seed = args.seed if args.seed is not None else random.SystemRandom().randrange(1 << 31)
    return make_schedule(seed, args.minutes * 60, args.nodes, kinds)


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        schedule = _schedule(args)
    except SystemExit as error:
        sys.stderr.write(f"nemesis: {error}\n")
        return 2
    if args.print:
        sys.stdout.write(schedule.to_json() + "\n")
        return 0
    if os.geteuid() != 0 or shutil.which("ip") is None:
        sys.stderr.write("nemesis: needs root and iproute2 (network namespaces, tmpfs mounts)\n")
        return 2
    from nemesis.run import run  # imports the daemon's code: only when running

    signal.signal(signal.SIGTERM, _interrupt)
    root = Path(tempfile.mkdtemp(prefix=f"bzzz-nemesis-{schedule.seed}-"))
    began = time.monotonic()

    def log(line: str) -> None:
        sys.stdout.write(f"{line}\n")
        sys.stdout.flush()

    log(schedule.describe())
    log(f"run folder: {root}")
    try:
        outcome = run(schedule, root, log)
    except KeyboardInterrupt:
        log(
            f"interrupted after {time.monotonic() - began:.0f} s; everything undone; logs in {root}"
        )
        return 130
    except Exception as error:
        log(f"nemesis: the run failed to complete: {error}; logs in {root}")
        return 2
    log(outcome.report())
    if outcome.ok and not args.keep:
        shutil.rmtree(root, ignore_errors=True)
    else:
        log(f"logs and stores kept in {root}")
    return 0 if outcome.ok else 1


if __name__ == "__main__":
    sys.exit(main())
