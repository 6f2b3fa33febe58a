"""`dbstate status`: what the state database says of the last pass, each resource and each instance's health. Opens
it read-only, so it never takes a write lock from a running controller."""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from pathlib import Path
from typing import TextIO

from controller.commands import options as common
from controller.core.errors import DbstateError

DESCRIPTION = (
    "Read the state database: the last pass (its revision, when, its counts) and, per resource, in-sync, drifted, "
    "failing (last error, attempts, next retry), findings or invalid; the last probe of each instance; and the "
    "newest backup of each instance in the backup directory."
)


@dataclass(frozen=True)
class Options:
    state: Path | None
    output: str
    backup_dir: Path


def add_arguments(p: argparse.ArgumentParser) -> None:
    common.add_state(p)
    common.add_backup_dir(p)
    common.add_output(p)


def options(ns: argparse.Namespace) -> Options:
    return Options(ns.state, ns.output, common.backup_dir(ns))


def run(opts: Options, out: TextIO, err: TextIO) -> int:
    from controller.views import status as view
    from controller.wiring import local

    path = local.state_path(opts.state)
    if not path.exists():
        raise DbstateError(f"no state database at {path}: run `dbstate plan`, `apply` or `run` first (or --state)")
    with local.state(path, readonly=True) as db:
        passes = db.passes(limit=1)
        resources = db.resources()
        probed = db.health()
        engines = db.last_passes()
        jobs = db.jobs()
    newest = {
        m.instance: m.to_json() for m in local.backups_in(opts.backup_dir).manifests()
    }  # sorted: the last one wins
    kept = [newest[k] for k in sorted(newest)]
    last = passes[0] if passes else None
    if opts.output == "json":
        out.write(view.to_json(last, resources, probed, kept, engines, jobs))
    else:
        out.write(view.to_text(last, resources, probed, kept, engines, jobs))
    return common.EXIT_OK
