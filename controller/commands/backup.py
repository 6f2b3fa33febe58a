"""`dbstate backup NAME... | --all`: a logical backup of running databases with their own tools, verified on request."""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import dataclass
from typing import TYPE_CHECKING, TextIO

from controller.commands import options as common
from controller.core.errors import DbstateError
from controller.engine.options import PassOptions, Target

if TYPE_CHECKING:
    from controller.engine.backing import Server
    from controller.engine.reconciler import PassResult

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


def servers(result: PassResult, names: tuple[str, ...]) -> list[Server | str]:
    """Each named (or, without names, every declared) instance's running server; a message for one that is not."""
    from controller.engine.backing import Server

    state = result.loaded.state
    declared = {i.metadata.name: i for i in state.instances}
    out: list[Server | str] = []
    for name in names or tuple(declared):
        inst = declared.get(name)
        if inst is None:
            out.append(f"{name}: no DatabaseInstance of that name (or its declaration has errors)")
            continue
        c = result.observed.container(inst.container_name)
        if c is None or c.state != "running":
            out.append(f"{name}: {inst.container_name} is {'missing' if c is None else c.state}: nothing to back up")
            continue
        data = tuple((m.source, m.destination) for m in c.mounts if m.type in ("volume", "bind"))
        out.append(Server(inst, c.name, c.image, data))
    return out


def run(opts: Options, out: TextIO, err: TextIO) -> int:
    from controller import wiring
    from controller.engine import backing

    def progress(message: str) -> None:
        print(f"  .. {message}", file=err, flush=True)

    failed = 0
    taken = []
    first = opts.names[0] if opts.names else None  # with several Hosts: the engine of the (first) instance named
    with wiring.reconciler(opts.target, PassOptions("backup"), instance=first) as wired:
        result = wired.reconciler.plan(record=False)
        for server in servers(result, opts.names):
            if isinstance(server, str):
                print(f"failed: {server}", file=err)
                failed += 1
                continue
            try:
                m = backing.take(
                    server,
                    wired.shell,
                    wired.backups,
                    revision=result.revision.commit,
                    reason="manual",
                    progress=progress,
                )
                if opts.verify:
                    m = backing.verify(m, server.inst, wired.shell, wired.backups, progress)
                if opts.keep is not None:
                    for gone in wired.backups.prune(server.name, opts.keep):
                        progress(f"{server.name}: removed {gone} (--keep {opts.keep})")
            except DbstateError as e:
                print(f"failed: {server.name}: {e}", file=err)
                failed += 1
                continue
            taken.append(m)
            if opts.output == "text":
                state = "verified" if m.verified else "not verified"
                print(f"{m.id}  {m.instance}  {m.size_bytes / 1048576:.1f} MiB  {state}", file=out)
    if opts.output == "json":
        json.dump([m.to_json() for m in taken], out, indent=2)
        out.write("\n")
    sys.stderr.flush()
    return common.EXIT_ERROR if failed else common.EXIT_OK
