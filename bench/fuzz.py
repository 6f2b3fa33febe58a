"""The fuzz suite at scale: N generated desired-state trees and env files (devtools/fuzz.py) through the real
`dbstate validate`, in-process, each under a 10 s alarm. Prints the counts the issue asks for (internal errors,
tracebacks, hangs over 2 s, secrets echoed, exit codes other than 0/1) and the slowest and largest cases.

    .venv/bin/python -m bench.fuzz --cases 10000 [--seed 0]
"""

from __future__ import annotations

import argparse
import io
import signal
import statistics
import sys
import tempfile
import time
import tracemalloc
from pathlib import Path
from types import FrameType

from controller.cli import main as dbstate
from devtools import fuzz


class Hang(Exception):
    pass


def _alarm(signum: int, frame: FrameType | None) -> None:
    raise Hang


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--cases", type=int, default=1000)
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args(argv)
    signal.signal(signal.SIGALRM, _alarm)
    counts = {"internal error": 0, "traceback": 0, "hang (>10 s)": 0, "slow (>2 s)": 0, "secret echoed": 0, "exit": 0}
    codes: dict[int, int] = {}
    times: list[float] = []
    worst: tuple[float, int] = (0.0, -1)
    peak_max = 0
    t_all = time.perf_counter()
    for seed in range(args.seed, args.seed + args.cases):
        case = fuzz.case(seed)
        with tempfile.TemporaryDirectory() as tmp:
            ds, env = case.write(Path(tmp))
            out, err = io.StringIO(), io.StringIO()
            tracemalloc.start()
            signal.alarm(10)
            t0 = time.perf_counter()
            try:
                code = dbstate(["validate", "--dir", str(ds), "--env-file", str(env)], out, err)
                for output in ("text", "json"):  # the case's backup manifests, as `dbstate backups` lists them
                    listed = dbstate(["backups", "--backup-dir", f"{tmp}/backups", "--output", output], out, err)
                    counts["exit"] += listed != 0
            except Hang:
                counts["hang (>10 s)"] += 1
                print(f"seed {seed}: hang", file=sys.stderr)
                continue
            finally:
                signal.alarm(0)
                seconds = time.perf_counter() - t0
                peak_max = max(peak_max, tracemalloc.get_traced_memory()[1])
                tracemalloc.stop()
        text = out.getvalue() + err.getvalue()
        times.append(seconds)
        worst = max(worst, (seconds, seed))
        codes[code] = codes.get(code, 0) + 1
        counts["internal error"] += "internal error" in text
        counts["traceback"] += "Traceback" in text
        counts["slow (>2 s)"] += seconds > 2.0
        counts["secret echoed"] += any(s in text for s in case.secrets)
        counts["exit"] += code not in (0, 1)
        if "internal error" in text:
            print(f"seed {seed}: {text.strip().splitlines()[-1]}", file=sys.stderr)
    print(f"{args.cases} cases in {time.perf_counter() - t_all:.1f} s; exit codes {dict(sorted(codes.items()))}")
    for k, v in counts.items():
        print(f"  {k:<16} {v}")
    if times:
        print(
            f"  per case: median {statistics.median(times) * 1000:.1f} ms, slowest {worst[0] * 1000:.0f} ms "
            f"(seed {worst[1]}), largest peak {peak_max / 2**20:.1f} MB (tracemalloc)"
        )
    return 0 if not any(counts.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
