"""Findings from probe results, and the audit's decisions, on synthetic data: pure and cheap. The same rules against
real servers are in tests/e2e/test_audit.py."""

from __future__ import annotations

from controller.adapters import desired
from controller.core import audit, health, labels, live, spec, versions
from controller.core.health import ProbeResult
from controller.core.plan import Action, FindingType
from tests.helpers import ENV, SECRET, consumer, network, redis_instance

ENGINE = live.EngineInfo("unix:///x", "20.10", "1.41")


def pg(name: str, version: str, shared: bool = True, extra: str = "") -> str:
    tier = "{tier: shared}" if shared else "{tier: dedicated}"
    return f"""apiVersion: dbstate.io/v1
kind: DatabaseInstance
metadata: {{name: {name}, labels: {tier}}}
spec:
  engine: postgres
  version: "{version}"
  image: postgres:{version}
  containerName: {name}-db
  networks: [{{name: net-a}}]
  auth: {{method: scram-sha-256, user: app, password: "${{TEST_REDIS_PASSWORD}}"}}
{extra}"""


def state(*docs: str) -> spec.DesiredState:
    loaded = desired.load_text("---\n".join([network("net-a"), *docs]), "t.yaml", ENV)
    assert loaded.errors == (), [str(e) for e in loaded.errors]
    return loaded.state


def ok(name: str, version: str, weak: tuple[str, ...] = ()) -> ProbeResult:
    return ProbeResult(name, "10.0.0.2", True, version, 1.0, auth_weak=weak)


def down(name: str) -> ProbeResult:
    return ProbeResult(name, "10.0.0.2", False, error="OperationalError: password authentication failed")


def types(findings: tuple[object, ...]) -> list[tuple[str, str]]:
    return sorted((f.type.value, f.name) for f in findings)  # type: ignore[attr-defined]


def test_unhealthy_only_after_n_consecutive_failures():
    s = state(pg("a", "16"))
    assert health.findings(s, {"a": down("a")}, {"a": 2}, 3) == ()
    found = health.findings(s, {"a": down("a")}, {"a": 3}, 3)
    assert types(found) == [("unhealthy", "a")]
    assert "the last 3 probes failed: OperationalError: password authentication failed" in found[0].message


def test_version_mismatch_compares_the_declared_major_with_the_server():
    s = state(pg("a", "16", shared=False))
    assert health.findings(s, {"a": ok("a", "16.4")}, {}, 1) == ()
    assert types(health.findings(s, {"a": ok("a", "15.20")}, {}, 1)) == [("version-mismatch", "a")]


def test_each_weakness_is_one_auth_weak_finding():
    s = state(pg("a", "16", shared=False))
    found = health.findings(s, {"a": ok("a", "16.1", ("trust on line 1", "md5 on line 2"))}, {}, 1)
    assert [(f.type, f.message) for f in found] == [
        (FindingType.AUTH_WEAK, "trust on line 1"),
        (FindingType.AUTH_WEAK, "md5 on line 2"),
    ]


def test_shared_instances_on_different_majors_are_inconsistent_live_over_declared():
    s = state(pg("a", "16"), pg("b", "16"), pg("c", "15", shared=False))
    assert health.findings(s, {}, {}, 1) == ()  # declared: both 16; the dedicated one does not count
    found = health.findings(s, {"a": ok("a", "16.2"), "b": ok("b", "17.0")}, {}, 1)
    assert ("version-inconsistent", "a") in types(found) and ("version-inconsistent", "b") in types(found)
    assert "a 16 (server), b 17 (server)" in found[-1].message
    s2 = state(pg("a", "16"), pg("b", "15"))
    assert types(health.findings(s2, {}, {}, 1)) == [("version-inconsistent", "a"), ("version-inconsistent", "b")]


def test_mariadb_majors_have_two_components():
    assert health.major(spec.Engine.MARIADB, "10.11.9") == "10.11"
    assert health.major(spec.Engine.POSTGRES, "16.2") == "16"
    assert health.major(spec.Engine.REDIS, "7.0.15") == "7"


def test_restart_backs_off_k_2k_4k():
    assert [n for n in range(1, 40) if health.restart_due(n, 3)] == [3, 6, 12, 24]
    assert not any(health.restart_due(n, None) for n in range(1, 10))


def test_restarts_only_running_containers_dbstate_manages():
    s = state(redis_instance("kv", "kv-db", extra="  policy: {restartAfterFailedProbes: 2}\n"))
    inst = s.instances[0]
    mine = live.Container("id1", "kv-db", inst.spec.image, "running", labels.container_labels(inst, None))
    changes = health.restarts(s, live.LiveState(ENGINE, (mine,)), {"kv": 2}, frozenset({"kv"}))
    assert [(c.action, c.target) for c in changes] == [(Action.RESTART, "kv-db")]
    assert health.restarts(s, live.LiveState(ENGINE, (mine,)), {"kv": 3}, frozenset({"kv"})) == ()
    assert health.restarts(s, live.LiveState(ENGINE, (mine,)), {"kv": 2}, frozenset()) == ()  # not probed now
    stranger = live.Container("id2", "kv-db", inst.spec.image, "running", {})
    assert health.restarts(s, live.LiveState(ENGINE, (stranger,)), {"kv": 2}, frozenset({"kv"})) == ()
    stopped = live.Container("id1", "kv-db", inst.spec.image, "exited", labels.container_labels(inst, None))
    assert health.restarts(s, live.LiveState(ENGINE, (stopped,)), {"kv": 2}, frozenset({"kv"})) == ()


def test_probe_address_prefers_a_network_that_is_not_internal():
    c = live.Container(
        "i",
        "x",
        "img",
        "running",
        networks=(live.Attachment("a-int", (), "10.1.0.2"), live.Attachment("b", (), "10.2.0.2")),
    )
    assert health.probe_address(c, frozenset({"a-int"})) == "10.2.0.2"
    assert health.probe_address(c) == "10.1.0.2"
    assert health.probe_address(live.Container("i", "x", "img", "running")) is None


# -- audit ------------------------------------------------------------------------------------------------------------


def test_version_meets_a_minimum_component_by_component():
    assert versions.at_least("16.2", "14") and versions.at_least("16.2", "16")
    assert not versions.at_least("10.6.3", "10.11") and versions.at_least("10.11.9", "10.11")


def test_live_names_follow_the_seed_patterns():
    assert audit.naming("postgres-postgres-1", spec.Engine.POSTGRES, None) is None
    assert audit.naming("backstage-db-1", spec.Engine.POSTGRES, None) is None
    assert audit.naming("supabase-db", spec.Engine.POSTGRES, None) is None
    assert audit.naming("legacy", spec.Engine.POSTGRES, None) is not None


def test_own_credentials_come_from_the_official_env_and_never_show():
    c = live.Container(
        "i", "old-pg", "postgres:14", "running", env={"POSTGRES_PASSWORD": SECRET, "POSTGRES_USER": "wiki"}
    )
    t = audit.own_credentials(c, spec.Engine.POSTGRES)
    assert (t.user, t.database) == ("wiki", "wiki") and t.password is not None and t.password.reveal() == SECRET
    assert SECRET not in repr(t) and SECRET not in repr(c)
    m = audit.own_credentials(live.Container("i", "m", "mariadb:11", "running", env={}), spec.Engine.MARIADB)
    assert (m.user, m.password) == ("root", None)


def test_image_version_reads_the_official_images_env():
    c = live.Container("i", "p", "postgres:16", "running", env={"PG_VERSION": "16.4-1.pgdg120+2"})
    assert audit.image_version(c) == "16.4"
    c = live.Container("i", "m", "mariadb:11", "running", env={"MARIADB_VERSION": "1:11.4.2+maria~ubu2404"})
    assert audit.image_version(c) == "11.4.2"


def kv_and_consumer() -> tuple[spec.DesiredState, live.Container]:
    """A declared redis `kv` used by a declared consumer `app`, and kv's running container on net-a."""
    s = state(redis_instance("kv", "kv-db"), consumer("app", "kv"))
    inst = s.instances[0]
    lab = labels.container_labels(inst, None)
    return s, live.Container(
        "1", "kv-db", inst.spec.image, "running", lab, (live.Attachment("net-a", ("kv",), "10.0.0.3"),)
    )


def test_orphan_criteria_and_env_references():
    s, kv = kv_and_consumer()
    app = live.Container(
        "2", "app", "app:1", "running", {}, (live.Attachment("net-a", (), "10.0.0.4"),), env={"DB_HOST": "kv"}
    )
    stray = live.Container(
        "3", "old-redis", "redis:6", "running", {}, (live.Attachment("net-a", (), "10.0.0.5"),), env={}
    )
    composed = live.Container("4", "cache-redis-1", "redis:7", "exited", {audit.COMPOSE_PROJECT: "cache"}, (), env={})
    observed = live.LiveState(ENGINE, (kv, app, stray, composed))
    probes = {"kv-db": ok("kv", "7.0.15"), "old-redis": ok("old-redis", "6.2.1")}
    conn = {("kv", "net-a"): ok("kv", "7.0.15")}
    report = audit.build(s, observed, (), probes, {}, conn)
    rows = {d.container: d for d in report.databases}
    assert set(rows) == {"kv-db", "old-redis", "cache-redis-1"}  # the app is no database
    assert rows["kv-db"].orphan_criteria == () and rows["kv-db"].consumers_env == ("app",)
    assert rows["kv-db"].consumers_declared == ("app",) and rows["kv-db"].version == "7.0.15"
    assert rows["old-redis"].orphan_criteria == (audit.NO_REFERENCE, audit.NOT_DECLARED, audit.NOT_MAPPED)
    assert rows["cache-redis-1"].orphan_criteria == (audit.NO_REFERENCE, audit.NOT_MAPPED)  # compose knows it
    assert rows["cache-redis-1"].health == "exited"
    assert [(c.consumer, c.instance, c.network, c.problem) for c in report.connections] == [
        ("app", "kv", "net-a", None)
    ]
    assert report.wrong
    # a server older than its declaration is the fourth criterion
    report = audit.build(s, observed, (), {"kv-db": ok("kv", "6.2.1")}, {}, conn)
    assert audit.VERSION_UNMET in {d.container: d for d in report.databases}["kv-db"].orphan_criteria


def test_a_connection_to_a_host_that_is_no_alias_is_reported():
    s, kv = kv_and_consumer()
    app = live.Container(
        "2", "app", "a:1", "running", {}, (live.Attachment("net-a", (), "10.0.0.4"),), env={"DB_HOST": "redis"}
    )
    (c,) = audit.connections(s, live.LiveState(ENGINE, (kv, app)), {("kv", "net-a"): ok("kv", "7.0.15")})
    assert c.problem == "DB_HOST names 'redis', which is no alias of kv-db on net-a"
    app2 = live.Container("2", "app", "a:1", "running", {}, (), env={"DB_HOST": "kv"})
    (c,) = audit.connections(s, live.LiveState(ENGINE, (kv, app2)), {})
    assert c.problem == "app shares no network with kv-db"
    app3 = live.Container(
        "2", "app", "a:1", "running", {}, (live.Attachment("net-a", (), "10.0.0.4"),), env={"DB_HOST": "kv"}
    )
    (c,) = audit.connections(s, live.LiveState(ENGINE, (kv, app3)), {("kv", "net-a"): down("kv")})
    assert c.problem == "kv-db does not answer on net-a: OperationalError: password authentication failed"


def test_version_mismatch_compares_majors_and_a_failed_probe_does_not_flip_it():
    """Redis compares the first number (7.2 declared, 7.0.15 reported: one major), MariaDB the first two; a probe
    that times out keeps what the same container's server last said, so the same servers give the same findings."""
    from controller.core import health as h

    assert not h.major_differs("7.2", "7.0.15", two_part=False)
    assert h.major_differs("10.6", "10.11.9", two_part=True) and not h.major_differs("10.11", "10.11.9", True)
    s = state(pg("a", "16", shared=False))
    mismatch = [("version-mismatch", "a")]
    assert types(health.findings(s, {"a": ok("a", "15.20")}, {}, 3)) == mismatch
    assert types(health.findings(s, {"a": down("a")}, {"a": 1}, 3, {"a": "15.20"})) == mismatch
    assert types(health.findings(s, {"a": down("a")}, {"a": 1}, 3)) == []
