"""`dbstate plan`: the dry run. Diffs the desired state against the live engine and prints the changes and the
findings; not one mutating API call."""

from __future__ import annotations

import argparse
import json
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, TextIO

from controller.commands import options as common
from controller.core.options import PassOptions, Target

if TYPE_CHECKING:
    from controller.wiring.engines import PassResult, Wired

DESCRIPTION = """\
Compare the desired state with the live Docker engine and print the changes that would converge it, each with its
reason, and the findings that need a human. Changes nothing: not one mutating API call.

--out FILE also saves the plan (one engine): `dbstate apply FILE` then executes exactly these changes, or refuses
with exit code 4 and one line per resource that moved since (a container recreated, stopped or reconnected, a
declaration edited). The file holds no secret: the changes as printed here, digests and the engine's ids.

exit codes: 0 in sync; 2 changes pending; 1 error (an unreachable engine, or errors in the desired state);
3 findings with --fail-on-findings. When several apply: 1, then 2, then 3."""


@dataclass(frozen=True)
class Options:
    target: Target
    passes: PassOptions
    output: str
    color: str
    fail_on_findings: bool
    out: Path | None = None


def add_arguments(p: argparse.ArgumentParser) -> None:
    common.add_desired(p)
    common.add_output(p, markdown=True)
    common.add_engine(p)
    p.add_argument(
        "--prune",
        action="store_true",
        help="plan the removal of orphan containers (dbstate's labels, no longer declared, no deletion protection); "
        "never volumes; nothing while any file is invalid",
    )
    p.add_argument("--fail-on-findings", action="store_true", help="exit 3 when there are findings")
    p.add_argument(
        "--out",
        type=Path,
        metavar="FILE",
        help="also save the plan to FILE for `dbstate apply FILE` (one engine; not while the desired state has errors)",
    )
    common.add_probe(p, unhealthy_after=1)
    common.add_scope(p)
    common.add_color(p)


def options(ns: argparse.Namespace) -> Options:
    passes = PassOptions("plan", prune=ns.prune, probe=common.probe(ns), scope=common.scope(ns))
    return Options(common.target(ns), passes, ns.output, ns.color, ns.fail_on_findings, ns.out)


def render(result: PassResult, output: str, color: str, probed: bool, directory: str, out: TextIO, err: TextIO) -> str:
    """The plan as the user asked for it (warnings to stderr in text mode); shared with apply."""
    from controller.views import common as views
    from controller.views import plan as view

    probes = result.probes if probed else None
    hurts = view.disruptions(result.plan, result.loaded.state, result.durations)
    if output == "json":
        loaded, rev = result.loaded, result.revision
        return views.dumps(
            view.to_json(result.plan, loaded.errors, result.observed.engine, rev.commit, rev.dirty, probes, hurts)
        )
    for w in result.loaded.warnings:
        err.write(views.scrub(str(w), result.secrets) + "\n")
    if output == "markdown":
        short = result.revision.short
        return view.to_markdown(result.plan, result.loaded.errors, result.observed.engine, short, directory, hurts)
    colour = views.colour(color, out)
    engine, short = result.observed.engine, result.revision.short
    return view.to_text(result.plan, result.loaded.errors, engine, short, directory, colour, probes, hurts)


def run(opts: Options, out: TextIO, err: TextIO) -> int:
    from controller.wiring import engines

    with engines.reconcilers(opts.target, opts.passes) as every:
        if len(every) > 1:
            if opts.out is not None:
                print("dbstate: error: --out saves one engine's plan: name it with --host NAME", file=err)
                return common.EXIT_ERROR
            return _several(opts, every, out, err)
        wired = every[0]
        result = wired.reconciler.plan()
        wired.reconciler.finish(result)
    code = _one(opts, result, out, err)
    if opts.out is not None:
        return _save(opts, opts.out, result, err) or code
    return code


def _save(opts: Options, path: Path, result: PassResult, err: TextIO) -> int:
    """The plan saved for `apply FILE`; an error code when it is not."""
    from controller import __version__
    from controller.core import errors, planfile
    from controller.views.common import dumps, scrub
    from controller.wiring import local

    if result.loaded.errors:
        print(f"dbstate: error: the plan was not saved to {path}: the desired state has errors", file=err)
        return common.EXIT_ERROR
    rev = result.revision
    loaded = result.loaded
    env = loaded.variables_from
    doc = planfile.build(result.plan, loaded.state, result.observed, rev.commit, rev.dirty, __version__, env)
    doc["options"] = {"prune": opts.passes.prune}
    try:
        local.write_planfile(path, scrub(dumps(doc), result.secrets))
    except errors.DbstateError as e:
        print(f"dbstate: error: {e}", file=err)
        return common.EXIT_ERROR
    print(f"Saved to {path}: `dbstate apply {path}` executes exactly these changes.", file=err)
    return 0


def _one(opts: Options, result: PassResult, out: TextIO, err: TextIO) -> int:
    from controller.views.common import scrub

    probed = opts.passes.probe is not None
    out.write(
        scrub(render(result, opts.output, opts.color, probed, str(opts.target.directory), out, err), result.secrets)
    )
    return _exit(opts, result)


def _several(opts: Options, every: list[Wired], out: TextIO, err: TextIO) -> int:
    """Each engine's plan, computed side by side (a slow engine does not hold up the others' reading), shown one
    engine after the other; an engine that cannot be reached is an error of its own and the others are still shown."""
    from concurrent.futures import ThreadPoolExecutor

    from controller.core import errors
    from controller.views import common as views

    def one(w: Wired) -> PassResult | str:
        try:
            result = w.reconciler.plan()
        except errors.EngineError as e:
            return str(e)
        w.reconciler.finish(result)
        return result

    with ThreadPoolExecutor(max_workers=len(every)) as pool:
        results = list(pool.map(one, every))
    secrets = frozenset().union(*(r.secrets for r in results if not isinstance(r, str)))
    probed = opts.passes.probe is not None
    codes = [_exit(opts, r) if not isinstance(r, str) else common.EXIT_ERROR for r in results]
    directory = str(opts.target.directory)
    if opts.output == "json":
        hosts = [
            views.host_part(
                w.engine.name,
                w.runtime.shown,
                {"error": r}
                if isinstance(r, str)
                else {"error": None, **json.loads(render(r, "json", "never", probed, directory, out, err))},
            )
            for w, r in zip(every, results, strict=True)
        ]
        done = [r for r in results if not isinstance(r, str)]
        summary = {
            "revision": done[0].revision.commit if done else None,
            "dirty": done[0].revision.dirty if done else None,
            "in_sync": all(c == common.EXIT_OK for c in codes),
        }
        out.write(views.scrub(views.several(summary, hosts), secrets))
    else:
        for w, r in zip(every, results, strict=True):
            out.write(views.host_heading(w.engine.name, w.runtime.shown))
            if isinstance(r, str):
                out.write(views.scrub(f"error: {r}\n\n", secrets))
                continue
            out.write(views.scrub(render(r, opts.output, opts.color, probed, directory, out, err), secrets) + "\n")
    return common.most_serious(codes)


def _exit(opts: Options, result: PassResult) -> int:
    if result.loaded.errors:
        return common.EXIT_ERROR
    if result.plan.changes:
        return common.EXIT_CHANGES
    if opts.fail_on_findings and result.plan.findings:
        return common.EXIT_FINDINGS
    return common.EXIT_OK
