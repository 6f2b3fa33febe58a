"""The state database on real SQLite files: passes with their outcomes, resources, volumes seen and acks, probes'
consecutive failures, the alias cache, and a read-only reader beside a writer."""

from __future__ import annotations

from pathlib import Path

import pytest

from controller.adapters import store
from controller.core import errors
from controller.core.health import ProbeResult
from controller.core.plan import Action, Change, Finding, FindingType, Outcome, ResourceStatus


def test_a_pass_with_its_outcomes_findings_and_resources(tmp_path: Path):
    with store.Store(tmp_path / "s.db") as db:
        pid = db.begin_pass("apply", "abc123", False)
        change = Change(Action.START, "DatabaseInstance", "pg", "pg-db", "container is exited")
        db.record_outcome(pid, Outcome(change, "ok", "done", 0.25))
        db.record_findings(pid, [Finding(FindingType.ORPHAN, "DatabaseInstance", "old", "no longer declared")])
        db.finish_pass(pid, 1, 0, 1, 0)
        db.set_resources([ResourceStatus("DatabaseInstance/pg", "in-sync", "", 0, None, "abc123")])
    with store.Store(tmp_path / "s.db", readonly=True) as ro:
        (last,) = ro.passes()
        assert (last["command"], last["revision"], last["changes"], last["findings"]) == ("apply", "abc123", 1, 1)
        (row,) = ro.changes_of(last["id"])
        assert (row["action"], row["target"], row["status"], row["seconds"]) == ("start", "pg-db", "ok", 0.25)
        assert ro.resources()[0]["key"] == "DatabaseInstance/pg"


def test_resources_are_replaced_by_each_pass(tmp_path: Path):
    with store.Store(tmp_path / "s.db") as db:
        db.set_resources([ResourceStatus("Volume/a", "in-sync", "", 0, None, None)])
        db.set_resources([ResourceStatus("Volume/b", "failing", "boom", 2, 123.0, None)])
        assert [(r["key"], r["attempts"], r["next_retry"]) for r in db.resources()] == [("Volume/b", 2, 123.0)]


def test_seeing_a_volume_again_consumes_its_acknowledgement(tmp_path: Path):
    with store.Store(tmp_path / "s.db") as db:
        db.mark_volumes_seen({"data": None})
        db.ack("volume-lost", "data")
        assert db.acknowledged("volume-lost") == {"data"} and db.seen_volumes() == {"data": None}
        db.mark_volumes_seen({"data": "2026-01-01T00:00:00Z"})
        assert db.acknowledged("volume-lost") == frozenset()
        db.mark_volumes_seen({"data": None})  # not known now: the identity seen before stays
        assert db.seen_volumes() == {"data": "2026-01-01T00:00:00Z"}


def test_a_database_written_before_volume_identities_is_migrated(tmp_path: Path):
    import sqlite3

    old = sqlite3.connect(tmp_path / "old.db")
    old.execute("CREATE TABLE volumes_seen (name TEXT PRIMARY KEY, first_seen REAL NOT NULL, last_seen REAL NOT NULL)")
    old.execute("INSERT INTO volumes_seen VALUES ('data', 1, 1)")
    old.commit()
    old.close()
    with store.Store(tmp_path / "old.db") as db:
        assert db.seen_volumes() == {"data": None}
        db.mark_volumes_seen({"data": "t1"})
        assert db.seen_volumes() == {"data": "t1"}


def test_consecutive_probe_failures_count_and_reset(tmp_path: Path):
    down = ProbeResult("pg", "10.0.0.2", False, error="refused")
    up = ProbeResult("pg", "10.0.0.2", True, version="15.4", rtt_ms=3.0)
    with store.Store(tmp_path / "s.db") as db:
        assert db.record_probes([down], keep=["pg"]) == {"pg": 1}
        assert db.record_probes([down], keep=["pg"]) == {"pg": 2}
        assert db.record_probes([up], keep=["pg"]) == {"pg": 0}
        db.record_probes([down], keep=["pg"])
        (h,) = db.health()
        assert (h["failures"], h["version"], h["reachable"]) == (1, "15.4", 0) and h["last_ok"] is not None
        db.record_probes([], keep=[])  # pg is no longer declared: forgotten
        assert db.health() == []


def test_the_alias_cache_keeps_exactly_the_endpoints_seen(tmp_path: Path):
    with store.Store(tmp_path / "s.db") as db:
        db.save_endpoint_aliases({"e1": ("pg", "db"), "e2": ()})
        db.save_endpoint_aliases({"e2": ()})
        assert db.endpoint_aliases() == {"e2": ()}


def test_an_unwritable_place_gives_no_store_rather_than_an_error(tmp_path: Path):
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    assert store.open_optional(blocker / "state.db") is None


def test_the_file_is_private_in_a_private_directory(tmp_path: Path):
    path = tmp_path / "new" / "state.db"
    with store.Store(path) as db:
        db.mark_volumes_seen({"data": None})
    assert path.parent.stat().st_mode & 0o777 == 0o700
    for f in path.parent.iterdir():  # the database and its -wal / -shm files
        assert f.stat().st_mode & 0o777 == 0o600, f
    loose = tmp_path / "loose.db"
    loose.touch(mode=0o644)
    loose.chmod(0o644)
    store.Store(loose).close()
    assert loose.stat().st_mode & 0o777 == 0o600


def test_a_garbage_file_is_a_clear_error_naming_it_never_ignored(tmp_path: Path):
    import pytest

    from controller.core.errors import StateError

    garbage = tmp_path / "state.db"
    garbage.write_bytes(b"this is not sqlite at all, but it is somebody's file\n" * 100)
    for opener in (lambda: store.Store(garbage), lambda: store.Store(garbage, readonly=True)):
        with pytest.raises(StateError, match=f"{garbage} is not a dbstate state database"):
            opener()
    with pytest.raises(StateError):
        store.open_optional(garbage)  # not "work without history" as if nothing were wrong
    assert garbage.read_bytes().startswith(b"this is not sqlite")  # untouched


FIXTURE = Path(__file__).resolve().parents[2] / "fixtures" / "state-release-0.1.sql"


def test_a_database_of_the_previous_release_opens_migrated_with_everything_it_held(tmp_path: Path):
    import sqlite3

    path = tmp_path / "state.db"
    old = sqlite3.connect(path)
    old.executescript(FIXTURE.read_text())  # written by 0.1.0's own Store, which set no schema version
    old.close()
    with store.Store(path) as db:
        assert db.version() == store.SCHEMA_VERSION
        assert db.seen_volumes() == {"pg_data": "abc123"}
        assert set(db.adoptions()) == {"DatabaseInstance/pg"}
        assert "DatabaseInstance/kv" in db.suspensions()
        (last,) = db.passes()
        assert last["revision"] == "c0ffee" and [c["target"] for c in db.changes_of(last["id"])] == ["pg_data"]
        indexes = {r[0] for r in db.db.execute("SELECT name FROM sqlite_master WHERE type = 'index'")}
        assert {"passes_started", "changes_pass", "findings_pass"} <= indexes
        assert db.db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    with store.Store(path) as db:  # opening again changes nothing
        assert db.version() == store.SCHEMA_VERSION and len(db.passes()) == 1


def test_a_database_of_a_newer_release_is_refused_by_name(tmp_path: Path):
    path = tmp_path / "state.db"
    with store.Store(path) as db:
        db.db.execute(f"PRAGMA user_version = {store.SCHEMA_VERSION + 1}")
    with pytest.raises(errors.StateError, match=r"state.db was written by a newer dbstate .*pass another --state"):
        store.Store(path)


def test_a_truncated_file_is_a_clear_error_naming_it(tmp_path: Path):
    path = tmp_path / "state.db"
    with store.Store(path) as db:
        for _ in range(50):
            db.begin_pass("run", None, None)
        db.db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 3])
    with pytest.raises(errors.StateError, match=r"state.db"):
        db = store.Store(path)
        db.passes(limit=100)


def test_retention_forgets_old_passes_never_the_newest_nor_the_facts(tmp_path: Path):
    with store.Store(tmp_path / "state.db") as db:
        ids = [db.begin_pass("run", None, None) for _ in range(3)]
        db.db.execute("UPDATE passes SET started = 100 WHERE id IN (?, ?)", (ids[0], ids[1]))
        db.db.execute("UPDATE passes SET started = 50 WHERE id = ?", (ids[2],))  # the newest, however old
        change = Change(Action.START, "DatabaseInstance", "pg", "pg-db", "stopped")
        for i in ids:
            db.record_outcome(i, Outcome(change, "ok", "done", 0.1))
            db.record_findings(i, [Finding(FindingType.ORPHAN, "Container", "x", "m")])
        db.mark_volumes_seen({"pg_data": "id1"})
        assert db.prune(before=1000) == 2
        assert [p["id"] for p in db.passes()] == [ids[2]]
        assert db.db.execute("SELECT count(*) FROM changes").fetchone()[0] == 1
        assert db.db.execute("SELECT count(*) FROM findings").fetchone()[0] == 1
        assert db.seen_volumes() == {"pg_data": "id1"}
        assert db.prune(before=1000) == 0


def test_each_engine_replaces_only_its_own_rows(tmp_path: Path):
    path = tmp_path / "s.db"
    with store.Store(path, host="a") as a, store.Store(path, host="b") as b:
        a.set_resources([ResourceStatus("Volume/va", "in-sync", "", 0, None, None)])
        b.set_resources([ResourceStatus("Volume/vb", "drifted", "", 0, None, None)])
        a.set_resources([ResourceStatus("Volume/va2", "in-sync", "", 0, None, None)])  # a's next pass
        assert [(r["host"], r["key"]) for r in b.resources()] == [("a", "Volume/va2"), ("b", "Volume/vb")]
        a.save_endpoint_aliases({"e1": ("x",)})
        b.save_endpoint_aliases({"e2": ("y",)})
        assert a.endpoint_aliases() == {"e1": ("x",)} and b.endpoint_aliases() == {"e2": ("y",)}
        a.record_probes([ProbeResult("kv-a", "10.0.0.2", False, error="down")], keep=["kv-a"])
        b.record_probes([ProbeResult("kv-b", "10.0.1.2", True)], keep=["kv-b"])  # keeps a's instance too
        assert {h["instance"]: h["host"] for h in a.health()} == {"kv-a": "a", "kv-b": "b"}
        a.set_overview({"findings": []})
        b.set_overview({"findings": [{"type": "orphan"}]})
        assert b.overviews() == {"a": {"findings": []}, "b": {"findings": [{"type": "orphan"}]}}
        pid = a.begin_pass("run", "abc", False, "start")
        a.finish_pass(pid, 0, 0, 0, 0)
        b.record_failed_pass("run", "resync", 100.0, "cannot reach the Docker engine at tcp://x")
        last = a.last_passes()
        assert set(last) == {"a", "b"} and last["a"]["error"] is None
        assert last["b"]["error"] == "cannot reach the Docker engine at tcp://x" and last["b"]["errors"] == 1


def test_a_schema_3_database_keeps_its_rows_under_the_default_engine(tmp_path: Path):
    import sqlite3

    path = tmp_path / "s.db"
    with store.Store(path) as db:
        db.set_resources([ResourceStatus("Volume/v", "in-sync", "", 0, None, None)])
        db.set_overview({"findings": [{"type": "orphan"}]})
    raw = sqlite3.connect(path)  # as schema 3 had them: the overview in its one-row table, no engine anywhere
    raw.execute("CREATE TABLE overview (id INTEGER PRIMARY KEY CHECK (id = 1), body TEXT NOT NULL)")
    raw.execute("""INSERT INTO overview VALUES (1, '{"pending": []}')""")
    raw.execute("DROP TABLE overviews")
    for table in ("resources", "endpoint_aliases", "health"):
        raw.execute(f"ALTER TABLE {table} DROP COLUMN host")
    raw.execute("ALTER TABLE passes DROP COLUMN host")
    raw.execute("ALTER TABLE passes DROP COLUMN error")
    raw.execute("PRAGMA user_version = 3")
    raw.commit()
    raw.close()
    with store.Store(path) as db:
        assert db.version() == store.SCHEMA_VERSION
        assert [(r["host"], r["key"]) for r in db.resources()] == [("default", "Volume/v")]
        assert db.overviews() == {"default": {"pending": []}}


def test_a_job_is_claimed_once_reports_its_progress_and_result_and_only_a_queued_one_is_withdrawn(tmp_path: Path):
    with store.Store(tmp_path / "s.db") as command, store.Store(tmp_path / "s.db") as controller:
        assert controller.controller_seen("ctl-1") is None
        controller.controller_alive("ctl-1", ["default"])
        seen = command.controller_seen("ctl-1")
        assert seen is not None
        first = command.enqueue_job("default", "restore", "pg", {"source": "pg-1", "to_new_volume": None}, "me@h")
        other_engine = command.enqueue_job("edge", "rollback", "kv", {}, "me@h")
        job = controller.claim_job(["default"], "ctl-1")
        assert job is not None and job["id"] == first and job["args"] == {"source": "pg-1", "to_new_volume": None}
        assert controller.claim_job(["default"], "ctl-2") is None  # claimed once
        assert not command.cancel_job(first)  # running: not withdrawn
        controller.job_says(first, "pg: dropping app")
        controller.finish_job(first, 0, "restored\n")
        done = command.job(first)
        assert done is not None
        assert (done["state"], done["exit_code"], done["log"], done["output"]) == (
            "done",
            0,
            "pg: dropping app\n",
            "restored\n",
        )
        assert command.cancel_job(other_engine) and controller.claim_job(["edge"], "ctl-1") is None
        controller.controller_gone("ctl-1")
        assert command.controller_seen("ctl-1") is None
    with store.Store(tmp_path / "s.db", readonly=True) as reader:
        assert [(j["id"], j["state"]) for j in reader.jobs()] == [(other_engine, "cancelled"), (first, "done")]


def test_a_reader_of_a_database_from_before_the_jobs_sees_none(tmp_path: Path):
    import sqlite3

    raw = sqlite3.connect(tmp_path / "old.db")
    raw.execute("CREATE TABLE passes (id INTEGER PRIMARY KEY)")
    raw.execute("PRAGMA user_version = 4")
    raw.commit()
    raw.close()
    with store.Store(tmp_path / "old.db", readonly=True) as reader:
        assert reader.jobs() == []
