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
    def lease_lost(self) -> int: ...

    @property
    def state_ok(self) -> int: ...


class DbstateCollector(Collector):
    def __init__(self, metrics: Metrics) -> None:
        self.metrics = metrics

    def collect(self) -> Iterator[Metric]:
        m = self.metrics
        with m.lock:
            yield from self._passes(m)
            yield from self._resources(m)
            yield from self._probes(m)
            yield from self._backups(m)
            yield from self._controller(m)

    def _passes(self, m: Metrics) -> Iterator[Metric]:
        passes = CounterMetricFamily(
            "dbstate_passes", "Reconcile passes by result (ok: every change succeeded).", labels=["result"]
        )
        for result in sorted(set(m.passes) | {"ok", "failed", "error"}):
            passes.add_metric([result], m.passes[result])
        yield passes
        buckets = [(str(b), float(n)) for b, n in zip(m.buckets, m.duration_buckets, strict=True)]
        yield HistogramMetricFamily(
            "dbstate_pass_duration_seconds",
            "How long a pass took.",
            buckets=[*buckets, ("+Inf", float(m.duration_count))],
            sum_value=m.duration_sum,
        )
        changes = CounterMetricFamily(
            "dbstate_changes", "Changes applied, by action and outcome.", labels=["action", "outcome"]
        )
        for (action, outcome), n in sorted(m.changes.items()):
            changes.add_metric([action, outcome], n)
        yield changes

    def _resources(self, m: Metrics) -> Iterator[Metric]:
        findings = GaugeMetricFamily("dbstate_findings", "Findings of the last pass, by type.", labels=["type"])
        for t, n in sorted(m.findings.items()):
            findings.add_metric([t], n)
        yield findings
        drift = GaugeMetricFamily(
            "dbstate_drift", "1 when the resource had changes pending in the last pass.", labels=["kind", "name"]
        )
        for key, v in sorted(m.drift.items()):
            kind, _, name = key.partition("/")
            drift.add_metric([kind, name], v)
        yield drift
        up = GaugeMetricFamily(
            "dbstate_instance_up",
            "1 when the instance's container is running (and healthy, if it has a health check, and its last probe "
            "succeeded, when probing).",
            labels=["name"],
        )
        for name, v in sorted(m.health.items()):
            up.add_metric([name], v)
        yield up

    def _probes(self, m: Metrics) -> Iterator[Metric]:
        success = GaugeMetricFamily(
            "dbstate_instance_probe_success", "1 when the last probe logged in with the declared auth.", labels=["name"]
        )
        rtt = GaugeMetricFamily(
            "dbstate_instance_probe_rtt_seconds", "How long the last probe took to connect and log in.", labels=["name"]
        )
        version = GaugeMetricFamily(
            "dbstate_instance_version_info", "The version the server itself reports.", labels=["name", "version"]
        )
        for name, r in sorted(m.probes.items()):
            success.add_metric([name], int(r.reachable))
            if r.rtt_ms is not None:
                rtt.add_metric([name], r.rtt_ms / 1000)
            if r.version:
                version.add_metric([name, r.version], 1)
        yield from (success, rtt, version)

    def _backups(self, m: Metrics) -> Iterator[Metric]:
        last = GaugeMetricFamily(
            "dbstate_backup_last_success_timestamp_seconds",
            "When the instance's last scheduled backup finished.",
            labels=["instance"],
        )
        size = GaugeMetricFamily(
            "dbstate_backup_last_size_bytes",
            "The size of the instance's last backup (compressed).",
            labels=["instance"],
        )
        for name, (when, nbytes) in sorted(m.backup_last.items()):
            last.add_metric([name], when)
            size.add_metric([name], nbytes)
        failures = CounterMetricFamily("dbstate_backup_failures", "Scheduled backups that failed.", labels=["instance"])
        for name in sorted(set(m.backup_last) | set(m.backup_failures)):
            failures.add_metric([name], m.backup_failures[name])
        yield from (last, size, failures)

    def _controller(self, m: Metrics) -> Iterator[Metric]:
        for name, text, value in (
            (
                "dbstate_last_successful_pass_timestamp_seconds",
                "When the last pass with no failure ended.",
                m.last_success,
            ),
            ("dbstate_engine_up", "1 when the Docker engine answered the last call.", m.engine_up),
            ("dbstate_ready", "1 when the engine is reachable and the last pass completed.", m.ready),
            ("dbstate_leader", "1 while this controller holds the one-writer lease.", m.leader),
            (
                "dbstate_state_database_ok",
                "0 when the state database cannot be used (corrupt, or from a newer release): the controller "
                "converges on without its history",
                m.state_ok,
            ),
            ("dbstate_lease_lost", "Times this controller lost the lease while it held it.", m.lease_lost),
        ):
            if name == "dbstate_lease_lost":
                lost = CounterMetricFamily(name, text)
                lost.add_metric([], value)
                yield lost
                continue
            yield GaugeMetricFamily(name, text, value=value)


class Exposition:
    """One registry per controller: dbstate's series, and the process and platform collectors."""

    def __init__(self, metrics: Metrics) -> None:
        self.registry = CollectorRegistry(auto_describe=False)
        self.registry.register(DbstateCollector(metrics))
        ProcessCollector(registry=self.registry)
        PlatformCollector(registry=self.registry)

    def render(self) -> str:
        return generate_latest(self.registry).decode()


def render(metrics: Metrics) -> str:
    """The exposition of `metrics` alone (with the process collectors), for a one-off scrape."""
    return Exposition(metrics).render()
