"""`dbstate suspend NAME --why TEXT`: a human works on an instance; dbstate keeps watching it but changes nothing."""

from __future__ import annotations

import argparse
import getpass
import socket
from dataclasses import dataclass
from pathlib import Path
from typing import TextIO

from controller.commands import options as common
from controller.core.errors import DbstateError

DESCRIPTION = """\
Suspend the DatabaseInstance NAME for maintenance (a manual upgrade, a restore): it is still observed, probed and
reported (`status` says suspended, by whom and why), but no pass changes anything of it until `dbstate resume NAME`.
Recorded in the state database (the same as `policy.suspended: true` in the declaration, without a commit); a
running controller honours it from its next pass."""


@dataclass(frozen=True)
class Options:
    name: str
    why: str
    state: Path | None


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("name", help="the DatabaseInstance's metadata.name")
    p.add_argument("--why", required=True, help="what is being done (shown by status and plan)")
    common.add_state(p)


def options(ns: argparse.Namespace) -> Options:
    if not ns.why.strip():
        raise DbstateError("--why: say what is being done")
    return Options(ns.name, " ".join(ns.why.split()), ns.state)


def who() -> str:
    try:
        user = getpass.getuser()
    except (KeyError, OSError):
        user = "unknown"
    return f"{user}@{socket.gethostname()}"


def run(opts: Options, out: TextIO, err: TextIO) -> int:
    from controller.views import records as view
    from controller.wiring import local

    with local.state(opts.state) as db:
        db.suspend(f"DatabaseInstance/{opts.name}", who(), opts.why)
    out.write(view.suspended(f"DatabaseInstance/{opts.name}"))
    return common.EXIT_OK
