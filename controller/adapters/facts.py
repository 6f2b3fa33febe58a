"""Facts that protect data, kept on the engine as well as in the state database, so that an emptied, lost or
replaced state database never turns a lost volume into a new, empty one, nor an adopted database into a stranger.

Which declared volumes dbstate has seen, and by which identity (`core.labels.volume_identity`), is the fact behind
`volume-lost`. Each is also a marker volume `dbstate-seen-<volume>` (labels: the volume's name and identity; it holds
no data) made by a writer (`apply`, `run`) when it first sees the volume, and replaced when an acknowledged new volume
takes the old one's place. The reconciler unions both (the state database wins where it knows an identity); `plan`
reads the markers and never writes them. The markers are never observed as volumes and their events never cause a pass.

A container dbstate adopted (core/adoption.py) has a marker `dbstate-adopted-<container id>` the same way. Adoption
is by container id, so the marker of a container that is gone protects nothing: a writer collects it (`forget_gone`).
The volume markers are never collected: a seen volume that is gone is exactly what `volume-lost` stands on.
"""

from __future__ import annotations

import contextlib
import hashlib
from collections.abc import Collection, Mapping

from controller.adapters.docker import DockerRuntime
from controller.core import errors
from controller.core.adoption import Adoption
from controller.core.labels import ADOPTED_MARKER_PREFIX, ADOPTION, SEEN, SEEN_MARKER_PREFIX

IDENTITY = f"{SEEN}.identity"


def marker_name(volume: str) -> str:
    """`dbstate-seen-<volume>`; a name too long for the engine is shortened with a digest."""
    name = f"{SEEN_MARKER_PREFIX}{volume}"
    if len(name) <= 200:
        return name
    return f"{SEEN_MARKER_PREFIX}{volume[:150]}-{hashlib.sha256(volume.encode()).hexdigest()[:16]}"


class EngineFacts:
    """Implements `engine.ports.Facts` with marker volumes; `write` only for a writer (apply, run)."""

    def __init__(self, runtime: DockerRuntime, *, write: bool) -> None:
        self.runtime = runtime
        self.write = write
        self._markers: dict[str, tuple[str, str | None]] | None = None  # volume -> (marker, identity)

    def seen_volumes(self) -> dict[str, str | None]:
        out: dict[str, tuple[str, str | None]] = {}
        for marker, labels in self.runtime.marker_volumes(SEEN).items():
            volume = labels.get(SEEN)
            if volume and marker.startswith(SEEN_MARKER_PREFIX):
                out[volume] = (marker, labels.get(IDENTITY))
        self._markers = out
        return {volume: identity for volume, (_marker, identity) in out.items()}

    def mark_volumes_seen(self, volumes: Mapping[str, str | None]) -> None:
        if not self.write or not volumes:
            return
        if self._markers is None:
            self.seen_volumes()
        markers = self._markers or {}
        for volume, identity in volumes.items():
            had = markers.get(volume)
            if had is not None and (identity is None or had[1] == identity):
                continue
            try:
                if had is not None:
                    self.runtime.remove_marker_volume(had[0])
                labels = {SEEN: volume} | ({IDENTITY: identity} if identity is not None else {})
                self.runtime.create_marker_volume(marker_name(volume), labels)
            except errors.LeaseLost:
                raise
            except errors.EngineError:
                self._markers = None  # written at the next pass; the state database has it meanwhile
                return
            markers[volume] = (marker_name(volume), identity)

    def adoptions(self) -> dict[str, Adoption]:
        out = {}
        for marker, labels in self.runtime.marker_volumes(ADOPTION).items():
            key, cid, spec_hash = (
                labels.get(ADOPTION),
                labels.get(f"{ADOPTION}.container"),
                labels.get(f"{ADOPTION}.spec-hash"),
            )
            if marker.startswith(ADOPTED_MARKER_PREFIX) and key and cid and spec_hash:
                out[key] = Adoption(key, cid, spec_hash)
        return out

    def record_adoption(self, adopted: Adoption) -> None:
        if not self.write:
            return
        labels = {
            ADOPTION: adopted.key,
            f"{ADOPTION}.container": adopted.container_id,
            f"{ADOPTION}.spec-hash": adopted.spec_hash,
        }
        with contextlib.suppress(errors.EnginePermanent):  # one per container: recorded already
            self.runtime.create_marker_volume(f"{ADOPTED_MARKER_PREFIX}{adopted.container_id[:32]}", labels)

    def forget_gone(self, present: Collection[str]) -> list[str]:
        """Remove the adoption markers of containers that are gone: not in `present` (the ids observed) and not on
        the engine when asked one by one (a container made after `present` was read keeps its marker). The ids."""
        if not self.write:
            return []
        gone = []
        for marker, labels in self.runtime.marker_volumes(ADOPTION).items():
            cid = labels.get(f"{ADOPTION}.container")
            if not marker.startswith(ADOPTED_MARKER_PREFIX) or not cid or cid in present:
                continue
            if self.runtime.container_gone(cid):
                self.runtime.remove_marker_volume(marker)
                gone.append(cid)
        return gone
