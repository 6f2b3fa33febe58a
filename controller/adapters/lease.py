"""One writer per engine: a lease kept on the Docker engine itself, so controllers on different hosts see it too.

Docker labels cannot change, so a lease is a marker volume `dbstate-lease-<holder>-<ms>` whose labels say who holds
it and until when; renewing creates a fresh marker and removes the holder's older ones. A marker is never a data
volume: it holds nothing, carries `io.dbstate.lease`, and the diff never sees it as declared, adopted or orphaned.
A holder that dies simply stops renewing: its lease expires after the TTL. Two controllers racing for a free lease
both see each other after creating their markers; the one that first acquired (then the smaller holder id) wins, and
the other withdraws.
"""

from __future__ import annotations

import contextlib
import os
import socket
import time
import uuid
from dataclasses import dataclass

from controller.adapters.docker import DockerEngine
from controller.core.labels import LEASE_MARKER_PREFIX

LABEL = "io.dbstate.lease"


@dataclass(frozen=True)
class Holder:
    holder: str
    since: float
    expires: float
    volume: str


def new_holder_id() -> str:
    host = "".join(ch if ch.isalnum() or ch in "-." else "-" for ch in socket.gethostname())[:40] or "host"
    return f"{host}-{os.getpid()}-{uuid.uuid4().hex[:6]}"


class EngineLease:
    def __init__(self, engine: DockerEngine, holder: str | None = None, ttl: float = 30.0) -> None:
        self.engine = engine
        self.holder = holder or new_holder_id()
        self.ttl = ttl
        self.since: float | None = None

    def _leases(self) -> list[Holder]:
        raw = self.engine.call("listing leases", lambda: self.engine.api.volumes(filters={"label": LABEL}))
        out = []
        for v in raw.get("Volumes") or []:
            labels = v.get("Labels") or {}
            try:
                out.append(
                    Holder(
                        labels[f"{LABEL}.holder"],
                        float(labels[f"{LABEL}.since"]),
                        float(labels[f"{LABEL}.expires"]),
                        v["Name"],
                    )
                )
            except (KeyError, ValueError):
                continue
        return out

    def _remove(self, volume: str) -> None:
        # a marker that is already gone is fine; an expired one is ignored by everybody anyway
        with contextlib.suppress(Exception):
            self.engine.call("removing a lease marker", lambda: self.engine.api.remove_volume(volume))

    def holder_now(self) -> Holder | None:
        """Who holds the lease now, if anybody else."""
        now = time.time()
        others = [h for h in self._leases() if h.expires > now and h.holder != self.holder]
        return min(others, key=lambda h: (h.since, h.holder)) if others else None

    def hold(self) -> Holder | None:
        """Acquire or renew. Returns None when we hold the lease, else the one who does."""
        now = time.time()
        leases = self._leases()
        for h in leases:
            if h.expires <= now and h.holder != self.holder:
                self._remove(h.volume)  # expired: its holder stopped renewing
        other = self.holder_now()
        if other is not None:
            self.since = None
            return other
        since = self.since or now
        name = f"{LEASE_MARKER_PREFIX}{self.holder}-{int(now * 1000)}"
        labels = {
            LABEL: "true",
            f"{LABEL}.holder": self.holder,
            f"{LABEL}.since": f"{since:.3f}",
            f"{LABEL}.expires": f"{now + self.ttl:.3f}",
        }
        self.engine.call("creating a lease marker", lambda: self.engine.api.create_volume(name, labels=labels))
        other = self.holder_now()
        if other is not None and (other.since, other.holder) < (since, self.holder):
            self._remove(name)
            self.since = None
            return other
        for h in leases:
            if h.holder == self.holder and h.volume != name:
                self._remove(h.volume)
        self.since = since
        return None

    def release(self) -> None:
        for h in self._leases():
            if h.holder == self.holder:
                self._remove(h.volume)
        self.since = None
