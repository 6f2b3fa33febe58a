"""What dbstate writes on what it manages: its labels (which is how it knows its own objects again) and the name a
container carries while it is being recreated."""

from __future__ import annotations

import hashlib
from collections.abc import Mapping

from controller.core import spec
from controller.core.secrets import REDACTED, Secret

PREFIX = spec.RESERVED_LABEL_PREFIX
MANAGED = "io.dbstate.managed"
KIND = "io.dbstate.kind"
NAME = "io.dbstate.name"
SPEC_HASH = "io.dbstate.spec-hash"
REVISION = "io.dbstate.revision"
PROTECTED = "io.dbstate.deletion-protection"

OLD_SUFFIX = ".dbstate-old"  # the name a container gets while it is being recreated
KEPT_SUFFIX = (
    ".dbstate-kept-"  # `<name>.dbstate-kept-<why>`: the server from before an upgrade or restore, kept stopped
)
# on a kept server: a digest of every table of the server that replaced it, taken at the cutover (`dbstate rollback`
# compares it with the server as it is now: a difference is a write that going back would lose)
CUTOVER = "io.dbstate.cutover-digest"
# on a kept server whose data pg_upgrade --link or --swap gave to the server that replaced it: it can never start again
# once that one has (`dbstate rollback` refuses it and names the backup taken first)
SPENT = "io.dbstate.spent-by"  # its value: "pg_upgrade --link" (or --swap); BACKUP: the backup's id
BACKUP = "io.dbstate.backup"
NODE = "io.dbstate.node"  # on a swarm Host: the node label that pins an instance's service to its volumes' node
EXPORTER_PORT = "io.dbstate.exporter.port"  # on an exporter: where it serves /metrics
EXPORTER_ENGINE = "io.dbstate.exporter.engine"
VOLUME_ID = "io.dbstate.volume-id"  # a random id the Docker adapter gives each volume it creates
LEASE_MARKER_PREFIX = "dbstate-lease-"  # the names of the lease's markers (adapters/lease.py): never a cause for a pass
LEASE = "io.dbstate.lease"  # on every lease marker
SEEN_MARKER_PREFIX = "dbstate-seen-"  # `dbstate-seen-<volume>`: a declared volume dbstate has seen (adapters/facts.py)
SEEN = "io.dbstate.seen"  # on those markers: the volume's name; SEEN + ".identity": its identity
ADOPTED_MARKER_PREFIX = "dbstate-adopted-"  # `dbstate-adopted-<container id>`: a container dbstate took over
ADOPTION = "io.dbstate.adoption"  # on those markers: the resource key; ADOPTION + ".container", ".spec-hash"
HELPER = "io.dbstate.helper"  # on throw-away containers (migrate-volume, backup verify): never observed
HELPER_PREFIX = "dbstate-helper-"  # their names
MARKER_PREFIXES = (
    LEASE_MARKER_PREFIX,
    HELPER_PREFIX,
    SEEN_MARKER_PREFIX,
    ADOPTED_MARKER_PREFIX,
)  # dbstate's own markers: never observed, never a cause
LEASE_EPOCH_PREFIX = LEASE_MARKER_PREFIX + "epoch-"  # its epochs: containers created and never started


def volume_identity(labels: Mapping[str, str]) -> str:
    """Which volume this is, beyond its name: a digest of its labels, which never change. A volume removed and made
    again under the same name (by hand, or by Docker when a container is created on a missing volume, which gives it
    no labels) has other labels: dbstate's own carry a random id, compose's name the project. "" when it has no
    labels (an unlabelled volume's replacement cannot be told apart). Not the creation time: the local driver
    reports its data directory's ctime, which moves whenever a file is added at the top of the volume."""
    if not labels:
        return ""
    body = "\n".join(f"{k}={v}" for k, v in sorted(labels.items()))
    return hashlib.sha256(body.encode()).hexdigest()[:16]


def container_labels(resource: spec.Workload, revision: str | None) -> dict[str, str]:
    """The labels dbstate puts on a container it creates (the declaration's own labels first)."""
    labels = dict(resource.metadata.labels)
    labels.update(
        {
            MANAGED: "true",
            KIND: resource.kind,
            NAME: resource.metadata.name,
            SPEC_HASH: spec.spec_hash(resource),
            REVISION: revision or "unknown",
        }
    )
    if isinstance(resource, spec.DatabaseInstance) and resource.spec.policy.deletion_protection:
        labels[PROTECTED] = "true"
    if isinstance(resource, spec.DatabaseInstance) and resource.spec.node is not None:
        labels[NODE] = resource.spec.node  # on a swarm Host: where its service is pinned (node.labels.<NODE>)
    if isinstance(resource, spec.Exporter):  # what discovery lists (/api/targets)
        labels[EXPORTER_PORT] = str(resource.spec.port)
        labels[EXPORTER_ENGINE] = resource.spec.engine.value
    return labels


def object_labels(resource: spec.Network | spec.Volume) -> dict[str, str]:
    """The labels of a network or volume dbstate creates."""
    labels = dict(resource.metadata.labels)
    labels.update({MANAGED: "true", KIND: resource.kind, NAME: resource.metadata.name})
    return labels


def redact_env(env: dict[str, str | Secret]) -> dict[str, str]:
    """An env as a plan may show it: every secret as `***`."""
    return {k: (REDACTED if isinstance(v, Secret) else v) for k, v in sorted(env.items())}
