"""`dbstate restore NAME --from ID`: put a backup back into a running database, after a backup of what it holds now."""

from __future__ import annotations

import argparse
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, TextIO

from controller.commands import oneoff
from controller.commands import options as common
from controller.core.errors import DbstateError
from controller.core.options import PassOptions, Target

if TYPE_CHECKING:
    from controller.core.dumps import Manifest
    from controller.wiring.engines import Server, Wired

DESCRIPTION = """\
Restore the backup ID (see `dbstate backups`) into the DatabaseInstance NAME as it runs. First a backup of what NAME
holds now is taken (the way back, listed by `dbstate backups`); then each database the backup holds is dropped and
recreated from it (other databases are left alone) and its tables' rows are compared with the backup's manifest.
Redis: the container is stopped, its RDB file replaced and started again (refused when it uses an AOF).

--to-new-volume VOLUME overwrites nothing: the container is stopped and kept (`NAME.dbstate-kept-<time>`, on its
untouched volume), a new one is made from the declaration with its data volume replaced by VOLUME (created when
missing, refused unless empty), the backup restored into it and its rows compared; any failure rolls back to the old
container. Then declare VOLUME as the instance's data volume (until then `plan` reports data-moved and nothing
recreates it). PostgreSQL and MariaDB only.

Sessions of the databases being restored are ended. Holds the engine lease; while a `dbstate run` holds it, the
restore is handed to that controller (through the state database, so give the same --state), which performs it with
the instance held out of its passes and goes on reconciling the others; progress and the result are printed here.
Suspend the instance first (`dbstate suspend NAME --why restore`) when consumers must not write meanwhile.

exit codes: 0 restored and checked; 1 not (the message says what was done, and which backup holds the data before)."""


@dataclass(frozen=True)
class Options:
    target: Target
    name: str
    source: str
    yes: bool
    lease_ttl: float
    to_new_volume: str | None


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("name", help="the DatabaseInstance's metadata.name")
    p.add_argument("--from", dest="source", required=True, metavar="ID", help="the backup to restore")
    p.add_argument(
        "--to-new-volume",
        metavar="VOLUME",
        default=None,
        help="restore into a new, empty volume and switch to it; the old container and volume are kept",
    )
    p.add_argument("--yes", action="store_true", help="do not ask")
    common.add_desired(p)
    common.add_engine(p)
    common.add_lease(p)


def options(ns: argparse.Namespace) -> Options:
    return Options(common.target(ns), ns.name, ns.source, ns.yes, common.lease_ttl(ns), ns.to_new_volume)


def run(opts: Options, out: TextIO, err: TextIO) -> int:
    return oneoff.run(ONE_OFF, opts, out, err)


def perform(opts: Options, wired: Wired, out: TextIO, progress: Callable[[str], None]) -> int:
    """Under the engine lease: this command's own, or that of the `dbstate run` it was handed to."""
    from controller.views import oneoff as view

    manifest = wired.backups.get(opts.source)
    result = wired.reconciler.plan(record=False)
    (server,) = wired.servers(result, (opts.name,))
    if isinstance(server, str):
        raise DbstateError(server)
    what = ", ".join(manifest.databases) if manifest.databases else "its data"
    out.write(view.restore_intent(manifest.id, server.container, what, opts.to_new_volume))
    if not common.go_ahead(opts.yes, 1, out, "restored"):
        return common.EXIT_ERROR
    if opts.to_new_volume:
        return _to_new_volume(opts, server, manifest, wired, result.revision.commit, progress, out)
    safety = wired.restore(server, manifest, revision=result.revision.commit, progress=progress)
    out.write(view.restored(server.container, manifest.id, safety.id))
    return common.EXIT_OK


def _to_new_volume(
    opts: Options,
    server: Server,
    manifest: Manifest,
    wired: Wired,
    revision: str | None,
    progress: Callable[[str], None],
    out: TextIO,
) -> int:
    from controller.views import oneoff as view

    assert opts.to_new_volume is not None
    moved, kept = wired.restore_to_new_volume(
        server, manifest, opts.to_new_volume, revision=revision, progress=progress
    )
    mount = next(m for m in moved.spec.volumes if m.source == opts.to_new_volume)
    out.write(
        view.restored_to_new_volume(server.container, server.name, manifest.id, opts.to_new_volume, mount.target, kept)
    )
    return common.EXIT_OK


ONE_OFF = oneoff.OneOff(
    "restore",
    Options,
    lambda _opts: PassOptions("restore"),
    perform,
    lambda o: (
        f"restore {o.source} into DatabaseInstance/{o.name}"
        + (f" on a new volume {o.to_new_volume}" if o.to_new_volume else "")
    ),
)
