"""`dbstate suspend NAME --why TEXT`: a human works on an instance; dbstate keeps watching it but changes nothing."""

from __future__ import annotations

import argparse
import getpass
import socket
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, TextIO

from controller.commands import options as common
from controller.core.errors import DbstateError
from controller.core.options import Target

if TYPE_CHECKING:
    from controller.core.spec import Loaded

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
    target: Target


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("name", help="the DatabaseInstance's metadata.name: one the desired state declares (--dir)")
    p.add_argument("--why", required=True, help="what is being done (shown by status and plan)")
    common.add_desired(p)
    common.add_state(p)


def options(ns: argparse.Namespace) -> Options:
    if not ns.why.strip():
        raise DbstateError("--why: say what is being done")
    return Options(ns.name, " ".join(ns.why.split()), ns.state, common.target(ns))


def who() -> str:
    try:
        user = getpass.getuser()
    except (KeyError, OSError):
        user = "unknown"
    return f"{user}@{socket.gethostname()}"


def run(opts: Options, out: TextIO, err: TextIO) -> int:
    from controller.views import records as view
    from controller.wiring import local

    _declared(opts, local.load(opts.target))
    with local.state(opts.state) as db:
        db.suspend(f"DatabaseInstance/{opts.name}", who(), opts.why)
    out.write(view.suspended(f"DatabaseInstance/{opts.name}"))
    return common.EXIT_OK


def _declared(opts: Options, loaded: Loaded) -> None:
    """NAME is a DatabaseInstance the desired state declares (one held back by an error counts): a suspension of a
    name that nothing declares would be recorded, shown, and protect nothing."""
    directory = opts.target.directory
    names = {i.metadata.name for i in loaded.state.instances}
    names |= {d.name for d in loaded.diagnostics if d.kind == "DatabaseInstance" and d.name}
    if opts.name not in names:
        known = ", ".join(sorted(names)) or "none"
        raise DbstateError(
            f"no DatabaseInstance {opts.name!r} is declared in {directory} (declared: {known}): nothing suspended"
        )
