"""The engine lease on a real engine: the engine arbitrates who holds it (exactly one create of an epoch wins), the
holder is fenced by its own clock and by the engine, a stopped holder is taken over only after a whole TTL, a released
lease is free at once, and a one-shot `apply` never acts while a live controller holds it."""

from __future__ import annotations

import threading
import time

import pytest

from controller.adapters.docker import DockerRuntime
from controller.adapters.lease import EngineLease
from controller.core import errors
from tests.e2e.helpers import dbstate
from tests.helpers import network, redis_instance, write_tree


@pytest.fixture
def leases(docker_client, engine_host):
    made: list[DockerRuntime] = []

    def make(holder: str, ttl: float = 2.0) -> EngineLease:
        runtime = DockerRuntime(engine_host, retry_budget=2.0)
        made.append(runtime)
        return EngineLease(runtime, holder=holder, ttl=ttl)

    yield make
    for r in made:
        r.close()


def test_exactly_one_of_many_controllers_racing_for_a_free_lease_gets_it(leases):
    contenders = [leases(f"c{i}") for i in range(8)]
    results: dict[str, object] = {}
    go = threading.Barrier(len(contenders))

    def race(lease: EngineLease) -> None:
        go.wait()
        results[lease.holder] = lease.hold()

    threads = [threading.Thread(target=race, args=(lease,)) for lease in contenders]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    winners = [h for h, other in results.items() if other is None]
    assert len(winners) == 1, results
    for lease in contenders:
        assert lease.held() == (lease.holder in winners)
    winner = next(lease for lease in contenders if lease.holder in winners)
    winner.confirm()
    for lease in contenders:
        if lease is not winner:
            with pytest.raises(errors.LeaseLost):
                lease.confirm()


def test_a_holder_that_stops_renewing_stops_acting_before_anybody_takes_over(leases):
    a, b = leases("a", ttl=2.0), leases("b", ttl=2.0)
    assert a.hold() is None
    first = b.hold()
    assert first is not None and first.holder == "a"
    time.sleep(1.6)  # a is "paused": more than 3/4 TTL without a renewal
    assert not a.held()
    with pytest.raises(errors.LeaseLost, match="not renewed"):
        a.confirm()  # fenced by its own clock, before b may take over
    assert b.hold() is not None  # b has not watched a whole TTL yet
    time.sleep(0.6)
    assert b.hold() is None  # now it has: b takes the next epoch
    b.confirm()
    assert a.hold() is not None  # a woke up: b holds it now
    with pytest.raises(errors.LeaseLost):
        a.confirm()


def test_renewal_keeps_the_lease_and_a_released_lease_is_free_at_once(leases, docker_client):
    a, b = leases("a", ttl=2.0), leases("b", ttl=2.0)
    for _ in range(6):  # renewed every TTL/4: b never gets it
        assert a.hold() is None
        assert b.hold() is not None
        time.sleep(0.5)
    a.confirm()
    epochs = docker_client.containers.list(all=True, filters={"label": "io.dbstate.lease"})
    assert len(epochs) == 1 and epochs[0].status == "created"  # older epochs removed, none ever started
    a.release()
    assert not a.held()
    assert b.hold() is None  # no TTL to wait out


def test_the_holders_own_renewal_in_flight_is_not_a_lost_lease(leases):
    """Fencing checks run beside the renewals: between the create of the holder's next epoch on the engine and its
    recording here, the highest epoch is the holder's own, one above: still held (once, four engines applied on two
    busy cores showed this as `the engine lease is now held by <itself>`)."""
    a = leases("a", ttl=30.0)
    assert a.hold() is None
    lost: list[str] = []
    stop = threading.Event()

    def fence() -> None:
        while not stop.is_set():
            try:
                a.confirm()
            except errors.LeaseLost as e:
                lost.append(str(e))

    checkers = [threading.Thread(target=fence) for _ in range(3)]
    for t in checkers:
        t.start()
    try:
        for _ in range(40):
            assert a.hold() is None  # renew: the next epoch, the old ones removed
    finally:
        stop.set()
        for t in checkers:
            t.join()
    assert lost == [] and a.held()
    a.release()


def test_lease_markers_are_neither_observed_nor_in_scope(leases, engine_host):
    a = leases("a")
    assert a.hold() is None
    observed = DockerRuntime(engine_host).observe()
    assert not [c for c in observed.containers if c.name.startswith("dbstate-lease-")]


def test_apply_changes_nothing_while_a_live_controller_holds_the_lease(leases, docker_client, engine_host, tmp_path):
    holder = leases("a-running-controller", ttl=2.0)
    assert holder.hold() is None
    stop = threading.Event()

    def renew() -> None:
        while not stop.wait(0.5):
            holder.hold()

    t = threading.Thread(target=renew)
    t.start()
    root = write_tree(tmp_path / "d", {"kv.yaml": redis_instance("kv", "kv-db"), "net.yaml": network("net-a")})
    try:
        r = dbstate("apply", "--yes", "--dir", str(root), "--lease-ttl", "2", host=engine_host)
    finally:
        stop.set()
        t.join()
    assert r.code == 1, r.stdout + r.stderr
    assert "another dbstate holds the engine lease (a-running-controller)" in r.stderr
    assert "nothing was changed" in r.stderr
    assert docker_client.containers.list(all=True, filters={"name": "kv-db"}) == []
    # once it stopped renewing, apply waits it out and converges
    r = dbstate("apply", "--yes", "--dir", str(root), "--lease-ttl", "2", host=engine_host)
    assert r.code == 0, r.stdout + r.stderr
    assert "waiting for the engine lease of a-running-controller to expire" in r.stderr
    assert docker_client.containers.get("kv-db").status == "running"


HOLDER = """
import sys, time
from controller.adapters.docker import DockerRuntime
from controller.adapters.lease import EngineLease
lease = EngineLease(DockerRuntime(sys.argv[1]), holder="doomed", ttl=30.0)
assert lease.hold() is None
print("held", flush=True)
time.sleep(60)
"""


def test_a_holder_killed_on_this_host_is_taken_over_at_once_a_paused_one_is_waited_for(leases, engine_host):
    import signal
    import subprocess
    import sys

    b = leases("b", ttl=30.0)
    for sig, taken in ((signal.SIGSTOP, False), (signal.SIGKILL, True)):
        proc = subprocess.Popen([sys.executable, "-c", HOLDER, engine_host], stdout=subprocess.PIPE, text=True)
        try:
            assert proc.stdout is not None and proc.stdout.readline().strip() == "held"
            proc.send_signal(sig)
            if sig == signal.SIGKILL:
                proc.wait()
            other = b.hold()
            assert (other is None) == taken, other  # dead: its pid is gone; paused: alive, a TTL is waited out
        finally:
            proc.kill()
            proc.wait()
            assert proc.stdout is not None
            proc.stdout.close()
