"""The `dbstate` command line: parse arguments, wire adapters, print. No logic of its own lives here."""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, TextIO

from controller import __version__
from controller.core import spec
from controller.core.errors import DbstateError

DESCRIPTION = """\
dbstate runs the databases of a self-hosted platform from git.

A directory of YAML declarations (DatabaseInstance, Network, Volume, Consumer) is the desired state; dbstate
compares it with the live Docker engine and shows (plan) or converges (apply, run) the difference.

commands:
  validate   check the desired state: every error with its file, line and field; nothing live is touched
  schema     print the JSON Schema of a desired-state document, for editors
  plan       the dry run: what would change on the engine, and what needs a human (findings)
  apply      converge the engine to the desired state (asks first; --yes for automation)
  run        the controller: watch git, the files and Docker, and repair drift on its own
  status     per resource: in sync, drifted, failing, or with findings; the last pass
  ack        acknowledge a finding that needs a human decision (volume-lost)

exit codes: 0 ok, 1 error, 2 changes pending (plan), 3 findings with --fail-on-findings (plan)
see `dbstate COMMAND --help` for each command
"""

EXIT_OK, EXIT_ERROR, EXIT_CHANGES, EXIT_FINDINGS = 0, 1, 2, 3


def _add_desired_state_args(p: argparse.ArgumentParser, output: bool = True) -> None:
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
    if output:
        p.add_argument("--output", choices=("text", "json"), default="text", help="output format (default: text)")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="dbstate", description=DESCRIPTION, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--version", action="version", version=f"dbstate {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    p = sub.add_parser(
        "validate",
        help="check the desired state and list what it declares",
        description="Load every *.yaml/*.yml below --dir and report every error as "
        "FILE:LINE:COLUMN: Kind/name: field: message. Exit 0 when valid, 1 otherwise. "
        "Secret values are never printed.",
    )
    _add_desired_state_args(p)
    p.add_argument("--strict", action="store_true", help="treat warnings (naming conventions, ...) as errors")
    p.set_defaults(func=cmd_validate)

    p = sub.add_parser(
        "schema",
        help="print the JSON Schema of a desired-state document",
        description="Print the JSON Schema (draft 2020-12) of one desired-state document. Save it "
        "and point editors at it with a first line "
        "`# yaml-language-server: $schema=PATH` in each YAML file.",
    )
    p.set_defaults(func=cmd_schema)

    p = sub.add_parser(
        "plan",
        help="the dry run: what would change on the engine, and the findings",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description="Compare the desired state with the live Docker engine and print the changes that would "
        "converge it, each with its reason, and the findings that need a human. Changes nothing: "
        "not one mutating API call.\n\n"
        "exit codes: 0 in sync; 2 changes pending; 1 error (an unreachable engine, or errors in the "
        "desired state);\n3 findings with --fail-on-findings. When several apply: 1, then 2, then 3.",
    )
    _add_desired_state_args(p)
    _add_engine_args(p)
    p.add_argument(
        "--prune",
        action="store_true",
        help="plan the removal of orphan containers (dbstate's labels, no longer declared, no "
        "deletion protection); never volumes; nothing while any file is invalid",
    )
    p.add_argument("--fail-on-findings", action="store_true", help="exit 3 when there are findings")
    _add_probe_args(p, unhealthy_after=1)
    p.add_argument(
        "--color",
        choices=("auto", "always", "never"),
        default="auto",
        help="colour the text output (default: auto, only on a terminal; NO_COLOR is honoured)",
    )
    p.set_defaults(func=cmd_plan)

    p = sub.add_parser(
        "apply",
        help="converge the engine: compute the plan, show it, and execute it",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description="Compute the plan (as `dbstate plan`), show it, ask for confirmation on a terminal, and execute "
        "it: networks and volumes first, instances before the consumers that use them, independent "
        "changes in parallel. Transient engine errors are retried within --retry-budget; a failed "
        "change blocks only what depends on it. Volumes are never removed.\n\n"
        "exit codes: 0 converged; 1 a change failed or the desired state has errors (every outcome is "
        "still reported).",
    )
    _add_desired_state_args(p)
    _add_engine_args(p)
    p.add_argument("--yes", action="store_true", help="apply without asking (for automation)")
    _add_converge_args(p, retry_budget=30.0)
    _add_probe_args(p, unhealthy_after=1)
    p.add_argument("--color", choices=("auto", "always", "never"), default="auto", help="as for plan")
    p.set_defaults(func=cmd_apply)

    p = sub.add_parser(
        "run",
        help="the controller: watch git, the files and Docker, and repair drift on its own",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description="Reconcile continuously: a pass on every desired-state edit (--source worktree) or new commit, "
        "on Docker events that can mean drift (a container died or was stopped, a network attachment changed, "
        "a volume vanished), on retries after backoff (1 s growing to 5 min per resource), and every --resync "
        "seconds. One controller per engine: a second one waits, not acting, until the first stops or its lease "
        "expires. SIGTERM finishes the change in flight, writes the state database and exits 0.",
    )
    _add_desired_state_args(p, output=False)  # run logs; --log-format chooses how
    _add_engine_args(p)
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
        help="/metrics, /healthz, /readyz (default: 127.0.0.1:9464; empty to disable)",
    )
    p.add_argument("--log-format", choices=("json", "text"), default="text", help="default: text")
    _add_converge_args(p, retry_budget=10.0)
    _add_probe_args(p, unhealthy_after=3, controller=True)
    p.add_argument(
        "--lease-ttl",
        type=float,
        default=30.0,
        metavar="SECONDS",
        help="how long the one-writer lease lasts without renewal (default: 30)",
    )
    p.set_defaults(func=cmd_run)

    p = sub.add_parser(
        "audit",
        help="every database container on the engine: versions, health, consumers, orphans, connections",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description="The seed's audit script in one read-only command. Lists every database container on the "
        "engine, managed or not (recognised by image and ports): its engine, the version the server itself "
        "reports, networks, volumes, health, and the consumers that reference it (declared `uses`, and the host "
        "settings in the containers' own env). Flags the seed's four orphan criteria (no service references it; in "
        "no desired state and no compose project; in no service-to-database mapping; a version that does not meet "
        "what is declared or what its consumers require), naming-convention violations, weak authentication, "
        "isolation breaches, and verifies every declared connection (a shared network, the env's host is an alias "
        "there, the instance answers there).\n\n"
        "Declared instances are probed with their declared auth; undeclared ones with the credentials their env "
        "was started with (POSTGRES_*, MARIADB_ROOT_PASSWORD, REDIS_PASSWORD), never printed. Changes nothing.\n\n"
        "exit codes: 0 done (and, with --strict, nothing wrong); 3 something is wrong (--strict); 1 an error (an "
        "unreachable engine, or errors in the desired state: the rest is still audited).",
    )
    _add_desired_state_args(p)
    _add_engine_args(p)
    p.add_argument("--strict", action="store_true", help="exit 3 when anything is wrong")
    _add_probe_timeout(p)
    p.add_argument("--color", choices=("auto", "always", "never"), default="auto", help="as for plan")
    p.set_defaults(func=cmd_audit)

    p = sub.add_parser(
        "status",
        help="per resource: in sync, drifted, failing, or with findings; the last pass",
        description="Read the state database: the last pass (its revision, when, its counts) and, per resource, "
        "in-sync, drifted, failing (last error, attempts, next retry), findings or invalid.",
    )
    _add_state_arg(p)
    p.add_argument("--output", choices=("text", "json"), default="text", help="output format (default: text)")
    p.set_defaults(func=cmd_status)

    p = sub.add_parser(
        "ack",
        help="acknowledge a finding that needs a human decision",
        description="`dbstate ack volume-lost NAME`: accept that a lost volume is gone; the next apply "
        "creates it empty and starts the instance that uses it. Recorded in the state "
        "database.",
    )
    p.add_argument("type", choices=("volume-lost",))
    p.add_argument("name")
    _add_state_arg(p)
    p.set_defaults(func=cmd_ack)
    return parser


def _add_converge_args(p: argparse.ArgumentParser, retry_budget: float) -> None:
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


def _add_probe_timeout(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--probe-timeout",
        type=float,
        default=2.0,
        metavar="SECONDS",
        help="how long one probe may take to connect and log in (default: 2)",
    )


def _add_probe_args(p: argparse.ArgumentParser, *, unhealthy_after: int, controller: bool = False) -> None:
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
    _add_probe_timeout(p)
    p.add_argument(
        "--unhealthy-after",
        type=int,
        default=unhealthy_after,
        metavar="N",
        help=f"an instance is unhealthy after N consecutive failed probes, counted in the state database "
        f"(default: {unhealthy_after})",
    )


def _probe_options(args: argparse.Namespace) -> Any:
    from controller.wiring import ProbeOptions

    if args.unhealthy_after < 1 or args.probe_timeout <= 0:
        raise DbstateError("--unhealthy-after must be at least 1 and --probe-timeout more than 0")
    enabled = args.probe_interval > 0 if hasattr(args, "probe_interval") else args.probe
    interval = getattr(args, "probe_interval", 0.0)
    return ProbeOptions(args.probe_timeout, args.unhealthy_after, interval) if enabled else None


def _add_engine_args(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--docker-host",
        default=None,
        metavar="URL",
        help="the Docker engine (default: $DOCKER_HOST, then unix:///var/run/docker.sock)",
    )
    _add_state_arg(p)


def _add_state_arg(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--state",
        type=Path,
        default=None,
        metavar="PATH",
        help="dbstate's local state database (default: $DBSTATE_STATE, then .dbstate/state.db)",
    )


def _colour(mode: str, stream: TextIO) -> bool:
    if mode == "always":
        return True
    if mode == "never" or os.environ.get("NO_COLOR"):
        return False
    return stream.isatty()


def _render_plan(args: argparse.Namespace, result: Any, out: TextIO, err: TextIO) -> str:
    from controller import report

    if args.output == "json":
        return report.dumps(
            report.to_json(
                result.plan,
                result.loaded.errors,
                result.observed.engine,
                result.revision.commit,
                result.revision.dirty,
                result.probes if getattr(args, "probe", False) else None,
            )
        )
    for w in result.loaded.warnings:
        print(_scrub(str(w), result.secrets), file=err)
    return report.to_text(
        result.plan,
        result.loaded.errors,
        result.observed.engine,
        result.revision.short,
        str(args.dir),
        _colour(args.color, out),
        result.probes if getattr(args, "probe", False) else None,
    )


def _scrub(text: str, known: frozenset[str]) -> str:
    from controller.core import secrets

    return secrets.scrub(text, set(known))


def cmd_plan(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    from controller.wiring import Session

    with Session(args.docker_host, args.state) as session:
        result = session.plan(args.dir, args.env_file, prune=args.prune, command="plan", probe=_probe_options(args))
        session.finish(result)
    out.write(_scrub(_render_plan(args, result, out, err), result.secrets))
    if result.loaded.errors:
        return EXIT_ERROR
    if result.plan.changes:
        return EXIT_CHANGES
    if args.fail_on_findings and result.plan.findings:
        return EXIT_FINDINGS
    return EXIT_OK


def _confirm(count: int, out: TextIO, err: TextIO) -> bool | None:
    """True/False from a person at a terminal; None when there is no terminal to ask on."""
    if not sys.stdin.isatty():
        return None
    out.write(f"\nApply these {count} change{'s' * (count != 1)}? Only 'yes' is accepted: ")
    out.flush()
    try:
        return sys.stdin.readline().strip() == "yes"
    except (EOFError, KeyboardInterrupt):
        return False


def cmd_apply(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    from controller import report
    from controller.wiring import Session

    json_out = args.output == "json"

    def progress(message: str) -> None:
        print(f"  .. {message}", file=err)

    with Session(
        args.docker_host, args.state, require_store=True, retry_budget=args.retry_budget, progress=progress
    ) as session:
        result = session.plan(args.dir, args.env_file, prune=args.prune, command="apply", probe=_probe_options(args))
        changes = result.plan.changes
        if not json_out:
            out.write(_scrub(_render_plan(args, result, out, err), result.secrets))
        if changes and not args.yes:
            answer = _confirm(len(changes), out, err)
            if answer is None:
                session.finish(result)
                print(
                    "dbstate: error: refusing to change the engine without confirmation: there is no terminal to "
                    "ask on; review `dbstate plan`, then run `dbstate apply --yes`",
                    file=err,
                )
                return EXIT_ERROR
            if not answer:
                session.finish(result)
                print("Apply cancelled; nothing was changed.", file=out)
                return EXIT_ERROR

        def line(o: Any) -> None:
            if json_out:
                return
            mark = {"ok": "ok", "failed": "FAILED", "skipped": "skipped"}[o.status]
            detail = "" if o.status == "ok" else f": {o.message}"
            out.write(
                _scrub(
                    f"  {mark:<7} {o.change.action.value} {o.change.kind}/{o.change.name} "
                    f"({o.change.target}) in {o.seconds:.1f}s{detail}\n",
                    result.secrets,
                )
            )
            out.flush()

        if changes and not json_out:
            out.write("\nApplying:\n")
        outcomes = session.apply(result, parallel=args.parallel, on_outcome=line) if changes else ()
        session.finish(result, outcomes)
    failed = [o for o in outcomes if o.status != "ok"]
    converged = not failed and not result.loaded.errors
    if json_out:
        doc = {
            "plan": report.to_json(
                result.plan, result.loaded.errors, result.observed.engine, result.revision.commit, result.revision.dirty
            ),
            "outcomes": [o.to_json() for o in outcomes],
            "converged": converged,
        }
        out.write(_scrub(report.dumps(doc), result.secrets))
    elif changes:
        ok = len(outcomes) - len(failed)
        skipped = sum(1 for o in failed if o.status == "skipped")
        out.write(f"\nApply: {ok} done, {len(failed) - skipped} failed, {skipped} skipped.\n")
    return EXIT_OK if converged else EXIT_ERROR


def cmd_run(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    from controller.run import run

    return run(args, _probe_options(args))


def cmd_audit(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    from controller import report
    from controller.wiring import Session

    if args.probe_timeout <= 0:
        raise DbstateError("--probe-timeout must be more than 0")
    with Session(args.docker_host, args.state) as session:
        result = session.audit(args.dir, args.env_file, timeout=args.probe_timeout)
    errs = result.loaded.errors
    if args.output == "json":
        text = report.dumps(
            report.audit_json(
                result.report, result.observed.engine, result.revision.commit, result.revision.dirty, errs
            )
        )
    else:
        for w in result.loaded.warnings:
            print(_scrub(str(w), result.secrets), file=err)
        text = report.audit_text(
            result.report, result.observed.engine, result.revision.short, str(args.dir), errs, _colour(args.color, out)
        )
    out.write(_scrub(text, result.secrets))
    if errs:
        return EXIT_ERROR
    if args.strict and result.report.wrong:
        return EXIT_FINDINGS
    return EXIT_OK


def cmd_status(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    import time

    from controller.adapters import store

    path = args.state or store.default_path()
    if not path.exists():
        raise DbstateError(f"no state database at {path}: run `dbstate plan`, `apply` or `run` first (or --state)")
    with store.Store(path, readonly=True) as db:
        passes = db.passes(limit=1)
        resources = db.resources()
        probed = db.health()
    last = passes[0] if passes else None
    if args.output == "json":
        json.dump({"last_pass": last, "resources": resources, "health": probed}, out, indent=2)
        out.write("\n")
        return EXIT_OK
    if last is None:
        print("no pass recorded yet", file=out)
        return EXIT_OK
    when = time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(last["started"]))
    rev = (last["revision"] or "(not a git checkout)")[:12] + (" (dirty)" if last["dirty"] else "")
    print(
        f"last pass: {last['command']} at {when}Z, revision {rev}: {last['changes'] or 0} changes, "
        f"{last['failed'] or 0} failed, {last['findings'] or 0} findings, {last['errors'] or 0} errors",
        file=out,
    )
    width = max((len(r["key"]) for r in resources), default=10)
    for r in resources:
        line = f"  {r['status']:<9} {r['key']:<{width}}"
        if r["status"] == "failing":
            retry = time.strftime("%H:%M:%S", time.gmtime(r["next_retry"])) + "Z" if r["next_retry"] else "-"
            line += f"  attempts {r['attempts']}, next retry {retry}: {r['message']}"
        elif r["message"]:
            line += f"  {r['message']}"
        print(line, file=out)
    if probed:
        print("health (last probe of each instance):", file=out)
        width = max(len(h["instance"]) for h in probed)
        for h in probed:
            at = time.strftime("%H:%M:%S", time.gmtime(h["probed"])) + "Z"
            if h["reachable"]:
                rtt = f"{h['rtt_ms']:.0f} ms" if h["rtt_ms"] is not None else "-"
                print(f"  up        {h['instance']:<{width}}  {h['version'] or '?'}  {rtt}  at {at}", file=out)
            else:
                since = (
                    "never up"
                    if h["last_ok"] is None
                    else "up last at " + time.strftime("%H:%M:%S", time.gmtime(h["last_ok"])) + "Z"
                )
                print(
                    f"  down      {h['instance']:<{width}}  {h['failures']} failed in a row ({since}): {h['error']}",
                    file=out,
                )
    return EXIT_OK


def cmd_ack(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    from controller.adapters import store

    path = args.state or store.default_path()
    with store.Store(path) as db:
        db.ack(args.type, args.name)
    print(
        f"acknowledged {args.type} {args.name}: the next apply creates an empty volume {args.name} and starts "
        "what uses it",
        file=out,
    )
    return EXIT_OK


def cmd_validate(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    from controller.adapters import desired

    loaded = desired.load(args.dir, args.env_file)
    failed = bool(loaded.errors) or (args.strict and bool(loaded.warnings))
    s = loaded.state
    resources = {
        "DatabaseInstance": [r.metadata.name for r in s.instances],
        "Network": [r.metadata.name for r in s.networks],
        "Volume": [r.metadata.name for r in s.volumes],
        "Consumer": [r.metadata.name for r in s.consumers],
    }
    if args.output == "json":
        doc = {
            "valid": not failed,
            "directory": str(args.dir),
            "env_file": loaded.variables_from,
            "files": list(loaded.files),
            "resources": resources,
            "held_back": sorted(f"{k}/{n}" for k, n in s.held_back),
            "errors": [d.to_json() for d in loaded.errors],
            "warnings": [d.to_json() for d in loaded.warnings],
        }
        json.dump(doc, out, indent=2)
        out.write("\n")
        return EXIT_ERROR if failed else EXIT_OK
    for d in loaded.diagnostics:
        print(d, file=err)
    n_err, n_warn = len(loaded.errors), len(loaded.warnings)
    if loaded.errors:
        print(
            f"{args.dir}: {n_err} error{'s' * (n_err != 1)}, {n_warn} warning{'s' * (n_warn != 1)} "
            f"in {len(loaded.files)} files; held back: {len(s.held_back)} resources",
            file=err,
        )
        return EXIT_ERROR
    total = sum(len(v) for v in resources.values())
    print(
        f"{args.dir}: valid, {total} resources in {len(loaded.files)} files"
        + (f", {n_warn} warning{'s' * (n_warn != 1)}" if n_warn else ""),
        file=out,
    )
    for kind, names in resources.items():
        print(f"  {kind} ({len(names)}): {', '.join(names) if names else '-'}", file=out)
    return EXIT_ERROR if failed else EXIT_OK


def document_schema() -> dict[str, Any]:
    from pydantic import TypeAdapter

    schema = TypeAdapter(spec.Document).json_schema(by_alias=True)
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": "https://dbstate.io/schemas/v1/desired-state.schema.json",
        "title": "dbstate desired-state document (dbstate.io/v1)",
        **schema,
    }


def cmd_schema(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    json.dump(document_schema(), out, indent=2, sort_keys=False)
    out.write("\n")
    return EXIT_OK


def main(argv: Sequence[str] | None = None, out: TextIO | None = None, err: TextIO | None = None) -> int:
    out = out or sys.stdout
    err = err or sys.stderr
    parser = build_parser()
    args = parser.parse_args(argv)
    func: Callable[[argparse.Namespace, TextIO, TextIO], int] | None = getattr(args, "func", None)
    if func is None:
        parser.print_help(err)
        return EXIT_ERROR
    try:
        return func(args, out, err)
    except DbstateError as e:
        print(f"dbstate: error: {e}", file=err)
        return EXIT_ERROR
    except KeyboardInterrupt:
        print("dbstate: interrupted", file=err)
        return 130
    except BrokenPipeError:
        return EXIT_OK
    except Exception as e:  # a bug: say so in one line, never dump locals that may hold secrets
        if os.environ.get("DBSTATE_DEBUG"):
            raise
        print(f"dbstate: internal error: {type(e).__name__} (set DBSTATE_DEBUG=1 for a traceback)", file=err)
        return EXIT_ERROR


if __name__ == "__main__":
    sys.exit(main())
