"""`dbstate apply`: compute the plan, show it, ask on a terminal, and execute it, with every outcome reported."""

from __future__ import annotations

import argparse
import dataclasses
import getpass
import json
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, TextIO

from controller.commands import options as common
from controller.commands.plan import render
from controller.core.errors import DbstateError
from controller.core.options import PassOptions, Target

if TYPE_CHECKING:
    from collections.abc import Callable

    from controller.core.plan import Outcome
    from controller.wiring.engines import PassResult, Reconciler, Wired

DESCRIPTION = """\
Compute the plan (as `dbstate plan`), show it, ask for confirmation on a terminal, and execute it: networks and
volumes first, instances before the consumers that use them, independent changes in parallel. Transient engine
errors are retried within --retry-budget; a failed change blocks only what depends on it. Volumes are never removed.
A database is backed up before it is recreated (policy.backup.beforeChange, into --backup-dir): no backup, no
recreate. policy.upgrade: dump-restore (or pg-upgrade, PostgreSQL) moves a database to a new major into a new
volume, and rolls back to the old server when any step fails. Outside an instance's policy.window, what would
interrupt it waits (--ignore-window WHY runs it now, recorded). While it changes the engine, apply holds the engine
lease: if a `dbstate run` holds it, apply changes nothing and says so; a lease whose holder stopped renewing is
waited out (up to --lease-ttl).

apply FILE executes a plan saved by `dbstate plan --out FILE` without asking again (it was the review): exactly its
changes, computed again from the same declarations against the engine as it is now, and nothing else (a change a
later commit brought is left for the next plan, and said). When a resource the plan changes moved since (a container
recreated, stopped, reconnected; its declaration edited), nothing is applied: one line per resource says what moved,
and the exit code is 4. A file from another dbstate version or for another engine is refused.

exit codes: 0 converged; 1 a change failed, the desired state has errors, or a declared resource is not under
dbstate's management or is held back to protect its data (name-conflict, adoption-blocked, volume-in-use,
data-moved, major-upgrade, volume-lost, rollback, interrupted-cutover); 4 the planfile is stale (nothing applied);
every outcome is still reported."""


@dataclass(frozen=True)
class Options:
    target: Target
    passes: PassOptions
    output: str
    color: str
    yes: bool
    retry_budget: float
    lease_ttl: float
    planfile: Path | None = None


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "planfile",
        nargs="?",
        type=Path,
        metavar="FILE",
        help="a plan saved by `dbstate plan --out FILE`: exactly its changes, or nothing (exit 4) when the engine "
        "moved since",
    )
    common.add_desired(p)
    common.add_output(p)
    common.add_engine(p)
    p.add_argument("--yes", action="store_true", help="apply without asking (for automation)")
    p.add_argument(
        "--ignore-window",
        metavar="WHY",
        help="run the changes that interrupt a database now, outside its policy.window; WHY is recorded with the "
        "pass, with who ran it",
    )
    common.add_converge(p, retry_budget=30.0)
    common.add_probe(p, unhealthy_after=1)
    common.add_scope(p)
    common.add_lease(p)
    common.add_color(p)


def options(ns: argparse.Namespace) -> Options:
    ignore = None
    if ns.ignore_window is not None:
        if not ns.ignore_window.strip():
            raise DbstateError("--ignore-window needs a reason: --ignore-window 'the fix for CVE-...'")
        ignore = f"by {getpass.getuser()}: {ns.ignore_window.strip()}"
    passes = PassOptions(
        "apply",
        prune=ns.prune,
        parallel=common.parallel(ns),
        probe=common.probe(ns),
        scope=common.scope(ns),
        ignore_window=ignore,
    )
    return Options(
        common.target(ns), passes, ns.output, ns.color, ns.yes, ns.retry_budget, common.lease_ttl(ns), ns.planfile
    )


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
        if opts.planfile is not None and len(every) > 1:
            print("dbstate: error: a planfile holds one engine's plan: name it with --host NAME", file=err)
            return common.EXIT_ERROR
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
            out.write(views.host_heading(w.engine.name, w.runtime.shown))
        assert w.lease is not None
        try:
            with w.lease.holding(progress):
                code, doc = _plan_and_apply(opts, w.reconciler, out, err)
        except errors.EngineError as e:
            err.write(views.host_error(w.engine.name, e))
            code, doc = common.EXIT_ERROR, json.dumps({"error": str(e)})
        codes.append(code)
        if doc is not None:
            docs.append(views.host_part(w.engine.name, w.runtime.shown, json.loads(doc)))
        if opts.output != "json":
            out.write("\n")
    if opts.output == "json":
        out.write(views.several({"converged": all(c == common.EXIT_OK for c in codes)}, docs))
    return common.most_serious(codes)


def _saved(opts: Options, result: PassResult, err: TextIO) -> PassResult | list[str]:
    """`result` narrowed to the planfile's changes; or why not, each line also said on `err`."""
    from controller import __version__
    from controller.core import errors, planfile
    from controller.views.common import scrub
    from controller.wiring import local

    assert opts.planfile is not None
    try:
        saved = local.read_planfile(opts.planfile)
        if saved.get("options", {}) != {"prune": opts.passes.prune}:
            raise planfile.PlanfileError(
                "it was planned " + ("with" if not opts.passes.prune else "without") + " --prune: apply it the same way"
            )
        loaded = result.loaded
        verdict = planfile.check(saved, result.plan, loaded.state, result.observed, __version__, loaded.variables_from)
    except (errors.DbstateError, planfile.PlanfileError) as e:
        said = scrub(f"{opts.planfile}: {e}; nothing was applied", result.secrets)
        print(f"dbstate: error: {said}", file=err)
        return [said]
    if verdict.stale:
        lines = [scrub(line, result.secrets) for line in verdict.stale]
        for line in lines:
            print(line, file=err)
        print(f"Nothing was applied: {opts.planfile} no longer holds; plan again.", file=err)
        return lines
    if verdict.left:
        later = ", ".join(f"{c.action.value} {c.kind}/{c.name}" for c in verdict.left)
        print(scrub(f"Not in {opts.planfile}, left for the next plan: {later}", result.secrets), file=err)
    elif verdict.declarations_moved:
        print(f"The declarations changed since {opts.planfile} was made; only its changes are applied.", file=err)
    return dataclasses.replace(result, plan=dataclasses.replace(result.plan, changes=verdict.apply))


def _plan_and_apply(opts: Options, reconciler: Reconciler, out: TextIO, err: TextIO) -> tuple[int, str | None]:
    """The exit code, and the JSON document (--output json) for the caller to write."""
    from controller.views import apply as view
    from controller.views.common import dumps, scrub

    json_out = opts.output == "json"
    probed = opts.passes.probe is not None
    result = reconciler.plan()
    if opts.planfile is not None:
        saved = _saved(opts, result, err)
        if isinstance(saved, list):
            reconciler.finish(result)
            stale = {"converged": False, "applied": False, "stale": saved}
            return common.EXIT_STALE, dumps(stale) if json_out else None
        result = saved
    changes = result.plan.changes
    if not json_out:
        text = render(result, opts.output, opts.color, probed, str(opts.target.directory), out, err)
        out.write(scrub(text, result.secrets))
    if changes and not opts.yes and opts.planfile is None:
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
