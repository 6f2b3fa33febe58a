"""`dbstate apply`: compute the plan, show it, ask on a terminal, and execute it, with every outcome reported."""

from __future__ import annotations

import argparse
import json
from dataclasses import dataclass
from typing import TYPE_CHECKING, TextIO

from controller.commands import options as common
from controller.commands.plan import render
from controller.core.options import PassOptions, Target

if TYPE_CHECKING:
    from collections.abc import Callable

    from controller.core.plan import Outcome
    from controller.wiring.engines import Reconciler, Wired

DESCRIPTION = """\
Compute the plan (as `dbstate plan`), show it, ask for confirmation on a terminal, and execute it: networks and
volumes first, instances before the consumers that use them, independent changes in parallel. Transient engine
errors are retried within --retry-budget; a failed change blocks only what depends on it. Volumes are never removed.
A database is backed up before it is recreated (policy.backup.beforeChange, into --backup-dir): no backup, no
recreate. policy.upgrade: dump-restore moves a database to a new major by dump and restore into a new volume, and
rolls back to the old server when any step fails. While it changes the engine, apply holds the engine lease: if a
`dbstate run` holds it, apply changes nothing and says so; a lease whose holder stopped renewing is waited out (up
to --lease-ttl).

exit codes: 0 converged; 1 a change failed, the desired state has errors, or a declared resource is not under
dbstate's management or is held back to protect its data (name-conflict, adoption-blocked, volume-in-use,
data-moved, major-upgrade, volume-lost); every outcome is still reported."""


@dataclass(frozen=True)
class Options:
    target: Target
    passes: PassOptions
    output: str
    color: str
    yes: bool
    retry_budget: float
    lease_ttl: float


def add_arguments(p: argparse.ArgumentParser) -> None:
    common.add_desired(p)
    common.add_output(p)
    common.add_engine(p)
    p.add_argument("--yes", action="store_true", help="apply without asking (for automation)")
    common.add_converge(p, retry_budget=30.0)
    common.add_probe(p, unhealthy_after=1)
    common.add_scope(p)
    common.add_lease(p)
    common.add_color(p)


def options(ns: argparse.Namespace) -> Options:
    passes = PassOptions(
        "apply", prune=ns.prune, parallel=common.parallel(ns), probe=common.probe(ns), scope=common.scope(ns)
    )
    return Options(common.target(ns), passes, ns.output, ns.color, ns.yes, ns.retry_budget, common.lease_ttl(ns))


def run(opts: Options, out: TextIO, err: TextIO) -> int:
    """Plan, confirm and apply while holding the engine lease: no `dbstate run` acts meanwhile."""
    from controller.wiring import engines

    def progress(message: str) -> None:
        print(f"  .. {message}", file=err)

    with engines.reconcilers(
        opts.target,
        opts.passes,
        require_store=True,
        retry_budget=opts.retry_budget,
        progress=progress,
        lease_ttl=opts.lease_ttl,
    ) as every:
        if len(every) == 1:
            assert every[0].lease is not None
            with every[0].lease.holding(progress):
                code, doc = _plan_and_apply(opts, every[0].reconciler, out, err)
            if doc is not None:
                out.write(doc)
            return code
        return _several(opts, every, out, err, progress)


def _several(opts: Options, every: list[Wired], out: TextIO, err: TextIO, progress: Callable[[str], None]) -> int:
    """One engine after the other, each under its own lease and asking for its own changes; an engine that cannot
    be reached fails alone (reported), and the others are applied."""
    from controller.core import errors
    from controller.views import common as views

    codes, docs = [], []
    for w in every:
        if opts.output != "json":
            out.write(views.host_heading(w.engine.name, w.runtime.host))
        assert w.lease is not None
        try:
            with w.lease.holding(progress):
                code, doc = _plan_and_apply(opts, w.reconciler, out, err)
        except errors.EngineError as e:
            err.write(views.host_error(w.engine.name, e))
            code, doc = common.EXIT_ERROR, json.dumps({"error": str(e)})
        codes.append(code)
        if doc is not None:
            docs.append(views.host_part(w.engine.name, w.runtime.host, json.loads(doc)))
        if opts.output != "json":
            out.write("\n")
    if opts.output == "json":
        out.write(views.several({"converged": all(c == common.EXIT_OK for c in codes)}, docs))
    return common.most_serious(codes)


def _plan_and_apply(opts: Options, reconciler: Reconciler, out: TextIO, err: TextIO) -> tuple[int, str | None]:
    """The exit code, and the JSON document (--output json) for the caller to write."""
    from controller.views import apply as view
    from controller.views.common import dumps, scrub

    json_out = opts.output == "json"
    probed = opts.passes.probe is not None
    result = reconciler.plan()
    changes = result.plan.changes
    if not json_out:
        text = render(result, opts.output, opts.color, probed, str(opts.target.directory), out, err)
        out.write(scrub(text, result.secrets))
    if changes and not opts.yes:
        answer = common.confirm(len(changes), out)
        if not answer:
            reconciler.finish(result)
            if answer is None:
                print(
                    "dbstate: error: refusing to change the engine without confirmation: there is no terminal to "
                    "ask on; review `dbstate plan`, then run `dbstate apply --yes`",
                    file=err,
                )
            else:
                print("Apply cancelled; nothing was changed.", file=out)
            return common.EXIT_ERROR, None

    def line(o: Outcome) -> None:
        if not json_out:
            out.write(scrub(view.outcome_line(o), result.secrets))
            out.flush()

    if changes and not json_out:
        out.write("\nApplying:\n")
    outcomes = reconciler.apply(result, on_outcome=line) if changes else ()
    reconciler.finish(result, outcomes)
    unmanaged = sorted({f"{f.kind}/{f.name}" for f in result.plan.findings if f.type.blocks})
    converged = all(o.status == "ok" for o in outcomes) and not result.loaded.errors and not unmanaged
    doc = scrub(dumps(view.to_json(result, outcomes, converged)), result.secrets) if json_out else None
    if not json_out:
        if changes:
            out.write(view.closing_line(outcomes))
        if unmanaged:
            out.write(
                f"Not converged: {', '.join(unmanaged)} not under dbstate's management or held back to protect "
                "data (see the findings).\n"
            )
    return (common.EXIT_OK if converged else common.EXIT_ERROR), doc
