"""A sample of the fuzz suite's generated trees (devtools/fuzz.py) through the real `dbstate plan` against the real
engine: exit 0, 1 or 2, no internal error, no secret echoed, and not one mutating event on the engine."""

from __future__ import annotations

import time
from pathlib import Path

import docker
import pytest

from devtools import fuzz
from tests.e2e.helpers import dbstate

pytestmark = pytest.mark.engine

MUTATING = {"create", "start", "restart", "stop", "kill", "die", "destroy", "connect", "disconnect", "rename", "pause"}


def test_generated_trees_through_plan_change_nothing(docker_client: docker.DockerClient, engine_host: str, tmp_path):
    since = int(time.time()) - 1
    start_ns = time.time_ns()  # the previous test's cleanup may fall in the same second: only what comes after
    for seed in range(12):
        case = fuzz.case(seed)
        ds, env = case.write(tmp_path / str(seed))
        r = dbstate(
            "plan", "--dir", str(ds), "--env-file", str(env), "--output", "json", host=engine_host, secrets=case.secrets
        )
        assert r.code in (0, 1, 2), r.stderr
        assert "internal error" not in r.stderr and "Traceback" not in r.stderr, r.stderr
    until = int(time.time()) + 1
    events = [
        e
        for e in docker_client.events(since=since, until=until, decode=True)
        if str(e.get("Action", "")).split(":")[0] in MUTATING and int(e.get("timeNano", 0)) >= start_ns
    ]
    assert events == []


def test_the_sample_is_not_empty(tmp_path: Path):
    assert sum(bool(fuzz.case(seed).files) for seed in range(12)) == 12
