"""The public exec API that adapters/shell.py builds the databases' tools on: run a process in a container (its output
streamed, collected, or fed from an iterable), copy a file in, and the throw-away helper containers on a private
network. docker-py's sockets and exceptions stay here."""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from collections.abc import Iterable, Iterator, Mapping, Sequence
from typing import Any

import docker.types
import docker.utils.socket

from controller.adapters.docker.client import DockerClient
from controller.core import errors
from controller.core.labels import HELPER


class Exec(DockerClient):
    def exec_create(self, container: str, argv: Sequence[str], env: Mapping[str, str], user: str, stdin: bool) -> str:
        """A process to start in `container` (its id): `env` in its environment, never on its command line."""
        created = self.call(
            f"starting {argv[0]} in {container}",
            lambda: self.api.exec_create(
                container, list(argv), stdin=stdin, environment=dict(env), user=user, stdout=True, stderr=True
            ),
        )
        return str(created["Id"])

    def exec_detached(self, exec_id: str, doing: str) -> None:
        """Start it and return at once: it runs on in the container."""
        self.mutate(doing, lambda: self.api.exec_start(exec_id, detach=True))

    def exec_exit_code(self, exec_id: str) -> int:
        """Its exit code (-1 when the engine does not record one in time)."""
        for _ in range(50):  # the stream ends a moment before the engine records the exit code
            found = self.call("reading an exit code", lambda: self.api.exec_inspect(exec_id))
            if not found.get("Running") and found.get("ExitCode") is not None:
                return int(found["ExitCode"])
            time.sleep(0.05)
        return -1

    def exec_stream(self, exec_id: str, doing: str) -> Iterator[tuple[bytes | None, bytes | None]]:
        """Start it; its (stdout, stderr) chunks as they come."""
        with self.calling(doing):
            yield from self.api.exec_start(exec_id, stream=True, demux=True)

    def exec_output(self, exec_id: str, doing: str) -> tuple[bytes, bytes]:
        """Start it and wait: its whole stdout and stderr."""
        with self.calling(doing):
            out, err = self.api.exec_start(exec_id, demux=True)
        return out or b"", err or b""

    def exec_with_input(self, exec_id: str, stdin: Iterable[bytes], doing: str) -> tuple[bytes, bytes]:
        """Start it with `stdin` streamed to it (a thread reads its output meanwhile); its stdout and stderr. A tool
        that stops reading early is not an error here: its exit code and stderr say why."""
        with self.calling(doing):
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
                pass
            finally:
                with contextlib.suppress(OSError):
                    raw.shutdown(socket.SHUT_WR)
            reader.join()
            with contextlib.suppress(OSError):
                sock.close()
        if failed:
            raise errors.EngineTransient(f"{doing}: reading its output: {failed[0]}")
        return b"".join(frames[1]), b"".join(frames[2])

    def put_archive(self, container: str, directory: str, archive: Iterable[bytes], doing: str) -> None:
        """A tar archive, streamed, unpacked into `directory` of a (possibly stopped) container; fenced."""
        self.mutate(doing, lambda: self.api.put_archive(container, directory, archive))

    def create_helper_network(self, name: str) -> None:
        """A private internal network for throw-away helpers (no route out)."""
        self.mutate(
            f"creating network {name}",
            lambda: self.api.create_network(name, driver="bridge", internal=True, labels={HELPER: "true"}),
        )

    def start_helper(
        self, name: str, image: str, env: Mapping[str, str], network: str, volume: str | None, target: str | None
    ) -> None:
        """A throw-away container of `image` (its own entrypoint and command) on `network`, with `volume` (a volume's
        name, or a host directory) at `target` when given; started."""
        mounts = []
        if volume and target:
            bind = volume.startswith("/")
            mounts = [docker.types.Mount(target=target, source=volume, type="bind" if bind else "volume")]
        self.mutate(
            f"creating {name}",
            lambda: self.api.create_container(
                image,
                name=name,
                environment=dict(env),
                labels={HELPER: "true"},
                host_config=self.api.create_host_config(network_mode=network, mounts=mounts),
                detach=True,
            ),
        )
        self.mutate(f"starting {name}", lambda: self.api.start(name))

    def remove_helper(self, name: str) -> None:
        """A helper container with its anonymous volumes; one that is gone, or an engine that fails, is let be."""
        with contextlib.suppress(errors.EngineError):
            self.call(f"removing {name}", lambda: self.api.remove_container(name, v=True, force=True))

    def helpers(self) -> list[tuple[str, bool, tuple[str, ...]]]:
        """dbstate's throw-away containers that are still there (a process killed while one ran leaves it): each
        one's name, whether it runs, and what it mounts (volumes' names, host paths)."""
        found: list[dict[str, Any]] = self.call(
            "listing helper containers", lambda: self.api.containers(all=True, filters={"label": HELPER})
        )
        return [
            (
                (c.get("Names") or ["?"])[0].lstrip("/"),
                c.get("State") == "running",
                tuple(str(m.get("Name") or m.get("Source") or "") for m in c.get("Mounts") or []),
            )
            for c in found
        ]

    def finish_helper(self, name: str, timeout: int = 3600) -> None:
        """A helper left running, waited for (it may be writing a volume), then removed with its anonymous volumes."""
        with contextlib.suppress(errors.EngineNotFound):
            self.call(f"waiting for {name}", lambda: self.api.wait(name, timeout=timeout))
        self.remove_helper(name)

    def remove_helper_network(self, name: str) -> None:
        with contextlib.suppress(errors.EngineError):
            self.call(f"removing {name}", lambda: self.api.remove_network(name))

    def logs(self, container: str, tail: int = 20) -> bytes:
        """The last `tail` lines of a container's log."""
        out: bytes = self.call(f"reading the log of {container}", lambda: self.api.logs(container, tail=tail))
        return out

    def is_running(self, container: str) -> bool:
        """Whether `container` runs (False when there is none)."""
        try:
            found: dict[str, Any] = self.call(f"inspecting {container}", lambda: self.api.inspect_container(container))
        except errors.EngineNotFound:
            return False
        return bool((found.get("State") or {}).get("Running"))
