"""A private Docker engine and the stand-in database images, for tests, benchmarks and trying dbstate out.

A private engine has its own data root, exec root, pidfile and socket, no default bridge and its own address pool,
so it never touches the machine's default engine and several can run side by side. Its data root persists between
runs: that is the image cache. Images are tagged with a hash of their recipe and rebuilt only when it changes.

    python -m devtools.engine start [--name NAME]     # prints the DOCKER_HOST to use
    python -m devtools.engine stop  [--name NAME]
    python -m devtools.engine images [--host URL]     # build the stand-in images into an engine
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import docker
import docker.errors

HERE = Path(__file__).resolve().parent
IMAGES = HERE / "images"
STATE_ROOT = Path(os.environ.get("DBSTATE_DEV_STATE", "/var/lib/dbstate-dev"))
RUN_ROOT = Path("/tmp")  # sockets need short paths (about 100 characters at most)
TEST_LABEL = "dbstate-test"  # not under io.dbstate.: a desired state may not set those (they are dbstate's own)

# The rootfs every stand-in image is built on: Debian's packages, fetched with mmdebstrap (no Docker Hub here).
BASE_SUITE = "bookworm"
# python3, python3-venv and git make it a base for dbstate's own image too (the Dockerfile's BASE_IMAGE).
BASE_PACKAGES = ("postgresql-15", "mariadb-server", "redis-server", "ca-certificates", "python3", "python3-venv", "git")

# A second, small rootfs for what bookworm does not ship: the next majors of PostgreSQL and MariaDB (upgrades, and
# shared instances on different majors are a finding) and Valkey, the fourth engine.
SECOND_SUITE = "trixie"
SECOND_PACKAGES = ("postgresql-17", "mariadb-server", "valkey-server")

# A third, for the exporters dbstate runs beside each database (spec.monitoring): Debian's packages of the standard
# ones, whose metric names are the upstream projects'.
EXPORTER_PACKAGES = (
    "ca-certificates",
    "prometheus-postgres-exporter",
    "prometheus-mysqld-exporter",
    "prometheus-redis-exporter",
)
EXPORTERS = "exporters"  # the rootfs key of the exporters' images

# name -> (image reference the examples and tests use, recipe directory, build args, suite of its rootfs).
# Versions are what the suites ship: bookworm PostgreSQL 15, MariaDB 10.11, Redis 7.0; trixie PostgreSQL 17,
# MariaDB 11.8, Valkey 8.1.
STAND_INS: dict[str, tuple[str, str, dict[str, str], str]] = {
    "postgres": ("dbstate-local/postgres:15", "postgres", {"PG_MAJOR": "15"}, BASE_SUITE),
    "postgres17": ("dbstate-local/postgres:17", "postgres", {"PG_MAJOR": "17"}, SECOND_SUITE),
    "mariadb": ("dbstate-local/mariadb:10.11", "mariadb", {}, BASE_SUITE),
    "mariadb11": ("dbstate-local/mariadb:11.8", "mariadb", {}, SECOND_SUITE),
    "redis": ("dbstate-local/redis:7.0", "redis", {}, BASE_SUITE),
    "valkey": ("dbstate-local/valkey:8.1", "valkey", {}, SECOND_SUITE),
    "app": ("dbstate-local/app:1", "app", {}, BASE_SUITE),
    # bookworm's postgres_exporter 0.11, mysqld_exporter 0.14, redis_exporter 1.45
    "postgres-exporter": (
        "dbstate-local/postgres-exporter:0.11",
        "exporter",
        {"BIN": "postgres", "PORT": "9187"},
        EXPORTERS,
    ),
    "mysqld-exporter": ("dbstate-local/mysqld-exporter:0.14", "exporter", {"BIN": "mysqld", "PORT": "9104"}, EXPORTERS),
    "redis-exporter": ("dbstate-local/redis-exporter:1.45", "exporter", {"BIN": "redis", "PORT": "9121"}, EXPORTERS),
}
POOLS = {
    "test": "10.213.0.0/16",
    "local": "10.214.0.0/16",
    "bench": "10.215.0.0/16",
    "test2": "10.216.0.0/16",
    "bench2": "10.217.0.0/16",
    "bench3": "10.218.0.0/16",
    "bench4": "10.220.0.0/16",  # 10.219 is the pool of any other name
    "swarm": "10.221.0.0/16",
    "node1": "10.225.0.0/16",  # the two engines of a two-node swarm, each in a network namespace of its own
    "node2": "10.226.0.0/16",
}
SWARM_POOL = "10.222.0.0/16"  # the overlay networks of a private swarm (Swarm's default is all of 10.0.0.0/8)


class EngineStartError(RuntimeError):
    pass


@dataclass
class Engine:
    name: str
    host: str
    run_dir: Path
    data_root: Path
    pid: int | None
    started_here: bool
    process: subprocess.Popen[bytes] | None = None
    tcp: str | None = None  # tcp://127.0.0.1:PORT when it also listens with TLS (client certificates verified)

    def client(self, timeout: int = 120) -> docker.DockerClient:
        return docker.DockerClient(base_url=self.host, version="auto", timeout=timeout)

    def stop(self, timeout: float = 20) -> None:
        if self.pid is None or not self.started_here:
            return
        _terminate(self.pid, timeout)
        if self.process is not None:
            try:
                self.process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.pid = None


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _terminate(pid: int, timeout: float) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and _alive(pid):
        with contextlib.suppress(ChildProcessError):
            os.waitpid(pid, os.WNOHANG)
        time.sleep(0.1)
    if _alive(pid):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)


def _release_mounts(data_root: Path) -> None:
    """The container filesystems a dockerd of this data root left mounted when it was killed before it could unmount
    them (a test stops an engine under running containers): unmounted lazily, or the next dockerd cannot remove those
    containers ("failed to remove root filesystem: device or resource busy"). Only mounts under this data root, and
    only while no dockerd of it runs."""
    prefix = f"{data_root}/overlay2/"
    with open("/proc/mounts") as f:
        targets = [line.split()[1] for line in f if len(line.split()) > 1]
    stale = [t for t in targets if t.startswith(prefix)]
    for target in stale:
        subprocess.run(["umount", "-l", target], check=False, capture_output=True)


def paths(name: str) -> tuple[Path, Path]:
    return RUN_ROOT / f"dbs-{name}", STATE_ROOT / f"{name}-engine"


def _ping(host: str) -> bool:
    # docker-py leaks its socket when connect() fails: check that something listens before handing it over.
    if host.startswith("unix://"):
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as probe:
            probe.settimeout(2)
            try:
                probe.connect(host.removeprefix("unix://"))
            except OSError:
                return False
    try:
        client = docker.DockerClient(base_url=host, version="auto", timeout=3)
    except docker.errors.DockerException:
        return False
    try:
        return bool(client.ping())
    except Exception:
        return False
    finally:
        client.close()


def start(
    name: str = "test",
    timeout: float = 60,
    reuse: bool = True,
    tls: Certificates | None = None,
    port: int = 0,
    netns: str | None = None,
) -> Engine:
    """Start (or, with reuse, find already running) the private engine called `name`. With `tls`, it also listens on
    tcp://127.0.0.1:`port` and accepts only clients with a certificate of that CA (dockerd --tlsverify); its unix
    socket stays, for the harness. With `netns`, it runs in that network namespace (`netns_pair`): a host of its
    own on the network, its unix socket still reached from here."""
    if shutil.which("dockerd") is None:
        raise EngineStartError("dockerd is not installed: run `bash scripts/setup` (installs Debian's docker.io)")
    if os.geteuid() != 0:
        raise EngineStartError("a private dockerd must run as root")
    run_dir, data_root = paths(name)
    host = f"unix://{run_dir}/docker.sock"
    pidfile = run_dir / "docker.pid"
    tcp = f"tcp://127.0.0.1:{port}" if tls is not None else None
    if tls is not None:
        reuse = False  # a running one may have other certificates
    if pidfile.exists():
        try:
            old = int(pidfile.read_text().strip())
        except ValueError:
            old = 0
        if old and _alive(old):
            if reuse and _ping(host):
                return Engine(name, host, run_dir, data_root, old, started_here=False, tcp=tcp)
            _terminate(old, 20)
        pidfile.unlink(missing_ok=True)
    run_dir.mkdir(parents=True, exist_ok=True)
    data_root.mkdir(parents=True, exist_ok=True)
    _release_mounts(data_root)
    (run_dir / "docker.sock").unlink(missing_ok=True)
    pool = POOLS.get(name, "10.219.0.0/16")
    log = open(run_dir / "dockerd.log", "ab")  # noqa: SIM115 - handed to the child process
    cmd = [
        *(["nsenter", f"--net=/var/run/netns/{netns}"] if netns else []),  # not `ip netns exec`: it hides the cgroups
        "dockerd",
        f"--data-root={data_root}",
        f"--exec-root={run_dir}/exec",
        f"--pidfile={pidfile}",
        f"--host={host}",
        "--bridge=none",
        f"--default-address-pool=base={pool},size=24",
        "--log-level=warn",
    ]
    if tls is not None:
        cmd += [
            f"--host={tcp}",
            "--tlsverify",
            f"--tlscacert={tls.ca}",
            f"--tlscert={tls.server_cert}",
            f"--tlskey={tls.server_key}",
        ]
    proc = subprocess.Popen(cmd, stdout=log, stderr=log, stdin=subprocess.DEVNULL, start_new_session=True)
    log.close()
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            proc.wait()
            raise EngineStartError(f"dockerd exited with {proc.returncode}: {_tail(run_dir / 'dockerd.log')}")
        if _ping(host):
            return Engine(name, host, run_dir, data_root, proc.pid, started_here=True, process=proc, tcp=tcp)
        time.sleep(0.2)
    _terminate(proc.pid, 5)
    proc.wait()
    raise EngineStartError(f"dockerd did not answer within {timeout:.0f}s: {_tail(run_dir / 'dockerd.log')}")


@dataclass(frozen=True)
class Certificates:
    """A CA, a server certificate for 127.0.0.1 and a client certificate signed by it (PEM files in `directory`)."""

    directory: Path

    @property
    def ca(self) -> Path:
        return self.directory / "ca.pem"

    @property
    def server_cert(self) -> Path:
        return self.directory / "server-cert.pem"

    @property
    def server_key(self) -> Path:
        return self.directory / "server-key.pem"

    @property
    def client_cert(self) -> Path:
        return self.directory / "cert.pem"

    @property
    def client_key(self) -> Path:
        return self.directory / "key.pem"


def make_certificates(directory: Path) -> Certificates:
    """What `dockerd --tlsverify` and its clients need, made with openssl (Docker's own "protect the daemon socket"
    recipe): keys are EC P-256, certificates valid one day, the server's for IP 127.0.0.1."""
    directory.mkdir(parents=True, exist_ok=True)
    certs = Certificates(directory)

    def openssl(*args: str, config: str | None = None) -> None:
        extra = []
        if config is not None:
            ext = directory / "ext.cnf"
            ext.write_text(config)
            extra = ["-extfile", str(ext)]
        subprocess.run(["openssl", *args, *extra], check=True, capture_output=True, cwd=directory)

    def key(path: Path) -> None:
        openssl("ecparam", "-name", "prime256v1", "-genkey", "-noout", "-out", str(path))
        path.chmod(0o600)

    key(directory / "ca-key.pem")
    openssl(
        "req", "-new", "-x509", "-days", "1", "-key", "ca-key.pem", "-subj", "/CN=dbstate-test-ca", "-out", "ca.pem"
    )
    for who, pem, key_path, ext in (
        (
            "server",
            certs.server_cert,
            certs.server_key,
            "subjectAltName = IP:127.0.0.1\nextendedKeyUsage = serverAuth\n",
        ),
        ("client", certs.client_cert, certs.client_key, "extendedKeyUsage = clientAuth\n"),
    ):
        key(key_path)
        csr = directory / f"{who}.csr"
        openssl("req", "-new", "-key", str(key_path), "-subj", f"/CN=dbstate-test-{who}", "-out", str(csr))
        openssl(
            "x509",
            "-req",
            "-days",
            "1",
            "-in",
            str(csr),
            "-CA",
            "ca.pem",
            "-CAkey",
            "ca-key.pem",
            "-CAcreateserial",
            "-out",
            str(pem),
            config=ext,
        )
    return certs


def swarm_init(
    client: docker.DockerClient, node_label: tuple[str, str] | None = None, address: str | None = None
) -> str:
    """Make the engine behind `client` a swarm's manager, on 127.0.0.1 only (a single-node swarm) or on `address`
    (one that other nodes reach: `netns_pair`), its node labelled `node_label` (key, value); its node's ID.
    `swarm_leave` undoes it."""
    if address is None:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        address, listen = "127.0.0.1", f"127.0.0.1:{port}"
    else:
        listen = f"{address}:2377"
    client.api.init_swarm(advertise_addr=address, listen_addr=listen, default_addr_pool=[SWARM_POOL], subnet_size=24)
    ident = str(client.info()["Swarm"]["NodeID"])
    if node_label is not None:
        label_node(client, ident, node_label)
    return ident


def swarm_join(
    worker: docker.DockerClient, manager: docker.DockerClient, address: str, node_label: tuple[str, str]
) -> str:
    """The engine behind `worker` (reached by the others at `address`) joined to `manager`'s swarm as a worker, its
    node labelled `node_label`; its node's ID."""
    swarm = manager.api.inspect_swarm()
    where = manager.info()["Swarm"]["RemoteManagers"][0]["Addr"]
    worker.api.join_swarm([where], swarm["JoinTokens"]["Worker"], listen_addr=f"{address}:2377", advertise_addr=address)
    ident = str(worker.info()["Swarm"]["NodeID"])
    label_node(manager, ident, node_label)
    return ident


def label_node(manager: docker.DockerClient, ident: str, label: tuple[str, str]) -> None:
    node = manager.api.inspect_node(ident)
    node_spec = dict(node["Spec"], Labels={**(node["Spec"].get("Labels") or {}), label[0]: label[1]})
    manager.api.update_node(ident, node["Version"]["Index"], node_spec)


def netns_pair(a: str, b: str, subnet: str = "10.250.0") -> tuple[str, str]:
    """Two network namespaces joined by one veth pair (no bridge, so no firewall of this machine's in between), at
    `subnet`.1 and `subnet`.2: two hosts on one network, for a swarm of two private engines. Made anew each time;
    `netns_remove` undoes it. Their addresses."""
    netns_remove(a, b)
    for ns in (a, b):
        _ip("netns", "add", ns)
    _ip("link", "add", f"{a}-v", "netns", a, "type", "veth", "peer", "name", f"{b}-v", "netns", b)
    for i, ns in enumerate((a, b), start=1):
        _ip("-n", ns, "addr", "add", f"{subnet}.{i}/24", "dev", f"{ns}-v")
        _ip("-n", ns, "link", "set", f"{ns}-v", "up")
        _ip("-n", ns, "link", "set", "lo", "up")
    return f"{subnet}.1", f"{subnet}.2"


def netns_remove(*names: str) -> None:
    for ns in names:
        if Path(f"/var/run/netns/{ns}").exists():
            _ip("netns", "del", ns)


def _ip(*args: str) -> None:
    done = subprocess.run(["ip", *args], capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise EngineStartError(f"ip {' '.join(args)}: {done.stderr.strip()}")


def swarm_leave(client: docker.DockerClient) -> None:
    """Every service and secret removed, and the engine out of its swarm."""
    with contextlib.suppress(docker.errors.APIError):
        for svc in client.api.services():
            client.api.remove_service(svc["ID"])
        deadline = time.monotonic() + 30
        while client.api.containers(filters={"label": "com.docker.swarm.service.id"}) and time.monotonic() < deadline:
            time.sleep(0.5)
        for secret in client.api.secrets():
            client.api.remove_secret(secret["ID"])
    with contextlib.suppress(docker.errors.APIError):
        client.api.leave_swarm(force=True)
    for c in client.api.containers(all=True, filters={"label": "com.docker.swarm.service.id"}):  # tasks left behind
        with contextlib.suppress(docker.errors.APIError):
            client.api.remove_container(c["Id"], force=True)


class TwoNodeSwarm:
    """A real two-node swarm on this machine: two private engines (`node1`, the manager, labelled io.dbstate.node=db1;
    `node2`, a worker, db2), each in a network namespace of its own joined by a veth pair, with `images` copied in
    from `source`. `close` removes it all."""

    NETNS = ("dbs-node1", "dbs-node2")

    def __init__(self, source: docker.DockerClient, images: list[str]) -> None:
        self.addresses = netns_pair(*self.NETNS)
        self.engines = [start(f"node{i}", netns=ns, reuse=False) for i, ns in enumerate(self.NETNS, 1)]
        self.clients = [e.client(600) for e in self.engines]
        for c in self.clients:
            swarm_leave(c)  # a swarm an interrupted run left
            cleanup(c)
            copy_images(source, c, images)
        swarm_init(self.clients[0], ("io.dbstate.node", "db1"), address=self.addresses[0])
        swarm_join(self.clients[1], self.clients[0], self.addresses[1], ("io.dbstate.node", "db2"))

    @property
    def manager(self) -> docker.DockerClient:
        return self.clients[0]

    @property
    def worker(self) -> docker.DockerClient:
        return self.clients[1]

    def stop_worker(self) -> None:
        """The worker's engine shut down (its tasks stop with it): a node that goes away."""
        self.engines[1].stop()

    def restart_worker(self) -> None:
        self.worker.close()
        self.engines[1] = start("node2", netns=self.NETNS[1], reuse=False)
        self.clients[1] = self.engines[1].client(600)

    def partition_worker(self, cut: bool) -> None:
        """The worker's link to the manager cut (`cut`) or mended: its engine and tasks run on, out of reach."""
        _ip("-n", self.NETNS[1], "link", "set", f"{self.NETNS[1]}-v", "down" if cut else "up")

    def close(self) -> None:
        for c in reversed(self.clients):
            swarm_leave(c)
            cleanup(c)
            c.close()
        for e in self.engines:
            e.stop()
        netns_remove(*self.NETNS)


def copy_images(src: docker.DockerClient, dst: docker.DockerClient, refs: list[str]) -> None:
    """Images from one private engine into another (docker save | docker load), unless it has them with the same
    recipe: a second engine needs no second mmdebstrap."""
    for ref in refs:
        recipe = _image_label(src, ref, "io.dbstate.recipe")
        if recipe is not None and _image_label(dst, ref, "io.dbstate.recipe") == recipe:
            continue
        dst.images.load(b"".join(src.images.get(ref).save(named=True)))


def stop(name: str) -> bool:
    run_dir, _ = paths(name)
    pidfile = run_dir / "docker.pid"
    if not pidfile.exists():
        return False
    pid = int(pidfile.read_text().strip() or 0)
    if pid and _alive(pid):
        _terminate(pid, 20)
        return True
    return False


def _tail(path: Path, lines: int = 8) -> str:
    try:
        return " | ".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


def _hash(*parts: bytes) -> str:
    h = hashlib.sha256()
    for p in parts:
        h.update(hashlib.sha256(p).digest())
    return h.hexdigest()[:12]


def _dir_bytes(path: Path) -> bytes:
    return b"".join(p.name.encode() + p.read_bytes() for p in sorted(path.iterdir()) if p.is_file())


def _image_label(client: docker.DockerClient, ref: str, label: str) -> str | None:
    try:
        image = client.images.get(ref)
    except docker.errors.ImageNotFound:
        return None
    labels = image.labels or {}
    return labels.get(label)


def ensure_base(  # type: ignore[no-untyped-def]
    client: docker.DockerClient, log=print, suite: str = BASE_SUITE, packages: tuple[str, ...] = BASE_PACKAGES
) -> str:
    """A Debian rootfs with `packages`, imported as an image, unless one with the same recipe is there."""
    recipe = _hash(suite.encode(), " ".join(packages).encode(), b"--variant=apt")
    ref = f"dbstate-dev/base:{suite}-{recipe}"
    try:
        client.images.get(ref)
        return ref
    except docker.errors.ImageNotFound:
        pass
    if shutil.which("mmdebstrap") is None:
        raise EngineStartError("mmdebstrap is not installed: run `bash scripts/setup`")
    STATE_ROOT.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=STATE_ROOT) as tmp:
        tar = Path(tmp) / "rootfs.tar"
        log(f"devtools: building the {suite} rootfs with mmdebstrap ({', '.join(packages)}), ~1 min")
        t0 = time.monotonic()
        subprocess.run(
            ["mmdebstrap", "--quiet", "--variant=apt", f"--include={','.join(packages)}", suite, str(tar)],
            check=True,
            stdin=subprocess.DEVNULL,
        )
        log(f"devtools: rootfs built in {time.monotonic() - t0:.0f}s; importing")
        repo, tag = ref.split(":")
        client.api.import_image_from_file(str(tar), repository=repo, tag=tag)
    return ref


def ensure_images(client: docker.DockerClient, log=print) -> dict[str, str]:  # type: ignore[no-untyped-def]
    """Build the stand-in images into the engine behind `client` unless their recipe is unchanged."""
    bases = {
        BASE_SUITE: ensure_base(client, log),
        SECOND_SUITE: ensure_base(client, log, SECOND_SUITE, SECOND_PACKAGES),
        EXPORTERS: ensure_base(client, log, BASE_SUITE, EXPORTER_PACKAGES),
    }
    out: dict[str, str] = {}
    for name, (ref, directory, args, suite) in STAND_INS.items():
        base = bases[suite]
        recipe = _hash(base.encode(), _dir_bytes(IMAGES / directory), repr(sorted(args.items())).encode())
        if _image_label(client, ref, "io.dbstate.recipe") != recipe:
            log(f"devtools: building {ref}")
            client.images.build(
                path=str(IMAGES / directory),
                tag=ref,
                buildargs={"BASE_IMAGE": base, **args},
                labels={"io.dbstate.recipe": recipe},
                rm=True,
                forcerm=True,
            )
        out[name] = ref
    return out


def cleanup(
    client: docker.DockerClient,
    labels: tuple[str, ...] = (
        TEST_LABEL,
        "io.dbstate.test",
        "io.dbstate.managed",
        "io.dbstate.lease",
        "io.dbstate.seen",
        "io.dbstate.adoption",
        "io.dbstate.helper",
    ),
) -> None:
    """Remove every container, network and volume carrying one of `labels` (never anything else): what tests made,
    what dbstate made for them, and the markers and helpers of their controllers (lease, volumes seen, adoptions)."""
    for label in labels:
        for c in client.containers.list(all=True, filters={"label": label}):
            with contextlib.suppress(docker.errors.NotFound):
                c.remove(force=True, v=False)
    for label in labels:
        for n in client.networks.list(filters={"label": label}):
            with contextlib.suppress(docker.errors.NotFound, docker.errors.APIError):
                n.remove()
        for v in client.volumes.list(filters={"label": label}):
            with contextlib.suppress(docker.errors.NotFound, docker.errors.APIError):
                v.remove(force=True)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        prog="python -m devtools.engine", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    sub = p.add_subparsers(dest="cmd", required=True)
    s = sub.add_parser("start", help="start a private engine and build the stand-in images into it")
    s.add_argument("--name", default="local")
    s.add_argument("--no-images", action="store_true")
    s = sub.add_parser("stop", help="stop a private engine (its images stay cached)")
    s.add_argument("--name", default="local")
    s = sub.add_parser("images", help="build the stand-in images into an engine")
    s.add_argument("--host", default=os.environ.get("DOCKER_HOST"))
    args = p.parse_args(argv)
    try:
        if args.cmd == "start":
            engine = start(args.name)
            if not args.no_images:
                client = engine.client()
                try:
                    ensure_images(client, log=lambda m: print(m, file=sys.stderr))
                finally:
                    client.close()
            state = "started" if engine.started_here else "already running"
            print(f"devtools: engine {args.name!r} {state}; use it with:", file=sys.stderr)
            print(f"export DOCKER_HOST={engine.host}")
            return 0
        if args.cmd == "stop":
            print("stopped" if stop(args.name) else "not running", file=sys.stderr)
            return 0
        client = docker.DockerClient(base_url=args.host, version="auto", timeout=300)
        try:
            for name, ref in ensure_images(client, log=lambda m: print(m, file=sys.stderr)).items():
                print(f"{name}: {ref}")
        finally:
            client.close()
        return 0
    except (EngineStartError, subprocess.CalledProcessError, docker.errors.DockerException) as e:
        print(f"devtools: {e}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
