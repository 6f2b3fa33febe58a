"""A new major version the way a DBA moves to one (policy.upgrade: dump-restore): the old server is stopped and kept,
its data dumped by a throw-away server of the old image on the old volume (no consumer can write meanwhile, so the
dump is the whole truth), the new major started on the new volume the declaration names, the dump restored, and the
new server checked (its major, and the rows of every table against the dump) before it keeps the name. Any failing
step rolls back: the new container is removed, the old one gets its name back and runs on its untouched volume."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from controller.core import dumps, errors, plan, spec
from controller.core.dumps import Manifest
from controller.core.labels import KEPT_SUFFIX, REVISION
from controller.core.secrets import reveal
from controller.engine import apply as applying
from controller.engine import backing
from controller.engine.ports import BackupStore, Runtime, Shell


def kept_name(container: str, major: str) -> str:
    return f"{container}{KEPT_SUFFIX}{major}"


@dataclass
class _Upgrade:
    """One dump-restore upgrade, step by step; `step` names the one under way (for the failure's message)."""

    change: plan.Change
    inst: spec.DatabaseInstance
    runtime: Runtime
    shell: Shell
    store: BackupStore
    progress: Callable[[str], None]
    step: str = "checking the new volumes"
    created: bool = False
    renamed: bool = False

    @property
    def c(self) -> str:
        return self.change.target

    def run(self) -> Manifest:
        d, c, inst = self.change.details, self.c, self.inst
        was, new = str(d["from_major"]), str(d["to_major"])
        for _old, new_volume in d["moves"].values():
            _must_be_empty(self.shell, inst.spec.image, new_volume)
        self.step = f"stopping {c}"
        self.progress(f"{inst.metadata.name}: upgrade {was} -> {new}: {self.step} (kept as {kept_name(c, was)})")
        self.runtime.stop(c, applying.STOP_TIMEOUT)
        self.step = "dumping the old data"
        manifest = self.dump_old(f"before upgrade {was} -> {new}")
        self.step = f"renaming {c} to {kept_name(c, was)}"
        self.runtime.rename(c, kept_name(c, was))
        self.renamed = True
        self.step = f"starting {inst.spec.image} on {', '.join(n for _o, n in d['moves'].values())}"
        self.progress(f"{inst.metadata.name}: {self.step}")
        self.created = True
        create = plan.Change(plan.Action.CREATE, self.change.kind, self.change.name, c, "upgrade", d, (), inst)
        applying.execute(create, self.runtime)
        self.restore_and_check(manifest, new)
        return manifest

    def dump_old(self, reason: str) -> Manifest:
        """The old data dumped by a throw-away server of the old image on the old volume: nothing else can write."""
        d, inst = self.change.details, self.inst
        target, (old_volume, _new) = next(iter(d["moves"].items()))
        env = {k: reveal(v) for k, v in inst.spec.env.items()}
        with self.shell.scratch(str(d["from_image"]), env, old_volume, target) as old:
            backing.wait_ready(old, inst.spec.engine, dumps.login(inst), self.shell)
            server = backing.Server(inst, old, str(d["from_image"]))
            revision = (d.get("labels") or {}).get(REVISION)
            return backing.take(
                server, self.shell, self.store, revision=revision, reason=reason, progress=self.progress
            )

    def restore_and_check(self, manifest: Manifest, major: str) -> None:
        c, engine, who, shell = self.c, self.inst.spec.engine, dumps.login(self.inst), self.shell
        backing.wait_ready(c, engine, who, shell)
        self.step = "checking the new server's version"
        got = backing.server_version(c, engine, who, shell)
        if not _same_major(got, major):
            raise errors.BackupError(f"the new server reports {got}, not {major}")
        self.step = f"restoring {manifest.id}"
        self.progress(f"{self.inst.metadata.name}: {self.step}")
        backing.load(c, engine, who, manifest, self.store, shell, self.progress)
        if engine in (spec.Engine.MARIADB, spec.Engine.MYSQL):
            self.step = "mariadb-upgrade"
            ran = shell.run(c, backing.upgrade_argv(who), who.env, mutating=True)
            if ran.code != 0:
                raise errors.ExecFailed("mariadb-upgrade", c, ran.code, ran.stderr)
        self.step = "comparing the rows with the dump"
        rows = backing.counts(c, engine, who, shell)
        rows = {k: v for k, v in rows.items() if k.split("/", 1)[0] in manifest.databases}
        wrong = dumps.compare_counts(manifest.counts, rows) if engine is not spec.Engine.REDIS else []
        if wrong:
            raise errors.BackupError("; ".join(wrong[:5]))

    def roll_back(self) -> None:
        """The new container removed, the new volume emptied again (it was checked empty before this attempt and holds
        only what the attempt wrote; the volume itself is kept), the old server back under its name and started."""
        c, d = self.c, self.change.details
        self.progress(f"rolling back: {c} goes back to its old server")
        if self.created:
            self.runtime.remove_container(c)
            for _old, new_volume in d["moves"].values():
                self.shell.run_once(self.inst.spec.image, [(new_volume, "/v", False)], "find /v -mindepth 1 -delete")
        if self.renamed:
            self.runtime.rename(kept_name(c, str(d["from_major"])), c)
        self.runtime.start(c)


def upgrade(
    change: plan.Change, runtime: Runtime, shell: Shell, store: BackupStore, progress: Callable[[str], None]
) -> None:
    inst = change.resource
    if not isinstance(inst, spec.DatabaseInstance):
        raise errors.DbstateError(f"{change.key}: only a DatabaseInstance is upgraded")
    d = change.details
    was, new, name = str(d["from_major"]), str(d["to_major"]), inst.metadata.name
    job = _Upgrade(change, inst, runtime, shell, store, progress)
    try:
        manifest = job.run()
    except Exception as e:
        reason = str(e) if isinstance(e, errors.DbstateError) else f"unexpected {type(e).__name__}"
        try:
            job.roll_back()
        except errors.DbstateError as again:
            raise errors.BackupError(
                f"upgrade of {name} {was} -> {new} failed at '{job.step}': {reason}; and the rollback failed too "
                f"({again}): the old server is {kept_name(change.target, was) if job.renamed else change.target}, "
                "stopped, on its old volume, untouched: start it by hand"
            ) from e
        raise errors.BackupError(
            f"upgrade of {name} {was} -> {new} failed at '{job.step}': {reason}; rolled back: {change.target} runs "
            f"{d['from_image']} on its old volume, unchanged"
        ) from e
    old_volumes = ", ".join(o for o, _n in d["moves"].values())
    progress(
        f"{name}: upgraded {was} -> {new}: {sum(manifest.counts.values())} rows in {len(manifest.counts)} tables "
        f"restored and checked; {kept_name(change.target, was)} and {old_volumes} are kept (remove them by hand once "
        "satisfied)"
    )


def _same_major(reported: str, major: str) -> bool:
    return reported == major or reported.startswith(major + ".") or reported.startswith(major + "-")


def _must_be_empty(shell: Shell, image: str, volume: str) -> None:
    """The new volume holds nothing yet: a dump-restore never writes over data."""
    code, out = shell.run_once(image, [(volume, "/v", True)], "ls -A /v")
    if code != 0:
        raise errors.BackupError(f"cannot look into volume {volume}: {out.strip()[-200:]}")
    if out.strip():
        raise errors.BackupError(f"volume {volume} is not empty: an upgrade restores only into a new, empty volume")
