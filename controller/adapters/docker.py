"""A typed wrapper over docker-py's low-level API: observes the engine into a `live.LiveState`.

It uses the low-level `APIClient` on purpose: the high-level `containers.list()` inspects every container, one API call
each. Observation costs one call for the engine's version, one list per kind, and one inspect per declared container
whose network aliases or environment the diff needs (the list endpoint reports aliases as null). Inspects run
concurrently and are skipped when every endpoint of the container is already in the alias cache: Docker cannot change
an endpoint's aliases in place, so an EndpointID always has the aliases it was created with.

docker-py's exceptions are translated into `core.errors` here, once (`translate`), and re-raised `from` the original.
"""

from __future__ import annotations

import contextlib
import os
import socket
import threading
import uuid
from collections.abc import Callable, Collection, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from typing import Any, TypeVar

import docker
import docker.errors
import docker.tls
import docker.types
import requests.exceptions

from controller.adapters import retry
from controller.core import errors, labels, live, spec, versions
from controller.core.labels import ADOPTION, HELPER, HELPER_PREFIX, LEASE, MARKER_PREFIXES, SEEN, VOLUME_ID
from controller.core.text import printable

API_VERSION = "1.41"  # Docker Engine 20.10 and newer
DEFAULT_HOST = "unix:///var/run/docker.sock"
T = TypeVar("T")


def resolve_host(host: str | None) -> str:
    """--docker-host, then DOCKER_HOST, then the default socket."""
    return host or os.environ.get("DOCKER_HOST") or DEFAULT_HOST


def translate(exc: BaseException, doing: str, host: str) -> errors.EngineError:
    """The one place where docker-py's and requests' exceptions become ours."""
    if isinstance(exc, docker.errors.ImageNotFound):
        return errors.ImageNotFound(f"{doing}: image not found: {_explain(exc)}")
    if isinstance(exc, docker.errors.APIError):
        status = exc.status_code or 0
        if status >= 500:
            return errors.EngineTransient(f"{doing}: engine error {status}: {_explain(exc)}")
        if status == 400 and "too new" in _explain(exc):
            return errors.EnginePermanent(
                f"the engine at {host} is older than Docker 20.10 (API {API_VERSION}): {_explain(exc)}"
            )
        return errors.EnginePermanent(f"{doing}: {_explain(exc)}")
    if isinstance(exc, requests.exceptions.SSLError):
        return errors.EngineUnavailable(
            f"the Docker engine at {host} and dbstate do not trust each other ({_reason(exc)}): its certificate must "
            "be signed by the Host's tls.ca, and ours (tls.cert, tls.key) by the CA it verifies clients with"
        )
    if isinstance(exc, requests.exceptions.Timeout):
        return errors.EngineUnavailable(f"{doing}: the Docker engine at {host} did not answer in time")
    if isinstance(
        exc, requests.exceptions.ConnectionError | docker.errors.DockerException | ConnectionError | FileNotFoundError
    ):
        return errors.EngineUnavailable(
            f"cannot reach the Docker engine at {host} ({_reason(exc)}): is it running? "
            "Start a private one with `bash scripts/local-engine` and export the DOCKER_HOST it prints, "
            "or pass --docker-host"
        )
    return errors.EngineError(f"{doing}: {type(exc).__name__}: {exc}")


def _explain(exc: docker.errors.APIError) -> str:
    return printable(str(exc.explanation or exc).strip())


def _reason(exc: BaseException) -> str:
    text = str(exc)
    for hint in (
        "No such file or directory",
        "Connection refused",
        "Permission denied",
        "Connection reset",
        "CERTIFICATE_VERIFY_FAILED",
        "TLSV1_ALERT_UNKNOWN_CA",
        "SSLV3_ALERT_BAD_CERTIFICATE",
        "TLSV13_ALERT_CERTIFICATE_REQUIRED",
    ):
        if hint in text:
            return hint.lower()
    return type(exc).__name__


TLSFiles = tuple[str, str, str]  # ca, cert, key: paths


def _tls_config(files: TLSFiles | None, host: str) -> docker.tls.TLSConfig | bool:
    """The client side of dockerd --tlsverify: the engine's certificate checked against `ca`, ours presented."""
    if files is None:
        return False
    for what, path in zip(("ca", "cert", "key"), files, strict=True):
        if not os.path.isfile(path):
            raise errors.EnginePermanent(f"the Docker engine at {host}: tls.{what} {path} is not a readable file")
    ca, cert, key = files
    return docker.tls.TLSConfig(client_cert=(cert, key), ca_cert=ca, verify=True)


def _quiet_ssh_close() -> None:
    """docker/docker-py#3218 (open): over ssh, closing a connection writes to the pipe of an `ssh` that has already
    exited (an exec's stream ends, dockerd closes, dial-stdio and ssh exit), so a call that succeeded raises
    BrokenPipeError. Closing such a connection is made quiet, once; nothing else of the transport changes."""
    from docker.transport import sshconn  # with paramiko installed (docker[ssh])

    original = sshconn.SSHSocket.close
    if getattr(original, "quiet", False):
        return

    def close(self: Any) -> None:
        try:
            original(self)
        except (BrokenPipeError, ValueError, OSError):  # the ssh process is gone already: nothing to tell it
            with contextlib.suppress(Exception):
                self.proc.terminate()

    close.quiet = True  # type: ignore[attr-defined]
    sshconn.SSHSocket.close = close  # type: ignore[method-assign]


_fenced = threading.local()  # set while a fenced (mutating) call of DockerRuntime runs in this thread


class _Gated(requests.adapters.BaseAdapter):
    """docker-py's transport with a last check: a request of a fenced call is sent only if `gate()` allows it, checked
    after docker-py and requests have prepared it, right before it leaves (the lease's clock: a controller frozen
    after its `fence` and woken after its lease expired does not send)."""

    def __init__(self, inner: requests.adapters.BaseAdapter, gate: Callable[[], None]) -> None:
        super().__init__()
        self.inner, self.gate = inner, gate

    def send(self, request: requests.PreparedRequest, *args: Any, **kwargs: Any) -> requests.Response:
        if getattr(_fenced, "active", False):
            self.gate()
        return self.inner.send(request, *args, **kwargs)

    def close(self) -> None:
        self.inner.close()


class DockerEngine:
    """The Docker engine as dbstate sees it. Not thread-safe for mutation; observation is."""

    gate: Callable[[], None] = staticmethod(lambda: None)

    def __init__(
        self,
        host: str | None = None,
        timeout: int = 30,
        known_aliases: Mapping[str, tuple[str, ...]] | None = None,
        retry_budget: float = retry.DEFAULT_BUDGET,
        progress: Callable[[str], None] | None = None,
        save_aliases: Callable[[Mapping[str, tuple[str, ...]]], None] | None = None,
        tls: TLSFiles | None = None,
    ) -> None:
        """`known_aliases` and `save_aliases`: where the EndpointID -> aliases cache lives between processes (the
        state database); it is saved after an observation that changed it. `tls`: the client's (ca, cert, key) files
        for a tcp:// engine that verifies clients; an ssh:// engine is reached through the `ssh` client."""
        self.host = resolve_host(host)
        self.tls = tls
        if self.host.startswith("ssh://"):
            _quiet_ssh_close()
        self.save_aliases = save_aliases
        self.retry_budget = retry_budget
        self.progress = progress or (lambda _msg: None)
        try:
            self.api = docker.APIClient(
                base_url=self.host,
                version=API_VERSION,
                timeout=timeout,
                tls=_tls_config(tls, self.host),
                use_ssh_client=self.host.startswith("ssh://"),
            )
        except docker.errors.DockerException as e:
            raise translate(e, "connecting", self.host) from e
        if tls is not None:
            # requests lets REQUESTS_CA_BUNDLE / CURL_CA_BUNDLE override a session's own CA (psf/requests#3829): the
            # engine's CA must be the one that decides, whatever the environment says
            self.api.trust_env = False
        for prefix, adapter in list(self.api.adapters.items()):
            self.api.mount(prefix, _Gated(adapter, lambda: self.gate()))
        self._aliases: dict[str, tuple[str, ...]] = dict(known_aliases or {})  # EndpointID -> aliases
        self.current_aliases: dict[str, tuple[str, ...]] = dict(self._aliases)  # as saved, then as last observed
        self._lock = threading.Lock()
        self._pool: ThreadPoolExecutor | None = None

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=False)
        self.api.close()

    def __enter__(self) -> DockerEngine:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @contextmanager
    def calling(self, doing: str) -> Iterator[None]:
        """Around a read of the engine's (what `doing` says): docker-py's errors translated once, here."""
        try:
            yield
        except errors.DbstateError:
            raise
        except (docker.errors.DockerException, requests.exceptions.RequestException, OSError) as e:
            raise translate(e, doing, self.host) from e

    def call(self, doing: str, fn: Callable[[], T]) -> T:
        with self.calling(doing):
            return fn()

    def preflight(self) -> None:
        """Fail fast, and cleanly, when a unix socket has no engine behind it.

        docker-py's UnixHTTPConnection leaks its socket when connect() fails; connecting once ourselves first means
        an absent engine never reaches that code path.
        """
        if not self.host.startswith("unix://"):
            return
        path = self.host.removeprefix("unix://")
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as probe:
            probe.settimeout(3)
            try:
                probe.connect(path)
            except OSError as e:
                raise translate(ConnectionError(e.strerror or str(e)), "connecting", self.host) from e

    def info(self) -> live.EngineInfo:
        self.preflight()
        v = self.call("asking the engine's version", self.api.version)
        return live.EngineInfo(self.host, str(v.get("Version", "?")), str(v.get("ApiVersion", "?")))

    def observe(self, inspect: Collection[str] = (), *, inspect_all: bool = False) -> live.LiveState:
        """A snapshot of every container, network and volume; `inspect` names the containers whose aliases and
        environment the diff needs (the declared ones); `inspect_all` inspects every container (audit)."""
        engine = self.info()
        raw_containers = [
            c
            for c in self.call("listing containers", lambda: self.api.containers(all=True))
            if not (_name(c).startswith(MARKER_PREFIXES) and {LEASE, HELPER} & set(c.get("Labels") or {}))
        ]
        raw_networks = self.call("listing networks", self.api.networks)
        raw_volumes = self.call("listing volumes", self.api.volumes).get("Volumes") or []
        wanted = set(inspect)
        details = self._inspect_many(
            [c for c in raw_containers if inspect_all or _name(c) in wanted], force=inspect_all
        )
        containers = tuple(_container(c, details.get(c["Id"]), self._aliases) for c in raw_containers)
        with self._lock:
            endpoints = {
                n.get("EndpointID")
                for c in raw_containers
                for n in ((c.get("NetworkSettings") or {}).get("Networks") or {}).values()
            }
            current = {e: a for e, a in self._aliases.items() if e in endpoints}
            changed = current != self.current_aliases
            self.current_aliases = current
        if changed and self.save_aliases is not None:
            self.save_aliases(current)
        networks = tuple(
            live.Network(n["Id"], n["Name"], n.get("Driver") or "", bool(n.get("Internal")), n.get("Labels") or {})
            for n in raw_networks
        )
        volumes = tuple(
            live.Volume(v["Name"], v.get("Driver") or "", v.get("Labels") or {})
            for v in raw_volumes
            if not (str(v["Name"]).startswith(MARKER_PREFIXES) and {SEEN, ADOPTION} & set(v.get("Labels") or {}))
        )
        return live.LiveState(engine, containers, networks, volumes)

    def _inspect_many(self, raw: list[dict[str, Any]], force: bool = False) -> dict[str, dict[str, Any]]:
        todo = [c for c in raw if force or not self._endpoints_known(c) or _wants_env(c)]
        if not todo:
            return {}
        if len(todo) == 1:
            results = [self._inspect(todo[0]["Id"])]
        else:
            if self._pool is None:
                self._pool = ThreadPoolExecutor(max_workers=8, thread_name_prefix="dbstate-inspect")
            results = list(self._pool.map(self._inspect, [c["Id"] for c in todo]))
        out = {}
        for r in results:
            if r is None:
                continue  # removed between the list and the inspect: the next pass sees it gone
            out[r["Id"]] = r
            with self._lock:
                for net in ((r.get("NetworkSettings") or {}).get("Networks") or {}).values():
                    if net.get("EndpointID"):
                        self._aliases[net["EndpointID"]] = _clean_aliases(net.get("Aliases"), r["Id"])
        return out

    def _inspect(self, container_id: str) -> dict[str, Any] | None:
        try:
            detail: dict[str, Any] = self.call(
                "inspecting a container", lambda: self.api.inspect_container(container_id)
            )
            return detail
        except errors.EnginePermanent:
            return None

    def _endpoints_known(self, c: Mapping[str, Any]) -> bool:
        nets = ((c.get("NetworkSettings") or {}).get("Networks") or {}).values()
        with self._lock:
            # A stopped container has no endpoint: its configured aliases are only in the inspect.
            return all(n.get("EndpointID") and n["EndpointID"] in self._aliases for n in nets)


def _wants_env(c: Mapping[str, Any]) -> bool:
    """Containers dbstate does not manage (the consumers) may change their environment at any time."""
    return (c.get("Labels") or {}).get(labels.MANAGED) != "true"


def _name(c: Mapping[str, Any]) -> str:
    names = c.get("Names") or ["/" + c["Id"][:12]]
    return str(names[0]).lstrip("/")


def _clean_aliases(aliases: list[str] | None, container_id: str) -> tuple[str, ...]:
    """Docker adds the short container ID as an alias on user networks; it is not one anybody declared."""
    return tuple(a for a in (aliases or []) if a != container_id[:12])


def _health(status: str) -> str | None:
    for h in ("unhealthy", "healthy", "health: starting"):
        if f"({h})" in status:
            return h.replace("health: ", "")
    return None


def _container(
    c: Mapping[str, Any], detail: Mapping[str, Any] | None, aliases: Mapping[str, tuple[str, ...]]
) -> live.Container:
    inspected = ((detail or {}).get("NetworkSettings") or {}).get("Networks") or {}
    nets = []
    for net_name, n in sorted(((c.get("NetworkSettings") or {}).get("Networks") or {}).items()):
        if net_name in inspected:
            known = _clean_aliases(inspected[net_name].get("Aliases"), c["Id"])
        else:
            known = aliases.get(n.get("EndpointID") or "", ())
        nets.append(live.Attachment(net_name, known, n.get("IPAddress") or None))
    mounts = tuple(
        live.Mount(
            m.get("Type", ""), m.get("Name") or m.get("Source") or "", m.get("Destination", ""), m.get("RW", True)
        )
        for m in c.get("Mounts") or []
    )
    ports = tuple(
        live.Port(int(p["PrivatePort"]), p.get("Type", "tcp"), p.get("IP"), p.get("PublicPort"))
        for p in c.get("Ports") or []
        if "PrivatePort" in p
    )
    env, command = None, None
    if detail is not None:
        env = {}
        for item in (detail.get("Config") or {}).get("Env") or []:
            key, _, value = item.partition("=")
            env[key] = value
        command = tuple(str(a) for a in (detail.get("Config") or {}).get("Cmd") or ())
    return live.Container(
        id=c["Id"],
        name=_name(c),
        image=c.get("Image", ""),
        state=c.get("State", ""),
        labels=c.get("Labels") or {},
        networks=tuple(nets),
        mounts=mounts,
        ports=ports,
        health=_health(c.get("Status", "")),
        env=env,
        command=command,
    )


EVENT_ACTIONS = {
    "container": {"die", "stop", "kill", "oom", "destroy", "pause"},
    "network": {"connect", "disconnect", "destroy"},
    "volume": {"destroy"},
}


def trigger_of(event: Mapping[str, Any]) -> tuple[str, str, str, str] | None:
    """(kind, action, name, container ID) of an engine event that should trigger a pass, or None: only what can mean
    drift, and never dbstate's own lease markers (each renewal makes and removes one: they would trigger a pass every
    few seconds). The container ID is the container's, or for a network event the container (dis)connected."""
    kind, action = str(event.get("Type", "")), str(event.get("Action", "")).split(":")[0]
    if action not in EVENT_ACTIONS.get(kind, ()):
        return None
    actor = event.get("Actor") or {}
    name = (actor.get("Attributes") or {}).get("name") or (actor.get("ID", "") if kind == "volume" else "")
    if str(name).startswith(MARKER_PREFIXES):
        return None
    attrs = actor.get("Attributes") or {}
    container = str(actor.get("ID", "")) if kind == "container" else str(attrs.get("container", ""))
    return kind, action, printable(str(name)), container


def follow_events(
    host: str,
    on_event: Callable[[str, str, str, str], None],
    on_connection: Callable[[bool], None],
    stop: threading.Event,
    tls: TLSFiles | None = None,
) -> None:
    """Block until `stop`, calling `on_event(kind, action, name, container)` for the events that can mean drift. When
    the engine
    goes away it reconnects with backoff (0.5 s growing to 10 s) and reports the connection state through
    `on_connection`."""
    delay = 0.5
    holder: dict[str, Any] = {}

    def closer() -> None:
        stop.wait()
        stream = holder.get("stream")
        if stream is not None:
            with contextlib.suppress(Exception):
                stream.close()

    threading.Thread(target=closer, name="dbstate-events-closer", daemon=True).start()
    while not stop.is_set():
        engine = None
        try:
            engine = DockerEngine(host, timeout=60, tls=tls)
            engine.preflight()
            stream = engine.api.events(decode=True, filters={"type": list(EVENT_ACTIONS)})
            holder["stream"] = stream
            on_connection(True)
            delay = 0.5
            for event in stream:
                if stop.is_set():
                    break
                found = trigger_of(event)
                if found is not None:
                    on_event(*found)
        except Exception:  # noqa: S110 - any failure of the stream means: reconnect
            pass
        finally:
            holder.pop("stream", None)
            if engine is not None:
                engine.close()
        if stop.is_set():
            break
        on_connection(False)
        stop.wait(delay)
        delay = min(10.0, delay * 2)


class _Already(Exception):
    """The engine says the thing is already as asked (a retry after a lost answer): success."""


def _is(exc: BaseException, status: int, *fragments: str) -> bool:
    if not isinstance(exc, docker.errors.APIError) or exc.status_code != status:
        return False
    text = _explain(exc).lower()
    return any(f in text for f in fragments)


class DockerRuntime(DockerEngine):
    """The mutating half: implements `engine.ports.Runtime`. Each call is retried on transient errors within the
    retry budget, and is idempotent: a retry whose first attempt did reach the engine counts as done.

    `fence` runs before every attempt of every mutating call: with a lease (`adapters/lease.py`) it raises
    `LeaseLost` once this controller no longer holds it, so a holder that lost the lease stops before its next change;
    `gate` (the lease's clock only) runs again as the request leaves (`_Gated`).
    """

    fence: Callable[[], None] = staticmethod(lambda: None)

    def mutate(
        self, doing: str, fn: Callable[[], Any], already: Callable[[BaseException], bool] = lambda e: False
    ) -> Any:
        """One change of the engine's (what `doing` says): fenced by the lease, retried within the budget, docker-py's
        errors translated once (`already`: an error that means it was done already). The shell layer's too."""

        def attempt() -> Any:
            self.fence()
            _fenced.active = True
            try:
                return fn()
            except (docker.errors.DockerException, requests.exceptions.RequestException, OSError) as e:
                _fenced.active = False  # `already` may ask the engine: not a change
                if already(e):
                    return None
                raise translate(e, doing, self.host) from e
            finally:
                _fenced.active = False

        # an engine that is down or restarting is waited for within the same budget
        retry.call(self.preflight, self.retry_budget)
        return retry.call(attempt, self.retry_budget)

    def create_network(self, name: str, driver: str, internal: bool, labels: Mapping[str, str]) -> None:
        self.mutate(
            f"creating network {name}",
            lambda: self.api.create_network(
                name, driver=driver, internal=internal, labels=dict(labels), check_duplicate=True
            ),
            lambda e: _is(e, 409, "already exists"),
        )

    def create_volume(self, name: str, driver: str, labels: Mapping[str, str]) -> None:
        """With a random `io.dbstate.volume-id` besides `labels`: the volume's identity is its labels, and this one must
        never equal a volume made again later under the same name."""
        tagged = {**labels, VOLUME_ID: uuid.uuid4().hex}
        self.mutate(f"creating volume {name}", lambda: self.api.create_volume(name, driver=driver, labels=tagged))

    def run_once(self, image: str, mounts: Sequence[tuple[str, str, bool]], script: str) -> tuple[int, str]:
        """Run `script` with /bin/sh as root in a throw-away container of `image` without a network, with `mounts`
        (source, target, read-only) where a source is a volume's name or a host path; its exit code and output. The
        container is removed afterwards, whatever happens."""
        binds: dict[str, Mapping[str, str]] = {
            source: {"bind": target, "mode": "ro" if ro else "rw"} for source, target, ro in mounts
        }
        created = self.mutate(
            "creating a helper container",
            lambda: self.api.create_container(
                image,
                name=f"{HELPER_PREFIX}{uuid.uuid4().hex[:12]}",
                entrypoint=["/bin/sh", "-c"],
                command=[script],
                user="0",
                labels={HELPER: "true"},
                network_disabled=True,
                host_config=self.api.create_host_config(binds=binds, network_mode="none"),
            ),
        )
        cid = created["Id"]
        try:
            self.mutate("running a helper container", lambda: self.api.start(cid))
            code = self.call("waiting for a helper container", lambda: self.api.wait(cid, timeout=3600))
            output = self.call("reading a helper's output", lambda: self.api.logs(cid, stdout=True, stderr=True))
            return int(code.get("StatusCode", 1)), printable(output.decode(errors="replace"))
        finally:
            with contextlib.suppress(errors.EngineError):
                self.call("removing a helper container", lambda: self.api.remove_container(cid, force=True))

    def marker_volumes(self, label: str) -> dict[str, dict[str, str]]:
        """dbstate's own marker volumes carrying `label`: name -> labels."""
        raw = self.call("listing markers", lambda: self.api.volumes(filters={"label": label})).get("Volumes") or []
        return {str(v["Name"]): dict(v.get("Labels") or {}) for v in raw}

    def create_marker_volume(self, name: str, labels: Mapping[str, str]) -> None:
        """One of dbstate's own markers; fenced like every change."""
        self.mutate(
            f"creating marker {name}", lambda: self.api.create_volume(name, driver="local", labels=dict(labels))
        )

    def remove_marker_volume(self, name: str) -> None:
        self.mutate(
            f"removing marker {name}",
            lambda: self.api.remove_volume(name),
            lambda e: isinstance(e, docker.errors.NotFound),
        )

    def volume_identity(self, name: str) -> str | None:
        try:
            found = self.call(f"inspecting volume {name}", lambda: self.api.inspect_volume(name))
        except errors.EnginePermanent as e:
            if isinstance(e.__cause__, docker.errors.NotFound):
                return None
            raise
        return labels.volume_identity(found.get("Labels") or {})

    def ensure_image(self, image: str) -> None:
        try:
            self.call(f"looking up image {image}", lambda: self.api.inspect_image(image))  # type: ignore[no-untyped-call]
            return
        except errors.EnginePermanent:
            pass
        repo, tag, digest = versions.split_image(image)
        self.fence()
        self.progress(f"pulling {image}")
        try:
            last = ""
            for event in self.api.pull(repo, tag=digest or tag or "latest", stream=True, decode=True):
                if "error" in event:
                    raise errors.ImageNotFound(
                        f"image {image} is not on the engine and cannot be pulled: {event['error']}"
                    )
                status = event.get("status", "")
                if status and status != last and "Download" not in status:
                    self.progress(f"pulling {image}: {status}")
                    last = status
        except errors.ImageNotFound:
            raise
        except (docker.errors.DockerException, requests.exceptions.RequestException) as e:
            raise errors.ImageNotFound(
                f"image {image} is not on the engine and cannot be pulled: "
                f"{_explain(e) if isinstance(e, docker.errors.APIError) else e}"
            ) from e

    def create_container(
        self,
        name: str,
        image: str,
        env: Mapping[str, str],
        command: Sequence[str],
        labels: Mapping[str, str],
        networks: Mapping[str, Sequence[str]],
        volumes: Mapping[str, str],
        ports: Sequence[str],
        restart_policy: str,
        read_only: Collection[str] = (),
    ) -> None:
        self.ensure_image(image)
        port_bindings: dict[int | str, Any] = {}
        exposed: list[tuple[int, str]] = []
        for p in ports:
            pp = spec.parse_port(p)
            key = f"{pp.container_port}/{pp.proto}"
            exposed.append((pp.container_port, pp.proto))
            port_bindings[key] = (pp.host_ip, pp.host_port) if pp.host_ip else pp.host_port
        host_config = self.api.create_host_config(
            # a source that is a path is a host directory (a volume's name never starts with /)
            mounts=[
                docker.types.Mount(
                    target=t, source=s, type="bind" if s.startswith("/") else "volume", read_only=s in read_only
                )
                for s, t in volumes.items()
            ],
            port_bindings=port_bindings or None,
            restart_policy={"Name": restart_policy} if restart_policy != "no" else None,
        )
        nets = list(networks.items())
        networking = None
        if nets:
            first, aliases = nets[0]
            networking = self.api.create_networking_config(  # the stub says EndpointConfig; docker-py takes a dict
                {first: self.api.create_endpoint_config(aliases=list(aliases) or None)}  # type: ignore[arg-type]
            )

        def create() -> Any:
            return self.api.create_container(
                image,
                name=name,
                command=list(command) or None,
                environment=dict(env),
                labels=dict(labels),
                host_config=host_config,
                networking_config=networking,
                ports=exposed or None,
                detach=True,
            )

        self.mutate(f"creating container {name}", create, lambda e: self._is_ours(e, name, labels))
        for net, aliases in nets[1:]:
            self.connect(name, net, aliases, reconnect=False)

    def _is_ours(self, exc: BaseException, name: str, wanted: Mapping[str, str]) -> bool:
        """A 409 on create after a lost answer: the container is there already, made by this very call."""
        if not _is(exc, 409, "already in use"):
            return False
        try:
            found = self.api.inspect_container(name)
        except docker.errors.DockerException:
            return False
        have = (found.get("Config") or {}).get("Labels") or {}
        return have.get(labels.SPEC_HASH) == wanted.get(labels.SPEC_HASH) and have.get(labels.MANAGED) == "true"

    def start(self, name: str) -> None:
        self.mutate(f"starting {name}", lambda: self.api.start(name))

    def stop(self, name: str, timeout: int) -> None:
        self.mutate(f"stopping {name}", lambda: self.api.stop(name, timeout=timeout))

    def wait_stopped(self, name: str, timeout: float) -> None:
        self.mutate(
            f"waiting for {name} to stop",
            lambda: self.api.wait(name, timeout=int(timeout) + 5, condition="not-running"),
        )

    def rename(self, name: str, new_name: str) -> None:
        self.mutate(
            f"renaming {name} to {new_name}",
            lambda: self.api.rename(name, new_name),
            lambda e: _is(e, 404, "no such container") and self._exists(new_name),
        )

    def make_inert(self, name: str, labels: Mapping[str, str]) -> None:
        info: dict[str, Any] = self.call(f"inspecting {name}", lambda: self.api.inspect_container(name))
        if (info.get("State") or {}).get("Running"):
            raise errors.EnginePermanent(f"{name} is running: only a stopped server is kept inert")
        cfg = info.get("Config") or {}
        kept = {k: v for k, v in (cfg.get("Labels") or {}).items() if not k.startswith("com.docker.compose.")}
        mounts = [
            docker.types.Mount(
                target=m["Destination"],
                source=m["Name"] if m["Type"] == "volume" else m["Source"],
                type=m["Type"],
                read_only=not m.get("RW", True),
            )
            for m in info.get("Mounts") or []
            if m.get("Type") in ("volume", "bind")
        ]
        copy = f"{name}.inert"
        with contextlib.suppress(errors.EngineError):  # a copy left by an interrupted earlier attempt
            self.call(f"removing {copy}", lambda: self.api.remove_container(copy, v=False, force=True))
        self.mutate(
            f"creating {copy}",
            lambda: self.api.create_container(
                cfg.get("Image") or info.get("Image"),
                name=copy,
                command=cfg.get("Cmd"),
                entrypoint=cfg.get("Entrypoint"),
                environment=cfg.get("Env"),
                user=cfg.get("User") or None,
                working_dir=cfg.get("WorkingDir") or None,
                labels={**kept, **labels},
                network_disabled=True,
                host_config=self.api.create_host_config(mounts=mounts, network_mode="none"),
            ),
        )
        self.remove_container(name)
        self.rename(copy, name)

    def container_gone(self, container_id: str) -> bool:
        """The engine says there is no such container (404), not merely that it could not tell."""
        try:
            self.call("inspecting a container", lambda: self.api.inspect_container(container_id))
        except errors.EnginePermanent as e:
            return isinstance(e.__cause__, docker.errors.NotFound)
        return False

    def _exists(self, name: str) -> bool:
        try:
            self.api.inspect_container(name)
            return True
        except docker.errors.NotFound:
            return False

    def remove_container(self, name: str) -> None:
        self.mutate(
            f"removing container {name}",
            lambda: self.api.remove_container(name, v=False, force=True),
            lambda e: isinstance(e, docker.errors.NotFound),
        )

    def connect(self, container: str, network: str, aliases: Sequence[str], reconnect: bool) -> None:
        if reconnect:
            self.disconnect(container, network)
        self.mutate(
            f"connecting {container} to {network}",
            lambda: self.api.connect_container_to_network(container, network, aliases=list(aliases) or None),
            lambda e: _is(e, 403, "already exists") or _is(e, 409, "already exists"),
        )

    def disconnect(self, container: str, network: str) -> None:
        self.mutate(
            f"disconnecting {container} from {network}",
            lambda: self.api.disconnect_container_from_network(container, network),
            lambda e: (
                _is(e, 500, "is not connected") or _is(e, 404, "is not connected") or _is(e, 403, "is not connected")
            ),
        )
