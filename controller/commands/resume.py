"""`dbstate resume NAME`: end a maintenance suspension; the next pass converges the instance again."""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from pathlib import Path
from typing import TextIO

from controller.commands import options as common

DESCRIPTION = """\
End `dbstate suspend NAME`: the next pass (of `run`, or an `apply`) converges the instance again. An instance
suspended by its declaration (`policy.suspended: true`) is resumed by a commit, not by this command."""


@dataclass(frozen=True)
class Options:
    name: str
    state: Path | None


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("name", help="the DatabaseInstance's metadata.name")
    common.add_state(p)


def options(ns: argparse.Namespace) -> Options:
    return Options(ns.name, ns.state)


def run(opts: Options, out: TextIO, err: TextIO) -> int:
    from controller.views import records as view
    from controller.wiring import local

    with local.state(opts.state) as db:
        found = db.resume(f"DatabaseInstance/{opts.name}")
    if not found:
        err.write(view.not_suspended(f"DatabaseInstance/{opts.name}"))
        return common.EXIT_ERROR
    out.write(view.resumed(f"DatabaseInstance/{opts.name}"))
    return common.EXIT_OK
