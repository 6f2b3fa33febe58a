"""Containers: the image made present, created from the declaration (ports, mounts, networks, restart policy), started,
stopped, renamed, kept inert, removed; and throw-away helpers that run one script. Each change is idempotent: a retry
whose first attempt reached the engine counts as done."""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import Collection, Mapping, Sequence
from typing import Any

import docker.errors
import docker.types
import requests.exceptions

from controller.adapters.docker.errors import explain, says
from controller.adapters.docker.networks import Networks
from controller.core import errors, labels, spec, versions
from controller.core.labels import HELPER, HELPER_PREFIX
from controller.core.text import printable


class Containers(Networks):
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
                f"{explain(e) if isinstance(e, docker.errors.APIError) else e}"
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
        secrets: Collection[str] = (),
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
        if not says(exc, 409, "already in use"):
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
            lambda e: says(e, 404, "no such container") and self._exists(new_name),
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
        except errors.EngineNotFound:
            return True
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

    def run_once(
        self,
        image: str,
        mounts: Sequence[tuple[str, str, bool]],
        script: str,
        env: Mapping[str, str] | None = None,
        volumes_from: Sequence[str] = (),
    ) -> tuple[int, str]:
        """Run `script` with /bin/sh as root in a throw-away container of `image` without a network, with `mounts`
        (source, target, read-only) where a source is a volume's name or a host path, `env` (never a secret: the
        caller's to see to) and the volumes of the `volumes_from` containers (`NAME:ro`); its exit code and output.
        The container is removed afterwards, whatever happens."""
        name = f"{HELPER_PREFIX}{uuid.uuid4().hex[:12]}"
        try:
            return self._run_helper(name, image, mounts, script, env, volumes_from, ())
        finally:
            with contextlib.suppress(errors.EngineError):
                self.call("removing a helper container", lambda: self.api.remove_container(name, v=True, force=True))

    def toolbox(self, image: str, target: str, script: str, env: Mapping[str, str]) -> tuple[str, int, str]:
        """`script` run as in `run_once`, in a container that keeps a fresh anonymous volume at `target` for others
        to mount (`volumes_from`): its name, exit code and output. The caller removes it (`remove_helper`), which
        removes the volume with it."""
        name = f"{HELPER_PREFIX}{uuid.uuid4().hex[:12]}"
        try:
            code, out = self._run_helper(name, image, (), script, env, (), (target,))
        except BaseException:
            with contextlib.suppress(errors.EngineError):
                self.call("removing a helper container", lambda: self.api.remove_container(name, v=True, force=True))
            raise
        return name, code, out

    def _run_helper(
        self,
        name: str,
        image: str,
        mounts: Sequence[tuple[str, str, bool]],
        script: str,
        env: Mapping[str, str] | None,
        volumes_from: Sequence[str],
        anonymous: Sequence[str],
    ) -> tuple[int, str]:
        binds: dict[str, Mapping[str, str]] = {
            source: {"bind": target, "mode": "ro" if ro else "rw"} for source, target, ro in mounts
        }
        self.mutate(
            "creating a helper container",
            lambda: self.api.create_container(
                image,
                name=name,
                entrypoint=["/bin/sh", "-c"],
                command=[script],
                user="0",
                labels={HELPER: "true"},
                environment=dict(env or {}),
                volumes=list(anonymous) or None,
                network_disabled=True,
                host_config=self.api.create_host_config(
                    binds=binds, network_mode="none", volumes_from=list(volumes_from) or None
                ),
            ),
        )
        self.mutate("running a helper container", lambda: self.api.start(name))
        code = self.call("waiting for a helper container", lambda: self.api.wait(name, timeout=3600))
        output = self.call("reading a helper's output", lambda: self.api.logs(name, stdout=True, stderr=True))
        lines = output.decode(errors="replace").splitlines()
        return int(code.get("StatusCode", 1)), "\n".join(printable(line) for line in lines)

    def pause(self, name: str) -> bool:
        try:
            info: dict[str, Any] = self.call(f"inspecting {name}", lambda: self.api.inspect_container(name))
        except errors.EngineNotFound:
            return False
        state = info.get("State") or {}
        if not state.get("Running") or state.get("Paused"):
            return False  # nothing to freeze, or somebody else's pause: not this caller's to undo
        # a retry after a lost answer finds it paused: by this very call
        self.mutate(f"pausing {name}", lambda: self.api.pause(name), lambda e: says(e, 409, "already paused"))
        return True

    def unpause(self, name: str) -> None:
        self.mutate(
            f"unpausing {name}",
            lambda: self.api.unpause(name),
            lambda e: says(e, 409, "not paused", "not running") or says(e, 404, "no such container"),
        )
