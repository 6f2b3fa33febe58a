"""A database moved onto a new volume the way a DBA does it, for two reasons: a new major version (policy.upgrade:
dump-restore) and a restore that must not overwrite what is there (`dbstate restore --to-new-volume`).

The old server is stopped and kept (renamed `<name>.dbstate-kept-<why>`, its volume untouched); for an upgrade its
data is dumped by a throw-away server of the old image on the old volume (no consumer can write meanwhile, so the dump
is the whole truth); the new server is created from the declaration on the new, empty volume, the dump restored and
checked (its major, and the rows of every table against the dump) before it keeps the name. Until then it is alone on
a private internal network, and the declared consumers that use it are paused from before the old server stops: no
client reaches a server whose data is not in place, so no committed write can land where a rollback would drop it.
Only then does it join its networks with its aliases, and the consumers resume. Any failing step rolls back: the new
container is removed, the new volume emptied again, the old server back under its name and started, the consumers
resumed."""

from __future__ import annotations

import contextlib
import time
import uuid
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass, field

from controller.core import databases, diff, dumps, errors, labels, live, plan, spec, versions
from controller.core.dumps import Manifest
from controller.core.labels import HELPER, HELPER_PREFIX, KEPT_SUFFIX, REVISION
from controller.core.secrets import reveal
from controller.engine import apply as applying
from controller.engine import backing, volumes
from controller.engine.ports import BackupStore, Runtime, Shell

Progress = Callable[[str], None]


def kept_name(container: str, why: str) -> str:
    return f"{container}{KEPT_SUFFIX}{why}"


def kept_labels(inst: spec.DatabaseInstance) -> dict[str, str]:
    """A kept server's labels: dbstate's own (the instance's, never an orphan) and deletion protection."""
    return {labels.MANAGED: "true", labels.KIND: inst.kind, labels.NAME: inst.metadata.name, labels.PROTECTED: "true"}


@dataclass
class Cutover:
    """One move onto new volumes, step by step; `step` names the one under way (for the failure's message)."""

    inst: spec.DatabaseInstance  # what the new container is made from: its data mounts on the new volumes
    made: plan.ContainerSpec  # the new container as the plan shows it (its labels; env redacted)
    kept: str  # the old container's name while it is kept
    new_volumes: list[str]
    runtime: Runtime
    shell: Shell
    store: BackupStore
    progress: Progress
    consumers: tuple[str, ...] = ()  # paused for the cutover (the plan names them)
    step: str = "checking the new volumes"
    created: bool = False
    renamed: bool = False
    paused: list[str] = field(default_factory=list)
    private: str | None = None  # the network the new server is alone on until its data is checked
    cutover: str | None = None  # the new server's data as restored (backing.fingerprint)
    kept_extra: dict[str, str] = field(default_factory=dict)  # more labels for the kept server (how it was left)
    detached: list[tuple[str, tuple[str, ...]]] = field(default_factory=list)  # the old server's networks, aliases

    @property
    def c(self) -> str:
        return self.inst.container_name

    def check_and_stop(self) -> None:
        self.check_empty()
        self.pause()
        self.stop()

    def check_empty(self) -> None:
        for volume in self.new_volumes:
            _must_be_empty(self.shell, self.inst.spec.image, volume)

    def pause(self) -> None:
        """The declared consumers paused: from here on they write nowhere."""
        for name in self.consumers:
            self.step = f"pausing {name}"
            if self.runtime.pause(name):
                self.paused.append(name)
        if self.paused:
            self.progress(f"{self.inst.metadata.name}: paused {', '.join(self.paused)} for the cutover")

    def isolate(self) -> None:
        """The old server, still running, taken off its networks: no client anywhere reaches it any more (a paused
        consumer or one nobody declared), so what it holds from now on is final. A rollback puts it back on them."""
        for network, aliases in self.runtime.attachments(self.c):
            self.step = f"taking {self.c} off {network}"
            self.runtime.disconnect(self.c, network)
            self.detached.append((network, aliases))

    def stop(self) -> None:
        self.step = f"stopping {self.c}"
        self.progress(f"{self.inst.metadata.name}: {self.step} (kept as {self.kept})")
        self.runtime.stop(self.c, applying.STOP_TIMEOUT)

    def dump_old(self, image: str, volume: str, target: str, reason: str, revision: str | None) -> Manifest:
        """The old data dumped by a throw-away server of the old image on the old volume: nothing else can write."""
        self.step = "dumping the old data"
        inst = self.inst
        env = {k: reveal(v) for k, v in inst.spec.env.items()}
        with self.shell.scratch(image, env, volume, target) as old:
            backing.wait_ready(old, inst.spec.engine, databases.of(inst.spec.engine).login(inst), self.shell)
            server = backing.Server(inst, old, image)
            return backing.take(
                server, self.shell, self.store, revision=revision, reason=reason, progress=self.progress
            )

    def switch(self) -> None:
        """The old container renamed aside, the new one created from the declaration and started on a private
        internal network of its own: no consumer can reach it (by its aliases or its name) before its data is in
        place and checked (`go_live`)."""
        self.step = f"renaming {self.c} to {self.kept}"
        self.runtime.rename(self.c, self.kept)
        self.renamed = True
        self.make_private()
        self.step = f"starting {self.inst.spec.image} on {', '.join(self.new_volumes)}, reachable by nothing yet"
        self.progress(f"{self.inst.metadata.name}: {self.step}")
        self.created = True
        alone = self.inst.model_copy(
            update={
                "spec": self.inst.spec.model_copy(
                    update={"networks": (spec.NetworkAttachment(name=self.private, aliases=()),)}
                )
            }
        )
        applying.execute(_create(alone, self.made, "moved"), self.runtime)

    def make_private(self) -> None:
        """The internal network the new server starts on, alone; made ahead of a downtime by whoever can."""
        if self.private is not None:
            return
        self.private = f"{HELPER_PREFIX}{uuid.uuid4().hex[:12]}"
        self.step = f"creating the private network {self.private}"
        self.runtime.create_network(self.private, "bridge", True, {HELPER: "true"})

    def go_live(self) -> None:
        """The new server, its data checked, joins its declared networks with its aliases; the consumers resume."""
        for att in self.inst.spec.networks:
            self.step = f"connecting {self.c} to {att.name}"
            self.runtime.connect(self.c, att.name, att.aliases, reconnect=False)
        self.resume()
        self.progress(f"{self.inst.metadata.name}: {self.c} serves on {self.inst.spec.image}")
        self.leave_private()
        self._rebuild_statistics()

    def _rebuild_statistics(self) -> None:
        """A dump carries no planner statistics: rebuilt in the background while the server serves (a failure to
        start it is said, and changes nothing: autovacuum gets there too, later)."""
        db = databases.of(self.inst.spec.engine)
        who = db.login(self.inst)
        argv = db.rebuild_statistics(who)
        if argv is None:
            return
        try:
            self.shell.spawn(self.c, argv, who.env, who.os_user)
        except errors.EngineError as e:
            self.progress(f"{self.inst.metadata.name}: {argv[0]} did not start ({e}); autovacuum analyzes later")
            return
        self.progress(f"{self.inst.metadata.name}: {' '.join(argv)} runs in the background")

    def leave_private(self) -> None:
        """Off the private network, and the network removed (the server, if any, is on its declared ones)."""
        if self.private is None:
            return
        if self.created:
            with contextlib.suppress(errors.EngineError):
                self.runtime.disconnect(self.c, self.private)
        with contextlib.suppress(errors.EngineError):  # a helper network left over is harmless: it holds nothing
            self.runtime.remove_network(self.private)
        self.private = None

    def resume(self) -> None:
        """The consumers this upgrade paused, unpaused (whatever happened)."""
        while self.paused:
            name = self.paused.pop()
            try:
                self.runtime.unpause(name)
            except errors.EngineError as e:
                self.progress(f"{self.inst.metadata.name}: unpausing {name} failed ({e}): `docker unpause {name}`")

    def restore_and_check(self, manifest: Manifest, major: str | None) -> None:
        c, engine, shell = self.c, self.inst.spec.engine, self.shell
        db = databases.of(engine)
        who = db.login(self.inst)
        backing.wait_ready(c, engine, who, shell)
        if major is not None:
            self.check_major(major)
        self.step = f"restoring {manifest.id}"
        self.progress(f"{self.inst.metadata.name}: {self.step}")
        if not db.sql:
            raise errors.BackupError(
                f"a {engine.value} RDB is restored in place (`dbstate restore` without --to-new-volume)"
            )
        backing.load(c, engine, who, manifest, self.store, shell, self.progress)
        after = db.after_new_image(who)
        if after is not None and major is not None:
            self.step = db.after_new_image_tool
            ran = shell.run(c, after, who.env, mutating=True)
            if ran.code != 0:
                raise errors.ExecFailed(db.after_new_image_tool, c, ran.code, ran.stderr)
        self.check_rows(manifest.counts, manifest.databases, "the dump")

    def check_major(self, major: str) -> None:
        self.step = "checking the new server's version"
        who = databases.of(self.inst.spec.engine).login(self.inst)
        got = backing.server_version(self.c, self.inst.spec.engine, who, self.shell)
        if not _same_major(got, major):
            raise errors.BackupError(f"the new server reports {got}, not {major}")

    def check_rows(
        self, want: Mapping[str, int], databases_: Collection[str], source: str, fingerprint: bool = True
    ) -> None:
        """The new server's rows against `want` (of `databases_`), then (`fingerprint`) the cutover's fingerprint:
        what it holds before any consumer can reach it (`dbstate rollback` tells the writes made since by it)."""
        self.step = f"comparing the rows with {source}"
        engine = self.inst.spec.engine
        who = databases.of(engine).login(self.inst)
        rows = backing.counts(self.c, engine, who, self.shell)
        rows = {k: v for k, v in rows.items() if k.split("/", 1)[0] in databases_}
        wrong = dumps.compare_counts(want, rows)
        if wrong:
            raise errors.BackupError(f"rows differ from {source}'s: " + "; ".join(wrong[:5]))
        if not fingerprint:
            return
        self.step = "taking the cutover's fingerprint"
        self.cutover = backing.fingerprint(self.c, engine, who, self.shell)

    def keep_inert(self) -> None:
        """The old server stays as its data and a container nothing starts: no restart policy, no network, none of
        compose's labels (a `docker compose up` of the old file cannot find it and start it beside the new one), and
        dbstate's own labels, deletion-protected (its kept server, never an orphan to prune)."""
        own = kept_labels(self.inst) | self.kept_extra
        if self.cutover is not None:
            own[labels.CUTOVER] = self.cutover
        try:
            self.runtime.make_inert(self.kept, own)
        except errors.DbstateError as e:
            raise errors.BackupError(
                f"{self.c} now runs {self.inst.spec.image}, but keeping the old server {self.kept} inert failed ({e}): "
                f"it may still carry compose's labels and a restart policy; stop compose from starting it (remove it "
                "from the compose file) or `docker rm` it once the new server is trusted (its volume stays)"
            ) from e

    def roll_back(self) -> None:
        """The new container removed, the new volumes emptied again (checked empty before this attempt, they hold only
        what it wrote; the volumes themselves are kept), the old server back under its name and started."""
        self.progress(f"rolling back: {self.c} goes back to its old server")
        if self.created:
            self.runtime.remove_container(self.c)
            self.created = False
            for volume in self.new_volumes:
                self.shell.run_once(self.inst.spec.image, [(volume, "/v", False)], "find /v -mindepth 1 -delete")
        self.leave_private()
        if self.renamed:
            self.runtime.rename(self.kept, self.c)
        while self.detached:
            network, aliases = self.detached.pop(0)
            self.runtime.connect(self.c, network, aliases, reconnect=False)
        self.runtime.start(self.c)

    def failed(self, what: str, e: BaseException, old_image: str) -> errors.BackupError:
        """Roll back, and the error that says which step failed and where the old server is."""
        reason = str(e) if isinstance(e, errors.DbstateError) else f"unexpected {type(e).__name__}"
        try:
            self.roll_back()
        except errors.DbstateError as again:
            self.resume()
            where = self.kept if self.renamed else self.c
            return errors.BackupError(
                f"{what} failed at '{self.step}': {reason}; and the rollback failed too ({again}): the old server is "
                f"{where}, stopped, on its old volume, untouched: start it by hand"
            )
        self.resume()
        return errors.BackupError(
            f"{what} failed at '{self.step}': {reason}; rolled back: {self.c} runs {old_image} on its old volume, "
            "unchanged"
        )


def upgrade(change: plan.Change, runtime: Runtime, shell: Shell, store: BackupStore, progress: Progress) -> None:
    """policy.upgrade: dump-restore (the diff's UPGRADE change); pg-upgrade is engine/pg_upgrading.py's."""
    inst = change.resource
    if not isinstance(inst, spec.DatabaseInstance):
        raise errors.DbstateError(f"{change.key}: only a DatabaseInstance is upgraded")
    d = change.payload
    if not isinstance(d, plan.Upgrade):
        raise errors.DbstateError(f"{change.key}: not an upgrade")
    was, new, name, old_image, moves = d.from_major, d.to_major, inst.metadata.name, d.from_image, d.moves
    job = Cutover(
        inst,
        d.container,
        kept_name(change.target, f"v{was}"),
        [n for _o, n in moves.values()],
        runtime,
        shell,
        store,
        progress,
        consumers=d.consumers,
    )
    target, (old_volume, _new) = next(iter(moves.items()))
    try:
        preflight(inst, change.target, shell, progress)
    except errors.DbstateError as e:
        raise errors.BackupError(
            f"upgrade of {name} {was} -> {new} not started: {e}; {change.target} still runs {old_image}, untouched"
        ) from e
    try:
        job.check_and_stop()
        manifest = job.dump_old(
            old_image, old_volume, target, f"before upgrade {was} -> {new}", change.labels.get(REVISION)
        )
        job.switch()
        job.restore_and_check(manifest, new)
        job.go_live()
    except Exception as e:
        raise job.failed(f"upgrade of {name} {was} -> {new}", e, old_image) from e
    job.keep_inert()
    old_volumes = ", ".join(o for o, _n in moves.values())
    progress(
        f"{name}: upgraded {was} -> {new}: {sum(manifest.counts.values())} rows in {len(manifest.counts)} tables "
        f"restored and checked; {job.kept} and {old_volumes} are kept (remove them by hand once satisfied)"
    )


def preflight(inst: spec.DatabaseInstance, container: str, shell: Shell, progress: Progress) -> None:
    """What would make the restore fail, found while the old server still serves: an extension its databases use that
    the new image does not ship (asked of a throw-away server of the new image). No downtime for a known failure."""
    engine = inst.spec.engine
    db = databases.of(engine)
    who = db.login(inst)
    if not shell.running(container):
        return  # a stopped server cannot be asked: the restore finds out, and rolls back
    used = backing.extensions(container, engine, who, shell)
    if not used:
        return
    progress(f"{inst.metadata.name}: checking that {inst.spec.image} ships {', '.join(sorted(used))}")
    env = {k: reveal(v) for k, v in inst.spec.env.items()}
    with shell.scratch(inst.spec.image, env) as probe:
        backing.wait_ready(probe, engine, who, shell)
        available = backing.available_extensions(probe, engine, who, shell)
    missing = sorted(used - available) if available is not None else []
    if missing:
        raise errors.BackupError(
            f"{inst.spec.image} does not ship the extension{'s' if len(missing) > 1 else ''} {', '.join(missing)} "
            f"that {container} uses (drop {'them' if len(missing) > 1 else 'it'} there, or choose an image that has "
            f"{'them' if len(missing) > 1 else 'it'})"
        )


def restore_to_new_volume(
    server: backing.Server,
    manifest: Manifest,
    volume: str,
    runtime: Runtime,
    shell: Shell,
    store: BackupStore,
    *,
    revision: str | None,
    progress: Progress,
) -> tuple[spec.DatabaseInstance, str]:
    """`dbstate restore NAME --from ID --to-new-volume VOLUME`: the instance recreated on VOLUME (made when missing,
    refused unless empty) with the backup restored into it; the old container kept stopped on its untouched volume.
    The declaration that now matches (its data mount on VOLUME), and the kept container's name."""
    inst = server.inst
    data = [m for m in inst.spec.volumes if m.type == "volume"]
    if len(data) != 1:
        raise errors.BackupError(
            f"{inst.metadata.name} mounts {len(data)} named volumes: --to-new-volume needs exactly one data volume"
        )
    store.check(manifest)
    moved = inst.model_copy(
        update={
            "spec": inst.spec.model_copy(
                update={
                    "volumes": tuple(
                        m.model_copy(update={"source": volume}) if m is data[0] else m for m in inst.spec.volumes
                    )
                }
            )
        }
    )
    if runtime.volume_identity(volume) is None:
        runtime.create_volume(volume, "local", {})
    kept = kept_name(inst.container_name, time.strftime("%Y%m%dT%H%M%SZ", time.gmtime()))
    made = diff.container_spec(moved, revision)
    job = Cutover(moved, made, kept, [volume], runtime, shell, store, progress)
    try:
        job.check_and_stop()
        job.switch()
        job.restore_and_check(manifest, None)
        job.go_live()
    except Exception as e:
        raise job.failed(f"restore of {manifest.id} into {volume}", e, server.image) from e
    job.keep_inert()
    return moved, kept


def _create(inst: spec.DatabaseInstance, made: plan.ContainerSpec, reason: str) -> plan.Change:
    """The create of `inst`'s container from its declaration, as apply runs it."""
    return plan.Change(plan.Action.CREATE, inst.kind, inst.metadata.name, inst.container_name, reason, made, (), inst)


def _same_major(reported: str, major: str) -> bool:
    return reported == major or reported.startswith(major + ".") or reported.startswith(major + "-")


def _must_be_empty(shell: Shell, image: str, volume: str) -> None:
    """The new volume holds nothing yet: a move never writes over data."""
    try:
        held = volumes.entries(shell, image, volume)
    except errors.DbstateError as e:
        raise errors.BackupError(str(e)) from e
    if held:
        raise errors.BackupError(f"volume {volume} is not empty: a restore or an upgrade writes only into an empty one")


def rollback(
    inst: spec.DatabaseInstance,
    current: live.Container,
    kept: live.Container,
    runtime: Runtime,
    shell: Shell,
    store: BackupStore,
    *,
    discard_writes: bool,
    revision: str | None,
    progress: Progress,
) -> Manifest:
    """`dbstate rollback NAME`: back to the kept server that the declaration names again (its image and data mounts):
    refused while the current server holds writes made since the cutover, unless `discard_writes`; the current server
    is backed up first (returned: the way forward again) and kept inert in its turn; the old server is created from the
    declaration on its data, started and checked; then the kept copy, whose data it now runs on, is removed."""
    engine, name, c = inst.spec.engine, inst.metadata.name, inst.container_name
    who = databases.of(engine).login(inst)
    declared = sorted((m.type, m.source, m.target) for m in inst.spec.volumes)
    mounts = sorted((m.type, m.source.rstrip("/"), m.destination) for m in kept.mounts if m.type in ("volume", "bind"))
    if kept.image != inst.spec.image or declared != mounts:
        raise errors.BackupError(
            f"the declaration of {name} does not name the kept server {kept.name} ({kept.image} on "
            f"{', '.join(s for _t, s, _d in mounts)}): revert the upgrade's commit first, so that it does; nothing "
            "was changed"
        )
    spent = kept.labels.get(labels.SPENT)
    if spent:
        backup = kept.labels.get(labels.BACKUP) or "the newest backup from before the upgrade"
        raise errors.BackupError(
            f"{kept.name}'s data went into {current.name} by {spent}, and that server has started since: the old "
            f"cluster cannot start again. Nothing was changed; the way back is backup {backup} "
            f"(`dbstate restore {name} --from {backup} --to-new-volume VOLUME` with the old image declared)"
        )
    backing.wait_ready(current.name, engine, who, shell, timeout=60)
    was = kept.labels.get(labels.CUTOVER)
    now = backing.fingerprint(current.name, engine, who, shell)
    if was != now and not discard_writes:
        why = "has no digest of the cutover" if was is None else "holds writes made since the cutover"
        raise errors.BackupError(
            f"{current.name} {why}: going back to {kept.name} would lose them. Nothing was changed; copy them over "
            "by hand, or roll back anyway with --discard-writes (a backup of them is taken first)"
        )
    safety = backing.take(
        backing.Server(inst, current.name, current.image),
        shell,
        store,
        revision=revision,
        reason=f"before rollback to {kept.name}",
        progress=progress,
    )
    aside = kept_name(c, "rolled-back-" + time.strftime("%Y%m%dT%H%M%SZ", time.gmtime()))
    progress(f"{name}: stopping {current.name} (kept as {aside}) to start {kept.image} on its data again")
    runtime.stop(current.name, applying.STOP_TIMEOUT)
    runtime.rename(current.name, aside)
    try:
        applying.execute(_create(inst, diff.container_spec(inst, revision), "rollback"), runtime)
        backing.wait_ready(c, engine, who, shell)
        got = backing.server_version(c, engine, who, shell)
        if not versions.agree(databases.of(engine).data_major(got) or got, inst.spec.version):
            raise errors.BackupError(f"the old server reports {got}, declared {inst.spec.version}")
    except Exception as e:
        with contextlib.suppress(errors.DbstateError):
            runtime.remove_container(c)
        runtime.rename(aside, c)
        runtime.start(c)
        reason = str(e) if isinstance(e, errors.DbstateError) else f"unexpected {type(e).__name__}"
        raise errors.BackupError(f"rollback of {name} failed ({reason}): {c} runs {current.image} again") from e
    runtime.make_inert(aside, kept_labels(inst))
    runtime.remove_container(kept.name)  # its data is the declared volume, which the old server runs on again
    progress(f"{name}: rolled back to {inst.spec.image}; {aside} keeps the newer server; backup {safety.id}")
    return safety
