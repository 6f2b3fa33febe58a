"""`dbstate import`: write the desired state of a host as it runs (compose-made or hand-made), secrets to a separate
env file, and take over its databases in place: the first plan has nothing to change."""

from __future__ import annotations

import argparse
import dataclasses
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

from controller.commands import options as common
from controller.core.errors import DbstateError

if TYPE_CHECKING:
    from controller.core import live
    from controller.core.adoption import Adoption
    from controller.core.importer import Found, Imported

DESCRIPTION = """\
Read every container on the engine and write desired-state YAML that describes it as it is: database containers
become DatabaseInstances (policy.adopt: in-place), containers whose env names a database become Consumers (image:
null: compose or a human keeps running them), and the networks and named volumes they use. One file per compose
project. Every secret-looking value becomes a ${VAR} reference, never a value in the YAML or on the terminal.

Variable names: the one the compose file gives (`POSTGRES_PASSWORD: ${PG_PASS}` keeps PG_PASS), else the name an
env file read already holds the value under, else a new one. A value is written once, under one name, and only when
no env file read holds it: --env-file FILE is read and never written (an env file another tool owns, such as the
Infisical Agent's); the values it lacks go to --env-out (mode 0600). With nothing to add, no env file is touched.

The databases written are recorded as adopted (state database and engine), so a plan of the result changes nothing:
dbstate takes them over without recreating them. Review the files, commit them, then `dbstate plan` and `dbstate run`.

exit codes: 0 written; 1 nothing written (an error, or existing files without --force)."""


@dataclass(frozen=True)
class Options:
    out: Path
    compose: tuple[Path, ...]
    env_out: Path
    env_file: Path | None
    docker_host: str | None
    state: Path | None
    force: bool


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--from-engine",
        action="store_true",
        help="read the running engine (always done: what runs is the truth, and what is adopted)",
    )
    p.add_argument(
        "--compose",
        action="append",
        type=Path,
        default=[],
        metavar="FILE",
        help="also read this compose file (repeatable; its .env beside it, as compose does): a service that no "
        "container runs is declared too (not adopted: dbstate creates it once committed)",
    )
    p.add_argument(
        "--out",
        type=Path,
        default=Path("desired-state"),
        metavar="DIR",
        help="where the YAML goes (default: ./desired-state)",
    )
    p.add_argument(
        "--env-out",
        type=Path,
        default=Path(".workspace/.env"),
        metavar="FILE",
        help="where the secret values no env file holds yet go, mode 0600 (default: .workspace/.env, where plan "
        "and run look); keep it out of git. New variables are added to an existing file (it is read first, and not "
        "rewritten when nothing is new); one that holds another value is an error",
    )
    p.add_argument(
        "--env-file",
        type=Path,
        default=None,
        metavar="FILE",
        help="an env file to take variable names and values from, never written (e.g. one another tool owns); "
        "plan and run then read it",
    )
    p.add_argument("--force", action="store_true", help="overwrite YAML files that exist in --out")
    common.add_engine(p)


def options(ns: argparse.Namespace) -> Options:
    if ns.env_file is not None and not ns.env_file.is_file():
        raise DbstateError(f"--env-file {ns.env_file}: no such file")
    return Options(ns.out, tuple(ns.compose), ns.env_out, ns.env_file, ns.docker_host, ns.state, ns.force)


def run(opts: Options, out: TextIO, err: TextIO) -> int:
    from controller.core import importer
    from controller.views import importing as view
    from controller.wiring import engines

    t0 = time.monotonic()
    target = _target(opts)
    print("  .. reading the engine", file=err)
    found, observed, host, swarm = engines.inventory(target)
    if swarm:
        print(
            f"  .. {host} manages a swarm: its services are read too, and declared on a Host with mode: swarm", file=err
        )
    if opts.compose:
        print(f"  .. reading {', '.join(str(f) for f in opts.compose)}", file=err)
        found = _with_compose(opts.compose, found, observed)
    imported = importer.build(found, observed, _known(opts), swarm=host if swarm else None)
    if not any(d.body["kind"] == "DatabaseInstance" for d in imported.documents):
        print(f"dbstate: no database container on {host} (nor in a compose file): nothing to import", file=err)
        return common.EXIT_ERROR
    written = _write(opts, imported, host)
    _check_logins(opts, imported, observed, host, err)
    adoptions = _matching(opts, imported, found)
    engines.record_adoptions(target, adoptions)
    env_file = opts.env_file or opts.env_out
    out.write(
        view.summary(
            imported, opts.out, written, env_file, opts.env_out, opts.env_file, len(adoptions), time.monotonic() - t0
        )
    )
    return common.EXIT_OK


def _write(opts: Options, imported: Imported, host: str) -> int:
    """The YAML files (refusing to overwrite without --force) and the env file; how many files."""
    from controller.core.importer import Document
    from controller.wiring.local import render_yaml as render

    files: dict[str, list[Document]] = {}
    for d in imported.documents:
        files.setdefault(d.file, []).append(d)
    existing = sorted(f for f in files if (opts.out / f).exists())
    if existing and not opts.force:
        raise DbstateError(f"{', '.join(str(opts.out / f) for f in existing)} exist: nothing written (--force)")
    env = _merged_env(opts.env_out, imported.env) if imported.env else None
    opts.out.mkdir(parents=True, exist_ok=True)
    header = f"written by `dbstate import` from {host}: review it, then commit"
    for name, docs in sorted(files.items()):
        (opts.out / name).write_text(render(docs, header))
    if env is not None:  # nothing new: no env file is touched
        _write_private(opts.env_out, env)
    return len(files)


def _load(opts: Options, imported: Imported) -> Any:
    """The written desired state, loaded back as plan will load it (a failure is a bug of import)."""
    from controller.wiring import local

    if opts.env_file is not None:  # its values, then the new ones (written to --env-out)
        loaded = local.load_directory(opts.out, opts.env_file, {**os.environ, **imported.env})
    else:
        loaded = local.load_directory(opts.out, opts.env_out)
    if loaded.errors:
        raise DbstateError(
            "the imported desired state does not validate (a bug in import): nothing adopted: "
            + "; ".join(str(e) for e in loaded.errors[:3])
        )
    return loaded


def _check_logins(opts: Options, imported: Imported, observed: live.LiveState, host: str, err: TextIO) -> None:
    """One read-only login per running database with the auth import guessed, before any adoption is recorded. A
    login whose guessed database does not exist is tried once on the engine's fallback (PostgreSQL: `postgres`, as
    Supabase's images need), and written so when that works; one that still fails is said in the summary, with the
    file to fix."""
    from controller.core import databases
    from controller.wiring import engines

    print("  .. checking each guessed login with one read-only probe", file=err)
    target = _target(opts)
    running = [i for i in _load(opts, imported).state.instances if f"{i.kind}/{i.metadata.name}" in imported.adopt]
    results = engines.probe_logins(target, running, observed)
    fixed: dict[str, str] = {}
    for inst in running:
        name, r = inst.metadata.name, results.get(inst.metadata.name)
        if r is None or r.reachable:
            continue
        auth = inst.spec.auth
        other = databases.of(inst.spec.engine).fallback_database(auth)
        if other is not None and "does not exist" in (r.error or ""):
            retry = inst.model_copy(
                update={"spec": inst.spec.model_copy(update={"auth": auth.model_copy(update={"database": other})})}
            )
            again = engines.probe_logins(target, [retry], observed).get(name)
            if again is not None and again.reachable:
                fixed[name] = other
                continue
        where = next(d.file for d in imported.documents if d.body["metadata"]["name"] == name)
        imported.notes.append(
            f"{name}: the login import guessed failed its probe ({r.error}): fix spec.auth in {opts.out / where} "
            "before plan (plan probes with it)"
        )
    if fixed:
        for d in imported.documents:
            name = d.body["metadata"]["name"]
            if d.body["kind"] == "DatabaseInstance" and name in fixed:
                d.body["spec"]["auth"]["database"] = fixed[name]
                imported.notes.append(
                    f"{name}: auth.database is {fixed[name]} (the database its user names does not exist; a probe on "
                    f"{fixed[name]} logged in)"
                )
        _write(dataclasses.replace(opts, force=True), dataclasses.replace(imported, env={}), host)


def _target(opts: Options) -> Any:
    from controller.core.options import Target

    return Target(opts.out, opts.env_file or opts.env_out, opts.docker_host, opts.state)


def _known(opts: Options) -> dict[str, str]:
    """The variables import may reference as they are: --env-file's, else those --env-out holds already."""
    from controller.wiring.local import read_env as read

    path = opts.env_file or opts.env_out
    if not path.is_file():
        return {}
    have, problems = read(path)
    if problems:
        raise DbstateError(f"{problems[0]}: nothing written")
    return have


def _matching(opts: Options, imported: Imported, found: list[Found]) -> list[Adoption]:
    """The written desired state, loaded back; the instances whose containers match it as written (the rest are an
    adoption-blocked finding in the plan, not adopted)."""
    from controller.core import spec
    from controller.core.adoption import Adoption, differences

    loaded = _load(opts, imported)
    by_key = {f"{i.kind}/{i.metadata.name}": i for i in loaded.state.instances}
    containers = {f.container.id: f.container for f in found}
    return [
        Adoption(k, cid, spec.spec_hash(by_key[k]))
        for k, cid in sorted(imported.adopt.items())
        if not differences(by_key[k], containers[cid])
    ]


def _with_compose(files: tuple[Path, ...], found: list[Found], observed: live.LiveState) -> list[Found]:
    """What runs is the truth; the compose files add the variable names of their services' env, and the services
    that no container runs."""
    import dataclasses

    from controller.core.adoption import COMPOSE_PROJECT, COMPOSE_SERVICE
    from controller.wiring import local

    def key(f: Found) -> tuple[str | None, str | None]:
        return f.container.labels.get(COMPOSE_PROJECT), f.container.labels.get(COMPOSE_SERVICE)

    declared = local.read_compose(files)
    names = {key(f): f.env_vars for f in declared}
    running = [dataclasses.replace(f, env_vars=names.get(key(f), {})) for f in found]
    seen = {key(f) for f in found}
    return running + [f for f in declared if key(f) not in seen and observed.container(f.container.name) is None]


def _merged_env(path: Path, new: dict[str, str]) -> dict[str, str]:
    """The env file's variables with the new ones added; a variable that holds another value is an error."""
    from controller.wiring.local import read_env as read

    have: dict[str, str] = {}
    if path.exists():
        have, problems = read(path)
        if problems:
            raise DbstateError(f"{problems[0]}: nothing written (fix it, or use --env-out)")
    clash = sorted(k for k, v in new.items() if k in have and have[k] != v)
    if clash:
        raise DbstateError(
            f"{path} already sets {', '.join(clash)} to another value: nothing written (move the file away, or "
            "use --env-out)"
        )
    return {**have, **new}


def _write_private(path: Path, env: dict[str, str]) -> None:
    from controller.wiring.local import env_line

    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    os.fchmod(fd, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write("# secrets written by `dbstate import`: keep this file out of git\n")
        for k, v in sorted(env.items()):
            f.write(env_line(k, v))
