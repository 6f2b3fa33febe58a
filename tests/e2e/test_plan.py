"""`dbstate plan` against a real Docker engine: each drift is made by hand with docker-py, and the plan's JSON must hold
exactly the expected change or finding, and nothing else. Every run is checked for leaked
secrets (tests/e2e/helpers.py)."""

from __future__ import annotations

import json
import sqlite3
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import docker
import pytest

from controller.core import spec
from tests.e2e.helpers import (
    consumer,
    dbstate,
    load,
    network,
    realise,
    redis_instance,
    run_instance,
    run_plain,
    volume,
)
from tests.helpers import SECRET, write_tree

pytestmark = pytest.mark.engine


@dataclass
class World:
    root: Path
    client: docker.DockerClient
    host: str
    state: spec.DesiredState
    base_image: str

    def plan(self, *extra: str) -> tuple[int, dict[str, Any]]:
        r = dbstate("plan", "--dir", str(self.root), "--output", "json", *extra, host=self.host)
        assert r.stderr == "", r.stderr  # JSON mode: everything, errors included, is in the document
        return r.code, r.json()

    def rewrite(self, rel: str, text: str) -> None:
        (self.root / rel).write_text(text)
        self.state = load(self.root)


def changes(doc: dict[str, Any]) -> list[tuple[str, str, str, str]]:
    return [(c["action"], c["kind"], c["name"], c["target"]) for c in doc["changes"]]


def findings(doc: dict[str, Any]) -> list[tuple[str, str, str]]:
    return [(f["type"], f["kind"], f["name"]) for f in doc["findings"]]


FILES = {
    "networks.yaml": network("net-a") + "---\n" + network("iso", isolated=True),
    "volumes.yaml": volume("vol-a"),
    "kv.yaml": redis_instance("kv-a", "kv-a-db", volume="vol-a"),
    "app.yaml": consumer("app", "kv-a"),
}


def build_world(
    tmp_path: Path,
    client: docker.DockerClient,
    host: str,
    base: str,
    files: dict[str, str],
    skip: frozenset[str] = frozenset(),
    with_consumer: bool = True,
) -> World:
    root = write_tree(tmp_path / "desired", files)
    state = load(root)
    realise(client, state, skip=skip)
    if with_consumer:
        run_plain(client, "app", base, networks=["net-a"], env={"DB_HOST": "kv-a"})
    return World(root, client, host, state, base)


@pytest.fixture
def world(tmp_path: Path, docker_client: docker.DockerClient, engine_host: str, images: dict[str, str]) -> World:
    return build_world(tmp_path, docker_client, engine_host, images["base"], FILES)


def test_in_sync(world: World):
    code, doc = world.plan()
    assert (code, doc["changes"], doc["findings"], doc["errors"]) == (0, [], [], [])
    assert doc["in_sync"] is True
    assert doc["engine"]["version"].startswith("20.10")
    assert set(doc) >= {"revision", "dirty", "engine", "in_sync", "changes", "findings", "errors"}


def test_missing_network_volume_container(tmp_path, docker_client, engine_host, images):
    w = build_world(
        tmp_path, docker_client, engine_host, images["base"], FILES, skip=frozenset({"iso", "vol-a", "kv-a"})
    )
    code, doc = w.plan()
    assert code == 2
    assert changes(doc) == [
        ("create", "Network", "iso", "iso"),
        ("create", "Volume", "vol-a", "vol-a"),
        ("create", "DatabaseInstance", "kv-a", "kv-a-db"),
    ]
    create = doc["changes"][2]["details"]
    assert create["image"] == "dbstate-local/redis:7.0"
    assert create["env"] == {"REDIS_PASSWORD": "***"}
    assert create["networks"] == {"net-a": ["kv-a"]}
    assert create["labels"]["io.dbstate.managed"] == "true"
    assert doc["findings"] == []


def test_stopped_container_is_started(world: World):
    world.client.containers.get("kv-a-db").stop(timeout=2)
    code, doc = world.plan()
    assert code == 2
    assert changes(doc) == [("start", "DatabaseInstance", "kv-a", "kv-a-db")]
    assert "exited" in doc["changes"][0]["reason"]
    assert doc["findings"] == []


def test_disconnected_network_is_reconnected(world: World):
    world.client.networks.get("net-a").disconnect("kv-a-db")
    code, doc = world.plan()
    assert (code, changes(doc)) == (2, [("connect", "DatabaseInstance", "kv-a", "kv-a-db")])
    assert doc["changes"][0]["details"] == {"network": "net-a", "aliases": ["kv-a"]}
    # the consumer's host now names an alias that exists on no network it shares: still a declared alias
    assert doc["findings"] == []


def test_removed_alias_is_restored(world: World):
    net = world.client.networks.get("net-a")
    net.disconnect("kv-a-db")
    net.connect("kv-a-db")  # back, without its alias
    code, doc = world.plan()
    assert (code, changes(doc)) == (2, [("connect", "DatabaseInstance", "kv-a", "kv-a-db")])
    assert doc["changes"][0]["reason"] == "alias kv-a missing on net-a"
    assert doc["changes"][0]["details"]["reconnect"] is True


def test_removed_alias_is_seen_with_a_warm_alias_cache(world: World, tmp_path: Path):
    state = tmp_path / "state.db"
    first = dbstate("plan", "--dir", str(world.root), "--output", "json", host=world.host, state=state)
    assert first.code == 0  # the cache now holds every endpoint's aliases
    net = world.client.networks.get("net-a")
    net.disconnect("kv-a-db")
    net.connect("kv-a-db")
    r = dbstate("plan", "--dir", str(world.root), "--output", "json", host=world.host, state=state)
    assert changes(r.json()) == [("connect", "DatabaseInstance", "kv-a", "kv-a-db")]
    assert r.json()["changes"][0]["reason"] == "alias kv-a missing on net-a"


def test_consumer_disconnected_is_reconnected(world: World):
    world.client.networks.get("net-a").disconnect("app")
    code, doc = world.plan()
    assert (code, changes(doc), doc["findings"]) == (2, [("connect", "Consumer", "app", "app")], [])


def test_changed_spec_under_recreate_policy(world: World):
    world.rewrite(
        "kv.yaml",
        redis_instance("kv-a", "kv-a-db", volume="vol-a", extra="  policy: {upgrade: recreate}\n").replace(
            "REDIS_PASSWORD: ${TEST_REDIS_PASSWORD}", "REDIS_PASSWORD: ${TEST_REDIS_PASSWORD}\n    TZ: UTC"
        ),
    )
    code, doc = world.plan()
    assert (code, changes(doc), doc["findings"]) == (2, [("recreate", "DatabaseInstance", "kv-a", "kv-a-db")], [])
    assert doc["changes"][0]["details"]["env"] == {"REDIS_PASSWORD": "***", "TZ": "UTC"}


def test_changed_image_under_manual_policy_is_image_drift(world: World):
    world.client.images.get("dbstate-local/redis:7.0").tag("dbstate-local/redis", "7.0-next")
    world.rewrite("kv.yaml", redis_instance("kv-a", "kv-a-db", volume="vol-a", image="dbstate-local/redis:7.0-next"))
    code, doc = world.plan()
    assert (code, doc["changes"], findings(doc)) == (0, [], [("image-drift", "DatabaseInstance", "kv-a")])
    assert "dbstate-local/redis:7.0-next" in doc["findings"][0]["message"]
    code, _ = world.plan("--fail-on-findings")
    assert code == 3


def test_changed_env_under_manual_policy_is_config_drift(world: World):
    world.rewrite(
        "kv.yaml",
        redis_instance("kv-a", "kv-a-db", volume="vol-a").replace(
            "REDIS_PASSWORD: ${TEST_REDIS_PASSWORD}", "REDIS_PASSWORD: ${TEST_REDIS_PASSWORD}\n    TZ: UTC"
        ),
    )
    code, doc = world.plan()
    assert (code, doc["changes"], findings(doc)) == (0, [], [("config-drift", "DatabaseInstance", "kv-a")])


def test_changed_secret_value_counts_as_a_change(world: World):
    r = dbstate(
        "plan",
        "--dir",
        str(world.root),
        "--output",
        "json",
        host=world.host,
        env={"TEST_REDIS_PASSWORD": "another-secret-value"},
        secrets=("another-secret-value",),
    )
    assert findings(r.json()) == [("config-drift", "DatabaseInstance", "kv-a")]


def test_undeclared_attachment_to_isolated_network_is_disconnected(world: World):
    world.client.networks.get("iso").connect("kv-a-db")
    code, doc = world.plan()
    assert (code, changes(doc), doc["findings"]) == (2, [("disconnect", "DatabaseInstance", "kv-a", "kv-a-db")], [])
    assert doc["changes"][0]["details"] == {"network": "iso"}


def test_stranger_on_isolated_network_is_a_breach(world: World):
    run_plain(world.client, "stranger", world.base_image, networks=["iso"])
    code, doc = world.plan()
    assert (code, doc["changes"], findings(doc)) == (0, [], [("isolation-breach", "Network", "iso")])
    assert "stranger" in doc["findings"][0]["message"]


def test_orphan_is_a_finding_and_pruned_only_on_request(world: World):
    (world.root / "extra.yaml").write_text(
        redis_instance("kv-b", "kv-b-db", extra="  policy: {deletionProtection: false}\n")
    )
    run_instance(world.client, _instance(world.root, "kv-b"))  # as a previous apply would have made it
    (world.root / "extra.yaml").unlink()
    code, doc = world.plan()
    assert (code, doc["changes"], findings(doc)) == (0, [], [("orphan", "DatabaseInstance", "kv-b")])
    code, doc = world.plan("--prune")
    assert (code, changes(doc), doc["findings"]) == (2, [("remove", "DatabaseInstance", "kv-b", "kv-b-db")], [])


def _instance(root: Path, name: str) -> spec.DatabaseInstance:
    return next(i for i in load(root).instances if i.metadata.name == name)


def test_protected_orphan_is_never_pruned(world: World):
    (world.root / "extra.yaml").write_text(redis_instance("kv-b", "kv-b-db"))
    run_instance(world.client, _instance(world.root, "kv-b"))
    (world.root / "extra.yaml").unlink()
    code, doc = world.plan("--prune")
    assert (code, doc["changes"], findings(doc)) == (0, [], [("orphan", "DatabaseInstance", "kv-b")])
    assert "deletion protection" in doc["findings"][0]["message"]


def test_invalid_file_never_makes_its_resources_orphans(world: World):
    (world.root / "kv.yaml").write_text(redis_instance("kv-a", "kv-a-db", volume="vol-a", extra="  colour: red\n"))
    code, doc = world.plan("--prune")
    assert code == 1
    assert doc["changes"] == [] and doc["findings"] == []
    assert [(Path(e["file"]).name, e["line"], e["field"]) for e in doc["errors"]] == [
        ("app.yaml", 7, "spec.uses[0].instance"),  # the consumer of a broken instance is held back too
        ("kv.yaml", 17, "spec.colour"),
    ]
    assert {(n["type"], n["name"]) for n in doc["notes"]} >= {("held-back", "kv-a"), ("held-back", "app")}


def test_unparseable_file_never_makes_its_containers_orphans(world: World):
    (world.root / "kv.yaml").write_text("apiVersion: dbstate.io/v1\nkind: [\n")  # kv-a's file, now unreadable
    code, doc = world.plan("--prune")
    assert code == 1
    assert (doc["changes"], doc["findings"]) == ([], [])
    assert any(n["kind"] == "File" and n["name"].endswith("kv.yaml") for n in doc["notes"])


def test_name_conflict_is_never_touched(tmp_path, docker_client, engine_host, images):
    w = build_world(tmp_path, docker_client, engine_host, images["base"], FILES, skip=frozenset({"kv-a"}))
    run_plain(docker_client, "kv-a-db", images["redis"], networks=["net-a"], command=["redis-server"])
    code, doc = w.plan()
    assert (code, doc["changes"], findings(doc)) == (0, [], [("name-conflict", "DatabaseInstance", "kv-a")])


def test_public_port_and_unmanaged_database(world: World):
    run_plain(
        world.client,
        "legacy-pg",
        "dbstate-local/postgres:15",
        networks=["net-a"],
        command=["sleep", "infinity"],
        ports={"5432/tcp": ("0.0.0.0", 25432)},
    )
    code, doc = world.plan()
    assert (code, doc["changes"]) == (0, [])
    assert findings(doc) == [
        ("public-port", "Container", "legacy-pg"),
        ("unmanaged-database", "Container", "legacy-pg"),
    ]


def test_missing_consumer(tmp_path, docker_client, engine_host, images):
    w = build_world(tmp_path, docker_client, engine_host, images["base"], FILES, with_consumer=False)
    code, doc = w.plan()
    assert (code, doc["changes"], findings(doc)) == (0, [], [("missing-consumer", "Consumer", "app")])


@pytest.mark.parametrize(
    ("env", "ok"),
    [
        ({"DB_HOST": "elsewhere"}, False),
        ({}, False),
        ({"DB_HOST": "kv-a:6379"}, True),
        ({"DB_HOST": "kv-a-db"}, True),
    ],
)
def test_host_mismatch(tmp_path, docker_client, engine_host, images, env, ok):
    w = build_world(tmp_path, docker_client, engine_host, images["base"], FILES, with_consumer=False)
    run_plain(docker_client, "app", images["base"], networks=["net-a"], env=env)
    code, doc = w.plan()
    assert (code, doc["changes"]) == (0, [])
    assert findings(doc) == ([] if ok else [("host-mismatch", "Consumer", "app")])


def test_host_in_a_connection_url_with_a_password_never_leaks(tmp_path, docker_client, engine_host, images):
    w = build_world(tmp_path, docker_client, engine_host, images["base"], FILES, with_consumer=False)
    url_secret = "pw-in-url-9f8e7d"
    run_plain(
        docker_client,
        "app",
        images["base"],
        networks=["net-a"],
        env={"DB_HOST": f"redis://:{url_secret}@wrong-host:6379/0"},
    )
    r = dbstate("plan", "--dir", str(w.root), "--output", "json", host=engine_host, secrets=(url_secret, "redis://"))
    assert findings(r.json()) == [("host-mismatch", "Consumer", "app")]
    assert "'wrong-host'" in r.json()["findings"][0]["message"]


@pytest.mark.parametrize(
    ("policy", "expect_change", "expect_finding"),
    [
        ("enforce", [("start", "DatabaseInstance", "kv-a", "kv-a-db")], []),
        ("warn", [], [("drift", "DatabaseInstance", "kv-a")]),
        ("ignore", [], []),
    ],
)
def test_drift_policy(tmp_path, docker_client, engine_host, images, policy, expect_change, expect_finding):
    files = {
        **FILES,
        "kv.yaml": redis_instance("kv-a", "kv-a-db", volume="vol-a", extra=f"  policy: {{drift: {policy}}}\n"),
    }
    w = build_world(tmp_path, docker_client, engine_host, images["base"], files)
    docker_client.containers.get("kv-a-db").stop(timeout=2)
    code, doc = w.plan()
    assert (changes(doc), findings(doc)) == (expect_change, expect_finding)
    assert code == (2 if expect_change else 0)


def test_existing_unlabelled_network_is_adopted_and_config_drift_reported(tmp_path, docker_client, engine_host, images):
    docker_client.networks.create("net-a", internal=True, labels={"dbstate-test": "1"})  # made by compose, say
    w = build_world(tmp_path, docker_client, engine_host, images["base"], FILES, skip=frozenset({"net-a"}))
    code, doc = w.plan()
    assert (code, doc["changes"], findings(doc)) == (0, [], [("config-drift", "Network", "net-a")])
    assert "internal is true, declared false" in doc["findings"][0]["message"]
    assert [(n["type"], n["kind"], n["name"]) for n in doc["notes"]] == [("adopted", "Network", "net-a")]


def test_plan_makes_no_mutating_call(world: World):
    world.client.containers.get("kv-a-db").stop(timeout=2)
    world.client.networks.get("net-a").disconnect("app")
    time.sleep(1.1)  # the event API has a resolution of one second
    since = int(time.time())
    code, doc = world.plan("--prune")
    assert code == 2 and len(doc["changes"]) == 2
    until = int(time.time()) + 1
    events = list(world.client.events(since=since, until=until, decode=True))
    assert events == []


def test_git_revision_and_dirty(world: World):
    def git(*args: str) -> str:
        return subprocess.run(
            ["git", "-C", str(world.root), *args], check=True, capture_output=True, text=True
        ).stdout.strip()

    git("init", "-q")
    git("-c", "user.email=t@t", "-c", "user.name=t", "add", "-A")
    git("-c", "user.email=t@t", "-c", "user.name=t", "commit", "-qm", "desired state")
    head = git("rev-parse", "HEAD")
    _, doc = world.plan()
    assert (doc["revision"], doc["dirty"]) == (head, False)
    (world.root / "kv.yaml").write_text((world.root / "kv.yaml").read_text() + "\n")
    _, doc = world.plan()
    assert (doc["revision"], doc["dirty"]) == (head, True)
    r = dbstate("plan", "--dir", str(world.root), host=world.host)
    assert f"@ {head[:12]} (dirty)" in r.stdout


def test_text_output_reads_like_a_plan(world: World):
    world.client.containers.get("kv-a-db").stop(timeout=2)
    r = dbstate("plan", "--dir", str(world.root), host=world.host)
    assert r.code == 2
    assert "\x1b[" not in r.stdout  # no colour when not on a terminal
    assert "  > DatabaseInstance/kv-a  start container kv-a-db: container is exited" in r.stdout
    assert r.stdout.rstrip().endswith("Plan: 1 to start. 0 findings.")
    r = dbstate("plan", "--dir", str(world.root), "--color", "always", host=world.host)
    assert "\x1b[32m" in r.stdout


def test_unreachable_engine_is_one_line(tmp_path: Path):
    root = write_tree(tmp_path / "d", FILES)
    r = dbstate("plan", "--dir", str(root), host=f"unix://{tmp_path}/none.sock")
    assert r.code == 1
    assert r.stdout == ""
    assert r.stderr.count("\n") == 1 and "cannot reach the Docker engine" in r.stderr
    assert "scripts/local-engine" in r.stderr


def test_plan_loads_a_database_client_only_when_it_probes(world: World):
    from tests.unit.commands.test_cli import loaded_by

    env = {"DOCKER_HOST": world.host, "TEST_REDIS_PASSWORD": SECRET, "DBSTATE_STATE": str(world.root / "s.db")}
    code, loaded, err = loaded_by("plan", "--dir", str(world.root), "--output", "json", env=env)
    assert code == 0, err
    assert "docker" in loaded and not {"psycopg", "pymysql", "redis"} & set(loaded)
    code, loaded, err = loaded_by("plan", "--dir", str(world.root), "--output", "json", "--probe", env=env)
    assert code == 0, err
    assert "redis" in loaded  # the one engine the world has; psycopg and pymysql are still never loaded
    assert not {"psycopg", "pymysql"} & set(loaded)


def test_a_consumer_dbstate_did_not_make_is_out_of_scope_by_default(world: World):
    world.client.networks.get("net-a").disconnect("app")
    narrow = {"DBSTATE_ALLOW_LABELS": ""}
    r = dbstate("plan", "--dir", str(world.root), "--output", "json", host=world.host, env=narrow)
    doc = r.json()
    assert r.code == 0 and doc["changes"] == []  # never connected
    assert ("out-of-scope", "Consumer", "app") in findings(doc)
    r = dbstate("apply", "--dir", str(world.root), "--yes", host=world.host, env=narrow)
    assert r.code == 0 and "net-a" not in world.client.containers.get("app").attrs["NetworkSettings"]["Networks"]
    allowed = dbstate(
        "plan",
        "--dir",
        str(world.root),
        "--output",
        "json",
        "--allow-label",
        "dbstate-test=1",
        host=world.host,
        env=narrow,
    ).json()
    assert changes(allowed) == [("connect", "Consumer", "app", "app")]


def test_a_saved_plan_is_applied_exactly_or_refused_when_the_engine_moved(world: World, tmp_path: Path):
    """plan --out, then the engine changes: apply FILE refuses (exit 4) naming the resource, nothing applied; planned
    again with nothing moving, apply FILE applies exactly the saved changes (a declaration added after the plan is
    left); the file holds no secret."""
    saved = tmp_path / "reviewed.plan"
    world.client.containers.get("kv-a-db").stop(timeout=2)
    world.client.networks.get("net-a").disconnect("app")

    def run(*args: str) -> Any:
        return dbstate(*args, host=world.host, state=tmp_path / "state.db")

    r = run("plan", "--dir", str(world.root), "--out", str(saved))
    assert r.code == 2 and f"Saved to {saved}" in r.stderr, r.stdout + r.stderr
    text = saved.read_text()
    assert SECRET not in text and oct(saved.stat().st_mode & 0o777) == "0o600"
    # the engine moves: kv-a-db is started by hand
    old = world.client.containers.get("kv-a-db")
    old.start()
    r = run("apply", str(saved), "--dir", str(world.root))
    assert r.code == 4, r.stdout + r.stderr
    assert "stale: DatabaseInstance/kv-a went from exited to running since the plan" in r.stderr, r.stderr
    assert "Nothing was applied" in r.stderr
    r = run("apply", str(saved), "--dir", str(world.root), "--output", "json")
    assert r.code == 4 and r.json()["stale"] == [
        "stale: DatabaseInstance/kv-a went from exited to running since the plan"
    ]
    assert "app" not in [c.name for c in world.client.networks.get("net-a").containers]  # not reconnected
    # planned again; a declaration added after the plan is not applied by it
    old.stop(timeout=2)
    r = run("plan", "--dir", str(world.root), "--out", str(saved))
    assert r.code == 2, r.stdout + r.stderr
    world.rewrite("kv-b.yaml", redis_instance("kv-b", "kv-b-db"))
    r = run("apply", str(saved), "--dir", str(world.root))
    assert r.code == 0, r.stdout + r.stderr
    assert "Not in" in r.stderr and "create DatabaseInstance/kv-b" in r.stderr, r.stderr
    assert world.client.containers.get("kv-a-db").status == "running"
    assert "app" in [c.name for c in world.client.networks.get("net-a").containers]
    assert not world.client.containers.list(all=True, filters={"name": "kv-b-db"})
    # a file for another engine is refused
    doc = json.loads(saved.read_text())
    saved.write_text(json.dumps({**doc, "engine": "tcp://elsewhere:2376"}))
    r = run("apply", str(saved), "--dir", str(world.root))
    assert r.code == 4 and "made for the engine tcp://elsewhere:2376" in r.stderr, r.stderr


def test_a_window_holds_a_recreate_while_a_stopped_server_is_still_started(world: World, tmp_path: Path):
    """policy.window in the past (next: 1 January): the recreate waits, said with when; the start does not; apply
    --ignore-window runs it, recorded with who and why."""
    policy = "  policy: {upgrade: recreate, window: {cron: '0 3 1 1 *', duration: 1h}, backup: {beforeChange: false}}\n"
    world.rewrite(
        "kv.yaml",
        redis_instance("kv-a", "kv-a-db", volume="vol-a", extra=policy).replace(
            "REDIS_PASSWORD: ${TEST_REDIS_PASSWORD}", "REDIS_PASSWORD: ${TEST_REDIS_PASSWORD}\n    TZ: UTC"
        ),
    )
    before = world.client.containers.get("kv-a-db")
    before.stop(timeout=2)
    code, doc = world.plan()
    assert (code, changes(doc)) == (2, [("start", "DatabaseInstance", "kv-a", "kv-a-db")])
    [held] = [n for n in doc["notes"] if n["type"] == "held"]
    assert "recreate of kv-a-db held until 2027-01-01 03:00 UTC" in held["message"], held
    state = tmp_path / "state.db"
    r = dbstate("apply", "--yes", "--dir", str(world.root), host=world.host, state=state)
    assert r.code == 0, r.stdout + r.stderr
    now = world.client.containers.get("kv-a-db")
    assert now.id == before.id and now.status == "running"  # started, not recreated
    r = dbstate(
        "apply", "--yes", "--dir", str(world.root), "--ignore-window", "the TZ fix", host=world.host, state=state
    )
    assert r.code == 0 and "recreate" in r.stdout, r.stdout + r.stderr
    assert world.client.containers.get("kv-a-db").id != before.id
    with sqlite3.connect(state) as db:
        triggers = [t for (t,) in db.execute("SELECT trigger FROM passes WHERE command = 'apply' ORDER BY id")]
    assert triggers[-1].startswith("--ignore-window by ") and triggers[-1].endswith(": the TZ fix"), triggers
