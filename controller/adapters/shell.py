"""Running a database's own tools inside its container (`docker exec`) and in throw-away containers: how backups,
restores and upgrades reach a server without a route to it. Credentials travel in the exec's environment, never on
its command line (which every process of the host can read in /proc/*/cmdline)."""

from __future__ import annotations

import contextlib
import time
import uuid
from collections.abc import Iterable, Iterator, Mapping, Sequence

from controller.adapters.docker import DockerRuntime
from controller.core import errors
from controller.core.databases import Ran
from controller.core.labels import HELPER_PREFIX
from controller.core.text import printable

TAIL = 2000  # how much of a tool's stderr an error message keeps


class DockerShell:
    """Implements `engine.ports.Shell` over a `DockerRuntime`'s exec API (its client, retries and fencing)."""

    def __init__(self, runtime: DockerRuntime) -> None:
        self.runtime = runtime

    def stream(self, container: str, argv: Sequence[str], env: Mapping[str, str], user: str = "") -> Iterator[bytes]:
        """The tool's stdout as it comes; raises `ExecFailed` (with the end of its stderr) after the last chunk
        when it exits non-zero."""
        exec_id = self.runtime.exec_create(container, argv, env, user, stdin=False)
        stderr: list[bytes] = []
        for out, err in self.runtime.exec_stream(exec_id, f"reading {argv[0]} in {container}"):
            if err:
                stderr.append(err)
                if sum(len(e) for e in stderr) > 64 * 1024:
                    stderr[:] = [b"".join(stderr)[-TAIL:]]
            if out:
                yield out
        code = self.runtime.exec_exit_code(exec_id)
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
        exec_id = self.runtime.exec_create(container, argv, env, user, stdin=stdin is not None)
        doing = f"running {argv[0]} in {container}"
        if stdin is None:
            out, err = self.runtime.exec_output(exec_id, doing)
        else:
            out, err = self.runtime.exec_with_input(exec_id, stdin, doing)
        return Ran(self.runtime.exec_exit_code(exec_id), out, _tail(err))

    def spawn(self, container: str, argv: Sequence[str], env: Mapping[str, str], user: str = "") -> None:
        exec_id = self.runtime.exec_create(container, argv, env, user, stdin=False)
        self.runtime.exec_detached(exec_id, f"starting {argv[0]} in {container}")

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

        self.runtime.put_archive(container, directory, archive(), f"copying {name} into {container}")

    @contextlib.contextmanager
    def scratch(
        self, image: str, env: Mapping[str, str], volume: str | None = None, target: str | None = None
    ) -> Iterator[str]:
        """A throw-away container of `image` (its own entrypoint and command) on a private internal network, with
        `volume` at `target` when given; removed with its anonymous volumes afterwards, whatever happens."""
        tag = uuid.uuid4().hex[:12]
        name, net = f"{HELPER_PREFIX}{tag}", f"{HELPER_PREFIX}{tag}"
        self.runtime.create_helper_network(net)
        try:
            try:
                self.runtime.start_helper(name, image, env, net, volume, target)
                yield name
            finally:
                self.runtime.remove_helper(name)
        finally:
            self.runtime.remove_helper_network(net)

    def run_once(
        self,
        image: str,
        mounts: Sequence[tuple[str, str, bool]],
        script: str,
        env: Mapping[str, str] | None = None,
        volumes_from: Sequence[str] = (),
    ) -> tuple[int, str]:
        return self.runtime.run_once(image, mounts, script, env, volumes_from)

    @contextlib.contextmanager
    def toolbox(self, image: str, target: str, script: str, env: Mapping[str, str]) -> Iterator[tuple[str, str]]:
        name, code, output = self.runtime.toolbox(image, target, script, env)
        try:
            if code != 0:
                raise errors.ExecFailed("a helper of " + image, name, code, output[-TAIL:])
            yield name, output.strip().splitlines()[-1] if output.strip() else ""
        finally:
            self.runtime.remove_helper(name)

    def helpers(self) -> list[tuple[str, bool, tuple[str, ...]]]:
        return self.runtime.helpers()

    def finish_helper(self, name: str) -> None:
        self.runtime.finish_helper(name)

    def logs(self, container: str) -> str:
        return printable(self.runtime.logs(container).decode(errors="replace"))[-TAIL:]

    def running(self, container: str) -> bool:
        return self.runtime.is_running(container)


def _tail(data: bytes) -> str:
    """The end of a tool's stderr, one printable line per line."""
    return "\n".join(printable(line) for line in data.decode(errors="replace")[-TAIL:].splitlines())
