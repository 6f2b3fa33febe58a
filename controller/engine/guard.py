"""The guard around changes that could lose data (`engine.ports.DataGuard`): a verified backup before a destructive
change, the engine's own step after a new image, and major upgrades; the one module that uses both backing.py and
upgrading.py, so that neither imports the other."""

from __future__ import annotations

from controller.core import databases, errors, plan, spec, versions
from controller.core.labels import REVISION
from controller.engine import backing, pg_upgrading, upgrading
from controller.engine.backing import Progress
from controller.engine.ports import BackupStore, Runtime, Shell


class Guard:
    """Implements `engine.ports.DataGuard`: what apply and run call around a change that could lose data."""

    def __init__(self, shell: Shell, store: BackupStore, runtime: Runtime, progress: Progress) -> None:
        self.shell, self.store, self.runtime, self.progress = shell, store, runtime, progress

    def before(self, change: plan.Change) -> None:
        """A backup of the server as it runs, checked against its manifest; a stopped one is started for it. Older
        backups beyond policy.backup.keep are removed afterwards."""
        inst = change.resource
        if not isinstance(inst, spec.DatabaseInstance):
            return
        c = change.target
        who = databases.of(inst.spec.engine).login(inst)
        try:
            if not self.shell.running(c):
                self.progress(f"{inst.metadata.name}: starting {c} to back it up before the {change.action.value}")
                self.runtime.start(c)
            backing.wait_ready(c, inst.spec.engine, who, self.shell, timeout=90)
            m = backing.take(
                backing.Server(inst, c, change.from_image or inst.spec.image),
                self.shell,
                self.store,
                revision=change.labels.get(REVISION),
                reason=f"before {change.action.value}",
                progress=self.progress,
            )
        except errors.DbstateError as e:
            raise errors.BackupError(f"no backup before the {change.action.value}, so {c} is not changed: {e}") from e
        self.store.prune(inst.metadata.name, inst.spec.policy.backup.keep)
        data = databases.of(inst.spec.engine).data_major(m.server_version)
        if data is not None and not versions.agree(data, inst.spec.version):
            raise errors.BackupError(
                f"{c}'s server reports {inst.spec.engine.value} {m.server_version} (its data's major is {data}); the "
                f"declaration's version is {inst.spec.version}: a major upgrade is never a plain recreate, so {c} is "
                f"not changed (policy.upgrade: dump-restore does it; backup {m.id} was taken)"
            )

    def after(self, change: plan.Change) -> None:
        """MariaDB after a new image (a minor step too): `mariadb-upgrade`, as its documentation asks."""
        inst = change.resource
        if not isinstance(inst, spec.DatabaseInstance) or change.from_image == inst.spec.image:
            return
        db = databases.of(inst.spec.engine)
        who = db.login(inst)
        argv = db.after_new_image(who)
        if argv is None:
            return
        backing.wait_ready(change.target, inst.spec.engine, who, self.shell)
        ran = self.shell.run(change.target, argv, who.env, mutating=True)
        if ran.code != 0:
            raise errors.ExecFailed(db.after_new_image_tool, change.target, ran.code, ran.stderr)
        self.progress(f"{inst.metadata.name}: {db.after_new_image_tool} done on {change.target}")

    def monitoring_login(self, exporter: spec.Exporter) -> None:
        inst, user, password = exporter.instance, exporter.spec.user, exporter.spec.password
        if user is None or password is None:
            return  # the server asks for no password: the exporter logs in as anyone may
        db = databases.of(inst.spec.engine)
        who = db.login(inst)
        container = inst.container_name
        try:
            backing.wait_ready(container, inst.spec.engine, who, self.shell, timeout=90)
        except errors.BackupError as e:
            raise errors.DbstateError(f"{exporter.container_name}: its login is made on {container}: {e}") from e
        argv, stdin = db.monitor_login(who, user, password.reveal())
        ran = self.shell.run(container, argv, who.env, who.os_user, stdin=[stdin], mutating=True)
        refused = db.refusal(ran.stdout.decode(errors="replace"))
        if ran.code != 0 or refused:
            raise errors.ExecFailed(db.tool, container, ran.code, refused or ran.stderr)
        self.progress(f"{inst.metadata.name}: monitoring login {user} ready for {exporter.container_name}")

    def upgrade(self, change: plan.Change) -> None:
        pg = isinstance(change.payload, plan.Upgrade) and change.payload.method == spec.UpgradePolicy.PG_UPGRADE
        (pg_upgrading if pg else upgrading).upgrade(change, self.runtime, self.shell, self.store, self.progress)
