"""One writer per engine: a lease that the Docker engine itself arbitrates, so that two controllers can never both hold
it, whichever hosts they run on.

The lease is a sequence of epochs. Epoch N is a container named `dbstate-lease-epoch-<N>` that is created and never
started (it runs nothing, mounts nothing, has no network). The engine reserves container names atomically, so of any
number of controllers creating epoch N+1 at once exactly one succeeds (409 for the others): that create is the
compare-and-swap. The holder of the highest epoch holds the lease.

- Renewing is taking the next epoch (the same compare-and-swap) and removing the older ones, every TTL/4.
- Another controller may take epoch N+1 only when it has watched epoch N stay the highest for a whole TTL on its own
  clock (no wall clocks compared across hosts), or when N says it was released, or when N's holder is provably dead:
  it ran on this very kernel boot and pid namespace, and its pid is gone or now belongs to a process started at another
  time (a restart after SIGKILL need not wait a TTL; a paused holder is alive, and is waited for).
- The holder stops acting (fencing, `confirm`) once 3/4 TTL have passed since it began its last successful renewal,
  before anybody else may take over, and `confirm` also asks the engine that its epoch is still the highest. The
  controller calls `confirm` before every mutating engine call, so a holder that was paused or cut off stops before
  its next change. A holder that renews late simply takes the next epoch again, through the same compare-and-swap.

The controller's transport checks the lease's clock once more as each fenced request leaves (adapters/docker.py).
What it cannot close: the engine has no conditional write, so a holder frozen between that last check and the write
of the request to the socket (microseconds), for longer than the TTL, could still send that one request.

The markers are filtered out of the observed state and their events are never a cause for a pass.
"""

from __future__ import annotations

import contextlib
import os
import re
import socket
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass

from controller.adapters.docker import DockerRuntime
from controller.core import errors
from controller.core.labels import LEASE as LABEL
from controller.core.labels import LEASE_EPOCH_PREFIX

IMAGE = "dbstate-lease:1"  # an empty image made here (`docker import` of an empty archive): no registry needed
_EPOCH = re.compile(rf"^/?{re.escape(LEASE_EPOCH_PREFIX)}(\d{{1,18}})$")
RENEW = 0.25  # of the TTL: how often the holder renews
VALID = 0.75  # of the TTL: how long after the start of its last renewal the holder may act


@dataclass(frozen=True)
class Epoch:
    number: int
    holder: str
    released: bool
    container: str
    process: str = ""  # "<boot id>/<pid namespace>/<pid>/<start time>" of the holder, when it could tell


def _read(path: str) -> str:
    try:
        with open(path) as f:
            return f.read().strip()
    except OSError:
        return ""


def _start_time(pid: int) -> str:
    """The process's start time in clock ticks since boot (field 22 of /proc/PID/stat), or "" when it is gone."""
    stat = _read(f"/proc/{pid}/stat")
    return stat.rpartition(")")[2].split()[19] if stat else ""


def _namespace() -> str:
    try:
        return f"{_read('/proc/sys/kernel/random/boot_id')}/{os.stat('/proc/self/ns/pid').st_ino}"
    except OSError:
        return ""


def this_process() -> str:
    """Who we are, precisely enough that a controller on the same kernel can tell whether we are still alive."""
    namespace, start = _namespace(), _start_time(os.getpid())
    return f"{namespace}/{os.getpid()}/{start}" if namespace and start else ""


def provably_dead(process: str) -> bool:
    """The holder ran in our boot and pid namespace and its process is gone (or its pid was reused)."""
    parts = process.split("/")
    if len(parts) != 4 or not all(parts) or f"{parts[0]}/{parts[1]}" != _namespace():
        return False
    pid, start = parts[2], parts[3]
    return pid.isdigit() and _start_time(int(pid)) != start


@dataclass(frozen=True)
class Holder:
    holder: str
    expires: float  # wall-clock estimate of when this controller may take over


def new_holder_id() -> str:
    host = "".join(ch if ch.isalnum() or ch in "-." else "-" for ch in socket.gethostname())[:40] or "host"
    return f"{host}-{os.getpid()}-{uuid.uuid4().hex[:6]}"


def epoch_name(number: int) -> str:
    return f"{LEASE_EPOCH_PREFIX}{number:012d}"


class EngineLease:
    def __init__(self, engine: DockerRuntime, holder: str | None = None, ttl: float = 30.0) -> None:
        self.engine = engine
        self.holder = holder or new_holder_id()
        self.ttl = ttl
        self._lock = threading.Lock()
        self._epoch: int | None = None  # the epoch this controller holds
        self._renewed = 0.0  # monotonic time at which the create of that epoch was sent
        self._seen: tuple[int, str, bool] | None = None  # the highest epoch of another, as last seen...
        self._seen_at = 0.0  # ...and since when (monotonic)
        self._renewals_seen = 0  # how often that other holder's epoch changed while we watched
        self._image_ready = False
        self.process = this_process()

    # -- reading -----------------------------------------------------------------------------------------------------

    def epochs(self) -> list[Epoch]:
        """Every epoch marker on the engine, highest last."""
        out = []
        for container_id, names, labels in self.engine.marker_containers(LABEL, LEASE_EPOCH_PREFIX):
            for name in names:
                m = _EPOCH.match(name)
                if m and labels.get(f"{LABEL}.holder"):
                    released = labels.get(LABEL) == "released"
                    holder, process = labels[f"{LABEL}.holder"], labels.get(f"{LABEL}.process", "")
                    out.append(Epoch(int(m.group(1)), holder, released, container_id, process))
        return sorted(out, key=lambda e: e.number)

    def held(self) -> bool:
        """This controller holds the lease and may act now (its own clock only: no engine call)."""
        with self._lock:
            return self._epoch is not None and time.monotonic() - self._renewed < VALID * self.ttl

    def check_clock(self) -> None:
        """The last check before a fenced request leaves (no engine call): raise `LeaseLost` unless `held()`."""
        if not self.held():
            raise errors.LeaseLost("the engine lease expired before this request could be sent: nothing was sent")

    def confirm(self) -> None:
        """Fencing, before every mutating call: raise `LeaseLost` unless this controller still holds the lease, by
        its own clock and on the engine."""
        with self._lock:
            mine, renewed = self._epoch, self._renewed
        if mine is None:
            raise errors.LeaseLost("this controller does not hold the engine lease: nothing is changed")
        if time.monotonic() - renewed >= VALID * self.ttl:
            raise errors.LeaseLost(
                f"the engine lease was not renewed for {time.monotonic() - renewed:.1f} s "
                f"(TTL {self.ttl:g} s): this controller stops changing the engine until it holds it again"
            )
        highest = self.epochs()
        # our own epoch above `mine` is a renewal of ours in flight (made on the engine, not yet recorded here)
        if not highest or highest[-1].number < mine or highest[-1].holder != self.holder:
            with self._lock:
                if self._epoch == mine:
                    self._epoch = None
            who = highest[-1].holder if highest else "nobody"
            raise errors.LeaseLost(f"the engine lease is now held by {who}: this controller stops changing the engine")

    # -- acquiring and renewing ------------------------------------------------------------------------------------

    def hold(self) -> Holder | None:
        """Acquire or renew. None when this controller holds the lease afterwards, else who does."""
        found = self.epochs()
        top = found[-1] if found else None
        if top is not None and top.holder != self.holder and not top.released:
            other = self._watch(top)
            if other is not None:
                return other
        number = (top.number if top else 0) + 1
        if not self._take(number):  # another controller took that epoch first: watch it from now on
            after = self.epochs()
            newest = after[-1] if after else None
            if newest is None or newest.holder == self.holder:
                return Holder("nobody", time.time())  # gone again already: the next call tries again
            return self._watch(newest) or Holder(newest.holder, time.time() + self.ttl)
        for e in found:
            if e.number < number:
                self._remove(e.container)
        return None

    def _watch(self, top: Epoch) -> Holder | None:
        """Another controller's epoch is the highest: who holds it, or None once it may be taken over (unchanged for
        a whole TTL on this controller's clock, or its holder provably dead)."""
        with self._lock:
            self._epoch = None
        now = time.monotonic()
        tag = (top.number, top.holder, top.released)
        if tag != self._seen:
            self._renewals_seen = self._renewals_seen + 1 if self._seen and self._seen[1] == top.holder else 1
            self._seen, self._seen_at = tag, now
        if now - self._seen_at < self.ttl and not provably_dead(top.process):
            return Holder(top.holder, time.time() + self.ttl - (now - self._seen_at))
        return None

    def _take(self, number: int) -> bool:
        """The compare-and-swap: create epoch `number`; False when another controller created it first."""
        sent = time.monotonic()
        if not self._create_epoch(number, "held"):
            with self._lock:
                self._epoch = None
            return False
        with self._lock:
            self._epoch, self._renewed, self._seen = number, sent, None
        return True

    def _ensure_image(self) -> None:
        if self._image_ready:
            return
        self.engine.ensure_empty_image(IMAGE)
        for name in self.engine.marker_volumes(LABEL):  # the marker volumes of earlier releases
            self.engine.remove_unfenced_volume(name)
        self._image_ready = True

    def _remove(self, container: str) -> None:
        # an epoch that is already gone is fine: only the highest one matters
        self.engine.remove_marker_container(container)

    def release(self) -> None:
        """On a clean stop: stop acting, then mark the lease released (the next controller need not wait a TTL)."""
        with self._lock:
            mine, self._epoch = self._epoch, None
        if mine is None:
            return
        found = self.epochs()
        if not found or found[-1].number != mine or found[-1].holder != self.holder:
            return  # somebody else holds it already
        if self._create_epoch(mine + 1, "released"):
            for e in found:
                self._remove(e.container)

    def _create_epoch(self, number: int, state: str) -> bool:
        """Create the marker of epoch `number`; False when it exists already (another controller made it)."""
        self._ensure_image()
        labels = {LABEL: state, f"{LABEL}.holder": self.holder, f"{LABEL}.process": self.process}
        return self.engine.create_marker_container(epoch_name(number), IMAGE, ["lease"], labels)

    @contextlib.contextmanager
    def holding(self, progress: Callable[[str], None]) -> Iterator[None]:
        """For a one-shot writer (`dbstate apply`): take the lease or raise `LeaseHeld`, renew it in the background
        while the body runs, release it after. A holder that is renewing is alive: that fails at once, without
        waiting for a TTL; a holder that stopped renewing is waited out (progress says so)."""
        other = self.hold()
        said = False
        deadline = time.monotonic() + self.ttl * 1.5
        while other is not None:
            if self._renewals_seen > 1 or time.monotonic() > deadline:
                raise errors.LeaseHeld(_held_message(other.holder))
            if not said:
                progress(
                    f"waiting for the engine lease of {other.holder} to expire "
                    f"(it is not renewed; up to {self.ttl:g} s)"
                )
                said = True
            time.sleep(min(1.0, self.ttl / 4))
            other = self.hold()
        stop = threading.Event()

        def renew() -> None:
            while not stop.wait(self.ttl * RENEW):
                with contextlib.suppress(errors.EngineError):
                    self.hold()

        keeper = threading.Thread(target=renew, name="dbstate-lease", daemon=True)
        keeper.start()
        try:
            yield
        finally:
            stop.set()
            keeper.join()
            with contextlib.suppress(errors.EngineError):
                self.release()


def _held_message(holder: str) -> str:
    return (
        f"another dbstate holds the engine lease ({holder}) and is renewing it: two writers must never act at once, "
        "so nothing was changed. Stop that `dbstate run`, or let it apply this desired state"
    )
