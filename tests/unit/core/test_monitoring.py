"""spec.monitoring: which exporter each instance gets (image, network, login, environment), and the diff's rules for
them: made once its instance can be, recreated when its endpoint or login changes, removed (alone) when monitoring is
turned off, left alone while its instance's declaration has errors. The same against a real engine and real
exporters: tests/e2e/test_monitoring.py."""

from __future__ import annotations

import base64
import dataclasses
import hashlib
import hmac
import json
import re

from controller.adapters import desired
from controller.core import databases, diff, labels, live, monitoring, spec, suspension
from controller.core.databases import postgres
from controller.core.plan import Action, FindingType
from controller.core.secrets import reveal
from tests.helpers import ENV, network, redis_instance

PW = "pw-of-the-monitoring-tests"
ON = {"DBSTATE_MONITORING": "on"}


def load(text: str, **variables: str) -> spec.DesiredState:
    loaded = desired.load_text(text, "t.yaml", {**ENV, "TEST_REDIS_PASSWORD": PW, **ON, **variables})
    assert loaded.errors == (), [str(e) for e in loaded.errors]
    return loaded.state


TEXT = "---\n".join([network("net-a"), redis_instance("kv-a", "kv-a-db")])


def running(resource: spec.Workload) -> live.Container:
    return live.Container(
        id=resource.container_name * 2,
        name=resource.container_name,
        image=resource.spec.image or "",
        state="running",
        labels=labels.container_labels(resource, None),
        networks=tuple(live.Attachment(a.name, a.aliases) for a in resource.spec.networks),
    )


def engine_with(*containers: live.Container) -> live.LiveState:
    return live.LiveState(
        live.EngineInfo("unix:///x", "20.10", "1.41"),
        containers=containers,
        networks=(live.Network("n1", "net-a", "bridge", False, {}),),
    )


def test_every_instance_gets_its_engines_standard_exporter_by_default() -> None:
    (exp,) = load(TEXT).exporters
    assert exp.container_name == "kv-a-db-exporter" and exp.spec.instance == "kv-a"
    assert exp.spec.image == databases.of("redis").exporter.image  # type: ignore[union-attr]
    assert [a.name for a in exp.spec.networks] == ["net-a"] and exp.spec.networks[0].aliases == ()
    assert exp.spec.port == 9121 and exp.spec.user == "dbstate_monitor"
    env = {k: reveal(v) for k, v in exp.spec.env.items()}
    assert env["REDIS_ADDR"] == "redis://kv-a-db:6379" and env["REDIS_USER"] == "dbstate_monitor"
    assert env["REDIS_PASSWORD"] != PW  # its own login, not the server's


def test_a_site_names_its_mirror_or_turns_the_default_off_and_an_instance_can_say_otherwise() -> None:
    (exp,) = load(TEXT, DBSTATE_REDIS_EXPORTER_IMAGE="registry.local/redis-exporter:1").exporters
    assert exp.spec.image == "registry.local/redis-exporter:1"
    assert load(TEXT, DBSTATE_MONITORING="off").exporters == ()
    explicit = TEXT.replace("  auth:", "  monitoring: {image: mine/exporter:2, user: watcher}\n  auth:")
    (exp,) = load(explicit, DBSTATE_MONITORING="off").exporters
    assert exp.spec.image == "mine/exporter:2" and exp.spec.user == "watcher"
    assert load(TEXT.replace("  auth:", "  monitoring: false\n  auth:")).exporters == ()


def test_the_derived_password_follows_the_declared_one_and_no_password_means_no_login() -> None:
    (a,) = load(TEXT).exporters
    (b,) = desired.load_text(TEXT, "t.yaml", {**ENV, **ON, "TEST_REDIS_PASSWORD": PW + "2"}).state.exporters
    assert a.spec.password is not None and b.spec.password is not None
    assert a.spec.password.reveal() != b.spec.password.reveal()
    assert spec.spec_hash(a) != spec.spec_hash(b)  # a password change recreates the exporter
    open_kv = TEXT.replace('  auth: {method: password, password: "${TEST_REDIS_PASSWORD}"}', "  auth: {method: none}")
    (c,) = load(open_kv).exporters
    assert c.spec.user is None and c.spec.password is None and "REDIS_PASSWORD" not in c.spec.env


def test_monitoring_never_changes_the_servers_own_spec_hash() -> None:
    on, off = load(TEXT), load(TEXT.replace("  auth:", "  monitoring: false\n  auth:"))
    assert spec.spec_hash(on.instances[0]) == spec.spec_hash(off.instances[0])  # no database is recreated for it


def test_the_exporter_is_created_after_its_instance_and_converges() -> None:
    s = load(TEXT)
    first = diff.diff(s, engine_with())
    keys = [(c.kind, c.action) for c in first.changes if c.kind != spec.Kind.NETWORK]
    assert keys == [(spec.Kind.DATABASE_INSTANCE, Action.CREATE), (spec.Kind.EXPORTER, Action.CREATE)]
    made = next(c for c in first.changes if c.kind == spec.Kind.EXPORTER)
    assert "DatabaseInstance/kv-a" in made.requires
    shown = json.dumps([(c.reason, c.payload.to_json()) for c in first.changes if c.payload is not None])
    assert s.exporters[0].spec.password is not None
    assert PW not in shown and s.exporters[0].spec.password.reveal() not in shown and "REDIS_PASSWORD" in shown
    done = diff.diff(s, engine_with(running(s.instances[0]), running(s.exporters[0])))
    assert done.changes == () and done.findings == ()


def test_a_changed_endpoint_recreates_the_exporter_only() -> None:
    s = load(TEXT)
    moved = load(TEXT.replace("containerName: kv-a-db", "containerName: kv-a-db2"))
    old = running(s.exporters[0])
    p = diff.diff(moved, engine_with(running(moved.instances[0]), dataclasses.replace(old, name="kv-a-db2-exporter")))
    assert [(c.kind, c.action) for c in p.changes] == [(spec.Kind.EXPORTER, Action.RECREATE)]


def test_turning_monitoring_off_removes_the_exporter_and_nothing_else() -> None:
    s = load(TEXT)
    off = load(TEXT.replace("  auth:", "  monitoring: false\n  auth:"))
    p = diff.diff(off, engine_with(running(s.instances[0]), running(s.exporters[0])))
    assert [(c.kind, c.action, c.target) for c in p.changes] == [
        (spec.Kind.EXPORTER, Action.REMOVE, "kv-a-db-exporter")
    ]
    assert p.findings == ()


def test_an_exporter_is_left_alone_while_its_instance_is_held_back_or_blocked() -> None:
    s = load(TEXT)
    exporter = running(s.exporters[0])
    held = dataclasses.replace(
        s, instances=(), exporters=(), held_back=frozenset({("DatabaseInstance", "kv-a")}), complete=False
    )
    p = diff.diff(held, engine_with(exporter), prune=True)
    assert p.changes == () and not [f for f in p.findings if f.type is FindingType.ORPHAN]
    # a container of another maker holds the instance's name: the instance is a blocking finding, no exporter made
    stranger = dataclasses.replace(running(s.instances[0]), labels={})
    blocked = diff.diff(s, engine_with(stranger))
    assert [f.type for f in blocked.findings] == [FindingType.NAME_CONFLICT]
    assert not [c for c in blocked.changes if c.kind == spec.Kind.EXPORTER]


def test_an_exporter_whose_instance_is_no_longer_declared_is_an_orphan_like_it() -> None:
    s = load(TEXT)
    p = diff.diff(load(network("net-a")), engine_with(running(s.instances[0]), running(s.exporters[0])))
    orphans = sorted((f.kind, f.name) for f in p.findings if f.type is FindingType.ORPHAN)
    assert orphans == [("DatabaseInstance", "kv-a"), ("Exporter", "kv-a")]
    assert p.changes == ()


def test_the_login_commands_keep_the_password_off_the_command_line() -> None:
    for engine in ("postgres", "mariadb", "redis", "valkey"):
        db = databases.of(engine)
        argv, stdin = db.monitor_login(databases.Login("root", {}), "dbstate_monitor", "p'w\"\\x")
        assert not any("p'w" in a for a in argv), engine
        assert b"dbstate_monitor" in stdin
    assert monitoring.target(load(TEXT).exporters[0]) == "kv-a-db-exporter:9121"


def test_a_redis_that_restarts_gets_its_exporter_recreated_after_it_a_postgres_does_not() -> None:
    s = load(TEXT)
    stopped = dataclasses.replace(running(s.instances[0]), state="exited")
    p = diff.diff(s, engine_with(stopped, running(s.exporters[0])))
    assert [(c.kind, c.action) for c in p.changes] == [
        (spec.Kind.DATABASE_INSTANCE, Action.START),
        (spec.Kind.EXPORTER, Action.RECREATE),
    ]
    assert "DatabaseInstance/kv-a" in p.changes[1].requires  # after the server is up again
    assert databases.of("postgres").monitor_login_persists and databases.of("mariadb").monitor_login_persists


def test_a_suspended_instance_gets_no_exporter_login_until_resumed() -> None:
    s = load(TEXT)
    p = diff.diff(s, engine_with(running(s.instances[0])))
    assert [c.kind for c in p.changes] == [spec.Kind.EXPORTER]
    held = suspension.hold(p, {"DatabaseInstance/kv-a": "by ops: maintenance"})
    assert held.changes == ()
    assert "changes held: create" in held.notes[-1].message


def test_the_postgres_login_is_set_as_a_scram_verifier_that_rfc_7677s_exchange_accepts() -> None:
    # RFC 7677's SCRAM-SHA-256 example: the client's proof and the server's signature must check against the keys
    salt = base64.b64decode("W22ZaJ0SNY7soEsUEjb6gQ==")
    verifier = postgres.scram_verifier("pencil", salt)
    head, stored_b64, server_b64 = re.fullmatch(r"SCRAM-SHA-256\$(4096:[^$]+)\$([^:]+):(.+)", verifier).groups()  # type: ignore[union-attr]
    assert head == "4096:W22ZaJ0SNY7soEsUEjb6gQ=="
    nonce = "rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0"
    auth = f"n=user,r=rOprNGfwEbeRWgbNEkqO,r={nonce},s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096,c=biws,r={nonce}".encode()
    server_sig = hmac.new(base64.b64decode(server_b64), auth, hashlib.sha256).digest()
    assert base64.b64encode(server_sig).decode() == "6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4="
    stored = base64.b64decode(stored_b64)
    proof = base64.b64decode("dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=")
    client_key = bytes(a ^ b for a, b in zip(proof, hmac.new(stored, auth, hashlib.sha256).digest(), strict=True))
    assert hashlib.sha256(client_key).digest() == stored
    _, stdin = databases.of("postgres").monitor_login(databases.Login("app", {}), "dbstate_monitor", "pencil")
    assert b"pencil" not in stdin and b"PASSWORD 'SCRAM-SHA-256$4096:" in stdin
