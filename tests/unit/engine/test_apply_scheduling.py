"""The apply engine's scheduling on an in-memory runtime: order from `requires`, bounded concurrency, a failure
blocks only its dependents, every change gets an outcome. (The capability itself is shown on a real engine in
tests/e2e/test_apply.py; this fake only serves these fast unit tests.)"""

from __future__ import annotations

from controller.core.plan import Action, Attach, Change, ContainerSpec, NetworkSpec, Plan, Remove, Restart
from controller.engine import apply as applying
from tests.fakes import RecordingRuntime


def net(name: str) -> Change:
    return Change(Action.CREATE, "Network", name, name, "r", NetworkSpec("bridge", False, {}))


def start(kind: str, name: str, requires: tuple[str, ...] = ()) -> Change:
    return Change(Action.START, kind, name, f"{name}-c", "r", None, requires)


def test_order_follows_requires():
    rt = RecordingRuntime()
    p = Plan(
        (
            net("edge"),
            start("DatabaseInstance", "pg", ("Network/edge",)),
            start("Consumer", "app", ("Network/edge", "DatabaseInstance/pg")),
        )
    )
    outcomes = applying.apply(p, rt, parallel=4)
    assert [o.status for o in outcomes] == ["ok", "ok", "ok"]
    assert rt.calls == [("create_network", "edge"), ("start", "pg-c"), ("start", "app-c")]


def test_failure_blocks_only_dependents():
    rt = RecordingRuntime(fail={"pg-c"})
    p = Plan(
        (
            start("DatabaseInstance", "pg"),
            start("DatabaseInstance", "kv"),
            start("Consumer", "app", ("DatabaseInstance/pg",)),
            start("Consumer", "other", ("DatabaseInstance/kv",)),
        )
    )
    outcomes = {o.change.name: o for o in applying.apply(p, rt, parallel=2)}
    assert outcomes["pg"].status == "failed" and "engine error 500" in outcomes["pg"].message
    assert outcomes["app"].status == "skipped" and "blocked: start pg-c" in outcomes["app"].message
    assert outcomes["kv"].status == "ok" and outcomes["other"].status == "ok"


def test_concurrency_is_bounded():
    rt = RecordingRuntime(delay=0.05)
    p = Plan(tuple(start("DatabaseInstance", f"i{n}") for n in range(12)))
    applying.apply(p, rt, parallel=3)
    assert rt.peak == 3


def test_same_resource_steps_run_in_plan_order():
    rt = RecordingRuntime(delay=0.01)
    leftover = Change(Action.REMOVE, "DatabaseInstance", "pg", "pg-c.dbstate-old", "r", Remove(leftover=True))
    p = Plan(
        (
            leftover,
            start("DatabaseInstance", "pg"),
            Change(Action.CONNECT, "DatabaseInstance", "pg", "pg-c", "r", Attach("edge", ())),
        )
    )
    applying.apply(p, rt, parallel=4)
    assert rt.calls == [("remove", "pg-c.dbstate-old"), ("start", "pg-c"), ("connect", "pg-c@edge")]


def test_recreate_stops_before_anything_else():
    from tests.unit.core.test_diff import S

    inst = S.instances[0]
    rt = RecordingRuntime()
    change = Change(
        Action.RECREATE,
        inst.kind,
        inst.metadata.name,
        inst.container_name,
        "r",
        ContainerSpec("img", {}, {}, {}),
        (),
        inst,
    )
    applying.apply(Plan((change,)), rt)
    assert [c[0] for c in rt.calls] == ["stop", "rename", "create_container", "start", "remove"]
    assert rt.calls[-1] == ("remove", "kv-a-db.dbstate-old")


class Guard:
    """A DataGuard that records what it was asked, and fails for the targets in `fail`."""

    def __init__(self, fail: set[str] | None = None) -> None:
        self.asked: list[str] = []
        self.fail = fail or set()

    def before(self, c: Change) -> None:
        from controller.core import errors

        self.asked.append(c.target)
        if c.target in self.fail:
            raise errors.BackupError(f"no backup before the recreate, so {c.target} is not changed: disk full")

    def after(self, c: Change) -> None:
        self.asked.append(f"after {c.target}")

    def upgrade(self, c: Change) -> None:
        raise AssertionError("not in these tests")


def recreate(name: str) -> Change:
    """A recreate of a database that asks for a backup first; as a restart (no declaration to create from needed)."""
    return Change(Action.RESTART, "DatabaseInstance", name, f"{name}-c", "r", Restart(backup_first=True))


def test_a_change_that_asks_for_a_backup_is_not_run_without_one():
    rt = RecordingRuntime()
    p = Plan((recreate("pg"), start("Consumer", "app", ("DatabaseInstance/pg",))))
    outcomes = {o.change.name: o for o in applying.apply(p, rt)}
    assert outcomes["pg"].status == "failed" and "no backup" in outcomes["pg"].message
    assert outcomes["app"].status == "skipped"
    assert rt.calls == []  # nothing stopped


def test_a_failed_backup_blocks_the_change_and_its_dependents():
    rt = RecordingRuntime()
    guard = Guard(fail={"pg-c"})
    p = Plan((recreate("pg"), recreate("kv"), start("Consumer", "app", ("DatabaseInstance/pg",))))
    outcomes = {o.change.name: o for o in applying.apply(p, rt, guard=guard)}
    assert outcomes["pg"].status == "failed" and "disk full" in outcomes["pg"].message
    assert outcomes["app"].status == "skipped"
    assert outcomes["kv"].status == "ok", outcomes["kv"].message
    assert sorted(guard.asked) == ["kv-c", "pg-c"]
    assert all(target != "pg-c" for _op, target in rt.calls)  # the one without a backup was never stopped
    assert rt.calls == [("stop", "kv-c"), ("start", "kv-c")]
