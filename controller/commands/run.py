"""`dbstate run`: the controller's options; the process itself is `controller.run`."""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING, TextIO

from controller.commands import options as common
from controller.core.errors import DbstateError
from controller.core.options import PassOptions

if TYPE_CHECKING:
    from controller.run import RunOptions

DESCRIPTION = """\
Reconcile continuously: a pass on every desired-state edit (--source worktree) or new commit, on Docker events that
can mean drift (a container died or was stopped, a network attachment changed, a volume vanished), on retries after
backoff (1 s growing to 5 min per resource), and every --resync seconds. One controller per engine: a second one
waits, not acting, until the first stops or its lease expires. A pass that fails is logged and retried; only SIGTERM
or SIGINT end the controller: it finishes the change in flight, writes the state database and exits 0."""


def add_arguments(p: argparse.ArgumentParser) -> None:
    common.add_desired(p)  # run logs; --log-format chooses how
    common.add_engine(p)
    p.add_argument(
        "--source",
        choices=("worktree", "commit"),
        default="worktree",
        help="worktree (default): the files on disk; commit: only what is committed at HEAD (uncommitted edits are "
        "reported and ignored)",
    )
    p.add_argument(
        "--git-pull",
        nargs=2,
        metavar=("REMOTE", "BRANCH"),
        help="fast-forward the checkout from REMOTE BRANCH every --pull-interval; a diverged history is an error "
        "and nothing is applied from it",
    )
    p.add_argument("--pull-interval", type=float, default=60.0, metavar="SECONDS", help="default: 60")
    p.add_argument(
        "--resync",
        type=float,
        default=60.0,
        metavar="SECONDS",
        help="a full pass at least this often, whatever the events (default: 60)",
    )
    p.add_argument(
        "--listen",
        default="127.0.0.1:9464",
        metavar="HOST:PORT",
        help="/metrics, /healthz, /readyz (default: 127.0.0.1:9464; [::1]:PORT for IPv6; empty to disable)",
    )
    p.add_argument("--log-format", choices=("json", "text"), default="text", help="default: text")
    p.add_argument(
        "--keep-history",
        default="30d",
        metavar="DURATION",
        help="passes older than this are forgotten, with their changes and findings; never the facts that protect "
        "data (volumes seen, adoptions, acks); e.g. 7d, 12h; 0 keeps everything (default: 30d)",
    )
    p.add_argument(
        "--notify",
        action="append",
        default=[],
        metavar="URL",
        help="send notifications to this Apprise URL (repeatable: slack://, discord://, ntfy://, mailto://, json://); "
        "env:NAME reads the URL (or several, space-separated) from the variable NAME, which keeps a token out of the "
        "process list. Sent once per event, grouped per pass; a failing notifier is retried and never delays a pass",
    )
    common.add_converge(p, retry_budget=10.0)
    common.add_probe(p, unhealthy_after=3, controller=True)
    common.add_scope(p)
    common.add_lease(p)


def listen_address(text: str) -> tuple[str, int] | None:
    """`HOST:PORT`, `[IPV6]:PORT`, or empty (no HTTP endpoints)."""
    if not text:
        return None
    host, sep, port = text.rpartition(":")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    elif ":" in host:
        raise DbstateError(f"--listen {text!r}: write an IPv6 address in brackets, as [::1]:9464")
    if not sep or not port.isdigit() or not 0 < int(port) < 65536:
        raise DbstateError(f"--listen {text!r}: expected HOST:PORT with a port from 1 to 65535")
    return host or "127.0.0.1", int(port)


def keep_history(text: str) -> float | None:
    from controller.core.spec import duration_seconds

    if text.strip() == "0":
        return None
    try:
        return float(duration_seconds(text.strip()))
    except ValueError as e:
        raise DbstateError(f"--keep-history: {e}") from None


def options(ns: argparse.Namespace) -> RunOptions:
    from controller.run import RunOptions
    from controller.wiring import local

    for flag, value in (("--resync", ns.resync), ("--pull-interval", ns.pull_interval)):
        if not value > 0:
            raise DbstateError(f"{flag} must be more than 0")
    passes = PassOptions(
        "run",
        prune=ns.prune,
        parallel=common.parallel(ns),
        probe=common.probe(ns),
        scope=common.scope(ns),
        keep_history=keep_history(ns.keep_history),
    )
    return RunOptions(
        common.target(ns),
        passes,
        source=ns.source,
        git_pull=tuple(ns.git_pull) if ns.git_pull else None,
        pull_interval=ns.pull_interval,
        resync=ns.resync,
        listen=listen_address(ns.listen),
        log_format=ns.log_format,
        retry_budget=ns.retry_budget,
        lease_ttl=common.lease_ttl(ns),
        notify=tuple(local.notify_urls(ns.notify)),
    )


def run(opts: RunOptions, out: TextIO, err: TextIO) -> int:
    from controller import run as controller

    return controller.run(opts)
