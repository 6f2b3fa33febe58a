"""docs/ci/: the commands of the GitHub Actions workflow and of the GitLab CI job, run as their runners run them (bash,
-e, their variables) against the real engine: the job passes on 0 (in sync) and 2 (changes pending) with the plan as
Markdown in plan.md, and fails on 1 (an error in the desired state); no secret reaches plan.md or the output."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path
from typing import Any

import docker
import pytest
import yaml

from tests.e2e.helpers import REPO, load, realise
from tests.helpers import SECRET, network, redis_instance, write_tree

pytestmark = pytest.mark.engine

CI = REPO / "docs" / "ci"


def github_steps() -> dict[str, str]:
    doc = yaml.safe_load((CI / "github-actions.yml").read_text())
    return {s["name"]: s["run"] for s in doc["jobs"]["plan"]["steps"] if "run" in s and "name" in s}


def gitlab_script() -> str:
    doc = yaml.safe_load((CI / "gitlab-ci.yml").read_text())
    return "\n".join(doc["dbstate-plan"]["script"])


def bash(script: str, cwd: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """As a runner runs a step: bash with -e (and pipefail), the job's variables, the workspace as cwd."""
    return subprocess.run(
        ["bash", "--noprofile", "--norc", "-eo", "pipefail", "-c", script],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def base_env(host: str, tmp: Path) -> dict[str, str]:
    path = f"{REPO / '.venv' / 'bin'}:/usr/bin:/bin"
    return {
        "PATH": path,
        "DOCKER_HOST": host,
        "DBSTATE_DIR": "desired-state",
        "HOME": str(tmp),
        "PYTHONPATH": str(REPO),
        "DBSTATE_MONITORING": os.environ.get("DBSTATE_MONITORING", "on"),  # the suite's (tests/conftest.py)
    }


@pytest.fixture
def workspace(tmp_path: Path, docker_client: docker.DockerClient) -> Path:
    """A checkout whose desired state the engine already runs."""
    root = write_tree(
        tmp_path / "ws" / "desired-state",
        {
            "net.yaml": network("ci-net"),
            "kv.yaml": redis_instance("kv-ci", "kv-ci-db", networks="[{name: ci-net, aliases: [NAME]}]"),
        },
    )
    realise(docker_client, load(root))
    return root.parent


def test_the_github_workflow_passes_on_0_and_2_with_the_plan_as_markdown_and_fails_on_1(
    workspace: Path, tmp_path: Path, engine_host: str, docker_client: docker.DockerClient
) -> None:
    steps = github_steps()
    out = tmp_path / "github-output"
    env = base_env(engine_host, tmp_path) | {
        "RUNNER_TEMP": str(tmp_path),
        "GITHUB_OUTPUT": str(out),
        "DBSTATE_STATE": str(tmp_path / "state.db"),
        "DBSTATE_ENV": f"TEST_REDIS_PASSWORD={SECRET}",
    }

    def step() -> Any:
        return bash(steps["validate and plan"], workspace, env)

    r = step()
    assert r.returncode == 0, r.stdout + r.stderr
    assert out.read_text().splitlines()[-1] == "exit=0"
    assert (workspace / "plan.md").read_text().startswith("### :white_check_mark: dbstate plan: no changes")
    assert not (tmp_path / "dbstate.env").exists()  # the secrets' file is gone after the step
    docker_client.containers.get("kv-ci-db").stop(timeout=2)
    r = step()
    assert r.returncode == 0 and out.read_text().splitlines()[-1] == "exit=2", r.stdout + r.stderr
    md = (workspace / "plan.md").read_text()
    assert md.startswith("### :warning: dbstate plan: 1 to start") and "+ DatabaseInstance/kv-ci" in md
    assert SECRET not in md + r.stdout + r.stderr
    # an error in the desired state: validate says where, and the job fails
    kv = workspace / "desired-state" / "kv.yaml"
    kv.write_text(kv.read_text().replace("engine: redis", "engine: redis\n  bogus: 1"))
    r = step()
    assert r.returncode == 1 and "kv.yaml:" in r.stdout + r.stderr and "bogus" in r.stdout + r.stderr
    assert SECRET not in r.stdout + r.stderr and not (tmp_path / "dbstate.env").exists()
    # an engine that cannot be read: plan's exit 1 fails the job, and says so
    kv.write_text(kv.read_text().replace("\n  bogus: 1", ""))
    r = bash(steps["validate and plan"], workspace, env | {"DOCKER_HOST": "unix:///nonexistent.sock"})
    assert r.returncode == 1 and out.read_text().splitlines()[-1] == "exit=1", r.stdout + r.stderr


def test_the_gitlab_job_passes_on_2_with_the_plan_as_markdown_and_fails_on_1(
    workspace: Path, tmp_path: Path, engine_host: str, docker_client: docker.DockerClient
) -> None:
    secrets = tmp_path / "env-file"  # a variable of type File: GitLab gives its path
    secrets.write_text(f"TEST_REDIS_PASSWORD={SECRET}\n")
    env = base_env(engine_host, tmp_path) | {
        "DBSTATE_STATE": str(tmp_path / "state.db"),
        "DBSTATE_ENV": str(secrets),
        "DBSTATE_NOTE_TOKEN": "",
    }
    docker_client.containers.get("kv-ci-db").stop(timeout=2)
    r = bash(gitlab_script(), workspace, env)
    assert r.returncode == 0, r.stdout + r.stderr
    md = (workspace / "plan.md").read_text()
    assert md.startswith("### :warning: dbstate plan: 1 to start") and SECRET not in md + r.stdout + r.stderr
    secrets.write_text("")  # the password missing: an error in the desired state
    r = bash(gitlab_script(), workspace, env)
    assert r.returncode == 1, r.stdout + r.stderr
    assert os.path.exists(workspace / "plan.md")
