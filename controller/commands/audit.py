"""`dbstate audit`: the seed's audit script in one read-only command."""

from __future__ import annotations

import argparse
import json
from dataclasses import dataclass
from typing import TextIO

from controller.commands import options as common
from controller.core.errors import EngineError
from controller.core.options import Target

DESCRIPTION = """\
The seed's audit script in one read-only command. Lists every database container on the engine, managed or not
(recognised by image and ports): its engine, the version the server itself reports, networks, volumes, health, and
the consumers that reference it (declared `uses`, and the host settings in the containers' own env). Flags the seed's
four orphan criteria (no service references it; in no desired state and no compose project; in no
service-to-database mapping; a version that does not meet what is declared or what its consumers require),
naming-convention violations, weak authentication, isolation breaches, and verifies every declared connection (a
shared network, the env's host is an alias there, the instance answers there).

Declared instances are probed with their declared auth; undeclared ones with the credentials their env was started
with (POSTGRES_*, MARIADB_ROOT_PASSWORD, REDIS_PASSWORD), never printed. Changes nothing.

exit codes: 0 done (and, with --strict, nothing wrong); 3 something is wrong (--strict); 1 an error (an unreachable
engine, or errors in the desired state: the rest is still audited)."""


@dataclass(frozen=True)
class Options:
    target: Target
    output: str
    color: str
    strict: bool
    probe_timeout: float


def add_arguments(p: argparse.ArgumentParser) -> None:
    common.add_desired(p)
    common.add_output(p)
    common.add_engine(p)
    p.add_argument("--strict", action="store_true", help="exit 3 when anything is wrong")
    common.add_probe_timeout(p)
    common.add_color(p)


def options(ns: argparse.Namespace) -> Options:
    return Options(common.target(ns), ns.output, ns.color, ns.strict, common.probe_timeout(ns))


def run(opts: Options, out: TextIO, err: TextIO) -> int:
    from controller.core.secrets import redact_credentials
    from controller.views import audit as view
    from controller.views import common as views
    from controller.wiring import engines

    refs = engines.declared(opts.target)
    if opts.target.host is not None:
        refs = [engines.pick(refs, opts.target.host)]
    codes, docs = [], []
    for engine in refs:
        if len(refs) > 1 and opts.output != "json":
            out.write(views.host_heading(engine.name, redact_credentials(str(engine.url))))
        try:
            result = engines.audit(opts.target, opts.probe_timeout, engine)
        except EngineError as e:  # one engine down: the others are audited all the same
            if len(refs) == 1:
                raise
            err.write(views.host_error(engine.name, e))
            docs.append(views.host_part(engine.name, None, {"error": str(e)}))
            codes.append(common.EXIT_ERROR)
            continue
        errs = result.loaded.errors
        rev = result.revision
        if opts.output == "json":
            doc = view.audit_json(result.report, result.observed.engine, rev.commit, rev.dirty, errs)
            docs.append(json.loads(views.scrub(views.dumps(views.host_part(engine.name, None, doc)), result.secrets)))
        else:
            for w in result.loaded.warnings:
                err.write(views.scrub(str(w), result.secrets) + "\n")
            colour = views.colour(opts.color, out)
            directory = str(opts.target.directory)
            text = view.audit_text(result.report, result.observed.engine, rev.short, directory, errs, colour)
            out.write(views.scrub(text, result.secrets))
        if errs:
            codes.append(common.EXIT_ERROR)
        elif opts.strict and result.report.wrong:
            codes.append(common.EXIT_FINDINGS)
    if opts.output == "json":
        one = len(refs) == 1 and "error" not in docs[0]
        out.write(views.dumps(docs[0]) if one else views.several({}, docs))
    return common.most_serious(codes)
