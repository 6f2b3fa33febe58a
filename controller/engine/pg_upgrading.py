"""PostgreSQL across majors with its own tool (policy.upgrade: pg-upgrade): the downtime is a copy of the data files
(--copy: the old volume is never changed, `dbstate rollback` goes back) or seconds at any size (--link, --clone,
--swap), through the same cutover as dump-restore (engine/upgrading.py: the declared consumers paused, the new server
alone on a private network until it is checked).

Before any downtime, while the old server serves: the extensions its databases use must ship in the new image, the
old cluster's facts are read (bootstrap superuser, encoding, locale, checksums), a backup is taken (always for --link
and --swap, after which the old cluster cannot start again), the old major's userland is copied out of the old image
(core/databases/postgres.py: PG_TRANSPLANT), and a helper of the new image proves the old binaries run there and makes
the new cluster, with the old one's locale, in the new volume. Then the downtime: the consumers paused, the old server
taken off its networks and its sessions ended (no client anywhere can write to it any more), every table's and
index's file size read (pg_upgrade carries the files as they are: no row is read, the same at any size), the old server
stopped, pg_upgrade (its consistency checks first, the same as `--check`) in a helper of the new image without a
network, the new cluster moved into place, the new server started alone on the new volume and checked (its major, then
the same files), joined to its networks, the consumers resumed; the planner's statistics are rebuilt in the
background. A failure before the new server starts rolls back to the old server on its volume, unchanged (--link's
renamed pg_control renamed back).

`pg_upgrade --check` cannot run against the old server while it serves from another container (it reaches the old
server through a socket in that container's filesystem): what would fail it and can be asked of a serving server
(extensions, locale, the binaries) is asked before the downtime; the rest fails pg_upgrade's own checks in the first
second of the downtime, and the old server starts again."""

from __future__ import annotations

import contextlib
import os
from dataclasses import dataclass

from controller.core import databases, dumps, errors, labels, plan, spec
from controller.core.databases import postgres
from controller.core.databases.base import env_plain
from controller.core.dumps import Manifest
from controller.core.labels import REVISION
from controller.core.secrets import reveal
from controller.engine import backing, volumes
from controller.engine.ports import BackupStore, Runtime, Shell
from controller.engine.upgrading import Cutover, Progress, kept_name, preflight

SPENDS = frozenset({spec.UpgradeTransfer.LINK, spec.UpgradeTransfer.SWAP})  # no way back once the new server ran
SHARED = frozenset({spec.UpgradeTransfer.LINK, spec.UpgradeTransfer.CLONE, spec.UpgradeTransfer.SWAP})  # one mount
HELPER_STEPS = {3: "preparing pg_upgrade", 4: "initdb of the new cluster", 5: "pg_upgrade's checks", 6: "pg_upgrade"}


@dataclass(frozen=True)
class _Layout:
    """Where the helpers see the clusters: their mounts, the old cluster, the new volume's top and the new cluster."""

    mounts: list[tuple[str, str, bool]]
    old_data: str
    new_root: str
    new_data: str

    def env(self) -> dict[str, str]:
        return {
            "OLD_DATA": self.old_data,
            "NEW_ROOT": self.new_root,
            "NEW_DATA": self.new_data,
            "STAGE": postgres.PG_STAGE,
        }


@dataclass
class _PgUpgrade(Cutover):
    """The cutover of engine/upgrading.py with the data written by pg_upgrade into the new volume."""

    transfer: spec.UpgradeTransfer = spec.UpgradeTransfer.COPY
    old_volume: str = ""
    sub: tuple[str, str] = ("", "")  # the cluster's directory inside the old and the new volume
    backup: Manifest | None = None
    written: bool = False  # the helper may have written into the new volume (and, --link, renamed old's pg_control)

    def layout(self) -> _Layout:
        """--copy mounts each volume; --link, --clone and --swap need both clusters on one mount (a hard link or a
        reflink never crosses one): the engine's volume directory, which holds both local volumes."""
        old_sub, new_sub = self.sub
        new = self.new_volumes[0]
        if self.transfer not in SHARED:
            return _Layout(
                [(self.old_volume, "/old", False), (new, "/new", False)],
                _join("/old", old_sub),
                "/new",
                _join("/new", new_sub),
            )
        points = [self.runtime.volume_mountpoint(v) for v in (self.old_volume, new)]
        if points[0] is None or points[1] is None:
            raise errors.BackupError(
                f"pg_upgrade --{self.transfer.value} needs {self.old_volume} and {new} to be local volumes of this "
                "engine (one filesystem): use upgradeTransfer: copy"
            )
        top = os.path.dirname(os.path.dirname(points[0]))
        if os.path.dirname(os.path.dirname(points[1])) != top or top in ("", "/"):
            raise errors.BackupError(
                f"pg_upgrade --{self.transfer.value} needs both volumes in one directory of the engine's host; "
                f"{points[0]} and {points[1]} are not: use upgradeTransfer: copy"
            )
        root = _join("/volumes", os.path.relpath(points[1], top))
        return _Layout(
            [(top, "/volumes", False)],
            _join("/volumes", os.path.relpath(points[0], top), old_sub),
            root,
            _join(root, new_sub),
        )

    def run_helper(self, tools: str, env: dict[str, str], step: str) -> str:
        """The helper of the new image, `step` prepare (while the old server serves: the old binaries run, a new
        cluster made in PG_STAGE; the old volume read-only unless --link's shared mount) or upgrade (pg_upgrade)."""
        where = self.layout()
        mounts = [(s, t, ro or (step == "prepare" and t == "/old")) for s, t, ro in where.mounts]
        self.written = True
        self.step = f"preparing the upgrade in {self.inst.spec.image}" if step == "prepare" else "pg_upgrade"
        code, out = self.shell.run_once(
            self.inst.spec.image, mounts, postgres.PG_UPGRADE, env | where.env() | {"STEP": step}, [tools]
        )
        if code != 0:
            self.step = HELPER_STEPS.get(code, self.step)
            last = " / ".join(line for line in out.strip().splitlines()[-12:] if line.strip())
            raise errors.BackupError(f"{self.step} exited {code}: {last}")
        return out.strip().splitlines()[-1] if out.strip() else ""

    def install(self) -> None:
        """The upgraded cluster moved from PG_STAGE to where the new image looks for it."""
        self.step = "moving the new cluster into place"
        where = self.layout()
        code, out = self.shell.run_once(self.inst.spec.image, where.mounts, postgres.PG_INSTALL, where.env())
        if code != 0:
            raise errors.BackupError(f"{self.step} exited {code}: {out.strip()[-300:]}")

    def measure(self) -> dict[str, int]:
        """What the old server holds, once no client can write to it, for `check` on the new server: every table's
        and index's files in bytes, read from the catalog (no row read: the same at any size). pg_upgrade never
        rewrites a row in any mode: it copies, links, clones or swaps the files as they are, so a relation it lost or
        cut short has another size. (A count of every table, on each side, put --copy's downtime above the copy plus
        5 s at 10 GiB; a dump-restore, which does rewrite every row, still compares the rows.)"""
        self.step = "reading the old server's file sizes"
        return backing.file_sizes(self.c, databases.of(self.inst.spec.engine).login(self.inst), self.shell)

    def check(self, before: dict[str, int]) -> str:
        """The new server's files against `measure`'s; what was checked, said."""
        self.step = "comparing every table's and index's files with the old server's"
        who = databases.of(self.inst.spec.engine).login(self.inst)
        wrong = dumps.compare_counts(before, backing.file_sizes(self.c, who, self.shell), "bytes before", "after")
        if wrong:
            raise errors.BackupError("files differ from the old server's: " + "; ".join(wrong[:5]))
        return f"{len(before)} tables' and indexes' files ({sum(before.values()) >> 20} MiB) checked"

    def check_empty(self) -> None:
        """The new volume empty, or holding only PG_STAGE: an upgrade an interrupted attempt never installed (so
        nothing ever started on it), cleared here; --link's renamed pg_control in the old cluster named back."""
        for volume in self.new_volumes:
            if volumes.entries(self.shell, self.inst.spec.image, volume) == [postgres.PG_STAGE]:
                self.progress(f"{self.inst.metadata.name}: clearing an interrupted pg_upgrade's output in {volume}")
                self.written = True
                self.clear()
        super().check_empty()

    def clear(self) -> None:
        for volume in self.new_volumes:
            self.shell.run_once(self.inst.spec.image, [(volume, "/v", False)], "find /v -mindepth 1 -delete")
        if self.transfer in SPENDS:
            self.shell.run_once(
                self.inst.spec.image,
                [(self.old_volume, "/old", False)],
                postgres.PG_UNLINK,
                {"OLD_DATA": _join("/old", self.sub[0])},
            )
        self.written = False

    def roll_back(self) -> None:
        """As dump-restore's, and before it: a new volume the helper wrote is emptied again, and the old cluster's
        pg_control that --link or --swap renamed is given back its name (the new server never started)."""
        if self.written and not self.created:
            self.progress(f"rolling back: emptying {self.new_volumes[0]} again")
            self.clear()
        super().roll_back()

    def failed(self, what: str, e: BaseException, old_image: str) -> errors.BackupError:
        """Once the new server has started on data that --link or --swap took from the old cluster, the old cluster
        cannot start again: the new server is stopped (it failed a check), the consumers resumed, and the error names
        the backup taken first."""
        if not (self.transfer in SPENDS and self.created):
            return super().failed(what, e, old_image)
        reason = str(e) if isinstance(e, errors.DbstateError) else f"unexpected {type(e).__name__}"
        with contextlib.suppress(errors.DbstateError):
            self.runtime.stop(self.c, 30)
        self.resume()
        backup = self.backup.id if self.backup else "(none)"
        return errors.BackupError(
            f"{what} failed at '{self.step}': {reason}. The old cluster in {self.old_volume} cannot start again after "
            f"pg_upgrade --{self.transfer.value} started the new server: {self.c} is left stopped on "
            f"{self.new_volumes[0]}, unchecked. Start it by hand if the failure is understood, or restore backup "
            f"{backup} (`dbstate restore {self.inst.metadata.name} --from {backup} --to-new-volume VOLUME`)"
        )


def _join(*parts: str) -> str:
    return os.path.join(*parts).rstrip("/")


def upgrade(change: plan.Change, runtime: Runtime, shell: Shell, store: BackupStore, progress: Progress) -> None:
    """policy.upgrade: pg-upgrade (the diff's UPGRADE change with method pg-upgrade)."""
    inst, d = change.resource, change.payload
    if not isinstance(inst, spec.DatabaseInstance) or not isinstance(d, plan.Upgrade):
        raise errors.DbstateError(f"{change.key}: not an upgrade")
    was, new, name, old_image = d.from_major, d.to_major, inst.metadata.name, d.from_image
    transfer = spec.UpgradeTransfer(d.transfer or spec.UpgradeTransfer.COPY)
    what = f"upgrade of {name} {was} -> {new} by pg_upgrade --{transfer.value}"
    if len(d.moves) != 1:
        raise errors.BackupError(f"{what} not started: pg_upgrade moves one data volume, {len(d.moves)} move here")
    target, (old_volume, new_volume) = next(iter(d.moves.items()))
    job = _PgUpgrade(
        inst,
        d.container,
        kept_name(change.target, f"v{was}"),
        [new_volume],
        runtime,
        shell,
        store,
        progress,
        consumers=d.consumers,
        transfer=transfer,
        old_volume=old_volume,
    )
    with contextlib.ExitStack() as stack:
        try:
            env = _before_downtime(job, change, was, new, target, old_image)
            job.step = f"copying PostgreSQL {was} out of {old_image}"
            progress(f"{name}: {job.step}")
            tools, said = stack.enter_context(shell.toolbox(old_image, postgres.PG_TOOLS, postgres.PG_TRANSPLANT, env))
            progress(f"{name}: {said}")
            progress(f"{name}: {job.run_helper(f'{tools}:ro', env, 'prepare')}")
            job.make_private()
        except errors.DbstateError as e:
            job.leave_private()
            if job.written:  # the new cluster made in PG_STAGE: nothing else is in that volume
                with contextlib.suppress(errors.DbstateError):
                    job.clear()
            raise errors.BackupError(
                f"{what} not started: {e}; {change.target} still runs {old_image}, untouched"
            ) from e
        try:
            job.pause()
            job.isolate()
            job.step = "ending the old server's client sessions"
            who = databases.of(inst.spec.engine).login(inst)
            backing.answer(change.target, inst.spec.engine, who, shell, postgres.fence_sql(was))
            before = job.measure()
            job.stop()
            progress(f"{name}: pg_upgrade --{transfer.value} into {new_volume} (its consistency checks first)")
            progress(f"{name}: {job.run_helper(f'{tools}:ro', env, 'upgrade')}")
            job.install()
            job.switch()
            backing.wait_ready(job.c, inst.spec.engine, who, shell)
            job.check_major(new)
            checked = job.check(before)
            job.go_live()
        except Exception as e:
            raise job.failed(what, e, old_image) from e
    if transfer not in SPENDS:
        _fingerprint_old(job, old_image, old_volume, target)
    if transfer in SPENDS:
        job.kept_extra = {
            labels.SPENT: f"pg_upgrade --{transfer.value}",
            labels.BACKUP: job.backup.id if job.backup else "",
        }
    job.keep_inert()
    backup = job.backup.id if job.backup else "-"
    back = (
        f"{job.kept} and {old_volume} are kept: `dbstate rollback {name}` goes back"
        if transfer not in SPENDS
        else f"{old_volume} now belongs to the new cluster; the way back is backup {backup}"
    )
    progress(f"{name}: upgraded {was} -> {new} by pg_upgrade --{transfer.value}: {checked}; {back}")


def _before_downtime(
    job: _PgUpgrade, change: plan.Change, was: str, new: str, target: str, old_image: str
) -> dict[str, str]:
    """What must hold before the old server stops; the helpers' environment (no secret in it). An earlier attempt
    killed midway is finished first: its helpers waited for and removed, its uninstalled output cleared, the old
    server started again if it was left stopped."""
    inst, shell, name, c = job.inst, job.shell, job.inst.metadata.name, change.target
    pgdata = {"PGDATA": p} if (p := env_plain(inst, "PGDATA")) else {}
    new_target = next((v.target for v in inst.spec.volumes if v.source == job.new_volumes[0]), target)
    try:
        job.sub = (_old_sub(was, pgdata, target), postgres.data_dir(new, pgdata, new_target))
    except ValueError as e:
        raise errors.BackupError(str(e)) from e
    _leftovers(job)
    job.step = "checking the new volume"
    job.check_empty()
    who = databases.of(inst.spec.engine).login(inst)
    if not shell.running(c):
        job.progress(f"{name}: starting {c} (found stopped) to read its cluster's facts and back it up")
        job.runtime.start(c)
    backing.wait_ready(c, inst.spec.engine, who, shell, timeout=90)
    preflight(inst, c, shell, job.progress)
    if job.transfer in SHARED:
        job.layout()  # both volumes on one filesystem, or refused now
    job.step = "reading the old cluster's facts"
    facts = backing.answer(c, inst.spec.engine, who, shell, postgres.PG_CLUSTER)
    provider_sql = postgres.PG17_PROVIDER if int(was) >= 17 else postgres.PG_PROVIDER
    provider = backing.answer(c, inst.spec.engine, who, shell, provider_sql) if int(was) >= 15 else ""
    env = postgres.cluster_env(facts, provider) | {
        "OLD_MAJOR": was,
        "NEW_MAJOR": new,
        "OLD_IMAGE": old_image,
        "NEW_IMAGE": inst.spec.image,
        "TRANSFER": job.transfer.value,
    }
    if inst.spec.policy.backup.before_change or job.transfer in SPENDS:
        job.step = "the backup before the upgrade"
        job.backup = backing.take(
            backing.Server(inst, c, old_image),
            shell,
            job.store,
            revision=change.labels.get(REVISION),
            reason=f"before upgrade {was} -> {new} (pg_upgrade --{job.transfer.value})",
            progress=job.progress,
        )
        job.store.prune(name, inst.spec.policy.backup.keep)
    return env


def _old_sub(was: str, pgdata: dict[str, str], target: str) -> str:
    """Where the old cluster lies in its volume (mounted at `target` in the old container): at the declared PGDATA,
    unless the new major's image wants its data elsewhere (18's 18/docker below /var/lib/postgresql), then where the
    old major's images keep it. A wrong guess fails the helper's first step (no cluster there), before any downtime."""
    try:
        return postgres.data_dir(was, pgdata, target)
    except ValueError:
        return postgres.data_dir(was, {}, target)


def _fingerprint_old(job: _PgUpgrade, old_image: str, old_volume: str, target: str) -> None:
    """The cutover's fingerprint (`dbstate rollback` compares the new server with it to tell a write made since),
    taken once the new server serves, from the old cluster: pg_upgrade gave the new one the same rows, and --copy or
    --clone left the old volume as it was. A throw-away server of the old image reads it; the clients meanwhile write
    to the new server (a digest of every row is a scan of all the data: not in the downtime). When it fails, the
    kept server has no fingerprint and a rollback needs --discard-writes."""
    inst, name = job.inst, job.inst.metadata.name
    job.progress(f"{name}: the cutover's fingerprint, from the old cluster in {old_volume} (the new server serves)")
    env = {k: reveal(v) for k, v in inst.spec.env.items()}
    who = databases.of(inst.spec.engine).login(inst)
    try:
        with job.shell.scratch(old_image, env, old_volume, target) as old:
            backing.wait_ready(old, inst.spec.engine, who, job.shell)
            job.cutover = backing.fingerprint(old, inst.spec.engine, who, job.shell)
    except errors.DbstateError as e:
        job.progress(f"{name}: no fingerprint of the cutover ({e}): `dbstate rollback` will need --discard-writes")


def _leftovers(job: _PgUpgrade) -> None:
    """The helpers a killed attempt left: one still at work on these volumes (pg_upgrade goes on without dbstate)
    waited for, so that no server starts on a data directory it holds; every finished one removed (with the copy of
    the old userland it kept). Under the engine's lease no other dbstate uses them."""
    ours = {job.old_volume, *job.new_volumes}
    points = [p for v in ours if (p := job.runtime.volume_mountpoint(v))]
    for helper, running, mounts in job.shell.helpers():
        holds = any(m in ours or any(p.startswith(m.rstrip("/") + "/") for p in points) for m in mounts if m)
        if running and not holds:
            continue
        if running:
            job.progress(f"{job.inst.metadata.name}: waiting for {helper}, left at work by an interrupted attempt")
        job.shell.finish_helper(helper)
