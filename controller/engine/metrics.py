"""The controller's metrics, rendered in the Prometheus text format (no client library needed for a dozen series)."""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Mapping
from typing import Any

BUCKETS = (0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)


def _labels(**kv: str) -> str:
    if not kv:
        return ""
    body = ",".join(
        f'{k}="{str(v).replace(chr(92), chr(92) * 2).replace(chr(34), chr(92) + chr(34))}"'
        for k, v in sorted(kv.items())
    )
    return "{" + body + "}"


class Metrics:
    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.passes: Counter[str] = Counter()  # result -> count
        self.duration_buckets = [0] * len(BUCKETS)
        self.duration_sum = 0.0
        self.duration_count = 0
        self.changes: Counter[tuple[str, str]] = Counter()  # (action, outcome)
        self.findings: dict[str, int] = {}
        self.drift: dict[str, int] = {}
        self.health: dict[str, int] = {}
        self.probes: dict[str, Any] = {}  # core.health.ProbeResult per instance
        self.last_success = 0.0
        self.engine_up = 0
        self.ready = 0
        self.leader = 0
        self.backup_last: dict[str, tuple[float, int]] = {}  # instance -> (finished, size in bytes) of the last backup
        self.backup_failures: Counter[str] = Counter()

    def observe_pass(
        self,
        result: str,
        duration: float,
        changes: list[tuple[str, str]],
        findings: Mapping[str, int],
        drift: Mapping[str, int],
        health: Mapping[str, int],
        probes: Mapping[str, Any] | None = None,
    ) -> None:
        with self.lock:
            self.passes[result] += 1
            self.duration_sum += duration
            self.duration_count += 1
            for i, b in enumerate(BUCKETS):
                if duration <= b:
                    self.duration_buckets[i] += 1
            for c in changes:
                self.changes[c] += 1
            self.findings = dict(findings)
            self.drift = dict(drift)
            self.health = dict(health)
            if probes is not None:
                self.probes = dict(probes)
            if result == "ok":
                self.last_success = time.time()

    def backed_up(self, instance: str, finished: float, size: int) -> None:
        with self.lock:
            self.backup_last[instance] = (finished, size)

    def backup_failed(self, instance: str) -> None:
        with self.lock:
            self.backup_failures[instance] += 1

    def failed_pass(self) -> None:
        with self.lock:
            self.passes["error"] += 1

    def render(self) -> str:
        with self.lock:
            out = [
                "# HELP dbstate_passes_total Reconcile passes by result (ok: every change succeeded).",
                "# TYPE dbstate_passes_total counter",
            ]
            for result in sorted(set(self.passes) | {"ok", "failed", "error"}):
                out.append(f"dbstate_passes_total{_labels(result=result)} {self.passes[result]}")
            out += [
                "# HELP dbstate_pass_duration_seconds How long a pass took.",
                "# TYPE dbstate_pass_duration_seconds histogram",
            ]
            for b, n in zip(BUCKETS, self.duration_buckets, strict=True):
                out.append(f"dbstate_pass_duration_seconds_bucket{_labels(le=str(b))} {n}")
            out.append(f'dbstate_pass_duration_seconds_bucket{{le="+Inf"}} {self.duration_count}')
            out.append(f"dbstate_pass_duration_seconds_sum {self.duration_sum:.6f}")
            out.append(f"dbstate_pass_duration_seconds_count {self.duration_count}")
            out += [
                "# HELP dbstate_changes_total Changes applied, by action and outcome.",
                "# TYPE dbstate_changes_total counter",
            ]
            for (action, outcome), n in sorted(self.changes.items()):
                out.append(f"dbstate_changes_total{_labels(action=action, outcome=outcome)} {n}")
            out += ["# HELP dbstate_findings Findings of the last pass, by type.", "# TYPE dbstate_findings gauge"]
            for t, n in sorted(self.findings.items()):
                out.append(f"dbstate_findings{_labels(type=t)} {n}")
            out += [
                "# HELP dbstate_drift 1 when the resource had changes pending in the last pass.",
                "# TYPE dbstate_drift gauge",
            ]
            for key, v in sorted(self.drift.items()):
                kind, _, name = key.partition("/")
                out.append(f"dbstate_drift{_labels(kind=kind, name=name)} {v}")
            out += [
                "# HELP dbstate_instance_up 1 when the instance's container is running (and healthy, if it "
                "has a health check, and its last probe succeeded, when probing).",
                "# TYPE dbstate_instance_up gauge",
            ]
            for name, v in sorted(self.health.items()):
                out.append(f"dbstate_instance_up{_labels(name=name)} {v}")
            if self.probes:
                out += [
                    "# HELP dbstate_instance_probe_success 1 when the last probe logged in with the declared auth.",
                    "# TYPE dbstate_instance_probe_success gauge",
                ]
                for name, r in sorted(self.probes.items()):
                    out.append(f"dbstate_instance_probe_success{_labels(name=name)} {int(r.reachable)}")
                out += [
                    "# HELP dbstate_instance_probe_rtt_seconds How long the last probe took to connect and log in.",
                    "# TYPE dbstate_instance_probe_rtt_seconds gauge",
                ]
                for name, r in sorted(self.probes.items()):
                    if r.rtt_ms is not None:
                        out.append(f"dbstate_instance_probe_rtt_seconds{_labels(name=name)} {r.rtt_ms / 1000:.6f}")
                out += [
                    "# HELP dbstate_instance_version_info The version the server itself reports.",
                    "# TYPE dbstate_instance_version_info gauge",
                ]
                for name, r in sorted(self.probes.items()):
                    if r.version:
                        out.append(f"dbstate_instance_version_info{_labels(name=name, version=r.version)} 1")
            if self.backup_last or self.backup_failures:
                out += [
                    "# HELP dbstate_backup_last_success_timestamp_seconds When the instance's last backup finished.",
                    "# TYPE dbstate_backup_last_success_timestamp_seconds gauge",
                ]
                for name, (when, _size) in sorted(self.backup_last.items()):
                    out.append(f"dbstate_backup_last_success_timestamp_seconds{_labels(instance=name)} {when:.3f}")
                out += [
                    "# HELP dbstate_backup_last_size_bytes The size of the instance's last backup (compressed).",
                    "# TYPE dbstate_backup_last_size_bytes gauge",
                ]
                for name, (_when, size) in sorted(self.backup_last.items()):
                    out.append(f"dbstate_backup_last_size_bytes{_labels(instance=name)} {size}")
                out += [
                    "# HELP dbstate_backup_failures_total Scheduled backups that failed.",
                    "# TYPE dbstate_backup_failures_total counter",
                ]
                for name in sorted(set(self.backup_last) | set(self.backup_failures)):
                    out.append(f"dbstate_backup_failures_total{_labels(instance=name)} {self.backup_failures[name]}")
            out += [
                "# HELP dbstate_last_successful_pass_timestamp_seconds When the last pass with no failure ended.",
                "# TYPE dbstate_last_successful_pass_timestamp_seconds gauge",
                f"dbstate_last_successful_pass_timestamp_seconds {self.last_success:.3f}",
                "# HELP dbstate_engine_up 1 when the Docker engine answered the last call.",
                "# TYPE dbstate_engine_up gauge",
                f"dbstate_engine_up {self.engine_up}",
                "# HELP dbstate_ready 1 when the engine is reachable and the last pass completed.",
                "# TYPE dbstate_ready gauge",
                f"dbstate_ready {self.ready}",
                "# HELP dbstate_leader 1 while this controller holds the one-writer lease.",
                "# TYPE dbstate_leader gauge",
                f"dbstate_leader {self.leader}",
            ]
            return "\n".join(out) + "\n"
