"""`dbstate migrate-volume`: moving a database's data to the mounts its declaration names, as a DBA would: stopped,
copied with the database's own image, verified file by file, and only then recreated on the new mounts. The old data
is never deleted."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from controller.core import diff, errors, live, spec
from controller.core.labels import object_labels
from controller.engine import apply as applying
from controller.engine import volumes as data_dirs
from controller.engine.ports import Runtime
from controller.engine.volumes import Helpers

DIGEST = "cd {dir} && find . -type f -exec sha256sum {{}} + | LC_ALL=C sort | sha256sum && find . | wc -l"


@dataclass(frozen=True)
class Move:
    target: str  # where the database sees its data
    source: live.Mount  # where the data is now
    to: spec.VolumeMount  # where the declaration puts it


def moves(inst: spec.DatabaseInstance, c: live.Container) -> list[Move]:
    """The data mounts to move; a mount the declaration drops is an error (where would its data go?)."""
    out = []
    for m, want in diff.moved_mounts(inst, c):
        if want is None:
            raise errors.DbstateError(
                f"{c.name} keeps data at {m.destination} ({m.type} {m.source}) that the declaration drops: declare "
                "where it goes first"
            )
        out.append(Move(m.destination, m, want))
    return out


def migrate(
    inst: spec.DatabaseInstance,
    c: live.Container,
    todo: Sequence[Move],
    volumes: Sequence[spec.Volume],
    runtime: Runtime,
    helpers: Helpers,
    revision: str | None,
    progress: Callable[[str], None],
    others: Sequence[live.Container] = (),
) -> None:
    """Check every destination while the server still runs; then stop, copy, verify, recreate from the declaration
    and start. A copy or verification that fails starts the server again on its old data, as it was."""
    _prepare(c, todo, volumes, runtime, helpers, others)
    was_running = c.state in ("running", "restarting")
    progress(f"stopping {c.name}")
    runtime.stop(c.name, applying.STOP_TIMEOUT)
    try:
        for mv in todo:
            _copy(c, mv, helpers, progress)
    except errors.DbstateError:
        if was_running:
            progress(f"starting {c.name} again on its old data")
            runtime.start(c.name)
        raise
    progress(f"recreating {c.name} on the declared mounts")
    applying.execute(diff.recreate_change(inst, revision, "migrate-volume: data copied and verified"), runtime)


def _prepare(
    c: live.Container,
    todo: Sequence[Move],
    volumes: Sequence[spec.Volume],
    runtime: Runtime,
    helpers: Helpers,
    others: Sequence[live.Container],
) -> None:
    """Every precondition, before anything stops: each destination is declared, mounted by no other container, and
    empty (a missing volume is created empty)."""
    declared_volumes = {v.metadata.name: v for v in volumes}
    for mv in todo:
        dest = mv.to.source
        holders = [
            o.name
            for o in others
            if o.id != c.id
            and o.state not in ("dead", "removing")
            and any(m.type == mv.to.type and m.source.rstrip("/") == dest for m in o.mounts)
        ]
        if holders:
            raise errors.DbstateError(
                f"{mv.to.type} {dest} is mounted by {', '.join(holders)}: nothing was stopped or copied; two "
                "database servers must never share a data directory"
            )
        if mv.to.type == "volume" and runtime.volume_identity(dest) is None:
            vol = declared_volumes.get(dest)
            if vol is None:
                raise errors.DbstateError(f"volume {dest} is not declared: nothing was stopped or copied")
            runtime.create_volume(dest, vol.spec.driver, object_labels(vol))
        try:
            held = data_dirs.entries(helpers, c.image, dest)
        except errors.DbstateError as e:
            raise errors.DbstateError(f"{e}: nothing was stopped or copied") from e
        if held:
            raise errors.DbstateError(
                f"{dest} is not empty ({' '.join(held[:5])}...): it may hold other data; nothing was stopped or copied"
            )


def _copy(c: live.Container, mv: Move, helpers: Helpers, progress: Callable[[str], None]) -> None:
    dest = mv.to.source
    progress(f"copying {mv.source.type} {mv.source.source} -> {mv.to.type} {dest}")
    code, out = helpers.run_once(
        c.image, [(mv.source.source, "/from", True), (dest, "/to", False)], "cp -a /from/. /to/"
    )
    if code != 0:
        raise errors.DbstateError(f"copying into {dest} failed ({out.strip()[-200:]}); the old data is untouched")
    progress(f"verifying {dest}")
    _, was = helpers.run_once(c.image, [(mv.source.source, "/d", True)], DIGEST.format(dir="/d"))
    _, now = helpers.run_once(c.image, [(dest, "/d", True)], DIGEST.format(dir="/d"))
    if not was.strip() or was != now:
        raise errors.DbstateError(f"the copy in {dest} differs from {mv.source.source}; the old data is untouched")
