"""More SIGKILL trials than CI runs: `dbstate apply` killed at random moments of cold applies and of recreates, each
followed by an apply that must converge with no duplicate container, no leftover and the marker row intact.

    .venv/bin/python -m bench.crash [--trials 25] [--seed N]

It runs tests/e2e/test_apply.py::test_crash_safety_under_sigkill with DBSTATE_CRASH_TRIALS (cold and recreate
trials each) on the suite's private engine, and prints the count and the time taken.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--trials", type=int, default=25, help="cold trials, and as many recreate trials")
    p.add_argument("--seed", type=int, default=int(time.time()))
    args = p.parse_args()
    env = {**os.environ, "DBSTATE_CRASH_TRIALS": str(args.trials), "DBSTATE_CRASH_SEED": str(args.seed)}
    t0 = time.monotonic()
    r = subprocess.run(
        [
            str(REPO / ".venv/bin/pytest"),
            "-q",
            "-p",
            "no:cacheprovider",
            "tests/e2e/test_apply.py::test_crash_safety_under_sigkill",
        ],
        cwd=REPO,
        env=env,
        check=False,
    )
    elapsed = time.monotonic() - t0
    verdict = "all converged" if r.returncode == 0 else "FAILED"
    print(f"crash trials: {args.trials} cold + {args.trials} recreate, seed {args.seed}: {verdict} in {elapsed:.0f}s")
    return r.returncode


if __name__ == "__main__":
    sys.exit(main())
