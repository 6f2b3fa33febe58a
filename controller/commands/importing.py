"""`dbstate import`: write the desired state of a host as it runs (compose-made or hand-made), secrets to a separate
env file, and take over its databases in place: the first plan has nothing to change."""

from __future__ import annotations

import argparse
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, TextIO

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
project. Every secret-looking value becomes a ${VAR} reference; the values go to --env-out (mode 0600), never to the
YAML or to the terminal.

The databases written are recorded as adopted (state database and engine), so a plan of the result changes nothing:
dbstate takes them over without recreating them. Review the files, commit them, then `dbstate plan` and `dbstate run`.

exit codes: 0 written; 1 nothing written (an error, or existing files without --force)."""


@dataclass(frozen=True)
class Options:
    out: Path
    compose: tuple[Path, ...]
    env_out: Path
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
        help="where the secret values go, mode 0600 (default: .workspace/.env, where plan and run look); keep it "
        "out of git. New variables are added to an existing file; one that holds another value is an error",
    )
    p.add_argument("--force", action="store_true", help="overwrite YAML files that exist in --out")
    common.add_engine(p)


def options(ns: argparse.Namespace) -> Options:
    return Options(ns.out, tuple(ns.compose), ns.env_out, ns.docker_host, ns.state, ns.force)


def run(opts: Options, out: TextIO, err: TextIO) -> int:
    from controller import wiring
    from controller.core import importer
    from controller.engine.options import Target

    t0 = time.monotonic()
    target = Target(opts.out, opts.env_out, opts.docker_host, opts.state)
    print("  .. reading the engine", file=err)
    found, observed, host = wiring.inventory(target)
    if opts.compose:
        print(f"  .. reading {', '.join(str(f) for f in opts.compose)}", file=err)
        found += _not_running(opts.compose, found, observed)
    imported = importer.build(found, observed)
    if not any(d.body["kind"] == "DatabaseInstance" for d in imported.documents):
        print(f"dbstate: no database container on {host} (nor in a compose file): nothing to import", file=err)
        return common.EXIT_ERROR
    written = _write(opts, imported, host)
    adoptions = _matching(opts, imported, found)
    wiring.record_adoptions(target, adoptions)
    _summary(out, opts, written, imported, len(adoptions), time.monotonic() - t0)
    return common.EXIT_OK


def _write(opts: Options, imported: Imported, host: str) -> int:
    """The YAML files (refusing to overwrite without --force) and the env file; how many files."""
    from controller.adapters.yamlwrite import render
    from controller.core.importer import Document

    files: dict[str, list[Document]] = {}
    for d in imported.documents:
        files.setdefault(d.file, []).append(d)
    existing = sorted(f for f in files if (opts.out / f).exists())
    if existing and not opts.force:
        raise DbstateError(f"{', '.join(str(opts.out / f) for f in existing)} exist: nothing written (--force)")
    env = _merged_env(opts.env_out, imported.env)
    opts.out.mkdir(parents=True, exist_ok=True)
    header = f"written by `dbstate import` from {host}: review it, then commit"
    for name, docs in sorted(files.items()):
        (opts.out / name).write_text(render(docs, header))
    _write_private(opts.env_out, env)
    return len(files)


def _matching(opts: Options, imported: Imported, found: list[Found]) -> list[Adoption]:
    """The written desired state, loaded back; the instances whose containers match it as written (the rest are an
    adoption-blocked finding in the plan, not adopted)."""
    from controller.adapters import desired
    from controller.core import spec
    from controller.core.adoption import Adoption, differences

    loaded = desired.load(opts.out, opts.env_out)
    if loaded.errors:
        raise DbstateError(
            "the imported desired state does not validate (a bug in import): nothing adopted: "
            + "; ".join(str(e) for e in loaded.errors[:3])
        )
    by_key = {f"{i.kind}/{i.metadata.name}": i for i in loaded.state.instances}
    containers = {f.container.id: f.container for f in found}
    return [
        Adoption(k, cid, spec.spec_hash(by_key[k]))
        for k, cid in sorted(imported.adopt.items())
        if not differences(by_key[k], containers[cid])
    ]


def _not_running(files: tuple[Path, ...], found: list[Found], observed: live.LiveState) -> list[Found]:
    """The services of the compose files that no container runs: what runs is the truth, the files add the rest."""
    from controller.adapters import compose
    from controller.core.adoption import COMPOSE_PROJECT, COMPOSE_SERVICE

    def key(f: Found) -> tuple[str | None, str | None]:
        return f.container.labels.get(COMPOSE_PROJECT), f.container.labels.get(COMPOSE_SERVICE)

    running = {key(f) for f in found}
    return [f for f in compose.read(files) if key(f) not in running and observed.container(f.container.name) is None]


def _merged_env(path: Path, new: dict[str, str]) -> dict[str, str]:
    """The env file's variables with the new ones added; a variable that holds another value is an error."""
    from controller.adapters.envfile import read

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
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    os.fchmod(fd, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write("# secrets written by `dbstate import`: keep this file out of git\n")
        for k, v in sorted(env.items()):
            f.write(f"{k}='{v}'\n" if "'" not in v else f'{k}="{_double_quoted(v)}"\n')


def _double_quoted(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("$", "\\$")


def _summary(out: TextIO, opts: Options, files: int, imported: Imported, adopted: int, seconds: float) -> None:
    kinds: dict[str, int] = {}
    for d in imported.documents:
        kinds[d.body["kind"]] = kinds.get(d.body["kind"], 0) + 1
    counts = ", ".join(f"{n} {k}" for k, n in sorted(kinds.items()))
    print(f"Imported {counts} into {opts.out} ({files} files) in {seconds:.1f} s.", file=out)
    print(f"  {len(imported.env)} secret values in {opts.env_out} (mode 0600; keep it out of git).", file=out)
    print(f"  {adopted} databases recorded as adopted: dbstate takes them over as they are.", file=out)
    if imported.not_running:
        names = ", ".join(imported.not_running)
        print(f"  from compose files, not running: {names} (dbstate creates them once committed).", file=out)
    if adopted < len(imported.adopt):
        print(
            f"  {len(imported.adopt) - adopted} not adopted: `dbstate plan` says what differs (adoption-blocked).",
            file=out,
        )
    for note in imported.notes:
        print(f"  note: {note}", file=out)
    allow = f" --allow-compose-project {','.join(imported.compose_projects)}" if imported.compose_projects else ""
    allow += "".join(f" --allow-bind-root {root}" for root in imported.bind_roots)
    print("Next:", file=out)
    print(f"  dbstate plan --dir {opts.out} --env-file {opts.env_out}{allow}", file=out)
    print(
        "  (nothing to change is expected; then commit the files and start `dbstate run` with the same flags)", file=out
    )
