"""Helpers for tests against the real engine: write a desired state, realise it with plain docker-py (independent
of the code under test), and run the real `dbstate` command."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import docker

from controller.adapters import desired
from controller.core import labels, spec
from controller.core.secrets import reveal
from devtools.engine import TEST_LABEL
from tests.helpers import ENV, SECRET, consumer, network, redis_instance, volume

__all__ = ["ENV", "consumer", "network", "redis_instance", "volume"]  # the builders, for the e2e tests

REPO = Path(__file__).resolve().parents[2]


def load(root: Path) -> spec.DesiredState:
    loaded = desired.load(root, environ=ENV)
    assert loaded.errors == (), [str(e) for e in loaded.errors]
    return loaded.state


def realise(client: docker.DockerClient, state: spec.DesiredState, *, skip: frozenset[str] = frozenset()) -> None:
    """Create what `state` declares the way apply does (same labels), except the names in `skip`."""
    for net in state.networks:
        if net.metadata.name not in skip:
            client.networks.create(
                net.metadata.name, driver=net.spec.driver, internal=net.spec.internal, labels=labels.object_labels(net)
            )
    for vol in state.volumes:
        if vol.metadata.name not in skip:
            client.volumes.create(vol.metadata.name, driver=vol.spec.driver, labels=labels.object_labels(vol))
    for inst in state.instances:
        if inst.metadata.name not in skip:
            run_instance(client, inst)


def run_instance(
    client: docker.DockerClient, inst: spec.DatabaseInstance, revision: str | None = None, start: bool = True
) -> Any:
    first, *rest = inst.spec.networks
    api = client.api
    host_config = api.create_host_config(
        binds={v.source: {"bind": v.target, "mode": "rw"} for v in inst.spec.volumes},
        restart_policy={"Name": inst.spec.restart_policy.value},
    )
    created = api.create_container(
        inst.spec.image,
        name=inst.container_name,
        command=list(inst.spec.command) or None,
        environment={k: reveal(v) for k, v in inst.spec.env.items()},
        labels=labels.container_labels(inst, revision),
        host_config=host_config,
        networking_config=api.create_networking_config(
            {first.name: api.create_endpoint_config(aliases=list(first.aliases))}
        ),
    )
    for att in rest:
        api.connect_container_to_network(created["Id"], att.name, aliases=list(att.aliases))
    if start:
        api.start(created["Id"])
    return client.containers.get(created["Id"])


def run_plain(
    client: docker.DockerClient,
    name: str,
    image: str,
    networks: list[str] | None = None,
    env: dict[str, str] | None = None,
    labels: dict[str, str] | None = None,
    **kw: Any,
) -> Any:
    """A container dbstate did not create (a consumer, a stranger), labelled for cleanup."""
    nets = networks or []
    c = client.containers.run(
        image,
        ["sleep", "infinity"] if "command" not in kw else kw.pop("command"),
        name=name,
        detach=True,
        environment=env or {},
        labels={TEST_LABEL: "1", **(labels or {})},
        network=nets[0] if nets else "none",
        **kw,
    )
    for n in nets[1:]:
        client.networks.get(n).connect(c)
    return c


@dataclass
class Run:
    code: int
    stdout: str
    stderr: str

    def json(self) -> dict[str, Any]:
        return json.loads(self.stdout)


def dbstate(
    *args: str,
    host: str,
    cwd: Path | None = None,
    env: dict[str, str] | None = None,
    secrets: tuple[str, ...] = (SECRET,),
    state: Path | None = None,
    prefix: tuple[str, ...] = (),
) -> Run:
    """Run the real `dbstate` command; every run is checked for leaked secret values. Without `state`, each run gets
    a state database of its own (a cold cache)."""
    if state is None:
        with tempfile.TemporaryDirectory(prefix="dbstate-state-") as tmp:
            return dbstate(
                *args, host=host, cwd=cwd, env=env, secrets=secrets, state=Path(tmp) / "state.db", prefix=prefix
            )
    full_env = {k: v for k, v in os.environ.items() if k not in ("DOCKER_HOST", "DBSTATE_STATE")}
    full_env["DBSTATE_STATE"] = str(state)
    full_env.update(ENV)
    full_env.update(env or {})
    full_env["PYTHONPATH"] = str(REPO)
    full_env["DOCKER_HOST"] = host
    r = subprocess.run(
        [*prefix, sys.executable, "-m", "controller.cli", *args],  # prefix: e.g. `unshare --net`
        cwd=cwd or REPO,
        env=full_env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    for s in secrets:
        assert s not in r.stdout and s not in r.stderr, f"secret leaked in the output of dbstate {args}"
    return Run(r.returncode, r.stdout, r.stderr)


def demo_env() -> dict[str, str]:
    """The variables of examples/local/demo.env."""
    lines = (REPO / "examples/local/demo.env").read_text().splitlines()
    return {k.split("=", 1)[0]: k.split("=", 1)[1] for k in lines if "=" in k and not k.startswith("#")}


def wait_for(predicate: Any, timeout: float = 30, interval: float = 0.2) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout}s")
        time.sleep(interval)
