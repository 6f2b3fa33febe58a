"""`dbstate verify-backup ID...`: restore kept backups into throw-away servers and compare them with their manifests."""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from typing import TextIO

from controller.commands import options as common
from controller.core.errors import DbstateError
from controller.core.options import PassOptions, Target

DESCRIPTION = """\
Verify backups already taken (ids from `dbstate backups`): the file must have the size and sha256 its manifest says,
and restored into a throw-away container of the image it was taken from (an internal network, removed afterwards) it
must hold the rows of every table the manifest lists (Redis: redis-check-rdb reads it whole and a server loads its
keys). A verified backup's manifest records when. The instance's declaration gives the login for the throw-away server.

exit codes: 0 every backup verified; 1 one was not (damaged, or it does not restore what it holds)."""


@dataclass(frozen=True)
class Options:
    target: Target
    ids: tuple[str, ...]


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("ids", nargs="+", metavar="ID", help="a backup's id")
    common.add_desired(p)
    common.add_engine(p)


def options(ns: argparse.Namespace) -> Options:
    return Options(common.target(ns), tuple(ns.ids))


def run(opts: Options, out: TextIO, err: TextIO) -> int:
    from controller.views import backups as view
    from controller.wiring import engines

    def progress(message: str) -> None:
        print(f"  .. {message}", file=err, flush=True)

    failed = 0
    with engines.reconciler(opts.target, PassOptions("verify-backup")) as wired:
        declared = {i.metadata.name: i for i in wired.reconciler.plan(record=False).loaded.state.instances}
        for ident in opts.ids:
            try:
                m = wired.backups.get(ident)
                inst = declared.get(m.instance)
                if inst is None:
                    raise DbstateError(f"no DatabaseInstance {m.instance} is declared: its login is unknown")
                wired.verify(m, inst, progress)
            except DbstateError as e:
                err.write(view.failed(ident, e))
                failed += 1
                continue
            out.write(view.verified(ident))
    return common.EXIT_ERROR if failed else common.EXIT_OK
