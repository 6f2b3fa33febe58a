"""Running a database's own tools inside its container (`docker exec`) and in throw-away containers: how backups,
restores and upgrades reach a server without a route to it. Credentials travel in the exec's environment, never on
its command line (which every process of the host can read in /proc/*/cmdline)."""

from __future__ import annotations

import contextlib
import socket
import threading
import time
import uuid
from collections.abc import Iterable, Iterator, Mapping, Sequence
from typing import Any

import docker.errors
import docker.utils.socket

from controller.adapters.docker import DockerRuntime
from controller.core import errors
from controller.core.databases import Ran
from controller.core.labels import HELPER, HELPER_PREFIX
from controller.core.text import printable

TAIL = 2000  # how much of a tool's stderr an error message keeps


class DockerShell:
    """Implements `engine.ports.Shell` over a `DockerRuntime` (its client, retries and fencing)."""

    def __init__(self, runtime: DockerRuntime) -> None:
        self.runtime = runtime
        self.api = runtime.api

    def _create(self, container: str, argv: Sequence[str], env: Mapping[str, str], user: str, stdin: bool) -> str:
        doing = f"starting {argv[0]} in {container}"
        created = self.runtime.call(
            doing,
            lambda: self.api.exec_create(
                container, list(argv), stdin=stdin, environment=dict(env), user=user, stdout=True, stderr=True
            ),
        )
        return str(created["Id"])

    def _exit_code(self, exec_id: str) -> int:
        for _ in range(50):  # the stream ends a moment before the engine records the exit code
            found = self.runtime.call("reading an exit code", lambda: self.api.exec_inspect(exec_id))
            if not found.get("Running") and found.get("ExitCode") is not None:
                return int(found["ExitCode"])
            time.sleep(0.05)
        return -1

    def stream(self, container: str, argv: Sequence[str], env: Mapping[str, str], user: str = "") -> Iterator[bytes]:
        """The tool's stdout as it comes; raises `ExecFailed` (with the end of its stderr) after the last chunk
        when it exits non-zero."""
        exec_id = self._create(container, argv, env, user, stdin=False)
        stderr: list[bytes] = []
        with self.runtime.calling(f"reading {argv[0]} in {container}"):
            for out, err in self.api.exec_start(exec_id, stream=True, demux=True):
                if err:
                    stderr.append(err)
                    if sum(len(e) for e in stderr) > 64 * 1024:
                        stderr[:] = [b"".join(stderr)[-TAIL:]]
                if out:
                    yield out
        code = self._exit_code(exec_id)
        if code != 0:
            raise errors.ExecFailed(argv[0], container, code, _tail(b"".join(stderr)))

    def run(
        self,
        container: str,
        argv: Sequence[str],
        env: Mapping[str, str],
        user: str = "",
        stdin: Iterable[bytes] | None = None,
        mutating: bool = False,
    ) -> Ran:
        """Run to the end; `stdin` is streamed to the tool. `mutating` (a restore): fenced like every change."""
        if mutating:
            self.runtime.fence()
        if stdin is None:
            exec_id = self._create(container, argv, env, user, stdin=False)
            with self.runtime.calling(f"running {argv[0]} in {container}"):
                out, err = self.api.exec_start(exec_id, demux=True)
            return Ran(self._exit_code(exec_id), out or b"", _tail(err or b""))
        exec_id = self._create(container, argv, env, user, stdin=True)
        with self.runtime.calling(f"running {argv[0]} in {container}"):
            sock = self.api.exec_start(exec_id, socket=True)
            raw: socket.socket = sock._sock  # type: ignore[union-attr]  # the hijacked connection under SocketIO
            frames: dict[int, list[bytes]] = {1: [], 2: []}
            failed: list[BaseException] = []

            def read() -> None:
                try:
                    for kind, data in docker.utils.socket.frames_iter(sock, tty=False):  # type: ignore[no-untyped-call]
                        frames.setdefault(kind, []).append(data)
                except BaseException as e:  # surfaced below; a reader thread must not die silently
                    failed.append(e)

            reader = threading.Thread(target=read, name="dbstate-exec-reader", daemon=True)
            reader.start()
            try:
                for chunk in stdin:
                    raw.sendall(chunk)
            except BrokenPipeError:
                pass  # the tool stopped reading: its exit code and stderr say why
            finally:
                with contextlib.suppress(OSError):
                    raw.shutdown(socket.SHUT_WR)
            reader.join()
            with contextlib.suppress(OSError):
                sock.close()
        if failed:
            raise errors.EngineTransient(f"reading the output of {argv[0]} in {container}: {failed[0]}")
        code = self._exit_code(exec_id)
        return Ran(code, b"".join(frames[1]), _tail(b"".join(frames[2])))

    def put_file(self, container: str, directory: str, name: str, chunks: Iterable[bytes], size: int) -> None:
        """Write one file into a (possibly stopped) container, streamed as a tar archive of one member."""
        import tarfile

        info = tarfile.TarInfo(name)
        info.size, info.mode, info.mtime = size, 0o600, int(time.time())

        def archive() -> Iterator[bytes]:
            yield info.tobuf(format=tarfile.GNU_FORMAT)
            written = 0
            for chunk in chunks:
                written += len(chunk)
                yield chunk
            if written != size:
                raise errors.DbstateError(f"{name}: {written} bytes instead of {size}")
            yield b"\0" * ((512 - size % 512) % 512) + b"\0" * 1024

        self.runtime.mutate(
            f"copying {name} into {container}", lambda: self.api.put_archive(container, directory, archive())
        )

    @contextlib.contextmanager
    def scratch(
        self, image: str, env: Mapping[str, str], volume: str | None = None, target: str | None = None
    ) -> Iterator[str]:
        """A throw-away container of `image` (its own entrypoint and command) on a private internal network, with
        `volume` at `target` when given; removed with its anonymous volumes afterwards, whatever happens."""
        tag = uuid.uuid4().hex[:12]
        name, net = f"{HELPER_PREFIX}{tag}", f"{HELPER_PREFIX}{tag}"
        self.runtime.mutate(
            f"creating network {net}",
            lambda: self.api.create_network(net, driver="bridge", internal=True, labels={HELPER: "true"}),
        )
        try:
            mounts = []
            if volume and target:
                bind = volume.startswith("/")  # a host directory; else a volume's name
                mounts = [docker.types.Mount(target=target, source=volume, type="bind" if bind else "volume")]
            self.runtime.mutate(
                f"creating {name}",
                lambda: self.api.create_container(
                    image,
                    name=name,
                    environment=dict(env),
                    labels={HELPER: "true"},
                    host_config=self.api.create_host_config(network_mode=net, mounts=mounts),
                    detach=True,
                ),
            )
            try:
                self.runtime.mutate(f"starting {name}", lambda: self.api.start(name))
                yield name
            finally:
                with contextlib.suppress(errors.EngineError):
                    self.runtime.call(f"removing {name}", lambda: self.api.remove_container(name, v=True, force=True))
        finally:
            with contextlib.suppress(errors.EngineError):
                self.runtime.call(f"removing {net}", lambda: self.api.remove_network(net))

    def run_once(self, image: str, mounts: Sequence[tuple[str, str, bool]], script: str) -> tuple[int, str]:
        return self.runtime.run_once(image, mounts, script)

    def logs(self, container: str) -> str:
        out: bytes = self.runtime.call(f"reading the log of {container}", lambda: self.api.logs(container, tail=20))
        return printable(out.decode(errors="replace"))[-TAIL:]

    def running(self, container: str) -> bool:
        try:
            found: dict[str, Any] = self.runtime.call(
                f"inspecting {container}", lambda: self.api.inspect_container(container)
            )
        except errors.EnginePermanent as e:
            if isinstance(e.__cause__, docker.errors.NotFound):
                return False
            raise
        return bool((found.get("State") or {}).get("Running"))


def _tail(data: bytes) -> str:
    """The end of a tool's stderr, one printable line per line."""
    return "\n".join(printable(line) for line in data.decode(errors="replace")[-TAIL:].splitlines())
