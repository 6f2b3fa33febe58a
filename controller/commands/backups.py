"""`dbstate backups [NAME]`: the backups in the backup directory, newest last, from their manifests."""

from __future__ import annotations

import argparse
import json
import time
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
    from controller.wiring import local

    found = local.backups_in(opts.directory).manifests(opts.name)
    if opts.output == "json":
        json.dump([m.to_json() for m in found], out, indent=2)
        out.write("\n")
        return common.EXIT_OK
    if not found:
        print(f"no backups in {opts.directory}" + (f" for {opts.name}" if opts.name else ""), file=out)
        return common.EXIT_OK
    print(f"{'ID':<40} {'INSTANCE':<16} {'TAKEN (UTC)':<20} {'SIZE':>10}  {'HOLDS':<24} VERIFIED  REASON", file=out)
    for m in found:
        when = time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(m.started))
        holds = f"{m.counts['keys']} keys" if set(m.counts) == {"keys"} else f"{len(m.counts)} tables"
        if not m.counts and not m.databases:  # an RDB file verified before counts were kept
            holds = m.format.split(".", 1)[0]
        verified = "yes" if m.verified else "no"
        print(
            f"{m.id:<40} {m.instance:<16} {when:<20} {m.size_bytes / 1048576:>8.1f}Mi  {holds:<24} {verified:<9} "
            f"{m.reason}",
            file=out,
        )
    return common.EXIT_OK
