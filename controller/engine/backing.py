"""Backups, their verification and restores, the way a DBA takes them: the engine's own tools run in the database's
container (no route to it needed), the dump streamed into a compressed file whose manifest records its sha256 and the
rows of every table as the dump held them, and a verification that restores it into a throw-away server of the same
image and compares the rows. Nothing here decides when: `apply` (before a destructive change), `run` (on schedule) and
the `backup`/`restore` commands do."""

from __future__ import annotations

import secrets as random
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass

from controller.core import databases, dumps, errors, live, spec
from controller.core.databases import Database, Login, Query
from controller.core.databases.postgres import Postgres
from controller.core.databases.redis import Redis, keys_read, keyspace
from controller.core.dumps import Manifest
from controller.engine.ports import BackupStore, Clock, Runtime, Shell, SystemClock

Progress = Callable[[str], None]
PROGRESS_EVERY = 2.0  # seconds between progress lines of a long dump or restore
READY_TIMEOUT = 180.0
MiB = 1 << 20


@dataclass(frozen=True)
class Server:
    """A running database server: its declaration, its container and the image it runs."""

    inst: spec.DatabaseInstance
    container: str
    image: str
    mounts: tuple[tuple[str, str], ...] = ()  # (volume or host path, where) as the container has them

    @property
    def data_mounts(self) -> tuple[tuple[str, str], ...]:
        """Where the server keeps its data: the container's mounts, else the declaration's."""
        return self.mounts or tuple((v.source, v.target) for v in self.inst.spec.volumes)

    @property
    def engine(self) -> spec.Engine:
        return self.inst.spec.engine

    @property
    def name(self) -> str:
        return self.inst.metadata.name


def running(state: spec.DesiredState, observed: live.LiveState, names: tuple[str, ...]) -> list[Server | str]:
    """Each named (or, without names, every declared) instance's running server; a message for one that is not."""
    declared = {i.metadata.name: i for i in state.instances}
    out: list[Server | str] = []
    for name in names or tuple(declared):
        inst = declared.get(name)
        if inst is None:
            out.append(f"{name}: no DatabaseInstance of that name (or its declaration has errors)")
            continue
        c = observed.container(inst.container_name)
        if c is None or c.state != "running":
            out.append(f"{name}: {inst.container_name} is {'missing' if c is None else c.state}: nothing to back up")
            continue
        data = tuple((m.source, m.destination) for m in c.mounts if m.type in ("volume", "bind"))
        out.append(Server(inst, c.name, c.image, data))
    return out


class _Meter:
    """Progress lines for a stream: at most one every PROGRESS_EVERY seconds."""

    def __init__(self, progress: Progress, what: str) -> None:
        self.progress, self.what = progress, what
        self.bytes, self.start, self.last = 0, time.monotonic(), time.monotonic()

    def tick(self, n: int) -> None:
        self.bytes += n
        now = time.monotonic()
        if now - self.last >= PROGRESS_EVERY:
            self.last = now
            rate = self.bytes / MiB / max(now - self.start, 1e-6)
            self.progress(f"{self.what}: {self.bytes / MiB:.0f} MiB ({rate:.0f} MiB/s)")


def take(
    server: Server,
    shell: Shell,
    store: BackupStore,
    *,
    revision: str | None,
    reason: str,
    progress: Progress,
    clock: Clock | None = None,
) -> Manifest:
    """A backup of the running server, written, then checked on disk against its manifest."""
    clock = clock or SystemClock()
    db = databases.of(server.engine)
    who = db.login(server.inst)
    started = clock.time()
    version = server_version(server.container, server.engine, who, shell)
    ident = store.new_id(server.name, started)
    fmt = db.backup_format
    counter = db.counter()
    meter = _Meter(progress, f"{server.name}: dumped")
    progress(f"{server.name}: backing up ({server.engine.value} {version}) to {ident}")
    with store.writing(server.name, ident, fmt) as out:
        chunks = (
            shell.stream(server.container, db.dump_argv(who), who.env, who.os_user)
            if db.sql
            else _rdb(server, _key_value(db), who, shell, progress)
        )
        try:
            for chunk in chunks:
                out.write(chunk)
                if counter is not None:
                    counter.feed(chunk)
                meter.tick(len(chunk))
        except errors.ExecFailed as e:
            raise errors.BackupError(f"backup of {server.name} failed: {e}") from e
        if out.raw_bytes == 0:
            raise errors.BackupError(f"backup of {server.name} failed: the dump was empty")
        sha = out.finish()
    manifest = Manifest(
        id=ident,
        instance=server.name,
        engine=server.engine.value,
        image=server.image,
        server_version=version,
        revision=revision,
        file=f"{ident}.{fmt}",
        format=fmt,
        size_bytes=out.size_bytes,
        raw_bytes=out.raw_bytes,
        sha256=sha,
        started=started,
        finished=clock.time(),
        counts=dict(counter.counts) if counter is not None else {},
        databases=list(counter.databases) if counter is not None else [],
        reason=reason,
    )
    manifest = store.save(manifest)
    store.check(manifest)
    tables = f", {len(manifest.counts)} tables" if db.sql else ""
    progress(
        f"{server.name}: backup {ident} written: {out.raw_bytes / MiB:.1f} MiB dumped, {out.size_bytes / MiB:.1f} MiB "
        f"stored{tables}, {manifest.finished - started:.1f} s"
    )
    return manifest


def _query(container: str, db: Database, who: Login, shell: Shell) -> Query:
    """Run a command of `db`'s in the container as `who`; its stdout, or an error naming the tool."""

    def query(argv: list[str]) -> str:
        ran = shell.run(container, argv, who.env, who.os_user)
        _ok(ran, db.tool, container)
        text = ran.stdout.decode(errors="replace")
        refused = db.refusal(text)
        if refused is not None:
            raise errors.BackupError(f"{db.tool} in {container}: {refused}")
        return text

    return query


def answer(container: str, engine: spec.Engine, who: Login, shell: Shell, sql: str) -> str:
    """One SQL statement's rows as the engine's client prints them (tab-separated, one per line)."""
    db = databases.of(engine)
    return _query(container, db, who, shell)(db.sql_argv(who, sql)).strip()


def _key_value(db: Database) -> Redis:
    if not isinstance(db, Redis):
        raise errors.BackupError(f"{db.engine.value} keeps no data file to copy")
    return db


def server_version(container: str, engine: spec.Engine, who: Login, shell: Shell) -> str:
    """What the server reports (PostgreSQL's server_version_num as a major, MariaDB's VERSION(), Redis's INFO)."""
    db = databases.of(engine)
    return db.server_version(who, _query(container, db, who, shell))


def _ok(ran: databases.Ran, tool: str, container: str) -> None:
    if ran.code != 0:
        raise errors.ExecFailed(tool, container, ran.code, ran.stderr)


def _config(container: str, db: Redis, who: Login, shell: Shell, key: str) -> str:
    lines = _query(container, db, who, shell)(db.cli_argv("CONFIG", "GET", key)).replace("\r", "").splitlines()
    return lines[1] if len(lines) > 1 else ""


def _rdb(server: Server, db: Redis, who: Login, shell: Shell, progress: Progress) -> Iterator[bytes]:
    """BGSAVE, wait for that very save to finish, then the RDB file as it is on the server's disk."""
    c = server.container
    query = _query(c, db, who, shell)
    directory, filename = _config(c, db, who, shell, "dir"), _config(c, db, who, shell, "dbfilename")
    if not directory or not filename:
        raise errors.BackupError(f"{c}: cannot read where Redis keeps its RDB file (CONFIG GET dir, dbfilename)")

    def persistence() -> dict[str, str]:
        text = query(db.cli_argv("INFO", "persistence")).replace("\r", "")
        return dict(ln.split(":", 1) for ln in text.splitlines() if ":" in ln)

    before = persistence()
    last_save = int(before.get("rdb_last_save_time", "0"))
    while int(time.time()) <= last_save:  # a save within this second would not be told apart
        time.sleep(0.2)
    query(db.cli_argv("BGSAVE", "SCHEDULE"))
    deadline = time.monotonic() + 3600
    while True:
        now = persistence()
        done = int(now.get("rdb_last_save_time", "0")) > last_save or int(now.get("rdb_saves", "0")) > int(
            before.get("rdb_saves", "0")
        )
        if done and now.get("rdb_bgsave_in_progress") == "0":
            if now.get("rdb_last_bgsave_status") != "ok":
                raise errors.BackupError(
                    f"{c}: BGSAVE failed (rdb_last_bgsave_status {now.get('rdb_last_bgsave_status')})"
                )
            break
        if time.monotonic() > deadline:
            raise errors.BackupError(f"{c}: BGSAVE did not finish within an hour")
        time.sleep(0.2)
    progress(f"{server.name}: BGSAVE done, copying {directory}/{filename}")
    yield from shell.stream(c, ["cat", "--", f"{directory.rstrip('/')}/{filename}"], {})


def counts(container: str, engine: spec.Engine, who: Login, shell: Shell) -> dict[str, int]:
    """The rows of every table of every database (the keys for Redis), as the server holds them now."""
    db = databases.of(engine)
    return db.counts(who, _query(container, db, who, shell))


def file_sizes(container: str, who: Login, shell: Shell) -> dict[str, int]:
    """PostgreSQL: each table's and index's files in bytes, read from the catalog (no row read, any size)."""
    db = databases.of(spec.Engine.POSTGRES)
    if not isinstance(db, Postgres):  # the registry's PostgreSQL module
        raise errors.BackupError("no PostgreSQL module to read the files' sizes")
    return db.file_sizes(who, _query(container, db, who, shell))


def extensions(container: str, engine: spec.Engine, who: Login, shell: Shell) -> set[str]:
    """The extensions the server's databases use."""
    db = databases.of(engine)
    return db.extensions(who, _query(container, db, who, shell))


def available_extensions(container: str, engine: spec.Engine, who: Login, shell: Shell) -> set[str] | None:
    """The extensions the server's image could create (None: the engine has none)."""
    db = databases.of(engine)
    return db.available_extensions(who, _query(container, db, who, shell))


def fingerprint(container: str, engine: spec.Engine, who: Login, shell: Shell) -> str:
    """A digest of every table's rows (Redis: its keys) as the server holds them now: equal fingerprints, no write."""
    return dumps.digest_of(digests(container, engine, who, shell))


def digests(container: str, engine: spec.Engine, who: Login, shell: Shell) -> dict[str, str]:
    """Each table's digest of its rows (`DATABASE/schema.table`), whatever their order."""
    db = databases.of(engine)
    return db.digests(who, _query(container, db, who, shell))


def wait_ready(container: str, engine: spec.Engine, who: Login, shell: Shell, timeout: float = READY_TIMEOUT) -> None:
    """Until the server answers over TCP inside its container (an image's first-start server listens on its socket
    only, then stops: that one is not the server)."""
    db = databases.of(engine)
    argv = db.ready_argv(who)
    deadline = time.monotonic() + timeout
    while True:
        if not shell.running(container):
            raise errors.BackupError(f"{container} stopped while starting: {shell.logs(container)[-600:]}")
        if db.is_ready(shell.run(container, argv, who.env)):
            return
        if time.monotonic() > deadline:
            raise errors.BackupError(f"{container} did not become ready within {timeout:.0f} s")
        time.sleep(0.1)  # each poll is an exec (~0.1 s): a cutover's downtime waits on this


def load(
    container: str,
    engine: spec.Engine,
    who: Login,
    manifest: Manifest,
    store: BackupStore,
    shell: Shell,
    progress: Progress,
) -> None:
    """Replay a SQL dump into a running server; its errors (but the expected ones) fail the load. PostgreSQL's psql
    runs it restricted (dumps.PgReplay) when it knows how; MariaDB's client in its sandbox mode."""
    meter = _Meter(progress, f"{container}: restored")
    db = databases.of(engine)
    replay = None
    asks = db.tool_version_argv()
    if asks is not None:
        version = shell.run(container, asks, {}).stdout.decode(errors="replace")
        restricts = db.restricts(version)
        if not restricts:
            progress(
                f"{container}: {version.strip() or 'its ' + db.tool} cannot restrict meta-commands (\\restrict): the "
                "backup's signature is what vouches for it"
            )
        replay = db.replay_filter(random.token_hex(16) if restricts else None)

    def chunks() -> Iterator[bytes]:
        if replay is not None:
            yield replay.start()
        for chunk in store.read(manifest):
            meter.tick(len(chunk))
            yield replay.feed(chunk) if replay is not None else chunk
        if replay is not None:
            yield replay.finish()

    ran = shell.run(container, db.restore_argv(who), who.env, who.os_user, stdin=chunks(), mutating=True)
    bad = db.restore_errors(ran.stderr)
    if replay is not None and replay.refused:
        bad = [f"meta-command refused at {replay.refused[0]}", *bad]
    if ran.code != 0 or bad:
        raise errors.BackupError(
            f"restoring {manifest.id} into {container} failed (exit {ran.code}): "
            f"{' / '.join(bad[:3]) or ran.stderr[-300:]}"
        )


def check_replayable(manifest: Manifest, store: BackupStore) -> None:
    """Before anything is changed: the backup is authentic (signed, its file as signed), and a PostgreSQL dump holds
    no meta-command but pg_dumpall's own `\\connect` (a backup is replayed as the superuser: it is code)."""
    store.check(manifest)
    scan = databases.of(manifest.engine).replay_filter(None)
    if scan is None:
        return
    for chunk in store.read(manifest):
        scan.feed(chunk)
    scan.finish()
    if scan.refused:
        raise errors.BackupError(
            f"backup {manifest.id} holds meta-commands that pg_dumpall never writes ({', '.join(scan.refused[:3])}): "
            "it is not replayed, nothing was changed"
        )


def verify(
    manifest: Manifest,
    inst: spec.DatabaseInstance,
    shell: Shell,
    store: BackupStore,
    progress: Progress,
    clock: Clock | None = None,
) -> Manifest:
    """Restore `manifest` into a throw-away server of the image it was taken from (an internal network, removed
    afterwards) and compare what it holds with what the dump held. Saves and returns the manifest marked verified."""
    clock = clock or SystemClock()
    check_replayable(manifest, store)
    engine = spec.Engine(manifest.engine)
    db = databases.of(engine)
    who, env = db.scratch(db.login(inst), random.token_urlsafe(18))
    progress(f"{manifest.instance}: verifying {manifest.id} in a throw-away {manifest.image}")
    with shell.scratch(manifest.image, env) as scratch:
        wait_ready(scratch, engine, who, shell)
        if not db.sql:
            got = _verify_rdb(scratch, _key_value(db), manifest, store, shell)
            want = manifest.counts or got
        else:
            load(scratch, engine, who, manifest, store, shell, progress)
            got, want = counts(scratch, engine, who, shell), manifest.counts
        wrong = dumps.compare_counts(want, got)
        if wrong:
            raise errors.BackupError(f"backup {manifest.id} does not restore what it holds: {'; '.join(wrong[:5])}")
    done = store.save(manifest.with_verified(clock.time(), got))
    progress(f"{manifest.instance}: {manifest.id} verified ({_summary(got)})")
    return done


def _summary(got: dict[str, int]) -> str:
    if set(got) == {"keys"}:
        return f"{got['keys']} keys"
    return f"{len(got)} tables, {sum(got.values())} rows"


VERIFY_PORT = "6390"
SCRATCH_DIR = "/tmp"  # noqa: S108 (inside the throw-away container, not on the host)


def _verify_rdb(scratch: str, db: Redis, manifest: Manifest, store: BackupStore, shell: Shell) -> dict[str, int]:
    """The RDB checker reads the whole file (checksums, every key); a second server in the scratch container loads it
    and counts its keys."""
    shell.put_file(scratch, SCRATCH_DIR, "dbstate-verify.rdb", store.read(manifest), manifest.raw_bytes)
    check = shell.run(scratch, db.check_argv(f"{SCRATCH_DIR}/dbstate-verify.rdb"), {})
    read = keys_read(check.stdout.decode(errors="replace"))
    if check.code != 0 or read is None:
        raise errors.BackupError(
            f"backup {manifest.id}: {db.check_rdb} rejects it: {check.stdout.decode(errors='replace')[-300:]}"
        )
    started = shell.run(scratch, db.scratch_server_argv(VERIFY_PORT, SCRATCH_DIR, "dbstate-verify.rdb"), {})
    _ok(started, db.server, scratch)
    deadline = time.monotonic() + READY_TIMEOUT
    while True:
        ran = shell.run(scratch, db.cli_argv("-p", VERIFY_PORT, "INFO", "keyspace"), {})
        text = ran.stdout.decode(errors="replace")
        if ran.code == 0 and "# Keyspace" in text and "LOADING" not in text:
            break
        if time.monotonic() > deadline:
            raise errors.BackupError(f"backup {manifest.id}: the throw-away {db.server} did not load it")
        time.sleep(0.3)
    keys = keyspace(text)
    if keys != read:
        raise errors.BackupError(f"backup {manifest.id}: {read} keys in the file, {keys} loaded")
    return {"keys": keys}


def _clear(server: Server, who: Login, manifest: Manifest, shell: Shell) -> None:
    """Make room for the databases the dump recreates (each engine says how: core/databases)."""
    db, c = databases.of(server.engine), server.container
    version = server_version(c, server.engine, who, shell)
    for database, sql in db.clear_statements(list(manifest.databases), version):
        ran = shell.run(c, db.sql_argv(who, sql, database), who.env, who.os_user, mutating=True)
        _ok(ran, db.tool, c)


def restore(
    server: Server,
    manifest: Manifest,
    shell: Shell,
    store: BackupStore,
    runtime: Runtime,
    *,
    revision: str | None,
    progress: Progress,
) -> Manifest:
    """Replace what the server holds with what `manifest` holds, after a backup of what it holds now (returned: the
    way back). The databases the dump holds are dropped and recreated from it; others are left alone. Redis: the
    server is stopped, its RDB file replaced, and started again."""
    check_replayable(manifest, store)
    if manifest.engine != server.engine.value:
        raise errors.BackupError(
            f"backup {manifest.id} is of {manifest.engine}; {server.name} runs {server.engine.value}"
        )
    safety = take(server, shell, store, revision=revision, reason=f"before restore of {manifest.id}", progress=progress)
    db = databases.of(server.engine)
    who = db.login(server.inst)
    if not db.sql:
        _restore_rdb(server, _key_value(db), manifest, who, shell, store, runtime, progress)
        want = manifest.counts
    else:
        progress(f"{server.name}: dropping {', '.join(manifest.databases) or 'nothing'} to restore {manifest.id}")
        _clear(server, who, manifest, shell)
        load(server.container, server.engine, who, manifest, store, shell, progress)
        want = manifest.counts
    got = counts(server.container, server.engine, who, shell)
    if db.sql:
        got = {k: v for k, v in got.items() if k.split("/", 1)[0] in manifest.databases}
    wrong = dumps.compare_counts(want, got) if want else []
    if wrong:
        raise errors.BackupError(
            f"{server.name} does not hold what {manifest.id} holds after the restore: {'; '.join(wrong[:5])} (what it "
            f"held before is in {safety.id})"
        )
    progress(f"{server.name}: restored from {manifest.id} ({_summary(got)}); before it: {safety.id}")
    return safety


def _restore_rdb(
    server: Server,
    db: Redis,
    manifest: Manifest,
    who: Login,
    shell: Shell,
    store: BackupStore,
    runtime: Runtime,
    progress: Progress,
) -> None:
    """Stop the server, put the RDB file in place, start it. With `appendonly yes` Redis would load its AOF and ignore
    the RDB: the old AOF is set aside, a helper server of the same image loads the RDB with AOF off on the stopped
    server's mounts and turns AOF on, which rewrites it from the loaded data; then the server starts on both."""
    c = server.container
    directory, filename = _config(c, db, who, shell, "dir"), _config(c, db, who, shell, "dbfilename")
    aof = _config(c, db, who, shell, "appendonly") == "yes"
    append = (_config(c, db, who, shell, "appenddirname"), _config(c, db, who, shell, "appendfilename"))
    progress(f"{server.name}: stopping {c} to replace {directory}/{filename}")
    runtime.stop(c, 30)  # returns once it has stopped (and written its own save, which the restore replaces)
    shell.put_file(c, directory, filename, store.read(manifest), manifest.raw_bytes)
    if aof:
        progress(f"{server.name}: appendonly yes: rewriting the AOF from {filename} in a helper on {c}'s data")
        script = db.aof_rewrite(directory, filename, *append)
        code, out = shell.run_once(server.image, [(src, dst, False) for src, dst in server.data_mounts], script)
        if code != 0:
            raise errors.BackupError(
                f"{server.name}: rewriting the AOF from the restored RDB failed ({out.strip()[-300:]}); {c} is left "
                f"stopped with the restored {filename} and its old AOF set aside (.dbstate-before-restore)"
            )
    runtime.start(c)
    wait_ready(c, server.engine, who, shell)


def verifications_due(
    instances: Iterable[spec.DatabaseInstance], store: BackupStore, now: float
) -> list[tuple[spec.DatabaseInstance, Manifest]]:
    """The instances whose newest verified backup is older than policy.backup.verify, with the backup to verify:
    their newest, unless it was verified already (then only a new backup can make the signal fresh again)."""
    out = []
    for inst in instances:
        every = inst.spec.policy.backup.verify
        taken = store.manifests(inst.metadata.name) if every is not None else []
        if every is None or not taken or inst.spec.policy.suspended or taken[-1].verified is not None:
            continue
        newest = max((m.verified for m in taken if m.verified is not None), default=None)
        if newest is None or now - newest >= spec.duration_seconds(every):
            out.append((inst, taken[-1]))
    return out


def newest(instances: Iterable[spec.DatabaseInstance], store: BackupStore) -> dict[str, tuple[Manifest, float | None]]:
    """Each instance's newest backup, and when its newest verified one was verified (None: never)."""
    out = {}
    for inst in instances:
        taken = store.manifests(inst.metadata.name)
        if taken:
            out[inst.metadata.name] = (taken[-1], max((m.verified for m in taken if m.verified), default=None))
    return out


def due(
    instances: Iterable[spec.DatabaseInstance], observed: live.LiveState, store: BackupStore, now: float
) -> list[Server]:
    """The running instances whose policy.backup.schedule has passed since their newest backup (any reason)."""
    out = []
    for inst in instances:
        every = inst.spec.policy.backup.schedule
        if every is None or inst.spec.policy.suspended:
            continue
        c = observed.container(inst.container_name)
        if c is None or c.state != "running":
            continue
        taken = store.manifests(inst.metadata.name)
        if taken and now - taken[-1].finished < spec.duration_seconds(every):
            continue
        out.append(Server(inst, c.name, c.image))
    return out
