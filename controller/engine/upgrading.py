"""A new major version the way a DBA moves to one (policy.upgrade: dump-restore): the old server is stopped and kept,
its data dumped by a throw-away server of the old image on the old volume (no consumer can write meanwhile, so the
dump is the whole truth), the new major started on the new volume the declaration names, the dump restored, and the
new server checked (its major, and the rows of every table against the dump) before it keeps the name. Any failing
step rolls back: the new container is removed, the old one gets its name back and runs on its untouched volume."""

from __future__ import annotations

from collections.abc import Callable

from controller.core import dumps, errors, plan, spec
from controller.core.labels import KEPT_SUFFIX, REVISION
from controller.core.secrets import reveal
from controller.engine import apply as applying
from controller.engine import backing
from controller.engine.ports import BackupStore, Runtime, Shell


def kept_name(container: str, major: str) -> str:
    return f"{container}{KEPT_SUFFIX}{major}"


def upgrade(
    change: plan.Change, runtime: Runtime, shell: Shell, store: BackupStore, progress: Callable[[str], None]
) -> None:
    inst = change.resource
    if not isinstance(inst, spec.DatabaseInstance):
        raise errors.DbstateError(f"{change.key}: only a DatabaseInstance is upgraded")
    d = change.details
    name, c, engine = inst.metadata.name, change.target, inst.spec.engine
    was, new, old_image = str(d["from_major"]), str(d["to_major"]), str(d["from_image"])
    moves: dict[str, list[str]] = d["moves"]
    kept = kept_name(c, was)
    who = dumps.login(inst)
    step = "checking the new volumes"
    created = renamed = False
    try:
        for _old, new_volume in moves.values():
            _must_be_empty(shell, inst.spec.image, new_volume)
        step = f"stopping {c}"
        progress(f"{name}: upgrade {was} -> {new}: {step} (kept as {kept})")
        runtime.stop(c, applying.STOP_TIMEOUT)
        step = "dumping the old data"
        target, (old_volume, _new) = next(iter(moves.items()))
        env = {k: reveal(v) for k, v in inst.spec.env.items()}
        with shell.scratch(old_image, env, old_volume, target) as old:
            backing.wait_ready(old, engine, who, shell)
            manifest = backing.take(
                backing.Server(inst, old, old_image),
                shell,
                store,
                revision=(d.get("labels") or {}).get(REVISION),
                reason=f"before upgrade {was} -> {new}",
                progress=progress,
            )
        step = f"renaming {c} to {kept}"
        runtime.rename(c, kept)
        renamed = True
        step = f"starting {inst.spec.image} on {', '.join(n for _o, n in moves.values())}"
        progress(f"{name}: {step}")
        create = plan.Change(plan.Action.CREATE, change.kind, change.name, c, change.reason, d, change.requires, inst)
        created = True
        applying.execute(create, runtime)
        backing.wait_ready(c, engine, who, shell)
        step = "checking the new server's version"
        got = backing.server_version(c, engine, who, shell)
        if not _same_major(engine, got, new):
            raise errors.BackupError(f"the new server reports {got}, not {new}")
        step = f"restoring {manifest.id}"
        progress(f"{name}: {step}")
        backing.load(c, engine, who, manifest, store, shell, progress)
        if engine in (spec.Engine.MARIADB, spec.Engine.MYSQL):
            step = "mariadb-upgrade"
            ran = shell.run(c, ["sh", "-c", _MARIADB_UPGRADE, "sh", "-u", who.user or "root"], who.env, mutating=True)
            if ran.code != 0:
                raise errors.ExecFailed("mariadb-upgrade", c, ran.code, ran.stderr)
        step = "comparing the rows with the dump"
        rows = backing.counts(c, engine, who, shell)
        rows = (
            {k: v for k, v in rows.items() if k.split("/", 1)[0] in manifest.databases} if manifest.databases else rows
        )
        wrong = dumps.compare_counts(manifest.counts, rows) if engine is not spec.Engine.REDIS else []
        if wrong:
            raise errors.BackupError("; ".join(wrong[:5]))
    except Exception as e:
        reason = str(e) if isinstance(e, errors.DbstateError) else f"unexpected {type(e).__name__}"
        _roll_back(runtime, shell, inst.spec.image, c, kept, created, renamed, list(moves.values()), progress)
        raise errors.BackupError(
            f"upgrade of {name} {was} -> {new} failed at '{step}': {reason}; rolled back: {c} runs {old_image} on its "
            "old volume, unchanged"
        ) from e
    progress(
        f"{name}: upgraded {was} -> {new}: {sum(manifest.counts.values())} rows in {len(manifest.counts)} tables "
        f"restored and checked; {kept} and {old_volume} are kept (remove them by hand once satisfied)"
    )


_MARIADB_UPGRADE = (
    'if command -v mariadb-upgrade >/dev/null 2>&1; then c=mariadb-upgrade; else c=mysql_upgrade; fi; exec "$c" "$@"'
)


def _same_major(engine: spec.Engine, reported: str, major: str) -> bool:
    return reported == major or reported.startswith(major + ".") or reported.startswith(major + "-")


def _must_be_empty(shell: Shell, image: str, volume: str) -> None:
    """The new volume holds nothing yet: a dump-restore never writes over data."""
    code, out = shell.run_once(image, [(volume, "/v", True)], "ls -A /v")
    if code != 0:
        raise errors.BackupError(f"cannot look into volume {volume}: {out.strip()[-200:]}")
    if out.strip():
        raise errors.BackupError(f"volume {volume} is not empty: an upgrade restores only into a new, empty volume")


def _roll_back(
    runtime: Runtime,
    shell: Shell,
    image: str,
    c: str,
    kept: str,
    created: bool,
    renamed: bool,
    moves: list[list[str]],
    progress: Callable[[str], None],
) -> None:
    """The new container removed, the new volume emptied again (it was checked empty before this attempt and holds
    only what the attempt wrote; the volume itself is kept), the old server back under its name and started."""
    progress(f"rolling back: {c} goes back to its old server")
    if created:
        runtime.remove_container(c)
        for _old, new_volume in moves:
            shell.run_once(image, [(new_volume, "/v", False)], "find /v -mindepth 1 -delete")
    if renamed:
        runtime.rename(kept, c)
    runtime.start(c)
