"""Which scheduled backups are due (the backups themselves run against real servers in tests/e2e/test_backup.py;
their metrics are in tests/unit/adapters/test_prometheus.py)."""

from __future__ import annotations

from controller.core import live, spec
from controller.core.dumps import Manifest
from controller.engine import backing

HOUR = 3600.0


def inst(name: str, policy: dict[str, object]) -> spec.DatabaseInstance:
    return spec.DatabaseInstance.model_validate(
        {
            "apiVersion": "dbstate.io/v1",
            "kind": "DatabaseInstance",
            "metadata": {"name": name},
            "spec": {
                "engine": "redis",
                "version": "7",
                "image": "redis:7.0",
                "containerName": f"{name}-db",
                "networks": [{"name": "n"}],
                "auth": {"method": "none"},
                "policy": policy,
            },
        }
    )


def manifest(instance: str, finished: float) -> Manifest:
    return Manifest(
        f"{instance}-x",
        instance,
        "redis",
        "redis:7.0",
        "7.0",
        None,
        "f",
        "rdb.gz",
        1,
        1,
        "0" * 64,
        finished - 1,
        finished,
        {},
    )


class Store:
    def __init__(self, taken: list[Manifest]) -> None:
        self.taken = taken

    def manifests(self, instance: str | None = None) -> list[Manifest]:
        return [m for m in self.taken if instance in (None, m.instance)]


def running(*names: str, state: str = "running") -> live.LiveState:
    return live.LiveState(
        live.EngineInfo("h", "1", "1.41"),
        tuple(live.Container(f"id-{n}", f"{n}-db", "redis:7.0", state) for n in names),
        (),
        (),
    )


def test_a_backup_is_due_when_its_schedule_has_passed_since_the_newest_one() -> None:
    now = 100 * HOUR
    instances = [
        inst("fresh", {"backup": {"schedule": "24h"}}),  # backed up 1 h ago
        inst("old", {"backup": {"schedule": "24h"}}),  # 25 h ago
        inst("never", {"backup": {"schedule": "1h"}}),  # no backup yet
        inst("unscheduled", {}),
        inst("suspended", {"backup": {"schedule": "1h"}, "suspended": True}),
    ]
    store = Store([manifest("fresh", now - HOUR), manifest("old", now - 25 * HOUR)])
    observed = running("fresh", "old", "never", "unscheduled", "suspended")
    due = backing.due(instances, observed, store, now)  # type: ignore[arg-type]
    assert [s.name for s in due] == ["old", "never"]
    assert [s.container for s in due] == ["old-db", "never-db"]


def test_a_stopped_or_missing_server_is_not_due() -> None:
    instances = [inst("a", {"backup": {"schedule": "1h"}}), inst("b", {"backup": {"schedule": "1h"}})]
    assert backing.due(instances, running("a", state="exited"), Store([]), 0.0) == []  # type: ignore[arg-type]


def test_a_schedule_is_a_duration_of_a_minute_or_more() -> None:
    import pydantic
    import pytest

    assert spec.duration_seconds("7d") == 7 * 86400
    for bad in ("10s", "soon", "24"):
        with pytest.raises(pydantic.ValidationError):
            inst("x", {"backup": {"schedule": bad}})


def test_a_verification_is_due_when_the_newest_verified_backup_is_older_than_policy_backup_verify() -> None:
    now = 100 * HOUR
    instances = [
        inst("fresh", {"backup": {"verify": "24h"}}),  # verified 2 h ago; a newer backup since needs no check yet
        inst("stale", {"backup": {"verify": "24h"}}),  # verified 30 h ago, a new backup since: verify that one
        inst("never", {"backup": {"verify": "24h"}}),  # nothing verified yet
        inst("done", {"backup": {"verify": "24h"}}),  # its newest backup is verified already (30 h ago): none new
        inst("off", {}),
        inst("suspended", {"backup": {"verify": "1h"}, "suspended": True}),
    ]
    store = Store(
        [
            manifest("fresh", now - 3 * HOUR).with_verified(now - 2 * HOUR),
            manifest("fresh", now - HOUR),
            manifest("stale", now - 31 * HOUR).with_verified(now - 30 * HOUR),
            manifest("stale", now - HOUR),
            manifest("never", now - HOUR),
            manifest("done", now - 31 * HOUR).with_verified(now - 30 * HOUR),
            manifest("off", now - HOUR),
            manifest("suspended", now - HOUR),
        ]
    )
    due = backing.verifications_due(instances, store, now)  # type: ignore[arg-type]
    assert [(i.metadata.name, m.finished) for i, m in due] == [("stale", now - HOUR), ("never", now - HOUR)]
    facts = backing.newest(instances, store)  # type: ignore[arg-type]
    assert facts["stale"][1] == now - 30 * HOUR and facts["never"][1] is None and "unknown" not in facts
