"""The reconciler's pass on the fakes of its ports: converge, defer what backs off, record every outcome and status,
probe on its interval, and never recreate a lost volume. (The same passes on the real engine: tests/e2e/.)"""

from __future__ import annotations

import pytest

from controller.core import errors, live
from controller.core.health import ProbeResult
from controller.core.options import PassOptions, ProbeOptions
from controller.core.plan import Action, FindingType
from controller.engine.queue import Backoff
from controller.engine.reconciler import Reconciler, Request
from tests.fakes import FakeClock, FakeEngine, FakeProber, MemoryHistory, TextSource
from tests.helpers import NETWORK, SECRET, VOLUME, consumer_yaml, instance_yaml

STATE = "---\n".join([NETWORK, VOLUME, instance_yaml()])
VARS = {"PG_PASSWORD": SECRET}


def reconciler(
    text: str = STATE,
    *,
    probe: ProbeOptions | None = None,
    prober: FakeProber | None = None,
    engine: FakeEngine | None = None,
    history: MemoryHistory | None = None,
    clock: FakeClock | None = None,
) -> tuple[Reconciler, FakeEngine, MemoryHistory]:
    engine = engine or FakeEngine()
    history = history or MemoryHistory()
    r = Reconciler(
        TextSource(text, VARS, commit="c0ffee"),
        engine,
        engine,
        history,
        PassOptions("run", probe=probe),
        prober=prober,
        clock=clock or FakeClock(),
    )
    return r, engine, history


def test_a_pass_converges_an_empty_engine_and_the_next_is_a_no_op():
    r, engine, history = reconciler()
    report = r.reconcile(Request("start"))
    assert [(o.change.action, o.change.kind, o.status) for o in report.outcomes] == [
        (Action.CREATE, "Network", "ok"),
        (Action.CREATE, "Volume", "ok"),
        (Action.CREATE, "DatabaseInstance", "ok"),
    ]
    assert engine.containers["pg-db"].state == "running"
    assert engine.containers["pg-db"].networks == {"edge": ("pg",)}
    r.record_status(report, {})
    assert {row.key: row.status for row in history.resources} == {
        "DatabaseInstance/pg": "in-sync",
        "Network/edge": "in-sync",
        "Volume/pg_data": "in-sync",
    }
    again = r.reconcile(Request("resync"))
    assert again.outcomes == () and again.drifted == frozenset()
    assert again.in_sync_keys == {"DatabaseInstance/pg", "Network/edge", "Volume/pg_data"}


def test_every_outcome_is_recorded_with_its_pass_and_revision():
    r, _, history = reconciler()
    report = r.reconcile(Request("start"))
    (pass_id,) = history.passes
    assert history.passes[pass_id]["revision"] == "c0ffee" and history.passes[pass_id]["command"] == "run"
    # recorded as each finishes (the network and the volume run at once), so compare without order
    assert sorted(o.change.key for o in history.outcomes[pass_id]) == sorted(o.change.key for o in report.outcomes)


def test_drift_is_repaired_and_reported():
    r, engine, _ = reconciler()
    r.reconcile(Request("start"))
    engine.kill("pg-db")
    report = r.reconcile(Request("docker container die pg-db"))
    assert [(o.change.action, o.status) for o in report.outcomes] == [(Action.START, "ok")]
    assert report.drifted == {"DatabaseInstance/pg"} and report.trigger == "docker container die pg-db"
    assert engine.containers["pg-db"].state == "running"


def test_changes_of_a_key_in_backoff_are_deferred_and_the_rest_applied():
    text = "---\n".join([STATE, instance_yaml("kv", "kv-db", volume=None)])
    r, engine, _ = reconciler(text)
    report = r.reconcile(Request("start", deferred=lambda key: key == "DatabaseInstance/kv"))
    assert report.pending == ("DatabaseInstance/kv",)
    assert "kv-db" not in engine.containers and engine.containers["pg-db"].state == "running"


def test_a_failed_change_is_failing_with_attempts_and_next_retry_in_the_status():
    clock = FakeClock()
    r, engine, history = reconciler(clock=clock)
    engine.fail_next("create_container", errors.EnginePermanent("the engine refused"))
    report = r.reconcile(Request("start"))
    failed = [o for o in report.outcomes if o.status == "failed"]
    assert [o.change.key for o in failed] == ["DatabaseInstance/pg"]
    due = clock.monotonic() + 4.0
    r.record_status(report, {"DatabaseInstance/pg": Backoff(3, due, failed[0].message)})
    row = {row.key: row for row in history.resources}["DatabaseInstance/pg"]
    assert (row.status, row.attempts) == ("failing", 3)
    assert row.next_retry == pytest.approx(clock.time() + 4.0)
    assert "the engine refused" in row.message


def test_an_invalid_resource_is_held_back_and_never_created():
    broken = instance_yaml("kv", "kv-db", volume=None).replace("engine: postgres", "engine: nosuchdb")
    r, engine, history = reconciler("---\n".join([STATE, broken]))
    report = r.reconcile(Request("start"))
    assert report.errors == 1 and "kv-db" not in engine.containers
    r.record_status(report, {})
    assert {row.key: row.status for row in history.resources}["DatabaseInstance/kv"] == "invalid"


def test_a_volume_seen_before_and_gone_is_never_recreated_empty():
    r, engine, history = reconciler()
    r.reconcile(Request("start"))
    assert "pg_data" in history.seen_volumes()
    engine.remove_container("pg-db")
    del engine.volumes["pg_data"]
    report = r.reconcile(Request("docker volume destroy pg_data"))
    assert report.outcomes == () and "pg-db" not in engine.containers and "pg_data" not in engine.volumes
    assert report.findings.get(FindingType.VOLUME_LOST.value) == 2  # the volume, and the instance that needs it
    history.ack("volume-lost", "pg_data")
    report = r.reconcile(Request("ack"))
    assert {o.change.kind for o in report.outcomes} == {"Volume", "DatabaseInstance"}


def test_probes_run_on_the_first_pass_then_on_their_interval():
    clock = FakeClock()
    prober = FakeProber()
    r, _, _ = reconciler(probe=ProbeOptions(interval=30.0), prober=prober, clock=clock)
    assert r.probe_due_in() == 0.0
    r.reconcile(Request("start"))
    assert prober.probed == ["pg"]
    clock.advance(10)
    r.reconcile(Request("event"))
    assert prober.probed == ["pg"] and r.probe_due_in() == pytest.approx(20.0)
    clock.advance(20)
    r.reconcile(Request("probe"))
    assert prober.probed == ["pg", "pg"]


def test_unhealthy_after_n_failed_probes_and_down_in_the_report():
    prober = FakeProber(lambda name: ProbeResult(name, "10.0.0.2", False, error="connection refused"))
    r, _, _ = reconciler(probe=ProbeOptions(unhealthy_after=2), prober=prober)
    first = r.reconcile(Request("start"))
    # the pass created the instance: its probe (taken before) is dropped, and it is not yet unhealthy
    assert FindingType.UNHEALTHY.value not in first.findings
    second = r.reconcile(Request("probe"))
    assert second.findings[FindingType.UNHEALTHY.value] == 1
    assert second.health == {"pg": 0} and not second.probes["pg"].reachable


def test_a_consumer_waits_for_its_instance():
    text = "---\n".join([STATE, consumer_yaml()])
    r, engine, _ = reconciler(text)
    report = r.reconcile(Request("start"))
    assert FindingType.MISSING_CONSUMER.value in report.findings  # image: null, managed elsewhere
    assert ("create_container", "app") not in engine.calls


def test_the_secrets_of_the_last_desired_state_are_known_to_the_scrubber():
    r, _, _ = reconciler()
    assert r.secrets == frozenset()
    r.reconcile(Request("start"))
    assert SECRET in r.secrets


def test_a_volume_removed_after_the_plan_is_never_given_a_container():
    r, engine, _ = reconciler()
    r.reconcile(Request("start"))
    engine.remove_container("pg-db")
    result = r.plan()  # the plan sees the volume...
    del engine.volumes["pg_data"]  # ...which goes before the change runs
    (outcome,) = r.apply(result)
    assert outcome.status == "failed" and "volume pg_data is gone" in outcome.message
    assert "pg-db" not in engine.containers and "pg_data" not in engine.volumes
    again = r.reconcile(Request("retry"))
    assert again.outcomes == () and again.findings[FindingType.VOLUME_LOST.value] == 2


class RacingEngine(FakeEngine):
    """`docker volume rm` lands between dbstate's check of the volume and its create: Docker then makes a new, empty
    volume of the same name for the new container."""

    def __init__(self) -> None:
        super().__init__()
        self.race = False

    def create_container(
        self, name, image, env, command, labels, networks, volumes, ports, restart_policy, read_only=(), secrets=()
    ):  # type: ignore[no-untyped-def]
        if self.race:
            for v in volumes:
                del self.volumes[v]
        super().create_container(name, image, env, command, labels, networks, volumes, ports, restart_policy)


def test_a_container_docker_gave_a_new_empty_volume_is_removed_before_it_starts():
    engine = RacingEngine()
    r, _, _ = reconciler(engine=engine)
    r.reconcile(Request("start"))
    first_volume = engine.volumes["pg_data"].identity
    engine.remove_container("pg-db")
    engine.calls.clear()
    engine.race = True
    report = r.reconcile(Request("docker container destroy pg-db"))
    (outcome,) = report.outcomes
    assert outcome.status == "failed" and "Docker made a new, empty one" in outcome.message
    assert [c[0] for c in engine.calls] == ["create_container", "remove"]  # never started
    assert "pg-db" not in engine.containers and engine.volumes["pg_data"].identity != first_volume
    engine.race = False
    again = r.reconcile(Request("retry"))  # the new volume is not the one seen: lost, nothing starts on it
    assert again.outcomes == () and again.findings[FindingType.VOLUME_LOST.value] == 2
    assert "pg-db" not in engine.containers


def test_an_acknowledged_replacement_without_labels_is_accepted_and_used():
    """Docker's own empty volume (no labels) replaced the one seen: lost until acknowledged, then it is the volume
    remembered, and the instance starts on it (the operator said so)."""
    r, engine, history = reconciler()
    r.reconcile(Request("start"))
    engine.remove_container("pg-db")
    engine.volumes["pg_data"] = live.Volume("pg_data", "local", {})  # made again, empty, unlabelled
    lost = r.reconcile(Request("docker volume destroy pg_data"))
    assert lost.outcomes == () and lost.findings[FindingType.VOLUME_LOST.value] == 2
    history.ack("volume-lost", "pg_data")
    accepted = r.reconcile(Request("ack"))
    assert [(o.change.kind, o.status) for o in accepted.outcomes] == [("DatabaseInstance", "ok")]
    again = r.reconcile(Request("resync"))  # and it stays accepted once the acknowledgement is consumed
    assert again.outcomes == () and FindingType.VOLUME_LOST.value not in again.findings


def test_a_declared_database_in_name_conflict_is_still_probed_and_reported_never_touched():
    """Undeclared is not ignored: somebody else's container of the declared name is probed (read-only); when it stops
    answering, the instance is unhealthy; dbstate neither starts nor restarts it."""
    from tests.fakes import _Container

    prober = FakeProber(lambda name: ProbeResult(name, "10.0.0.2", False, error="connection refused"))
    engine = FakeEngine()
    engine.containers["pg-db"] = _Container("pg-db", "postgres:16-alpine", {}, {"net-a": ()}, {}, state="exited")
    r, _, _ = reconciler(probe=ProbeOptions(unhealthy_after=1), prober=prober, engine=engine)
    report = r.reconcile(Request("start"))
    assert prober.probed == ["pg"]
    assert report.findings[FindingType.NAME_CONFLICT.value] == 1 and report.findings[FindingType.UNHEALTHY.value] == 1
    assert not [call for call in engine.calls if call[1] == "pg-db"]


def test_a_suspended_instance_is_watched_and_reported_but_never_changed():
    r, engine, history = reconciler()
    r.reconcile(Request("start"))
    engine.kill("pg-db")
    history.suspend("DatabaseInstance/pg", "dba@host", "manual upgrade to 17")
    report = r.reconcile(Request("event"))
    r.record_status(report, {})
    assert engine.containers["pg-db"].state == "exited"  # not started while a human works on it
    [row] = [row for row in history.resources if row.key == "DatabaseInstance/pg"]
    assert row.status == "suspended" and "by dba@host: manual upgrade to 17" in row.message
    assert "start" in row.message  # the change it holds back is said
    assert report.outcomes == ()
    history.suspended.clear()  # dbstate resume
    r.reconcile(Request("event"))
    assert engine.containers["pg-db"].state == "running"


def test_an_instance_a_job_of_the_controller_works_on_is_held_out_of_passes_while_the_others_converge():
    r, engine, history = reconciler(STATE + "---\n" + instance_yaml("other", "other-db", volume=None))
    r.reconcile(Request("start"))
    engine.kill("pg-db")
    engine.kill("other-db")
    with r.holding_out("DatabaseInstance/pg", "job 7: restore asked by dba@host"):
        report = r.reconcile(Request("event"))
        r.record_status(report, {})
        assert engine.containers["pg-db"].state == "exited"  # the restore stopped it: not started halfway
        assert engine.containers["other-db"].state == "running"  # the others are repaired meanwhile
        [row] = [row for row in history.resources if row.key == "DatabaseInstance/pg"]
        assert "held for job 7: restore asked by dba@host" in row.message and "start" in row.message
    assert r.held_out == {}
    r.reconcile(Request("job 7 ended"))
    assert engine.containers["pg-db"].state == "running"


def test_policy_suspended_in_the_declaration_holds_it_too():
    r, engine, history = reconciler(STATE.replace("  auth:", "  policy: {suspended: true}\n  auth:"))
    r.record_status(r.reconcile(Request("start")), {})
    assert "pg-db" not in engine.containers  # not even created
    assert [row.status for row in history.resources if row.key == "DatabaseInstance/pg"] == ["suspended"]


def test_a_failed_dump_restore_upgrade_is_not_retried_by_run_until_the_declaration_changes():
    r, engine, _history = reconciler()
    r.reconcile(Request("start"))
    upgraded = instance_yaml(
        image="postgres:17-alpine", version="17", volume="pg_data_v17", extra="  policy: {upgrade: dump-restore}\n"
    )
    r.source.text = "---\n".join([NETWORK, VOLUME, VOLUME.replace("pg_data", "pg_data_v17"), upgraded])  # type: ignore[attr-defined]
    first = r.reconcile(Request("commit"))
    tried = [o for o in first.outcomes if o.change.action is Action.UPGRADE]
    assert [o.status for o in tried] == ["failed"]  # no backup directory in this reconciler: nothing is touched
    assert engine.containers["pg-db"].state == "running"
    again = r.reconcile(Request("resync"))
    assert [o.change.action for o in again.outcomes] == []
    held = [f for f in r.last.plan.findings if f.type is FindingType.MAJOR_UPGRADE]  # type: ignore[union-attr]
    assert len(held) == 1 and "not retried" in held[0].message
    # a new declaration is tried again
    r.source.text = r.source.text.replace("POSTGRES_USER: app", "POSTGRES_USER: app\n    TZ: UTC")  # type: ignore[attr-defined]
    third = r.reconcile(Request("commit"))
    assert [o.change.action for o in third.outcomes if o.change.kind == "DatabaseInstance"] == [Action.UPGRADE]
