"""`dbstate validate`: load the desired state and report every error at its file, line and field. Touches nothing
live and never loads docker-py."""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from typing import TextIO

from controller.commands import options as common
from controller.core.options import Target

DESCRIPTION = (
    "Load every *.yaml/*.yml below --dir and report every error as FILE:LINE:COLUMN: Kind/name: field: message. "
    "Exit 0 when valid, 1 otherwise (--strict: warnings too). Secret values are never printed."
)


@dataclass(frozen=True)
class Options:
    target: Target
    output: str
    strict: bool


def add_arguments(p: argparse.ArgumentParser) -> None:
    common.add_desired(p)
    common.add_output(p)
    p.add_argument("--strict", action="store_true", help="treat warnings (naming conventions, ...) as errors")


def options(ns: argparse.Namespace) -> Options:
    return Options(common.target(ns), ns.output, ns.strict)


def run(opts: Options, out: TextIO, err: TextIO) -> int:
    from controller.views import validate as view
    from controller.wiring import local

    t = opts.target
    loaded = local.load(t)
    failed = bool(loaded.errors) or (opts.strict and bool(loaded.warnings))
    if opts.output == "json":
        out.write(view.to_json(t.directory, loaded, not failed))
    else:
        err.write(view.problems_text(t.directory, loaded))
        if not loaded.errors:
            out.write(view.summary_text(t.directory, loaded))
    return common.EXIT_ERROR if failed else common.EXIT_OK
