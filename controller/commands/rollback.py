"""`dbstate rollback NAME`: go back to the server an upgrade (or a restore to a new volume) kept, once the declaration
names it again."""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, TextIO

from controller.commands import oneoff
from controller.commands import options as common
from controller.core.errors import DbstateError
from controller.core.options import PassOptions, Target

if TYPE_CHECKING:
    from controller.wiring.engines import Wired

DESCRIPTION = """\
Go back to the server kept by an upgrade (`NAME.dbstate-kept-v15`, say) or by `restore --to-new-volume`. First revert
the commit that upgraded it, so that the declaration names the kept server again (its image and data volume): `plan`
then reports `rollback` and changes nothing. This command then:

  1. compares the current server with the digest of every table taken at the cutover: a difference is a write that
     going back would lose, and the rollback is refused (--discard-writes: go back anyway);
  2. backs the current server up (its data stays reachable: `dbstate backups`);
  3. stops it and keeps it inert in its turn (`NAME.dbstate-kept-rolled-back-<time>`, on its untouched volume);
  4. creates the old server from the declaration on its data, starts it and checks its version; any failure starts
     the current server again;
  5. removes the kept copy of the old server (its volume is what the server runs on again).

A server kept by `pg_upgrade --link` (or --swap) cannot start again once the new one has: refused, naming the backup
that upgrade took first (restore it with `dbstate restore NAME --from ID --to-new-volume VOLUME`).

Holds the engine lease; while a `dbstate run` holds it, the rollback is handed to that controller (same --state),
which performs it and goes on reconciling the others.

exit codes: 0 rolled back; 1 not (the message says why, and that nothing was changed, or what was)."""


@dataclass(frozen=True)
class Options:
    target: Target
    name: str
    kept: str | None
    discard_writes: bool
    yes: bool
    lease_ttl: float


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("name", help="the DatabaseInstance's metadata.name")
    p.add_argument(
        "--kept", default=None, metavar="CONTAINER", help="which kept server, when there are several (the newest)"
    )
    p.add_argument(
        "--discard-writes",
        action="store_true",
        help="roll back although the current server was written to since the cutover (it is backed up first)",
    )
    p.add_argument("--yes", action="store_true", help="do not ask")
    common.add_desired(p)
    common.add_engine(p)
    common.add_lease(p)


def options(ns: argparse.Namespace) -> Options:
    return Options(common.target(ns), ns.name, ns.kept, ns.discard_writes, ns.yes, common.lease_ttl(ns))


def run(opts: Options, out: TextIO, err: TextIO) -> int:
    return oneoff.run(ONE_OFF, opts, out, err)


def perform(opts: Options, wired: Wired, out: TextIO, progress: Callable[[str], None]) -> int:
    """Under the engine lease: this command's own, or that of the `dbstate run` it was handed to."""
    from controller.core.labels import KEPT_SUFFIX
    from controller.views import oneoff as view

    result = wired.reconciler.plan(record=False)
    inst = next((i for i in result.loaded.state.instances if i.metadata.name == opts.name), None)
    if inst is None:
        raise DbstateError(f"no DatabaseInstance named {opts.name} (or its declaration has errors)")
    current = result.observed.container(inst.container_name)
    if current is None or current.state != "running":
        raise DbstateError(f"{inst.container_name} is not running: nothing to roll back from")
    kept = sorted(
        (
            c
            for c in result.observed.owned_by(inst.kind, inst.metadata.name)
            if c.name.startswith(inst.container_name + KEPT_SUFFIX)
        ),
        key=lambda c: c.name,
    )
    if opts.kept is not None:
        kept = [c for c in kept if c.name == opts.kept]
    if not kept:
        raise DbstateError(f"no kept server of {opts.name}{' named ' + opts.kept if opts.kept else ''}")
    chosen = next((c for c in reversed(kept) if c.image == inst.spec.image), kept[-1])
    out.write(view.rollback_intent(inst.container_name, chosen.name, chosen.image))
    if not common.go_ahead(opts.yes, 1, out, "rolled back"):
        return common.EXIT_ERROR
    t0 = time.monotonic()
    safety = wired.rollback(
        inst,
        current,
        chosen,
        discard_writes=opts.discard_writes,
        revision=result.revision.commit,
        progress=progress,
    )
    out.write(view.rolled_back(inst.container_name, inst.spec.image, time.monotonic() - t0, safety.id))
    return common.EXIT_OK


ONE_OFF = oneoff.OneOff(
    "rollback",
    Options,
    lambda _opts: PassOptions("rollback"),
    perform,
    lambda o: f"roll DatabaseInstance/{o.name} back to the server its upgrade kept",
)
