"""One writer, measured: trials of two or three `dbstate run` started together on one engine, with work to do, the
holder SIGKILLed or SIGSTOPped in the middle of it (and a stopped one woken after the takeover, with more work).

Every request a controller sends reaches the engine through a proxy of this benchmark, which notes when it arrived;
the engine's own events say which epoch of the lease was the highest at every moment, and whose. A mutating request
(other than the lease's own markers) that reaches the engine from a controller that did not hold the highest epoch at
that moment is a double action. The target is 0.

    .venv/bin/python -m bench.lease [--trials 200] [--ttl 1.5]
"""

from __future__ import annotations

import argparse
import contextlib
import os
import random
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import docker

from bench.common import bench_engine, controller_env, write_state

INSTANCES = 3
MUTATING = {"POST", "PUT", "DELETE"}


class Proxy:
    """A unix-socket forwarder in front of the engine that notes each HTTP request (method, path) and when it arrived,
    before forwarding it."""

    def __init__(self, path: str, upstream: str) -> None:
        self.path, self.upstream = path, upstream
        self.requests: list[tuple[float, str, str]] = []
        self.server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.server.bind(path)
        self.server.listen(64)
        threading.Thread(target=self._accept, daemon=True).start()

    def close(self) -> None:
        self.server.close()

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self.server.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    def _serve(self, conn: socket.socket) -> None:
        up = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            up.connect(self.upstream)
        except OSError:
            conn.close()
            return
        threading.Thread(target=_pump, args=(up, conn), daemon=True).start()
        pending, body_left = b"", 0
        try:
            while True:
                data = conn.recv(65536)
                if not data:
                    break
                now = time.time()
                pending += data
                while pending:
                    if body_left:
                        n = min(body_left, len(pending))
                        pending, body_left = pending[n:], body_left - n
                        continue
                    end = pending.find(b"\r\n\r\n")
                    if end < 0:
                        break
                    head, pending = pending[:end].decode("latin-1"), pending[end + 4 :]
                    lines = head.split("\r\n")
                    method, path = lines[0].split(" ")[:2]
                    for h in lines[1:]:
                        name, _, value = h.partition(":")
                        if name.strip().lower() == "content-length":
                            body_left = int(value.strip())
                    self.requests.append((now, method, path))
                up.sendall(data)
        except OSError:
            pass
        finally:
            for s in (up, conn):
                with contextlib.suppress(OSError):
                    s.shutdown(socket.SHUT_RDWR)
                s.close()


def _pump(src: socket.socket, dst: socket.socket) -> None:
    try:
        while True:
            data = src.recv(65536)
            if not data:
                break
            dst.sendall(data)
    except OSError:
        pass
    finally:
        with contextlib.suppress(OSError):
            dst.shutdown(socket.SHUT_WR)


@dataclass
class Epochs:
    """The lease's epochs as the engine reports them: (time, number, holder, state), and the epoch containers' IDs."""

    seen: list[tuple[float, int, str, str]] = field(default_factory=list)
    ids: set[str] = field(default_factory=set)

    def highest_at(self, t: float) -> tuple[int, str, str] | None:
        top = None
        for when, number, holder, state in self.seen:
            if when <= t and (top is None or number > top[0]):
                top = (number, holder, state)
        return top


def follow_epochs(client: Any, epochs: Epochs, stop: threading.Event) -> None:
    since = time.time() - 1
    stream = client.api.events(decode=True, since=since, filters={"type": "container", "event": "create"})

    def closer() -> None:
        stop.wait()
        stream.close()

    threading.Thread(target=closer, daemon=True).start()
    try:
        for e in stream:
            attrs = (e.get("Actor") or {}).get("Attributes") or {}
            name = str(attrs.get("name", ""))
            if name.startswith("dbstate-lease-epoch-"):
                epochs.ids.add(str(e["Actor"]["ID"]))
                epochs.seen.append(
                    (
                        e["timeNano"] / 1e9,
                        int(name.rsplit("-", 1)[1]),
                        str(attrs.get("io.dbstate.lease.holder")),
                        str(attrs.get("io.dbstate.lease")),
                    )
                )
    except Exception:
        return


def is_lease_request(method: str, path: str, epochs: Epochs) -> bool:
    if "dbstate-lease-epoch-" in path or path.split("?")[0].endswith("/images/create") or path.endswith("/wait"):
        return True
    if "/wait?" in path:
        return True
    return method == "DELETE" and any(i in path for i in epochs.ids)


def pid_of(holder: str) -> int:
    return int(holder.rsplit("-", 2)[1])


@dataclass
class Trial:
    controllers: int
    mode: str
    violations: list[str]
    takeover: float | None
    requests: int


def running(client: Any, name: str) -> bool:
    try:
        return bool(client.api.inspect_container(name)["State"]["Running"])
    except Exception:
        return False


def wait(pred: Any, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if pred():
            return True
        time.sleep(0.05)
    return False


def one_trial(client: Any, upstream: str, root: Path, env: dict[str, str], tmp: str, k: int, mode: str) -> Trial:
    for i in range(INSTANCES):
        with contextlib.suppress(docker.errors.NotFound):
            client.api.remove_container(f"kv-{i}-redis-1", force=True)
    epochs, stop = Epochs(), threading.Event()
    follower = threading.Thread(target=follow_epochs, args=(client, epochs, stop), daemon=True)
    follower.start()
    time.sleep(0.2)
    proxies, procs = [], []
    for j in range(k):
        sock = f"{tmp}/p{j}.sock"
        if os.path.exists(sock):
            os.unlink(sock)
        proxies.append(Proxy(sock, upstream))
    for j in range(k):
        e = {**env, "DOCKER_HOST": f"unix://{tmp}/p{j}.sock", "DBSTATE_STATE": f"{tmp}/s{j}.db"}
        argv = [sys.executable, "-m", "controller", "run", "--dir", str(root), "--listen", "", "--log-format", "json"]
        argv += ["--lease-ttl", str(TTL), "--resync", "2", "--probe-interval", "0"]
        procs.append(subprocess.Popen(argv, env=e, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
    holder, hit = None, 0.0
    try:
        names = [f"kv-{i}-redis-1" for i in range(INSTANCES)]
        wait(lambda: all(running(client, n) for n in names), 40)
        top = epochs.highest_at(time.time())
        holder = next((p for p in procs if top and p.pid == pid_of(top[1])), None)
        if holder is not None:
            client.api.stop(names[0], timeout=0)  # work for whoever holds the lease...
            time.sleep(random.uniform(0.0, 0.3))  # ...and the holder is hit in the middle of it (or just after)
            hit = time.time()
            holder.send_signal(signal.SIGKILL if mode == "kill" else signal.SIGSTOP)
            if mode == "kill":
                holder.wait()  # reaped, as its supervisor would: provably dead to the others on this host
            took = wait(lambda: any(w > hit and pid_of(h) != holder.pid for w, _n, h, _s in epochs.seen), 30)
            client.api.stop(names[1], timeout=0)  # work for the new holder
            wait(lambda: took and all(running(client, n) for n in names), 30)
            if mode == "stop":
                client.api.stop(names[2], timeout=0)
                holder.send_signal(signal.SIGCONT)  # it wakes up with its lease long expired, and work in sight
                wait(lambda: running(client, names[2]), 30)
                time.sleep(TTL)
    finally:
        for p in procs:
            if p.poll() is None:
                p.send_signal(signal.SIGCONT)
                p.terminate()
        for p in procs:
            try:
                p.wait(15)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()
        time.sleep(0.3)
        stop.set()
        for proxy in proxies:
            proxy.close()
    takeover = None
    if holder is not None:  # the events arrive a little late: read after the trial
        after = [when for when, _n, h, _s in epochs.seen if when > hit and pid_of(h) != holder.pid]
        takeover = min(after) - hit if after else None
    violations = []
    count = 0
    for proxy, p in zip(proxies, procs, strict=True):
        for t, method, path in proxy.requests:
            if method not in MUTATING or is_lease_request(method, path, epochs):
                continue
            count += 1
            top = epochs.highest_at(t)
            if top is None or top[2] != "held" or pid_of(top[1]) != p.pid:
                violations.append(f"pid {p.pid}: {method} {path} at {t:.3f} while the highest epoch was {top}")
    return Trial(k, mode, violations, takeover, count)


TTL = 1.5


def main() -> int:
    global TTL
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--trials", type=int, default=200)
    p.add_argument("--ttl", type=float, default=1.5)
    args = p.parse_args()
    TTL = args.ttl
    results: list[Trial] = []
    with bench_engine() as (eng, client), tempfile.TemporaryDirectory() as tmp:
        root, env = controller_env(eng.host, tmp, "")
        write_state(root, INSTANCES)
        (root / "state.yaml").unlink()
        upstream = eng.host.removeprefix("unix://")
        kinds = [(2, "kill"), (2, "stop"), (3, "kill"), (3, "stop")]
        t0 = time.monotonic()
        for i in range(args.trials):
            k, mode = kinds[i % len(kinds)]
            trial = one_trial(client, upstream, root, env, tmp, k, mode)
            results.append(trial)
            for v in trial.violations:
                print(f"  trial {i}: DOUBLE ACTION {v}", file=sys.stderr)
            if (i + 1) % 20 == 0:
                print(f"  {i + 1} trials, {time.monotonic() - t0:.0f} s", file=sys.stderr)
    print(f"{len(results)} trials (2 or 3 controllers started together; the holder SIGKILLed or SIGSTOPped mid-work)")
    print(f"  lease TTL {TTL:g} s; mutating requests checked: {sum(t.requests for t in results)}")
    for k, mode in [(2, "kill"), (2, "stop"), (3, "kill"), (3, "stop")]:
        group = [t for t in results if t.controllers == k and t.mode == mode]
        took = [t.takeover for t in group if t.takeover is not None]
        med = f"takeover median {statistics.median(took):.2f} s, max {max(took):.2f} s" if took else "no takeover seen"
        print(
            f"  {k} controllers, SIG{mode.upper()}: {len(group)} trials, {sum(len(t.violations) for t in group)} "
            f"double actions; {med}"
        )
    doubles = sum(len(t.violations) for t in results)
    print(f"  double actions: {doubles} (target 0)")
    return 0 if doubles == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
