"""The options that several commands share, each declared once here: where the desired state is, which engine and
state database, the output format and colour, probing, and how to converge. Values are checked here, so that a bad
one is a clear error before anything runs."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Iterable
from pathlib import Path
from typing import TextIO

from controller.core.errors import DbstateError
from controller.core.options import ProbeOptions, Target
from controller.core.scope import Scope

EXIT_OK, EXIT_ERROR, EXIT_CHANGES, EXIT_FINDINGS = 0, 1, 2, 3
EXIT_STALE = 4  # apply FILE: the saved plan no longer holds (nothing was applied)


def most_serious(codes: Iterable[int]) -> int:
    """The exit code of a command over several engines: the most serious of theirs (an error, then changes pending,
    then findings; 0 when every engine is fine). plan, apply and audit all say it this way."""
    found = set(codes)
    return next((c for c in (EXIT_ERROR, EXIT_CHANGES, EXIT_FINDINGS) if c in found), EXIT_OK)


def confirm(count: int, out: TextIO) -> bool | None:
    """True/False from a person at a terminal; None when there is no terminal to ask on."""
    if not sys.stdin.isatty():
        return None
    out.write(f"\nApply these {count} change{'s' * (count != 1)}? Only 'yes' is accepted: ")
    out.flush()
    try:
        return sys.stdin.readline().strip() == "yes"
    except (EOFError, KeyboardInterrupt):
        return False


def go_ahead(yes: bool, count: int, out: TextIO, done: str) -> bool:
    """--yes, or 'yes' from a person at a terminal; else `Nothing was <done> (why).` is said and False returned."""
    answer = True if yes else confirm(count, out)
    if not answer:
        why = "there is no terminal to ask on: review, then --yes" if answer is None else "cancelled"
        print(f"Nothing was {done} ({why}).", file=out)
        return False
    return True


def add_desired(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--dir",
        type=Path,
        default=Path("desired-state"),
        metavar="DIR",
        help="the desired-state directory (default: ./desired-state)",
    )
    p.add_argument(
        "--env-file",
        type=Path,
        default=None,
        metavar="FILE",
        help="where ${VAR} references resolve first, then the environment (default: .workspace/.env when it exists)",
    )
    p.add_argument(
        "--max-file-bytes",
        type=int,
        default=None,
        metavar="BYTES",
        help="the largest desired-state file read (default: 1048576); a larger one is an error, held back",
    )
    p.add_argument(
        "--max-total-bytes",
        type=int,
        default=None,
        metavar="BYTES",
        help="the most all desired-state files may hold together (default: 33554432)",
    )


def add_output(p: argparse.ArgumentParser, *, markdown: bool = False) -> None:
    if markdown:
        p.add_argument(
            "--output",
            choices=("text", "json", "markdown"),
            default="text",
            help="output format (default: text; markdown: a merge request's comment, see docs/ci/)",
        )
        return
    p.add_argument("--output", choices=("text", "json"), default="text", help="output format (default: text)")


def add_color(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--color",
        choices=("auto", "always", "never"),
        default="auto",
        help="colour the text output (default: auto, only on a terminal; NO_COLOR is honoured)",
    )


def add_state(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--state",
        type=Path,
        default=None,
        metavar="PATH",
        help="dbstate's local state database (default: $DBSTATE_STATE, then .dbstate/state.db)",
    )


def add_engine(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--docker-host",
        default=None,
        metavar="URL",
        help="the Docker engine when the desired state declares no Host (default: $DOCKER_HOST, then "
        "unix:///var/run/docker.sock)",
    )
    p.add_argument(
        "--host",
        default=None,
        metavar="NAME",
        help="with Host documents: work on this engine only (default: every engine; for a command on one instance, "
        "the instance's own)",
    )
    add_state(p)
    add_backup_dir(p)


def add_backup_dir(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--backup-dir",
        type=Path,
        default=None,
        metavar="DIR",
        help="where backups are kept, mode 0700 (default: $DBSTATE_BACKUP_DIR, then `backups/` beside the state "
        "database)",
    )
    p.add_argument(
        "--backup-key",
        type=Path,
        default=None,
        metavar="FILE",
        help="the key that signs each backup's manifest (HMAC-SHA256), made on the first backup, mode 0600; keep it "
        "outside the backup directory: a backup is restored only with the key it was signed with (default: "
        "$DBSTATE_BACKUP_KEY, then `backup.key` beside the state database)",
    )


def backup_dir(ns: argparse.Namespace) -> Path:
    from controller.wiring import local

    given = getattr(ns, "backup_dir", None) or os.environ.get("DBSTATE_BACKUP_DIR")
    return Path(given) if given else local.default_backup_dir(getattr(ns, "state", None))


def target(ns: argparse.Namespace) -> Target:
    for flag, value in (("--max-file-bytes", ns.max_file_bytes), ("--max-total-bytes", ns.max_total_bytes)):
        if value is not None and value < 1:
            raise DbstateError(f"{flag} must be at least 1")
    return Target(
        ns.dir,
        ns.env_file,
        getattr(ns, "docker_host", None),
        getattr(ns, "state", None),
        ns.max_file_bytes,
        ns.max_total_bytes,
        backup_dir(ns),
        getattr(ns, "host", None),
        backup_key(ns),
    )


def backup_key(ns: argparse.Namespace) -> Path | None:
    given = getattr(ns, "backup_key", None) or os.environ.get("DBSTATE_BACKUP_KEY")
    return Path(given) if given else None


def add_probe_timeout(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--probe-timeout",
        type=float,
        default=2.0,
        metavar="SECONDS",
        help="how long one probe may take to connect and log in (default: 2)",
    )


def probe_timeout(ns: argparse.Namespace) -> float:
    if not ns.probe_timeout > 0:
        raise DbstateError("--probe-timeout must be more than 0")
    return float(ns.probe_timeout)


def add_probe(p: argparse.ArgumentParser, *, unhealthy_after: int, controller: bool = False) -> None:
    """How the database servers themselves are probed: plan/apply with --probe, run on an interval."""
    if controller:
        p.add_argument(
            "--probe-interval",
            type=float,
            default=30.0,
            metavar="SECONDS",
            help="probe every instance this often: log in with its declared auth, read its version and security "
            "facts (default: 30; 0 turns probing off)",
        )
    else:
        p.add_argument(
            "--probe",
            action="store_true",
            help="also log in to every instance with its declared auth: findings unhealthy, version-mismatch, "
            "auth-weak, version-inconsistent (from the servers' own answers), and restarts where "
            "policy.restartAfterFailedProbes asks",
        )
    add_probe_timeout(p)
    p.add_argument(
        "--probe-via",
        choices=("direct", "exec", "auto"),
        default="direct",
        help="direct: connect to the container's address (the controller needs a route to it); exec: run the "
        "engine's own client inside the container (docker exec, over its 127.0.0.1, credentials in the exec's "
        "environment), for a remote engine or a controller outside the containers' networks; auto: direct, then "
        "exec when the address cannot be reached (default: direct)",
    )
    p.add_argument(
        "--unhealthy-after",
        type=int,
        default=unhealthy_after,
        metavar="N",
        help=f"an instance is unhealthy after N consecutive failed probes, counted in the state database "
        f"(default: {unhealthy_after})",
    )


def probe(ns: argparse.Namespace) -> ProbeOptions | None:
    """The probe options, or None when probing is off."""
    timeout = probe_timeout(ns)
    if ns.unhealthy_after < 1:
        raise DbstateError("--unhealthy-after must be at least 1")
    interval = float(getattr(ns, "probe_interval", 0.0))
    if interval < 0:
        raise DbstateError("--probe-interval must be 0 (off) or more")
    enabled = interval > 0 if hasattr(ns, "probe_interval") else ns.probe
    return ProbeOptions(timeout, ns.unhealthy_after, interval, ns.probe_via) if enabled else None


def add_scope(p: argparse.ArgumentParser) -> None:
    """What the controller may change besides what it made: set here, outside the repository, never by a commit."""
    p.add_argument(
        "--allow-compose-project",
        action="append",
        default=[],
        metavar="NAME",
        help="consumers' containers of this compose project may be connected to their networks (repeatable or "
        "comma-separated; also $DBSTATE_ALLOW_COMPOSE_PROJECTS). Default: only containers dbstate made",
    )
    p.add_argument(
        "--allow-label",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="containers carrying this label may be connected and disconnected (repeatable or "
        "comma-separated; also $DBSTATE_ALLOW_LABELS)",
    )
    p.add_argument(
        "--allow-bind-root",
        action="append",
        default=[],
        metavar="DIR",
        help="database bind mounts (type: bind) may use host directories under DIR (repeatable or "
        "comma-separated; also $DBSTATE_ALLOW_BIND_ROOTS). Default: none",
    )


def _listed(flag_values: list[str], variable: str) -> list[str]:
    """A flag's values and the variable's, each split on commas alike (`--allow-compose-project a,b` is two, as
    `import` prints it and as the variable has it), blanks dropped."""
    return [
        part.strip()
        for text in [*flag_values, os.environ.get(variable, "")]
        for part in text.split(",")
        if part.strip()
    ]


def scope(ns: argparse.Namespace) -> Scope:
    projects = _listed(ns.allow_compose_project, "DBSTATE_ALLOW_COMPOSE_PROJECTS")
    labels: set[tuple[str, str]] = set()
    for text in _listed(ns.allow_label, "DBSTATE_ALLOW_LABELS"):
        key, sep, value = text.partition("=")
        if not sep or not key:
            raise DbstateError(f"--allow-label {text!r}: expected KEY=VALUE")
        labels.add((key, value))
    roots = _listed(ns.allow_bind_root, "DBSTATE_ALLOW_BIND_ROOTS")
    for root in roots:
        if not root.startswith("/") or root.rstrip("/") == "":
            raise DbstateError(f"--allow-bind-root {root!r}: an absolute directory other than /")
    return Scope(frozenset(projects), frozenset(labels), frozenset(r.rstrip("/") for r in roots))


def add_converge(p: argparse.ArgumentParser, retry_budget: float) -> None:
    """What apply and run share: prune, parallelism, and the retry budget of one engine call."""
    p.add_argument(
        "--prune",
        action="store_true",
        help="also remove orphan containers without deletion protection (never volumes; nothing while any file is "
        "invalid)",
    )
    p.add_argument("--parallel", type=int, default=4, metavar="N", help="changes run at once (default: 4)")
    p.add_argument(
        "--retry-budget",
        type=float,
        default=retry_budget,
        metavar="SECONDS",
        help=f"how long one engine call may retry transient errors before its change fails (default: {retry_budget:g})",
    )


def parallel(ns: argparse.Namespace) -> int:
    if ns.parallel < 1:
        raise DbstateError("--parallel must be at least 1")
    if not ns.retry_budget >= 0:
        raise DbstateError("--retry-budget must be 0 or more")
    return int(ns.parallel)


def add_lease(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--lease-ttl",
        type=float,
        default=30.0,
        metavar="SECONDS",
        help="the one-writer lease on the engine: a controller that stops renewing it is taken over after this long; "
        "the holder itself stops changing the engine after 3/4 of it without a renewal (default: 30)",
    )


def lease_ttl(ns: argparse.Namespace) -> float:
    if not ns.lease_ttl > 0:
        raise DbstateError("--lease-ttl must be more than 0")
    return float(ns.lease_ttl)
