"""`dbstate ack`: an operator's decision on a finding that dbstate must not take alone, recorded in the state
database."""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from pathlib import Path
from typing import TextIO

from controller.commands import options as common

DESCRIPTION = (
    "`dbstate ack volume-lost NAME`: accept that a lost volume is gone; the next apply creates it empty and starts "
    "the instance that uses it. Recorded in the state database."
)


@dataclass(frozen=True)
class Options:
    type: str
    name: str
    state: Path | None


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("type", choices=("volume-lost",), help="what is acknowledged")
    p.add_argument("name", help="the volume's name")
    common.add_state(p)


def options(ns: argparse.Namespace) -> Options:
    return Options(ns.type, ns.name, ns.state)


def run(opts: Options, out: TextIO, err: TextIO) -> int:
    from controller.views import records as view
    from controller.wiring import local

    with local.state(opts.state) as db:
        db.ack(opts.type, opts.name)
    out.write(view.acknowledged(opts.type, opts.name))
    return common.EXIT_OK
