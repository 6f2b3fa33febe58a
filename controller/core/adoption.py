"""Taking over a container that someone else made (compose, by hand) without recreating it: whether it matches its
declaration, and the observed state as dbstate sees it once adopted.

Labels cannot be added to a container that exists, so ownership of an adopted container is recorded by container id
(in the state database, and on the engine: adapters/facts.py). `relabel` gives the observed copy of each adopted
container the labels dbstate would have given it, with the spec hash of the declaration it matched; from then on the
diff, the probes and the loop treat it exactly as one dbstate created. The labels exist only in memory.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Collection, Mapping
from dataclasses import dataclass

from controller.core import labels, live, spec
from controller.core.secrets import reveal

ADOPTED = "io.dbstate.adopted"  # only on the observed copy of an adopted container, never on the engine
COMPOSE_PROJECT = "com.docker.compose.project"
COMPOSE_SERVICE = "com.docker.compose.service"
COMPOSE_FILES = "com.docker.compose.project.config_files"  # comma-separated paths, as compose v1.29 and v2 write it
COMPOSE_VERSION = "com.docker.compose.version"


@dataclass(frozen=True, slots=True)
class Adoption:
    key: str  # "DatabaseInstance/NAME"
    container_id: str
    spec_hash: str  # of the declaration the container matched when it was adopted


def _same_image(running: str, declared: str) -> bool:
    def norm(ref: str) -> str:
        ref = ref.removeprefix("docker.io/").removeprefix("library/")
        return ref if ":" in ref.rsplit("/", 1)[-1] or "@" in ref else f"{ref}:latest"

    return norm(running) == norm(declared)


def differences(inst: spec.DatabaseInstance, c: live.Container) -> list[str]:
    """What keeps `c` from being the declared instance as it is (never a secret value): empty when it can be adopted in
    place. Network attachments are not differences: dbstate connects what is missing."""
    out = []
    if not _same_image(c.image, inst.spec.image):
        out.append(f"image: runs {c.image}, declared {inst.spec.image}")
    declared = {m.target: (m.type, m.source) for m in inst.spec.volumes}
    for target, (kind, source) in sorted(declared.items()):
        found = next((m for m in c.mounts if m.destination == target), None)
        if found is None:
            out.append(f"{target}: nothing mounted there, declared {kind} {source}")
        elif found.type != kind or found.source.rstrip("/") != source:
            out.append(f"{target}: mounts {found.type} {found.source}, declared {kind} {source}")
    for m in c.mounts:
        if m.destination not in declared and m.type in ("volume", "bind"):
            out.append(f"{m.destination}: mounts {m.type} {m.source}, which the declaration does not (data-moved)")
    if c.env is not None:
        for key, value in sorted(inst.spec.env.items()):
            if c.env.get(key) == reveal(value) or (key not in c.env and reveal(value) in (c.command or ())):
                continue  # the same value, or the secret that its command line passes and the declaration moves to env
            out.append(f"env {key}: differs from the declared value" if key in c.env else f"env {key}: not set")
    return out


def creator(c: live.Container) -> str:
    project = c.labels.get(COMPOSE_PROJECT)
    return f"docker compose (project {project})" if project else "someone other than dbstate"


def retire_command(c: live.Container) -> str | None:
    """The compose command that stops compose from claiming `c`, keeping its volumes; None when compose did not make
    it."""
    project, service = c.labels.get(COMPOSE_PROJECT), c.labels.get(COMPOSE_SERVICE)
    if not project or not service:
        return None
    # compose v1 (`docker-compose`, Debian's 1.29) needs the file even to remove; v2 takes it as well
    tool = "docker-compose" if c.labels.get(COMPOSE_VERSION, "").startswith("1.") else "docker compose"
    files = "".join(f" -f {_shell_word(f)}" for f in c.labels.get(COMPOSE_FILES, "").split(",") if f.strip())
    return f"{tool}{files} -p {_shell_word(project)} rm -s -f {_shell_word(service)}"


def _shell_word(text: str) -> str:
    """`text` as one word for a POSIX shell: bare when it is plain, single-quoted otherwise."""
    plain = text and all(ch.isalnum() or ch in "-_./=:@%+," for ch in text)
    return text if plain else "'" + text.replace("'", "'\\''") + "'"


def relabel(observed: live.LiveState, adopted: Mapping[str, Adoption], declared: Collection[str]) -> live.LiveState:
    """The observed state with each adopted container (found by id, still without dbstate's labels) carrying the
    labels of its declaration, while that is `declared` (resource keys): a container whose declaration was removed
    is somebody else's again, never an orphan of dbstate's to prune."""
    by_id = {a.container_id: a for a in adopted.values() if a.key in declared}
    if not by_id:
        return observed
    containers = []
    for c in observed.containers:
        a = by_id.get(c.id)
        if a is None or c.managed:
            containers.append(c)
            continue
        kind, _, name = a.key.partition("/")
        extra = {labels.MANAGED: "true", labels.KIND: kind, labels.NAME: name, labels.SPEC_HASH: a.spec_hash}
        containers.append(dataclasses.replace(c, labels={**c.labels, **extra, ADOPTED: "true"}))
    return dataclasses.replace(observed, containers=tuple(containers))
