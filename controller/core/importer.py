"""`dbstate import`, pure: from what runs on an engine, the desired-state documents that describe it as it is, with
every secret replaced by a `${VAR}` reference (the values go to a separate env file, never into the documents).

Database containers (recognised by image or port) become `DatabaseInstance`s with `policy.adopt: in-place`; containers
whose env names a database's host become `Consumer`s (`image: null`: compose or a human still runs them) with `uses`
and `hostEnv`; the networks and named volumes they use become `Network` and `Volume` documents. One file per compose
project (and `standalone.yaml`, `networks.yaml`); every order is sorted, so the same engine gives the same files. A
value that had to be guessed carries a comment that says so.
"""

from __future__ import annotations

import re
import shlex
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from controller.core import adoption, databases, live, spec, versions
from controller.core.hosts import every_interface, host_of
from controller.core.recognise import recognised
from controller.core.secrets import CREDENTIAL_KEY, credentials_in

RESTART = {p.value for p in spec.RestartPolicy}
NOT_RUNNING = "missing"  # the state of a service read from a compose file that no container runs
NOT_RUNNING_COMMENT = (
    "from a compose file: no container runs it, so dbstate creates it (on the same volumes) once this is committed"
)
NOT_DECLARED_NETWORKS = {"host", "none"}


@dataclass(frozen=True)
class SwarmFacts:
    """What import must say of a Swarm service beyond a container's facts."""

    ports: tuple[str, ...] = ()  # published: not supported on a swarm Host yet, so the service is not imported
    unlabelled: str | None = None  # the hostname of its task's node, which has no io.dbstate.node label yet
    unread: tuple[str, ...] = ()  # KEY_FILE variables whose Swarm secret could not be read from its task


@dataclass(frozen=True)
class Found:
    """A container as import needs it: the observed container (with its env) and what its image and config add. A
    Swarm service (a swarm manager's engine) is one too, with its node and `swarm`."""

    container: live.Container
    command: tuple[str, ...] = ()
    image_env: Mapping[str, str] = field(default_factory=dict)
    image_command: tuple[str, ...] = ()
    restart: str = ""
    env_vars: Mapping[str, str] = field(default_factory=dict)  # env key -> the variable its compose file names
    node: str | None = None  # a service: the io.dbstate.node label of the node that holds its volumes
    swarm: SwarmFacts | None = None  # a service's own facts


@dataclass(frozen=True)
class Document:
    file: str
    body: dict[str, Any]
    comments: tuple[str, ...] = ()


@dataclass
class Imported:
    documents: list[Document]
    env: dict[str, str]  # VAR -> value of the variables to add: goes to the env file only
    adopt: dict[str, str]  # "DatabaseInstance/NAME" -> container id
    notes: list[str]
    compose_projects: list[str]  # of the consumers: the controller's scope must allow them
    bind_roots: list[str]  # the directories of the bind mounts of the instances: the scope must allow them
    not_running: list[str]  # instances read from compose files that no container runs: created, not adopted
    reused: list[str] = field(default_factory=list)  # variables the env files given already hold: referenced as is


def resource_name(text: str) -> str:
    name = re.sub(r"[^a-z0-9-]+", "-", text.lower()).strip("-")[:63].strip("-")
    return name or "imported"


def _var(owner: str, key: str) -> str:
    return re.sub(r"[^A-Z0-9_]", "_", f"{owner}_{key}".upper())


class _Secrets:
    """Secret values found so far, each under one variable name: the name the compose file gives it when an env file
    read holds this value under it, else the name an env file holds it under, else the compose file's name when no
    env file uses it, else a new one. A value is never written twice, and a variable the env files hold is never
    written again."""

    def __init__(self, known: Mapping[str, str] | None = None) -> None:
        self.known = dict(known or {})  # VAR -> value of the env files read (never written)
        self.known_by_value: dict[str, str] = {}
        for var, value in sorted(self.known.items()):
            self.known_by_value.setdefault(value, var)
        self.by_value: dict[str, str] = {}

    def ref(self, owner: str, key: str, value: str, named: str | None = None, *, secret_name: bool = False) -> str:
        """`secret_name`: the reference must itself name a secret (`*PASSWORD*`...), for a value found by its shape
        under a key that does not: loading it back then makes it a secret that a plan shows as ***."""
        var = self.by_value.get(value)
        if var is not None and secret_name and not spec.is_secret_key(var):
            var = None  # known under a plain name (an env file's): referenced under a secret one as well
            named = None
        if var is None:
            taken = set(self.by_value.values())
            if named and named not in taken and self.known.get(named) == value:
                var = named
            elif value in self.known_by_value:
                var = self.known_by_value[value]
            elif named and named not in taken and named not in self.known:
                var = named
            else:
                var = _var(owner, key)
                while var in taken or var in self.known:
                    var += "_2"
            if secret_name and not spec.is_secret_key(var):
                var = _var(owner, f"{key}_PASSWORD")
                while var in taken or var in self.known:
                    var += "_2"
            self.by_value[value] = var
        return "${" + var + "}"

    def new(self) -> dict[str, str]:
        """The variables to write: those no env file read holds already."""
        return {var: value for value, var in self.by_value.items() if self.known.get(var) != value}

    def reused(self) -> list[str]:
        return sorted(var for value, var in self.by_value.items() if self.known.get(var) == value)

    def scrub(self, text: str) -> str:
        """`$` escaped for interpolation, and every known secret inside replaced by its reference."""
        out = text.replace("$", "$$")
        for value, var in sorted(self.by_value.items(), key=lambda kv: -len(kv[0])):
            if len(value) >= 4:
                out = out.replace(value.replace("$", "$$"), "${" + var + "}")
        return out


def _file_of(c: live.Container) -> str:
    project = c.labels.get(adoption.COMPOSE_PROJECT)
    return f"{resource_name(project)}.yaml" if project else "standalone.yaml"


def _base_name(c: live.Container) -> str:
    project, service = c.labels.get(adoption.COMPOSE_PROJECT), c.labels.get(adoption.COMPOSE_SERVICE)
    if project and service:
        return service if service == project else f"{project}-{service}"
    return c.name


def _unique(names: dict[str, str], c: live.Container) -> str:
    base = resource_name(_base_name(c))
    name, n = base, 2
    while name in names.values():
        name, n = f"{base}-{n}", n + 1
    names[c.id] = name
    return name


def _version(image: str, image_env: Mapping[str, str], keys: tuple[str, ...]) -> tuple[str, str | None]:
    """The version, and a comment when it was guessed (from the image's env `keys`)."""
    _repo, tag, _digest = versions.split_image(image)
    found = versions.tag_version(tag) if tag else None
    if found:
        return found, None
    for key in keys:
        if image_env.get(key) and versions.tag_version(image_env[key]):
            return str(versions.tag_version(image_env[key])), f"version from the image's {key}"
    return "0", "version UNKNOWN: the image says nothing; set it (a probe reports the server's)"


def _attachments(c: live.Container) -> list[dict[str, Any]]:
    out = []
    for a in sorted(c.networks, key=lambda a: a.network):
        if a.network in NOT_DECLARED_NETWORKS:
            continue
        aliases = sorted({x for x in a.aliases if x != c.id[:12] and x != c.id})
        out.append({"name": a.network, "aliases": aliases} if aliases else {"name": a.network})
    return out


def _ports(c: live.Container) -> list[str]:
    out = []
    for p in sorted(c.ports, key=lambda p: (p.container_port, p.proto, p.host_ip or "", p.host_port or 0)):
        if p.host_port is None:
            continue
        ip = p.host_ip or ""
        ip = "" if every_interface(ip) else (f"[{ip}]" if ":" in ip else ip)
        out.append(f"{ip + ':' if ip else ''}{p.host_port}:{p.container_port}/{p.proto}")
    return list(dict.fromkeys(out))


def _instance(f: Found, name: str, engine: databases.Database, secrets: _Secrets) -> Document:
    c = f.container
    env = {k: v for k, v in (c.env or {}).items() if f.image_env.get(k) != v}
    comments = []
    declared_env: dict[str, str] = {}
    for key in sorted(env):
        declared_env[key] = _env_value(name, key, env[key], f.env_vars.get(key), secrets)
    command = list(f.command) if f.command and tuple(f.command) != tuple(f.image_command) else []
    via = engine.password_env[0] if engine.password_env else ""
    moved = [
        (flag, var)
        for flag, var in ((engine.password_flag, via), *engine.credential_flags)
        if flag and var and flag in command[:-1] and var not in env
    ]
    if moved:
        command = _password_through_env(command, moved, name, declared_env, secrets)
        flags, names = ", ".join(f"`{f}`" for f, _ in moved), ", ".join(v for _, v in moved)
        comments.append(
            f"its command line passes secrets ({flags}, visible in the process list); declared through env "
            f"{names} instead: the same server, without a secret in `ps` once dbstate recreates it"
        )
    refs = {k for k, v in declared_env.items() if v != env.get(k)}  # made references (the others are values)
    for key, value in declared_env.items():
        if key not in refs:
            declared_env[key] = secrets.scrub(value)
    guess = engine.guess_auth(c.env or {}, declared_env)  # the image's own env counts too
    auth = guess.auth
    comments += guess.comments
    version, guessed = _version(c.image, f.image_env, engine.image_version_env)
    if guessed:
        comments.append(guessed)
    body_spec: dict[str, Any] = {
        "engine": engine.engine.value,
        "version": version,
        "image": c.image,
        "containerName": c.name,
        "networks": _attachments(c) or [{"name": "bridge"}],
    }
    mounts = []
    for m in sorted(c.mounts, key=lambda m: m.destination):
        if m.type == "volume":
            mounts.append({"source": m.source, "target": m.destination})
        elif m.type == "bind":
            mounts.append({"type": "bind", "source": m.source.rstrip("/"), "target": m.destination})
            comments.append(
                f"its data is a host directory ({m.source}): the controller must allow it (--allow-bind-root); "
                "moving it to a named volume is an explicit step, never a silent switch"
            )
    if mounts:
        body_spec["volumes"] = mounts
    if declared_env:
        body_spec["env"] = declared_env
    if command:
        body_spec["command"] = [secrets.scrub(a) for a in command]
    ports = _ports(c)
    if ports:
        body_spec["ports"] = ports
    if f.restart in RESTART:
        body_spec["restartPolicy"] = f.restart
    body_spec["auth"] = auth
    body_spec["policy"] = {"adopt": "in-place"}
    if f.swarm is not None:  # a service: pinned to the node of its volumes, and no cutover on a swarm Host yet
        node = f.node or f.swarm.unlabelled
        if node:
            body_spec["node"] = node
        body_spec["policy"]["upgrade"] = "recreate"
    body = {"apiVersion": "dbstate.io/v1", "kind": "DatabaseInstance", "metadata": {"name": name}, "spec": body_spec}
    return Document(_file_of(c), body, tuple(comments))


def _env_value(owner: str, key: str, value: str, named: str | None, secrets: _Secrets) -> str:
    """An env value as declared: a `${VAR}` for a secret key's value, or for a key that holds a credential though the
    format's rule does not name it a secret (PGPASS, MYSQL_PWD, *_AUTH); else the value, with each credential found
    in it by its shape (a URL's password, `password=...`) registered, so that `scrub` puts a reference in its place."""
    if not value:
        return value
    if spec.is_secret_key(key):
        return secrets.ref(owner, key, value, named)
    if CREDENTIAL_KEY.search(key):
        return secrets.ref(owner, key, value, named, secret_name=True)
    for part in credentials_in(value):
        secrets.ref(owner, key, part, secret_name=True)
    return value


def _password_through_env(
    command: list[str], moved: Sequence[tuple[str, str]], name: str, declared_env: dict[str, str], secrets: _Secrets
) -> list[str]:
    """`redis-server ... --requirepass VALUE ...` -> `sh -c 'exec redis-server ... --requirepass "$REDIS_PASSWORD"'`
    with REDIS_PASSWORD declared (a reference) in env: each (flag, variable) of `moved`."""
    parts = [shlex.quote(a) for a in command]
    for flag, var in moved:
        i = command.index(flag)
        declared_env[var] = secrets.ref(name, var, command[i + 1], secret_name=True)
        parts[i + 1] = f'"${var}"'
    return ["sh", "-c", "exec " + " ".join(parts)]


def _names_of(c: live.Container) -> set[str]:
    """Every name a consumer may use to reach `c`."""
    names = {c.name}
    for a in c.networks:
        names.update(a.aliases)
    service = c.labels.get(adoption.COMPOSE_SERVICE)
    if service:
        names.add(service)
    return {n.lower() for n in names}


_HOST_WORDS = ("HOST", "URL", "URI", "DSN", "ADDR", "SERVER", "ENDPOINT")


def _host_rank(key: str, value: str) -> int:
    """How surely `key` holds the address of a database, when its value names one: 0 a host-like name
    (KONG_PG_HOST, DATABASE_URL), 1 a value shaped like an address (`host:port`, a URL), 2 a bare word that happens to
    be the name too (KONG_DATABASE=postgres is the kind of database, not its host)."""
    if any(w in key.upper() for w in _HOST_WORDS):
        return 0
    return 1 if ("://" in value or ":" in value) else 2


def _consumer(f: Found, name: str, instances: Sequence[tuple[str, live.Container]]) -> Document | None:
    c = f.container
    best: dict[str, tuple[int, str]] = {}  # instance -> (rank, env key) of the variable that names it best
    shared: set[str] = set()
    for key, value in sorted((c.env or {}).items()):
        if not value or spec.is_secret_key(key):
            continue
        host = host_of(value) if ("://" in value or ":" in value) else value.lower()
        for inst_name, inst in instances:
            common = {a.network for a in c.networks} & {a.network for a in inst.networks}
            if host in _names_of(inst) and common:
                rank = _host_rank(key, value)
                if inst_name not in best or rank < best[inst_name][0]:
                    best[inst_name] = (rank, key)
                shared |= common
    uses = [{"instance": n, "hostEnv": key} for n, (_rank, key) in sorted(best.items())]
    if not uses:
        return None
    networks = [a for a in _attachments(c) if a["name"] in shared]
    project, service = c.labels.get(adoption.COMPOSE_PROJECT), c.labels.get(adoption.COMPOSE_SERVICE)
    named: dict[str, Any] = (
        {"compose": {"project": project, "service": service}} if project and service else {"containerName": c.name}
    )
    body = {
        "apiVersion": "dbstate.io/v1",
        "kind": "Consumer",
        "metadata": {"name": name},
        "spec": {**named, "image": None, "networks": networks, "uses": uses},
    }
    return Document(_file_of(c), body, ("image: null: compose (or a human) runs it; dbstate checks and reconnects it",))


def build(
    found: Sequence[Found],
    observed: live.LiveState,
    known: Mapping[str, str] | None = None,
    swarm: str | None = None,
) -> Imported:
    """The documents for everything `found` on the engine `observed` (for the networks' and volumes' drivers);
    `known`: the variables of the env files read, whose names are kept for the values they hold; `swarm`: the
    endpoint of the swarm manager `observed` is, declared as a Host with mode: swarm."""
    secrets = _Secrets(known)
    names: dict[str, str] = {}
    documents: list[Document] = [_swarm_host(swarm)] if swarm else []
    instances: list[tuple[str, live.Container]] = []
    adopt: dict[str, str] = {}
    notes: list[str] = []
    ordered = sorted(found, key=lambda f: f.container.name)
    for f in ordered:
        found_engine = recognised(f.container)
        if found_engine is None:
            continue
        if f.swarm is not None and not _service_fits(f, notes):
            continue
        name = _unique(names, f.container)
        made = _instance(f, name, found_engine, secrets)
        if f.container.state == NOT_RUNNING:
            made = Document(made.file, made.body, (*made.comments, NOT_RUNNING_COMMENT))
        else:
            adopt[f"DatabaseInstance/{name}"] = f.container.id
        documents.append(made)
        instances.append((name, f.container))
    projects: set[str] = set()
    for f in ordered:
        if f.container.id in names:
            continue
        name = resource_name(_base_name(f.container))
        if name in names.values():
            name = _unique(names, f.container)
        doc = _consumer(f, name, instances)
        if doc is not None:
            names[f.container.id] = name
            documents.append(doc)
            project = f.container.labels.get(adoption.COMPOSE_PROJECT)
            if project:
                projects.add(project)
            else:
                notes.append(
                    f"consumer {name} ({f.container.name}) was not made by compose: allow it with "
                    f"--allow-label KEY=VALUE of one of its labels, or it stays out-of-scope"
                )
    documents += _networks_and_volumes(documents, observed)
    documents.sort(key=lambda d: (d.file, _KIND_ORDER[d.body["kind"]], d.body["metadata"]["name"]))
    env = secrets.new()
    binds = sorted(
        {m.source.rstrip("/").rsplit("/", 1)[0] or "/" for _name, c in instances for m in c.mounts if m.type == "bind"}
    )
    not_running = sorted(name for name, c in instances if c.state == NOT_RUNNING)
    return Imported(
        documents, dict(sorted(env.items())), adopt, notes, sorted(projects), binds, not_running, secrets.reused()
    )


_KIND_ORDER = {"Host": -1, "Network": 0, "Volume": 1, "DatabaseInstance": 2, "Consumer": 3}


def _swarm_host(endpoint: str) -> Document:
    body = {
        "apiVersion": spec.API_VERSION,
        "kind": "Host",
        "metadata": {"name": "swarm"},
        "spec": {"endpoint": endpoint, "mode": "swarm"},
    }
    say = "a swarm's manager: name each worker node's engine under spec.nodes.<its io.dbstate.node label> to reach the"
    return Document("host.yaml", body, (say + " databases its tasks run (probes, backups) and their volumes",))


def _service_fits(f: Found, notes: list[str]) -> bool:
    """Whether a database's Swarm service can be declared as it is on a swarm Host; each reason it cannot, or
    what to do before dbstate changes it, noted."""
    c, facts = f.container, f.swarm or SwarmFacts()
    binds = [m.source for m in c.mounts if m.type == "bind"]
    if facts.ports or binds:
        what = f"publishes {', '.join(facts.ports)}" if facts.ports else f"mounts the host directory {binds[0]}"
        notes.append(f"service {c.name} {what}: not supported on a swarm Host yet, so not imported (left as it is)")
        return False
    if f.node is None and facts.unlabelled:
        notes.append(
            f"service {c.name} runs on node {facts.unlabelled}, which has no io.dbstate.node label: label it "
            f"(`docker node update --label-add io.dbstate.node={facts.unlabelled} {facts.unlabelled}`) before "
            "dbstate changes the service, which it pins to that label"
        )
    for key in facts.unread:
        notes.append(
            f"service {c.name}: {key}'s Swarm secret could not be read from its task (none running): the file's path "
            "is declared, not the secret; declare the value instead before dbstate changes the service"
        )
    return True


def _networks_and_volumes(documents: Sequence[Document], observed: live.LiveState) -> list[Document]:
    nets: set[str] = set()
    vols: dict[str, str] = {}
    for d in documents:
        s = d.body["spec"]
        nets.update(a["name"] for a in s.get("networks", []))
        for v in s.get("volumes", []):
            if v.get("type", "volume") == "volume":
                vols.setdefault(v["source"], d.file)
    out = []
    for n in sorted(nets):
        found = observed.network(n)
        body: dict[str, Any] = {"apiVersion": "dbstate.io/v1", "kind": "Network", "metadata": {"name": n}}
        if found is not None and (found.driver != "bridge" or found.internal):
            body["spec"] = {"driver": found.driver, "internal": found.internal}
        out.append(Document("networks.yaml", body))
    for v, file in sorted(vols.items()):
        found_v = observed.volume(v)
        body = {"apiVersion": "dbstate.io/v1", "kind": "Volume", "metadata": {"name": v}}
        if found_v is not None and found_v.driver != "local":
            body["spec"] = {"driver": found_v.driver}
        out.append(Document(file, body))
    return out
