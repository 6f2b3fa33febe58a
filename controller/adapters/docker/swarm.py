"""Docker Swarm as the engine (a Host with `mode: swarm`): each container dbstate would make is a service of one
replica instead, pinned by a node label to the node that holds its volumes, updated stop-first (never two tasks on one
volume), its secrets Swarm secrets mounted as files (`NAME_FILE`), never env in the service's spec. Services are
observed back as one `live.Container` each, so that the diff and apply are those of one engine. A service resolves
to its task's own address (`endpoint_mode: dnsrr`): one replica gains nothing from a virtual IP, whose IPVS drops idle
connections and is missing from some kernels. Probes and the databases' tools run in a service's task container
through the engine of the node it runs on: the manager's own, or the one the Host's `spec.nodes` names for that node's
label. A task that died is Swarm's to restart: the service then shows `restarting`."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Collection, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import docker.types

from controller.adapters.docker.client import TLSFiles
from controller.adapters.docker.runtime import DockerRuntime
from controller.core import errors, live, spec
from controller.core.labels import MANAGED, NODE, SPEC_HASH

SERVICE = "com.docker.swarm.service.name"  # on a task's container: its service
SECRET_OF = "io.dbstate.secret-of"  # noqa: S105 - a label's name. On a Swarm secret dbstate made: the service that mounts it
RESTART: dict[str, Literal["none", "on-failure", "any"]] = {
    "no": "none",
    "on-failure": "on-failure",
    "always": "any",
    "unless-stopped": "any",
}
START_TIMEOUT = 90.0  # seconds for a service's task to run (an image pull, a first initdb)
NODE_RETRY_BUDGET = 5.0  # seconds of retries on a worker node's own engine


@dataclass(frozen=True)
class ServiceFacts:
    """A service as `dbstate import` reads it (`SwarmRuntime.described`)."""

    env: dict[str, str]  # with the secrets it reads as files read back: values, for the env file only
    args: tuple[str, ...]
    restart: str  # Swarm's condition: none, on-failure, any
    ports: tuple[str, ...]  # published (not supported on a swarm Host yet)
    node: str | None  # the io.dbstate.node label of the node that holds its volumes
    unlabelled: str | None  # else: the hostname of its task's node, which has no such label
    unread: tuple[str, ...]  # KEY_FILE variables whose secret could not be read from its task


class SwarmRuntime(DockerRuntime):
    """`engine.ports.Runtime` and `Observer` over a Swarm manager's services (and its own containers: consumers that
    compose runs on it stay containers)."""

    def __init__(
        self, *args: Any, nodes: Mapping[str, tuple[str, TLSFiles | None]] | None = None, **kwargs: Any
    ) -> None:
        """`nodes`: a node label's value -> (endpoint, tls) of that node's engine, for the tools of its tasks."""
        super().__init__(*args, **kwargs)
        self._updated_in_place: set[str] = set()  # a recreate's "old" names: the service was updated, not renamed
        self._replacing: set[str] = set()  # the services a recreate replaces the spec of (adopted ones included)
        self._node_endpoints = dict(nodes or {})
        self._node_engines: dict[str, DockerRuntime] = {}
        self._exec_on: dict[str, DockerRuntime] = {}  # an exec made on a node's engine -> that engine
        self._own_node: tuple[str, str | None] | None = None  # the manager's node: its ID and node label

    def close(self) -> None:
        """With the clients of the node engines it opened."""
        for engine in self._node_engines.values():
            engine.close()
        self._node_engines.clear()
        super().close()

    # -- observing -------------------------------------------------------------------------------------------------

    def observe(self, inspect: Collection[str] = (), *, inspect_all: bool = False) -> live.LiveState:
        base = super().observe(inspect, inspect_all=inspect_all)
        services = self._services()
        names = {s["Spec"]["Name"] for s in services}
        tasks = self.call(
            "listing tasks",
            lambda: self.api.tasks(filters={"desired-state": "running"}),  # type: ignore[no-untyped-call]
        )
        nets = {n.id: n.name for n in base.networks}
        nodes = self._nodes() if services else {}
        containers = [c for c in base.containers if c.labels.get(SERVICE) not in names]
        containers += [_as_container(s, tasks, nets, nodes) for s in services]
        volumes, unseen = self._all_volumes(base.volumes)
        return live.LiveState(base.engine, tuple(containers), base.networks, volumes, unseen)

    def _all_volumes(self, own: Sequence[live.Volume]) -> tuple[tuple[live.Volume, ...], frozenset[str]]:
        """The volumes of each node's engine that `spec.nodes` names, then the manager's: a volume lives on the node
        that runs its database. A node whose engine does not answer is among the unseen: its volumes are not known
        to be missing (the diff reports the node, and creates nothing)."""
        out: dict[str, live.Volume] = {}
        unseen = set()
        for label in sorted(self._node_endpoints):
            try:
                found = self._node_engine(label).volumes()
            except errors.EngineError:
                unseen.add(label)
                continue
            for v in found:
                out.setdefault(v.name, v)
        for v in own:
            out.setdefault(v.name, v)
        return tuple(out.values()), frozenset(unseen)

    def create_volume(self, name: str, driver: str, labels: Mapping[str, str]) -> None:
        """On the engine of the node its instances name (`io.dbstate.node`): Docker would make it there anyway, empty
        and unlabelled, when the task first starts."""
        engine = self._engine_for_label(labels.get(NODE), f"volume {name}")
        (super().create_volume if engine is self else engine.create_volume)(name, driver, labels)

    def volume_identity(self, name: str) -> str | None:
        for label in sorted(self._node_endpoints):
            with contextlib.suppress(errors.EngineError):
                found = self._node_engine(label).volume_identity(name)
                if found is not None:
                    return found
        return super().volume_identity(name)

    def _nodes(self) -> dict[str, str]:
        """Each io.dbstate.node label's node: "ready/active" when it may run tasks, else its state/availability."""
        found = self.call("listing nodes", self.api.nodes)
        out: dict[str, str] = {}
        for n in found:
            value = ((n.get("Spec") or {}).get("Labels") or {}).get(NODE)
            if value is not None:
                state = f"{(n.get('Status') or {}).get('State')}/{(n.get('Spec') or {}).get('Availability')}"
                out[value] = state if out.get(value) != "ready/active" else out[value]
        return out

    def _services(self) -> list[dict[str, Any]]:
        """Every service, dbstate's and others': one someone else made under a declared name is seen (a name
        conflict, never an update of theirs), and its tasks are not taken for containers of their own."""
        found: list[dict[str, Any]] = self.call("listing services", self.api.services)
        return found

    def _service(self, name: str) -> dict[str, Any] | None:
        try:
            found: dict[str, Any] = self.call(
                f"inspecting service {name}",
                lambda: self.api.inspect_service(name),  # type: ignore[no-untyped-call]
            )
        except errors.EngineNotFound:
            return None
        except errors.EnginePermanent:
            return None
        return found if found.get("Spec", {}).get("Name") == name else None

    def _task_container(self, service: str) -> tuple[DockerRuntime, str]:
        """The engine of the node where `service`'s task runs, and the task's container there."""
        running = [
            t
            for t in self.call(
                f"finding the task of {service}",
                lambda: self.api.tasks(filters={"service": service, "desired-state": "running"}),  # type: ignore[no-untyped-call]
            )
            if t["Status"]["State"] == "running" and (t["Status"].get("ContainerStatus") or {}).get("ContainerID")
        ]
        if not running:
            raise errors.EngineNotFound(f"service {service} has no running task")
        task = running[0]
        return self._engine_of(task["NodeID"], service), str(task["Status"]["ContainerStatus"]["ContainerID"])

    def _engine_of(self, node_id: str, service: str) -> DockerRuntime:
        """This engine for a task of the manager's node, else the engine `spec.nodes` names for the node's label."""
        if node_id == self._manager()[0]:
            return self
        node = self.call(f"inspecting node {node_id}", lambda: self.api.inspect_node(node_id))
        label = ((node.get("Spec") or {}).get("Labels") or {}).get(NODE)
        return self._engine_for_label(label, f"service {service}")

    def _manager(self) -> tuple[str, str | None]:
        """The manager's own node: its ID and its io.dbstate.node label."""
        if self._own_node is None:
            info = self.call("reading the engine's swarm", self.api.info)
            ident = str((info.get("Swarm") or {}).get("NodeID") or "")
            node = self.call("inspecting the manager's node", lambda: self.api.inspect_node(ident))
            self._own_node = (ident, ((node.get("Spec") or {}).get("Labels") or {}).get(NODE))
        return self._own_node

    def _engine_for_label(self, label: str | None, what: str) -> DockerRuntime:
        """The engine of the node labelled `label`: the manager's own (or no label), or one `spec.nodes` names."""
        if label is None or label == self._manager()[1]:
            return self
        if label not in self._node_endpoints:
            raise errors.EnginePermanent(
                f"{what} is on the node labelled {NODE}={label}, not the manager: name that node's engine in the "
                f"Host's spec.nodes.{label} (its volumes and its database's tools, probes and backups, are there)"
            )
        return self._node_engine(label)

    def _node_engine(self, label: str) -> DockerRuntime:
        if label not in self._node_engines:
            endpoint, tls = self._node_endpoints[label]
            # a node that is down must not hold up the pass that reports it: a short budget for its engine
            self._node_engines[label] = DockerRuntime(
                endpoint, tls=tls, retry_budget=min(self.retry_budget, NODE_RETRY_BUDGET), progress=self.progress
            )
        return self._node_engines[label]

    # -- services as containers ------------------------------------------------------------------------------------

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
        """A service of no replica yet (`start` runs it), or the existing one's spec replaced (a recreate)."""
        if ports:
            raise errors.EnginePermanent(f"{name}: published ports are not supported on a swarm Host yet")
        self.ensure_image(image)
        refs, plain = self._secrets(name, env, secrets, labels.get(SPEC_HASH) or "0")
        container = docker.types.ContainerSpec(
            image,
            args=list(command) or None,
            env=[f"{k}={v}" for k, v in sorted(plain.items())],
            mounts=[docker.types.Mount(t, s, type="volume", read_only=s in read_only) for s, t in volumes.items()],
            secrets=refs,
        )
        node = labels.get(NODE)
        template = docker.types.TaskTemplate(
            container,
            restart_policy=docker.types.RestartPolicy(RESTART.get(restart_policy, "any")),
            placement=docker.types.Placement(constraints=[f"node.labels.{NODE} == {node}"]) if node else None,
            networks=[docker.types.NetworkAttachmentConfig(n, aliases=list(a)) for n, a in networks.items()],
        )
        stop_first = docker.types.UpdateConfig(parallelism=1, order="stop-first", failure_action="pause")
        by_task = docker.types.EndpointSpec(mode="dnsrr")
        found = self._service(name)
        if found is None:
            self.mutate(
                f"creating service {name}",
                lambda: self.api.create_service(  # type: ignore[no-untyped-call]
                    template,
                    name=name,
                    labels=dict(labels),
                    mode=docker.types.ServiceMode("replicated", replicas=0),
                    update_config=stop_first,
                    endpoint_spec=by_task,
                ),
                lambda e: self._service(name) is not None,
            )
        else:
            if (found["Spec"].get("Labels") or {}).get(MANAGED) != "true" and name not in self._replacing:
                raise errors.EnginePermanent(f"a service {name} that dbstate did not make exists: it is not replaced")
            self._replacing.discard(name)
            self._update(
                name, task_template=template, labels=dict(labels), update_config=stop_first, endpoint_spec=by_task
            )
        self._forget_secrets(name, keep={r["SecretName"] for r in refs})

    def _secrets(
        self, service: str, env: Mapping[str, str], secret_keys: Collection[str], version: str
    ) -> tuple[list[Any], dict[str, str]]:
        """The env's secret values (the declaration's, and any secret-named key's) as Swarm secrets, referenced as
        files, and the env that names the files (`KEY_FILE`) with the plain values. A secret's name carries the
        declaration's spec hash (`version`, public on the service already): a changed value is a new secret, and
        nothing derived from the value alone is ever shown."""
        refs, plain = [], {}
        have = {s["Spec"]["Name"]: s["ID"] for s in self.call("listing secrets", self.api.secrets)}
        for i, (key, value) in enumerate(sorted(env.items())):
            if not (value and (key in secret_keys or spec.is_secret_key(key))):
                plain[key] = value
                continue
            # at most 64 characters; the key's place keeps two keys that start alike apart
            name = f"{service[:28]}.{i}.{key.lower()[:14]}.{version[:16]}"
            if name not in have:
                have[name] = self._create_secret(name, value, service)
            refs.append(docker.types.SecretReference(have[name], name, filename=name))
            plain[f"{key}_FILE"] = f"/run/secrets/{name}"
        return refs, plain

    def _create_secret(self, name: str, value: str, service: str) -> str:
        marks = {MANAGED: "true", SECRET_OF: service}
        self.mutate(
            f"creating secret {name}",
            lambda: self.api.create_secret(name, value.encode(), labels=marks),
            lambda e: self._secret_id(name) is not None,
        )
        found = self._secret_id(name)
        if found is None:
            raise errors.EngineError(f"secret {name} was created but is not listed")
        return found

    def _secret_id(self, name: str) -> str | None:
        found = [s for s in self.call("listing secrets", self.api.secrets) if s["Spec"]["Name"] == name]
        return str(found[0]["ID"]) if found else None

    def _forget_secrets(self, service: str, keep: Collection[str] = ()) -> None:
        """The secrets dbstate made for `service` that it no longer mounts (one in use by a task stays)."""
        for s in self.call("listing secrets", lambda: self.api.secrets(filters={"label": f"{SECRET_OF}={service}"})):
            if s["Spec"]["Name"] not in keep:
                # one still referenced by a task that is going away is removed by the next change
                with contextlib.suppress(errors.EngineError):
                    self._remove_secret(s["ID"], s["Spec"]["Name"])

    def _remove_secret(self, ident: str, name: str) -> None:
        self.mutate(f"removing secret {name}", lambda: self.api.remove_secret(ident))

    def _update(self, name: str, **changes: Any) -> None:
        """Parts of the service's spec replaced. Each attempt reads the service's current version (Swarm refuses an
        update of an older one: "update out of sequence", as when Swarm itself moved it on after a create), and a
        change given as a function is made of the current spec."""

        def attempt() -> Any:
            found = self.api.inspect_service(name)  # type: ignore[no-untyped-call]
            spec_ = found["Spec"]
            current = {
                "task_template": spec_.get("TaskTemplate"),
                "labels": spec_.get("Labels"),
                "mode": spec_.get("Mode"),
                "update_config": spec_.get("UpdateConfig"),
                "endpoint_spec": spec_.get("EndpointSpec"),
            }
            current.update({k: v(spec_) if callable(v) else v for k, v in changes.items()})
            return self.api.update_service(found["ID"], found["Version"]["Index"], name=name, **current)

        self.mutate(f"updating service {name}", attempt)

    def _scale(self, name: str, replicas: int) -> bool:
        """Scale the service `name` (False: there is none, it is a container)."""
        found = self._service(name)
        if found is None:
            return False
        if found["Spec"].get("Mode", {}).get("Replicated", {}).get("Replicas") != replicas:
            self._update(name, mode=docker.types.ServiceMode("replicated", replicas=replicas))
        return True

    def _tasks(self, name: str) -> list[dict[str, Any]]:
        found: list[dict[str, Any]] = self.call(
            f"listing the tasks of {name}",
            lambda: self.api.tasks(filters={"service": name}),  # type: ignore[no-untyped-call]
        )
        return found

    def start(self, name: str) -> None:
        if not self._scale(name, 1):
            super().start(name)
            return
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            tasks = self._tasks(name)
            if any(t["Status"]["State"] == "running" for t in tasks):
                return
            stuck = [t["Status"].get("Err") for t in tasks if t["Status"].get("Err")]
            if any("no suitable node" in e for e in stuck):
                raise errors.EnginePermanent(f"service {name} cannot be placed: {stuck[-1]}")
            time.sleep(0.5)
        raise errors.EngineError(f"service {name} has no running task after {START_TIMEOUT:.0f} s")

    def stop(self, name: str, timeout: int) -> None:
        """A service scaled to no replica, and waited for until no task of it runs: its volumes are free."""
        if not self._scale(name, 0):
            super().stop(name, timeout)
            return
        deadline = time.monotonic() + timeout + 30
        while any(t["Status"]["State"] in ("running", "starting", "preparing") for t in self._tasks(name)):
            if time.monotonic() > deadline:
                raise errors.EngineError(f"service {name} still has a running task")
            time.sleep(0.3)

    def rename(self, name: str, new_name: str) -> None:
        """A service keeps its name: a recreate replaces its spec in place (after `stop`, so never two tasks), and
        the name the old one would have had is only remembered, for its `remove_container`."""
        if self._service(name) is None:
            super().rename(name, new_name)
        else:
            self._updated_in_place.add(new_name)
            self._replacing.add(name)

    def remove_container(self, name: str) -> None:
        if name in self._updated_in_place:
            self._updated_in_place.discard(name)
            return
        found = self._service(name)
        if found is None:
            super().remove_container(name)
            return
        self.mutate(f"removing service {name}", lambda: self.api.remove_service(found["ID"]))  # type: ignore[no-untyped-call]
        self._forget_secrets(name)

    def make_inert(self, name: str, labels: Mapping[str, str]) -> None:
        if self._service(name) is not None:
            raise errors.EnginePermanent(f"{name}: a service is never kept inert (no cutover on a swarm Host yet)")
        super().make_inert(name, labels)

    def connect(self, container: str, network: str, aliases: Sequence[str], reconnect: bool) -> None:
        if self._service(container) is None:
            super().connect(container, network, aliases, reconnect)
            return
        nets = self._network_ids()
        attach = {"Target": network, "Aliases": list(aliases)}
        self._update(container, task_template=lambda spec_: _networks(spec_, nets, network, attach))

    def disconnect(self, container: str, network: str) -> None:
        if self._service(container) is None:
            super().disconnect(container, network)
            return
        nets = self._network_ids()
        self._update(container, task_template=lambda spec_: _networks(spec_, nets, network, None))

    def attachments(self, container: str) -> list[tuple[str, tuple[str, ...]]]:
        found = self._service(container)
        if found is None:
            return super().attachments(container)
        nets = self._network_ids()
        return [
            (nets.get(n["Target"], n["Target"]), tuple(n.get("Aliases") or ()))
            for n in found["Spec"]["TaskTemplate"].get("Networks") or ()
        ]

    def _network_ids(self) -> dict[str, str]:
        return {n["Id"]: n["Name"] for n in self.call("listing networks", self.api.networks)}

    def create_network(self, name: str, driver: str, internal: bool, labels: Mapping[str, str]) -> None:
        """An overlay network is attachable: a consumer that compose runs on a node can join it."""
        if driver != "overlay":
            super().create_network(name, driver, internal, labels)
            return
        self.mutate(
            f"creating network {name}",
            lambda: self.api.create_network(
                name, driver="overlay", internal=internal, labels=dict(labels), attachable=True
            ),
            lambda e: any(n["Name"] == name for n in self.api.networks(names=[name])),
        )

    # -- import ------------------------------------------------------------------------------------------------------

    def described(self, name: str) -> ServiceFacts | None:
        """What `dbstate import` needs of the service `name` beyond its observed container: its env with each Swarm
        secret it reads as a file (`KEY_FILE=/run/secrets/...`) read back from its task as `KEY` (Swarm's API never
        returns a secret's value; the env file gets it, the YAML a `${VAR}`), its args, restart condition, published
        ports, and its node: the label its placement pins, else the label (or hostname) of its task's node."""
        found = self._service(name)
        if found is None:
            return None
        spec_ = found["Spec"]
        cs = spec_["TaskTemplate"]["ContainerSpec"]
        env = dict(e.split("=", 1) for e in cs.get("Env") or () if "=" in e)
        files = {f"/run/secrets/{r['File']['Name']}" for r in cs.get("Secrets") or () if r.get("File")}
        unread = []
        for key, path in sorted(env.items()):
            if key.endswith("_FILE") and path in files:
                value = self._read_file(name, path)
                if value is None:
                    unread.append(key)
                else:
                    del env[key]
                    env[key.removesuffix("_FILE")] = value
        constraints = (spec_["TaskTemplate"].get("Placement") or {}).get("Constraints") or ()
        pinned = [
            c.split("==", 1)[1].strip() for c in constraints if c.replace(" ", "").startswith(f"node.labels.{NODE}==")
        ]
        node, unlabelled = (pinned[0], None) if pinned else self._task_node(name)
        ports = [
            f"{p.get('PublishedPort')}:{p.get('TargetPort')}" for p in (found.get("Endpoint") or {}).get("Ports") or ()
        ]
        restart = ((spec_["TaskTemplate"].get("RestartPolicy") or {}).get("Condition")) or "any"
        return ServiceFacts(env, tuple(cs.get("Args") or ()), restart, tuple(ports), node, unlabelled, tuple(unread))

    def _read_file(self, service: str, path: str) -> str | None:
        """A secret file's content, read in the service's task (None when it has none running, or cannot)."""
        try:
            ident = self.exec_create(service, ["cat", path], {}, "", stdin=False)
            out, _err = self.exec_output(ident, f"reading {path} in {service}")
            code = self.exec_exit_code(ident)
        except errors.EngineError:
            return None
        return out.decode(errors="replace").rstrip("\n") if code == 0 else None

    def _task_node(self, service: str) -> tuple[str | None, str | None]:
        """(its node's io.dbstate.node label, None), or (None, the hostname of a node that has no such label)."""
        for t in self._tasks(service):
            if t.get("DesiredState") == "running" and t.get("NodeID"):
                ident = t["NodeID"]
                node = self.call("inspecting a node", lambda: self.api.inspect_node(ident))  # noqa: B023 - called at once
                label = ((node.get("Spec") or {}).get("Labels") or {}).get(NODE)
                return (str(label), None) if label else (None, str((node.get("Description") or {}).get("Hostname")))
        return None, None

    # -- the tools, in a service's task ----------------------------------------------------------------------------

    def exec_create(self, container: str, argv: Sequence[str], env: Mapping[str, str], user: str, stdin: bool) -> str:
        """In a service's task container, on the engine of its node (each later call on that exec goes there)."""
        if self._service(container) is None:
            return super().exec_create(container, argv, env, user, stdin)
        engine, task = self._task_container(container)
        if engine is self:
            return super().exec_create(task, argv, env, user, stdin)
        ident = engine.exec_create(task, argv, env, user, stdin)
        self._exec_on[ident] = engine
        return ident

    def exec_detached(self, exec_id: str, doing: str) -> None:
        engine = self._exec_on.pop(exec_id, None)
        (engine.exec_detached if engine is not None else super().exec_detached)(exec_id, doing)

    def exec_exit_code(self, exec_id: str) -> int:
        engine = self._exec_on.pop(exec_id, None)
        return (engine.exec_exit_code if engine is not None else super().exec_exit_code)(exec_id)

    def exec_stream(self, exec_id: str, doing: str) -> Iterator[tuple[bytes | None, bytes | None]]:
        engine = self._exec_on.get(exec_id)
        return (engine.exec_stream if engine is not None else super().exec_stream)(exec_id, doing)

    def exec_output(self, exec_id: str, doing: str) -> tuple[bytes, bytes]:
        engine = self._exec_on.get(exec_id)
        return (engine.exec_output if engine is not None else super().exec_output)(exec_id, doing)

    def exec_with_input(self, exec_id: str, stdin: Iterable[bytes], doing: str) -> tuple[bytes, bytes]:
        engine = self._exec_on.get(exec_id)
        return (engine.exec_with_input if engine is not None else super().exec_with_input)(exec_id, stdin, doing)

    def is_running(self, container: str) -> bool:
        if self._service(container) is None:
            return super().is_running(container)
        return any(t["Status"]["State"] == "running" for t in self._tasks(container))

    def logs(self, container: str, tail: int = 20) -> bytes:
        if self._service(container) is None:
            return super().logs(container, tail)
        try:
            engine, task = self._task_container(container)
        except errors.EngineNotFound:
            return b""
        return engine.logs(task, tail) if engine is not self else super().logs(task, tail)


def _networks(
    spec_: Mapping[str, Any], nets: Mapping[str, str], network: str, attach: Mapping[str, Any] | None
) -> dict[str, Any]:
    """The service's task template with `network` attached as `attach` says, or detached (None)."""
    template = dict(spec_["TaskTemplate"])
    kept = [n for n in template.get("Networks") or () if nets.get(n["Target"], n["Target"]) != network]
    template["Networks"] = kept + ([dict(attach)] if attach is not None else [])
    return template


def _as_container(
    s: dict[str, Any], tasks: Sequence[dict[str, Any]], nets: Mapping[str, str], nodes: Mapping[str, str]
) -> live.Container:
    """A service as the diff sees a container: its spec's image, labels, networks and mounts; running while a task
    of it runs, exited when scaled to no replica, else restarting (Swarm's to restart)."""
    spec_ = s["Spec"]
    template = spec_["TaskTemplate"]
    cs = template["ContainerSpec"]
    replicas = spec_.get("Mode", {}).get("Replicated", {}).get("Replicas", 1)
    running = any(t.get("ServiceID") == s["ID"] and t["Status"]["State"] == "running" for t in tasks)
    state = "running" if running else "exited" if replicas == 0 else "restarting"
    attachments = tuple(
        live.Attachment(nets.get(n["Target"], n["Target"]), tuple(n.get("Aliases") or ()))
        for n in template.get("Networks") or ()
    )
    mounts = tuple(
        live.Mount(m.get("Type", "volume"), m.get("Source", ""), m["Target"], not m.get("ReadOnly", False))
        for m in cs.get("Mounts") or ()
    )
    marks = spec_.get("Labels") or {}
    node = marks.get(NODE)
    facts = live.Service((spec_.get("UpdateConfig") or {}).get("Order", "stop-first"), node, nodes.get(node or ""))
    return live.Container(s["ID"], spec_["Name"], cs["Image"], state, marks, attachments, mounts, service=facts)
