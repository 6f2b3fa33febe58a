"""The connection to one Docker engine: docker-py's low-level client (TLS, ssh), every call's errors translated once,
and every change fenced (by the engine lease, when one is held) and retried within a budget."""

from __future__ import annotations

import contextlib
import os
import socket
import threading
from collections.abc import Callable, Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from typing import Any, TypeVar

import docker
import docker.errors
import docker.tls
import requests.adapters
import requests.exceptions

from controller.adapters import retry
from controller.adapters.docker.errors import API_VERSION, translate
from controller.core import errors, live
from controller.core.hosts import endpoint_problem
from controller.core.secrets import redact_credentials

DEFAULT_HOST = "unix:///var/run/docker.sock"
T = TypeVar("T")
TLSFiles = tuple[str, str, str]  # ca, cert, key: paths


def resolve_host(host: str | None) -> str:
    """--docker-host, then DOCKER_HOST, then the default socket."""
    return host or os.environ.get("DOCKER_HOST") or DEFAULT_HOST


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


class DockerClient:
    """One engine's client. Reads go through `call` (or `calling`), changes through `mutate`.

    `fence` runs before every attempt of every change: with a lease (`adapters/lease.py`) it raises `LeaseLost` once
    this controller no longer holds it, so a holder that lost the lease stops before its next change; `gate` (the
    lease's clock only) runs again as the request leaves (`_Gated`). Not thread-safe for changes; reads are."""

    gate: Callable[[], None] = staticmethod(lambda: None)
    fence: Callable[[], None] = staticmethod(lambda: None)

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
        self.shown = redact_credentials(self.host)  # as printed: never a password or token the address holds
        self.tls = tls
        if self.host.startswith("ssh://"):
            _quiet_ssh_close()
        self.save_aliases = save_aliases
        self.retry_budget = retry_budget
        self.progress = progress or (lambda _msg: None)
        problem = endpoint_problem(self.host)
        if problem is not None:
            raise errors.EnginePermanent(f"{self.shown} is not a Docker engine's address: {problem}")
        try:
            self.api = docker.APIClient(
                base_url=self.host,
                version=API_VERSION,
                timeout=timeout,
                tls=_tls_config(tls, self.host),
                use_ssh_client=self.host.startswith("ssh://"),
            )
        except docker.errors.DockerException as e:
            raise translate(e, "connecting", self.shown) from e
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

    def __enter__(self) -> DockerClient:
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
            raise translate(e, doing, self.shown) from e

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
                raise translate(ConnectionError(e.strerror or str(e)), "connecting", self.shown) from e

    def info(self) -> live.EngineInfo:
        self.preflight()
        v = self.call("asking the engine's version", self.api.version)
        return live.EngineInfo(self.shown, str(v.get("Version", "?")), str(v.get("ApiVersion", "?")))

    def mutate(
        self, doing: str, fn: Callable[[], Any], already: Callable[[BaseException], bool] = lambda e: False
    ) -> Any:
        """One change of the engine's (what `doing` says): fenced by the lease, retried within the budget, docker-py's
        errors translated once (`already`: an error that means it was done already, as after a retry whose first
        attempt reached the engine)."""

        def attempt() -> Any:
            self.fence()
            _fenced.active = True
            try:
                return fn()
            except (docker.errors.DockerException, requests.exceptions.RequestException, OSError) as e:
                _fenced.active = False  # `already` may ask the engine: not a change
                if already(e):
                    return None
                raise translate(e, doing, self.shown) from e
            finally:
                _fenced.active = False

        # an engine that is down or restarting is waited for within the same budget
        retry.call(self.preflight, self.retry_budget)
        return retry.call(attempt, self.retry_budget)
