"""/metrics through prometheus_client: the controller's series (`engine.metrics.Metrics`, read at each scrape) as
metric families, beside the client's process and platform collectors, in the exposition format the client writes and
escapes (a newline or a quote in a label value cannot break a line)."""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Iterator, Mapping
from typing import Any, Protocol

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    PlatformCollector,
    ProcessCollector,
    generate_latest,
)
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.registry import Collector

from controller.core import placement
from controller.core.plan import FindingType

CONTENT_TYPE = CONTENT_TYPE_LATEST


class Metrics(Protocol):
    """What the loop keeps (`engine.metrics.Metrics`): read under its lock at each scrape."""

    @property
    def lock(self) -> threading.Lock: ...

    @property
    def buckets(self) -> tuple[float, ...]: ...

    @property
    def passes(self) -> Counter[str]: ...

    @property
    def duration_buckets(self) -> list[int]: ...

    @property
    def duration_sum(self) -> float: ...

    @property
    def duration_count(self) -> int: ...

    @property
    def changes(self) -> Counter[tuple[str, str]]: ...

    @property
    def findings(self) -> dict[str, int]: ...

    @property
    def drift(self) -> dict[str, int]: ...

    @property
    def health(self) -> dict[str, int]: ...

    @property
    def probes(self) -> Mapping[str, Any]: ...

    @property
    def last_success(self) -> float: ...

    @property
    def engine_up(self) -> int: ...

    @property
    def ready(self) -> int: ...

    @property
    def leader(self) -> int: ...

    @property
    def backup_last(self) -> dict[str, tuple[float, int]]: ...

    @property
    def backup_failures(self) -> Counter[str]: ...

    @property
    def backup_verified(self) -> dict[str, float]: ...

    @property
    def verify_failures(self) -> Counter[str]: ...

    @property
    def lease_lost(self) -> int: ...

    @property
    def state_ok(self) -> int: ...


class DbstateCollector(Collector):
    """Every engine's series, each with its `host` label (the Host's name; `default` without Host documents)."""

    def __init__(self, metrics: Mapping[str, Metrics]) -> None:
        self.metrics = metrics

    def collect(self) -> Iterator[Metric]:
        families: dict[str, Metric] = {}
        for host, m in sorted(self.metrics.items()):
            with m.lock:
                for section in (self._passes, self._resources, self._probes, self._backups, self._controller):
                    section(_Families(families, host), m)
        yield from families.values()

    def _passes(self, f: _Families, m: Metrics) -> None:
        for result in sorted(set(m.passes) | {"ok", "failed", "error"}):
            f.counter("dbstate_passes", "Reconcile passes by result (ok: every change succeeded).", result=result).add(
                m.passes[result]
            )
        buckets = [(str(b), float(n)) for b, n in zip(m.buckets, m.duration_buckets, strict=True)]
        f.histogram("dbstate_pass_duration_seconds", "How long a pass took.").add_metric(
            [f.host], [*buckets, ("+Inf", float(m.duration_count))], m.duration_sum
        )
        f.declare_counter("dbstate_changes", "Changes applied, by action and outcome.", ("action", "outcome"))
        for (action, outcome), n in sorted(m.changes.items()):
            f.counter("dbstate_changes", "", action=action, outcome=outcome).add(n)

    def _resources(self, f: _Families, m: Metrics) -> None:
        f.declare_gauge("dbstate_findings", "Findings of the last pass, by type.", ("type",))
        for t, n in sorted(m.findings.items()):
            f.gauge("dbstate_findings", "", type=t).add(n)
        f.declare_gauge(
            "dbstate_blocking_findings",
            "Findings of the last pass that hold a declared resource back: while above 0 the engine has not converged.",
            (),
        )
        f.gauge("dbstate_blocking_findings", "").add(sum(n for t, n in m.findings.items() if _blocks(t)))
        f.declare_gauge("dbstate_drift", "1 when the resource had changes pending in the last pass.", ("kind", "name"))
        for key, v in sorted(m.drift.items()):
            kind, _, name = key.partition("/")
            f.gauge("dbstate_drift", "", kind=kind, name=name).add(v)
        f.declare_gauge(
            "dbstate_instance_up",
            "1 when the instance's container is running (and healthy, if it has a health check, and its last probe "
            "succeeded, when probing).",
            ("name",),
        )
        for name, v in sorted(m.health.items()):
            f.gauge("dbstate_instance_up", "", name=name).add(v)

    def _probes(self, f: _Families, m: Metrics) -> None:
        f.declare_gauge(
            "dbstate_instance_probe_success", "1 when the last probe logged in with the declared auth.", ("name",)
        )
        f.declare_gauge(
            "dbstate_instance_probe_rtt_seconds", "How long the last probe took to connect and log in.", ("name",)
        )
        f.declare_gauge("dbstate_instance_version_info", "The version the server itself reports.", ("name", "version"))
        for name, r in sorted(m.probes.items()):
            f.gauge("dbstate_instance_probe_success", "", name=name).add(int(r.reachable))
            if r.rtt_ms is not None:
                f.gauge("dbstate_instance_probe_rtt_seconds", "", name=name).add(r.rtt_ms / 1000)
            if r.version:
                f.gauge("dbstate_instance_version_info", "", name=name, version=r.version).add(1)

    def _backups(self, f: _Families, m: Metrics) -> None:
        f.declare_gauge(
            "dbstate_backup_last_success_timestamp_seconds",
            "When the instance's newest backup finished (scheduled, or taken by hand into the backup directory).",
            ("instance",),
        )
        f.declare_gauge(
            "dbstate_backup_last_size_bytes", "The size of the instance's last backup (compressed).", ("instance",)
        )
        f.declare_counter("dbstate_backup_failures", "Scheduled backups that failed.", ("instance",))
        for name, (when, nbytes) in sorted(m.backup_last.items()):
            f.gauge("dbstate_backup_last_success_timestamp_seconds", "", instance=name).add(when)
            f.gauge("dbstate_backup_last_size_bytes", "", instance=name).add(nbytes)
        for name in sorted(set(m.backup_last) | set(m.backup_failures)):
            f.counter("dbstate_backup_failures", "", instance=name).add(m.backup_failures[name])
        f.declare_gauge(
            "dbstate_backup_last_verified_timestamp_seconds",
            "When the instance's newest verified backup was restored into a throw-away server and held what it "
            "should (policy.backup.verify, verify-backup).",
            ("instance",),
        )
        f.declare_counter(
            "dbstate_backup_verify_failures", "Scheduled verifications whose backup did not restore.", ("instance",)
        )
        for name, when in sorted(m.backup_verified.items()):
            f.gauge("dbstate_backup_last_verified_timestamp_seconds", "", instance=name).add(when)
        for name in sorted(set(m.backup_verified) | set(m.verify_failures)):
            f.counter("dbstate_backup_verify_failures", "", instance=name).add(m.verify_failures[name])

    def _controller(self, f: _Families, m: Metrics) -> None:
        for name, text, value in (
            (
                "dbstate_last_successful_pass_timestamp_seconds",
                "When the last pass with no failure ended.",
                m.last_success,
            ),
            ("dbstate_engine_up", "1 when the Docker engine answered the last call.", m.engine_up),
            ("dbstate_ready", "1 when the engine is reachable and the last pass completed.", m.ready),
            ("dbstate_leader", "1 while this controller holds the engine's one-writer lease.", m.leader),
            (
                "dbstate_state_database_ok",
                "0 when the state database cannot be used (corrupt, or from a newer release): the controller "
                "converges on without its history",
                m.state_ok,
            ),
        ):
            f.gauge(name, text).add(value)
        f.counter("dbstate_lease_lost", "Times this controller lost the engine's lease while it held it.").add(
            m.lease_lost
        )


class _Sample:
    def __init__(self, family: Metric, labels: list[str]) -> None:
        self.family, self.labels = family, labels

    def add(self, value: float) -> None:
        self.family.add_metric(self.labels, value)  # type: ignore[attr-defined]


class _Families:
    """The families of one scrape, shared by every engine: each sample carries its engine's `host` label first."""

    def __init__(self, families: dict[str, Metric], host: str) -> None:
        self.families, self.host = families, host

    def declare_gauge(self, name: str, text: str, labels: tuple[str, ...]) -> None:
        self.families.setdefault(name, GaugeMetricFamily(name, text, labels=["host", *labels]))

    def declare_counter(self, name: str, text: str, labels: tuple[str, ...]) -> None:
        self.families.setdefault(name, CounterMetricFamily(name, text, labels=["host", *labels]))

    def gauge(self, family: str, text: str, /, **labels: str) -> _Sample:
        self.declare_gauge(family, text, tuple(labels))
        return _Sample(self.families[family], [self.host, *labels.values()])

    def counter(self, family: str, text: str, /, **labels: str) -> _Sample:
        self.declare_counter(family, text, tuple(labels))
        return _Sample(self.families[family], [self.host, *labels.values()])

    def histogram(self, name: str, text: str) -> HistogramMetricFamily:
        family = self.families.setdefault(name, HistogramMetricFamily(name, text, labels=["host"]))
        assert isinstance(family, HistogramMetricFamily)
        return family


def _blocks(finding_type: str) -> bool:
    return finding_type in {t.value for t in FindingType if t.blocks}


class Exposition:
    """One registry per controller: dbstate's series, and the process and platform collectors."""

    def __init__(self, metrics: Metrics | Mapping[str, Metrics]) -> None:
        """`metrics`: each engine's, by its Host's name (one `Metrics` alone is the engine `default`)."""
        self.registry = CollectorRegistry(auto_describe=False)
        by_host = metrics if isinstance(metrics, Mapping) else {placement.DEFAULT: metrics}
        self.registry.register(DbstateCollector(by_host))
        ProcessCollector(registry=self.registry)
        PlatformCollector(registry=self.registry)

    def render(self) -> str:
        return generate_latest(self.registry).decode()


def render(metrics: Metrics) -> str:
    """The exposition of `metrics` alone (with the process collectors), for a one-off scrape."""
    return Exposition(metrics).render()
