"""`dbstate adopt NAME`: take over one declared database whose container someone else made, as it is, without
recreating it (the same as `policy.adopt: in-place`, for one instance, now)."""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from typing import TextIO

from controller.commands import options as common
from controller.core.errors import DbstateError
from controller.core.options import PassOptions, Target

DESCRIPTION = """\
Record the container of the declared DatabaseInstance NAME as dbstate's own, when it matches the declaration (image,
volumes and every data mount, env). Nothing on the engine changes: ownership is recorded by container id, in the
state database and on the engine; from then on dbstate starts, reconnects, probes and reports it. When it does not
match, each field that differs is listed and nothing is recorded.

exit codes: 0 adopted (or already dbstate's); 1 not adopted."""


@dataclass(frozen=True)
class Options:
    target: Target
    name: str


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("name", help="the DatabaseInstance's metadata.name")
    common.add_desired(p)
    common.add_engine(p)


def options(ns: argparse.Namespace) -> Options:
    return Options(common.target(ns), ns.name)


def run(opts: Options, out: TextIO, err: TextIO) -> int:
    from controller.core import adoption, spec
    from controller.views import records as view
    from controller.wiring import engines

    with engines.reconciler(opts.target, PassOptions("adopt"), instance=opts.name, require_store=True) as wired:
        result = wired.reconciler.plan()
        wired.reconciler.finish(result)
        host = wired.engine.name
    inst = next((i for i in result.loaded.state.instances if i.metadata.name == opts.name), None)
    if inst is None:
        raise DbstateError(f"no DatabaseInstance named {opts.name} in {opts.target.directory} (or it has errors)")
    c = result.observed.container(inst.container_name)
    if c is None:
        raise DbstateError(f"no container {inst.container_name} on the engine: nothing to adopt (apply creates it)")
    if c.owner == (inst.kind, inst.metadata.name):
        out.write(view.adopted_already(inst.container_name, f"DatabaseInstance/{opts.name}"))
        return common.EXIT_OK
    if c.owner is not None:
        raise DbstateError(f"{inst.container_name} belongs to {c.owner[0]}/{c.owner[1]}: not adopted")
    differs = adoption.differences(inst, c)
    if differs:
        out.write(view.not_adopted(inst.container_name, f"DatabaseInstance/{opts.name}", differs))
        return common.EXIT_ERROR
    key = f"{inst.kind}/{inst.metadata.name}"
    engines.record_adoptions(opts.target, [adoption.Adoption(key, c.id, spec.spec_hash(inst))], host)
    out.write(view.adopted(inst.container_name, c.id, key, adoption.retire_command(c)))
    return common.EXIT_OK
