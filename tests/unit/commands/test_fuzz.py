"""The fuzz suite: generated desired-state trees and env files (devtools/fuzz.py: mutated declarations, YAML of any
shape, bytes, FIFOs, symlinks to /dev/zero, hostile env files) through the real `dbstate validate`. Every case: exit
0 or 1, no internal error and no traceback, under 2 s and 200 MB, and no secret value echoed. `bench/fuzz.py --cases
N` runs many more; tests/e2e/test_fuzz_plan.py runs a sample through `dbstate plan` on the real engine."""

from __future__ import annotations

import io
import time
import tracemalloc
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from controller.cli import main
from devtools import fuzz


def check(case: fuzz.Case, root: Path) -> tuple[int, float, int]:
    ds, env = case.write(root)
    out, err = io.StringIO(), io.StringIO()
    tracemalloc.start()
    t0 = time.perf_counter()
    try:
        code = main(["validate", "--dir", str(ds), "--env-file", str(env)], out, err)
    finally:
        seconds = time.perf_counter() - t0
        _, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
    text = out.getvalue() + err.getvalue()
    assert code in (0, 1), text
    assert "internal error" not in text and "Traceback" not in text, text
    for s in case.secrets:
        assert s not in text, f"secret echoed: {text}"
    assert seconds < 2.0 and peak < 200 * 2**20, (seconds, peak)
    for output in ("text", "json"):  # the backup directory's manifests, as `dbstate backups` lists them
        out, err = io.StringIO(), io.StringIO()
        listed = main(["backups", "--backup-dir", str(root / "backups"), "--output", output], out, err)
        text = out.getvalue() + err.getvalue()
        assert listed == 0 and "internal error" not in text and "Traceback" not in text, text
    return code, seconds, peak


@settings(max_examples=250, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.integers(min_value=0, max_value=2**32))
def test_generated_trees_through_validate(tmp_path_factory, seed: int):
    check(fuzz.case(seed), tmp_path_factory.mktemp("fuzz"))


def test_the_generator_reaches_what_it_means_to(tmp_path: Path):
    """Not vacuous: over many seeds the cases include valid trees, errors, special files and env files with secrets
    in every quoting form."""
    codes, specials, hosts, manifests = set(), set(), 0, 0
    for seed in range(60):
        c = fuzz.case(seed)
        specials |= set(c.specials.values())
        hosts += any(name.startswith("host") for name in c.files)
        manifests += len(c.manifests)
        codes.add(check(c, tmp_path / str(seed))[0])
    assert codes == {0, 1} and specials and hosts >= 10 and manifests >= 20
