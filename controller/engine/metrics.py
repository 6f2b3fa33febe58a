"""The controller's metrics as plain state that the loop updates; `adapters/prometheus.py` exposes them (with the
process collectors) through prometheus_client at each scrape."""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Mapping
from typing import Any

BUCKETS = (0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)


class Metrics:
    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.buckets = BUCKETS
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
        self.backup_verified: dict[str, float] = {}  # instance -> when its newest verified backup was verified
        self.verify_failures: Counter[str] = Counter()
        self.lease_lost = 0  # times the lease was lost while held
        self.state_ok = 1  # 0 when the state database could not be used (the controller runs on in memory)

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

    def verified(self, instance: str, when: float) -> None:
        with self.lock:
            self.backup_verified[instance] = max(when, self.backup_verified.get(instance, 0.0))

    def verify_failed(self, instance: str) -> None:
        with self.lock:
            self.verify_failures[instance] += 1

    def backup_failed(self, instance: str) -> None:
        with self.lock:
            self.backup_failures[instance] += 1

    def failed_pass(self) -> None:
        with self.lock:
            self.passes["error"] += 1
