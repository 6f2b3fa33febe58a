"""`dbstate backups [NAME]`: the backups in the backup directory, newest last, from their manifests."""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from pathlib import Path
from typing import TextIO

from controller.commands import options as common

DESCRIPTION = """\
List the backups kept in the backup directory (all instances, or NAME's): id, instance, when, size, what it holds and
whether it was verified. Reads only the manifests: no engine is needed."""


@dataclass(frozen=True)
class Options:
    name: str | None
    directory: Path
    output: str


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("name", nargs="?", help="only this DatabaseInstance's backups")
    common.add_state(p)
    common.add_backup_dir(p)
    common.add_output(p)


def options(ns: argparse.Namespace) -> Options:
    return Options(ns.name, common.backup_dir(ns), ns.output)


def run(opts: Options, out: TextIO, err: TextIO) -> int:
    from controller.views import backups as view
    from controller.wiring import local

    store = local.backups_in(opts.directory)
    found = store.manifests(opts.name)
    for path in store.unreadable():
        print(
            f"dbstate: {path}: not a manifest of dbstate's (unreadable, or a field of the wrong type): not listed",
            file=err,
        )
    if opts.output == "json":
        out.write(view.manifests_json(found))
    else:
        out.write(view.listing(found, opts.directory, opts.name))
    return common.EXIT_OK
