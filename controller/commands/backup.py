"""`dbstate backup NAME... | --all`: a logical backup of running databases with their own tools, verified on request."""

from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass
from typing import TextIO

from controller.commands import options as common
from controller.core.errors import DbstateError
from controller.core.options import PassOptions, Target

DESCRIPTION = """\
Back up the DatabaseInstances NAME... (or --all) as they run, with each engine's own tool run in its container
(`docker exec`, so no route to the database is needed): PostgreSQL pg_dumpall, MariaDB/MySQL mariadb-dump
--all-databases --single-transaction, Redis BGSAVE and a copy of its RDB file. Each backup is a compressed file with a
manifest (instance, engine, server version, revision, size, sha256, rows per table as the dump holds them) in the
backup directory (mode 0700). Credentials travel in the exec's environment, never on a command line.

--verify restores each new backup into a throw-away container of the same image (on an internal network, removed
afterwards) and compares its tables' rows (Redis: its keys) with the manifest. --keep N removes all but the newest N
backups of each instance backed up. Progress goes to stderr.

exit codes: 0 every backup taken (and verified); 1 one failed (the others are still taken)."""


@dataclass(frozen=True)
class Options:
    target: Target
    names: tuple[str, ...]
    all: bool
    verify: bool
    keep: int | None
    output: str


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("names", nargs="*", metavar="NAME", help="a DatabaseInstance's metadata.name")
    p.add_argument("--all", action="store_true", help="every declared DatabaseInstance")
    p.add_argument("--verify", action="store_true", help="restore each backup into a throw-away server and compare")
    p.add_argument("--keep", type=int, default=None, metavar="N", help="then keep only the newest N of each instance")
    common.add_desired(p)
    common.add_engine(p)
    common.add_output(p)


def options(ns: argparse.Namespace) -> Options:
    if bool(ns.names) == ns.all:
        raise DbstateError("name the instances to back up, or --all (not both)")
    if ns.keep is not None and ns.keep < 1:
        raise DbstateError("--keep must be at least 1")
    return Options(common.target(ns), tuple(ns.names), ns.all, ns.verify, ns.keep, ns.output)


def run(opts: Options, out: TextIO, err: TextIO) -> int:
    from controller.views import backups as view
    from controller.wiring import engines

    def progress(message: str) -> None:
        print(f"  .. {message}", file=err, flush=True)

    failed = 0
    taken = []
    first = opts.names[0] if opts.names else None  # with several Hosts: the engine of the (first) instance named
    with engines.reconciler(opts.target, PassOptions("backup"), instance=first) as wired:
        result = wired.reconciler.plan(record=False)
        for server in wired.servers(result, opts.names):
            if isinstance(server, str):
                err.write(f"failed: {server}\n")
                failed += 1
                continue
            try:
                m = wired.take(server, revision=result.revision.commit, reason="manual", progress=progress)
                if opts.verify:
                    m = wired.verify(m, server.inst, progress)
                if opts.keep is not None:
                    for gone in wired.backups.prune(server.name, opts.keep):
                        progress(f"{server.name}: removed {gone} (--keep {opts.keep})")
            except DbstateError as e:
                err.write(view.failed(server.name, e))
                failed += 1
                continue
            taken.append(m)
            if opts.output == "text":
                out.write(view.taken(m))
                out.flush()
    if opts.output == "json":
        out.write(view.manifests_json(taken))
    sys.stderr.flush()
    return common.EXIT_ERROR if failed else common.EXIT_OK
