"""The apply engine's scheduling on an in-memory runtime: order from `requires`, bounded concurrency, a failure
blocks only its dependents, every change gets an outcome. (The capability itself is shown on a real engine in
tests/test_apply_engine.py; this fake only serves these fast unit tests.)"""

from __future__ import annotations

import threading
import time
from collections.abc import Mapping, Sequence

from controller.core import errors
from controller.core.plan import Action, Change, Plan
from controller.engine import apply as applying


class FakeRuntime:
    def __init__(self, fail: set[str] = frozenset(), delay: float = 0.0) -> None:  # type: ignore[assignment]
        self.calls: list[tuple[str, str]] = []
        self.fail = fail
        self.delay = delay
        self.lock = threading.Lock()
        self.active = 0
        self.peak = 0

    def _call(self, op: str, target: str) -> None:
        with self.lock:
            self.active += 1
            self.peak = max(self.peak, self.active)
            self.calls.append((op, target))
        try:
            time.sleep(self.delay)
            if target in self.fail:
                raise errors.EngineTransient(f"{op} {target}: engine error 500")
        finally:
            with self.lock:
                self.active -= 1

    def create_network(self, name: str, driver: str, internal: bool, labels: Mapping[str, str]) -> None:
        self._call("create_network", name)

    def create_volume(self, name: str, driver: str, labels: Mapping[str, str]) -> None:
        self._call("create_volume", name)

    def create_container(
        self,
        name: str,
        image: str,
        env: Mapping[str, str],
        command: Sequence[str],
        labels: Mapping[str, str],
        networks: Mapping[str, Sequence[str]],
        volumes: Mapping[str, str],
        ports: Sequence[str],
        restart_policy: str,
    ) -> None:
        self._call("create_container", name)

    def start(self, name: str) -> None:
        self._call("start", name)

    def stop(self, name: str, timeout: int) -> None:
        self._call("stop", name)

    def rename(self, name: str, new_name: str) -> None:
        self._call("rename", f"{name}->{new_name}")

    def remove_container(self, name: str) -> None:
        self._call("remove", name)

    def connect(self, container: str, network: str, aliases: Sequence[str], reconnect: bool) -> None:
        self._call("connect", f"{container}@{network}")

    def disconnect(self, container: str, network: str) -> None:
        self._call("disconnect", f"{container}@{network}")


def net(name: str) -> Change:
    return Change(Action.CREATE, "Network", name, name, "r", {"driver": "bridge", "internal": False, "labels": {}})


def start(kind: str, name: str, requires: tuple[str, ...] = ()) -> Change:
    return Change(Action.START, kind, name, f"{name}-c", "r", {}, requires)


def test_order_follows_requires():
    rt = FakeRuntime()
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
    rt = FakeRuntime(fail={"pg-c"})
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
    rt = FakeRuntime(delay=0.05)
    p = Plan(tuple(start("DatabaseInstance", f"i{n}") for n in range(12)))
    applying.apply(p, rt, parallel=3)
    assert rt.peak == 3


def test_same_resource_steps_run_in_plan_order():
    rt = FakeRuntime(delay=0.01)
    leftover = Change(Action.REMOVE, "DatabaseInstance", "pg", "pg-c.dbstate-old", "r", {"leftover": True})
    p = Plan(
        (
            leftover,
            start("DatabaseInstance", "pg"),
            Change(Action.CONNECT, "DatabaseInstance", "pg", "pg-c", "r", {"network": "edge", "aliases": []}),
        )
    )
    applying.apply(p, rt, parallel=4)
    assert rt.calls == [("remove", "pg-c.dbstate-old"), ("start", "pg-c"), ("connect", "pg-c@edge")]


def test_recreate_stops_before_anything_else():
    from tests.core.test_diff import S

    inst = S.instances[0]
    rt = FakeRuntime()
    change = Change(Action.RECREATE, inst.kind, inst.metadata.name, inst.container_name, "r", {"labels": {}}, (), inst)
    applying.apply(Plan((change,)), rt)
    assert [c[0] for c in rt.calls] == ["stop", "rename", "create_container", "start", "remove"]
    assert rt.calls[-1] == ("remove", "kv-a-db.dbstate-old")
