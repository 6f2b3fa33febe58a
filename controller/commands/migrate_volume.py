"""`dbstate migrate-volume NAME`: move a database's data to where its declaration puts it (a data-moved finding)."""

from __future__ import annotations

import argparse
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, TextIO

from controller.commands import oneoff
from controller.commands import options as common
from controller.core.errors import DbstateError
from controller.core.options import PassOptions, Target
from controller.core.scope import Scope

if TYPE_CHECKING:
    from controller.wiring.engines import Wired

DESCRIPTION = """\
Move the data of the DatabaseInstance NAME to the mounts its declaration names, when they differ from what its
container mounts (the plan's data-moved finding: a bind mount to a named volume, one volume to another). The container
is stopped, each mount is copied with the instance's own image into the declared destination (which must be empty),
the copy is verified file by file (sha256), and only then is the container recreated from the declaration and started.
The old data is kept: remove it by hand once you are satisfied. Holds the engine lease throughout; while a
`dbstate run` holds it, the move is handed to that controller (same --state), in that controller's scope.

exit codes: 0 moved (or nothing to move); 1 not moved (a failed copy leaves the container stopped on its old data)."""


@dataclass(frozen=True)
class Options:
    target: Target
    name: str
    yes: bool
    lease_ttl: float
    scope: Scope


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("name", help="the DatabaseInstance's metadata.name")
    p.add_argument("--yes", action="store_true", help="do not ask")
    common.add_desired(p)
    common.add_engine(p)
    common.add_scope(p)
    common.add_lease(p)


def options(ns: argparse.Namespace) -> Options:
    return Options(common.target(ns), ns.name, ns.yes, common.lease_ttl(ns), common.scope(ns))


def run(opts: Options, out: TextIO, err: TextIO) -> int:
    return oneoff.run(ONE_OFF, opts, out, err)


def perform(opts: Options, wired: Wired, out: TextIO, progress: Callable[[str], None]) -> int:
    """Under the engine lease: this command's own, or that of the `dbstate run` it was handed to."""
    from controller.views import oneoff as view
    from controller.wiring.engines import moves

    result = wired.reconciler.plan(record=False)
    state = result.loaded.state
    inst = next((i for i in state.instances if i.metadata.name == opts.name), None)
    if inst is None:
        raise DbstateError(f"no DatabaseInstance named {opts.name} (or it has errors)")
    c = result.observed.container(inst.container_name)
    if c is None or c.owner != (inst.kind, inst.metadata.name):
        raise DbstateError(f"{inst.container_name} is not dbstate's (created or adopted): nothing is moved")
    todo = moves(inst, c)
    if not todo:
        out.write(view.nothing_to_move(inst.container_name))
        return common.EXIT_OK
    out.write(view.moves(todo))
    if not common.go_ahead(opts.yes, len(todo), out, "moved"):
        return common.EXIT_ERROR
    wired.migrate(inst, c, todo, result, progress)
    out.write(view.moved(inst.container_name))
    return common.EXIT_OK


ONE_OFF = oneoff.OneOff(
    "migrate-volume",
    Options,
    lambda o: PassOptions("migrate-volume", scope=o.scope),
    perform,
    lambda o: f"move the data of DatabaseInstance/{o.name} to its declared mounts",
    require_store=True,
)
