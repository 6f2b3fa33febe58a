"""`dbstate serve --state PATH`: the read-only web view of a state database without a controller; `Site` also serves
it beside /metrics in `dbstate run`."""

from __future__ import annotations

import argparse
import signal
import threading
from dataclasses import dataclass
from pathlib import Path
from types import FrameType
from typing import TextIO

from controller.commands import options as common
from controller.core.errors import DbstateError
from controller.views.site import Site

DESCRIPTION = """\
Serve the web view of a state database (read-only, opened for each request without a write lock): every declared
resource with its sync state and health, the open findings with what a human should do, the pending changes, the
pass history, and per instance its consumers, their connections and its backups. Each page has a JSON twin under
/api/ (/api/overview, /api/instances/NAME, /api/status: the same as `dbstate status --output json`, /api/passes).
`dbstate run` serves the same pages on its --listen address.

The pages hold no secret (what they show is redacted before it is stored) and need no internet (no external asset,
no JavaScript), but they show the layout of your platform: bind to 127.0.0.1 (the default) and publish them behind a
reverse proxy that authenticates, never on an open interface."""


@dataclass(frozen=True)
class Options:
    state: Path
    backup_dir: Path
    listen: tuple[str, int]


def add_arguments(p: argparse.ArgumentParser) -> None:
    common.add_state(p)
    common.add_backup_dir(p)
    p.add_argument(
        "--listen",
        default="127.0.0.1:9465",
        metavar="HOST:PORT",
        help="where to serve (default: 127.0.0.1:9465; [::1]:PORT for IPv6); put an authenticating proxy in front",
    )


def options(ns: argparse.Namespace) -> Options:
    from controller.commands.run import listen_address
    from controller.wiring import local

    where = listen_address(ns.listen)
    if where is None:
        raise DbstateError("--listen: say where to serve, as HOST:PORT")
    return Options(local.state_path(ns.state), common.backup_dir(ns), where)


def run(opts: Options, out: TextIO, err: TextIO) -> int:
    from controller import http

    if not opts.state.exists():
        raise DbstateError(f"no state database at {opts.state}: run `dbstate apply` or `run` first (or --state)")
    site = Site(opts.state, opts.backup_dir)  # the pages `dbstate run` serves too
    stop = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    server = http.serve(opts.listen, None, lambda: True, site.handle)
    print(f"serving the web view of {opts.state} on http://{http.display(opts.listen)}/", file=err, flush=True)
    stop.wait()
    server.shutdown()
    return common.EXIT_OK
