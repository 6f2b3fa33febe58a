"""`dbstate restore NAME --from ID`: put a backup back into a running database, after a backup of what it holds now."""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from typing import TextIO

from controller.commands import options as common
from controller.core.errors import DbstateError
from controller.engine.options import PassOptions, Target

DESCRIPTION = """\
Restore the backup ID (see `dbstate backups`) into the DatabaseInstance NAME as it runs. First a backup of what NAME
holds now is taken (the way back, listed by `dbstate backups`); then each database the backup holds is dropped and
recreated from it (other databases are left alone) and its tables' rows are compared with the backup's manifest.
Redis: the container is stopped, its RDB file replaced and started again (refused when it uses an AOF). Sessions
of the databases being restored are ended. Holds the engine lease; a running controller is not stopped by it, so
suspend the instance first (`dbstate suspend NAME --why restore`) when consumers must not write meanwhile.

exit codes: 0 restored and checked; 1 not (the message says what was done, and which backup holds the data before)."""


@dataclass(frozen=True)
class Options:
    target: Target
    name: str
    source: str
    yes: bool
    lease_ttl: float


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("name", help="the DatabaseInstance's metadata.name")
    p.add_argument("--from", dest="source", required=True, metavar="ID", help="the backup to restore")
    p.add_argument("--yes", action="store_true", help="do not ask")
    common.add_desired(p)
    common.add_engine(p)
    common.add_lease(p)


def options(ns: argparse.Namespace) -> Options:
    return Options(common.target(ns), ns.name, ns.source, ns.yes, common.lease_ttl(ns))


def run(opts: Options, out: TextIO, err: TextIO) -> int:
    from controller import wiring
    from controller.commands.apply import confirm
    from controller.commands.backup import servers
    from controller.engine import backing

    def progress(message: str) -> None:
        print(f"  .. {message}", file=err, flush=True)

    with wiring.reconciler(opts.target, PassOptions("restore"), lease_ttl=opts.lease_ttl) as wired:
        manifest = wired.backups.get(opts.source)
        assert wired.lease is not None
        with wired.lease.holding(progress):
            result = wired.reconciler.plan()
            (server,) = servers(result, (opts.name,))
            if isinstance(server, str):
                raise DbstateError(server)
            what = ", ".join(manifest.databases) if manifest.databases else "its data"
            print(f"restore {manifest.id} into {server.container}: replaces {what}", file=out)
            answer = True if opts.yes else confirm(1, out)
            if not answer:
                why = "there is no terminal to ask on: review, then --yes" if answer is None else "cancelled"
                print(f"Nothing was restored ({why}).", file=out)
                return common.EXIT_ERROR
            safety = backing.restore(
                server,
                manifest,
                wired.shell,
                wired.backups,
                wired.runtime,
                revision=result.revision.commit,
                progress=progress,
            )
    print(f"restored: {server.container} holds {manifest.id}; what it held before is backup {safety.id}", file=out)
    return common.EXIT_OK
