"""/metrics through prometheus_client: every series of the controller with its type, the process collectors beside
them, and label values escaped by the client (a newline in a server's version cannot break a line)."""

from __future__ import annotations

from prometheus_client.parser import text_string_to_metric_families

from controller.adapters.prometheus import Exposition, render
from controller.core.health import ProbeResult
from controller.engine.metrics import Metrics


def samples(text: str, host: str = "default") -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """The samples of one engine (dbstate's series all carry `host`), without that label."""
    out = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            labels = dict(s.labels)
            if s.name.startswith("dbstate_") and labels.pop("host") != host:
                continue
            out[(s.name, tuple(sorted(labels.items())))] = s.value
    return out


def types(text: str) -> dict[str, str]:
    return {f.name: f.type for f in text_string_to_metric_families(text)}


def test_a_pass_is_counted_timed_and_described():
    m = Metrics()
    probes = {"pg": ProbeResult("pg", "10.0.0.2", True, version="15.4", rtt_ms=12.5)}
    m.observe_pass(
        "ok", 0.3, [("start", "ok"), ("create", "failed")], {"orphan": 2}, {"DatabaseInstance/pg": 1}, {"pg": 1}, probes
    )
    m.failed_pass()
    m.engine_up, m.ready, m.leader = 1, 1, 1
    text = render(m)
    got = samples(text)
    assert got[("dbstate_passes_total", (("result", "ok"),))] == 1
    assert got[("dbstate_passes_total", (("result", "error"),))] == 1
    assert got[("dbstate_passes_total", (("result", "failed"),))] == 0
    assert got[("dbstate_pass_duration_seconds_bucket", (("le", "0.25"),))] == 0
    assert got[("dbstate_pass_duration_seconds_bucket", (("le", "0.5"),))] == 1
    assert got[("dbstate_pass_duration_seconds_count", ())] == 1
    assert got[("dbstate_changes_total", (("action", "create"), ("outcome", "failed")))] == 1
    assert got[("dbstate_findings", (("type", "orphan"),))] == 2
    assert got[("dbstate_drift", (("kind", "DatabaseInstance"), ("name", "pg")))] == 1
    assert got[("dbstate_instance_up", (("name", "pg"),))] == 1
    assert got[("dbstate_instance_probe_rtt_seconds", (("name", "pg"),))] == 0.0125
    assert got[("dbstate_instance_version_info", (("name", "pg"), ("version", "15.4")))] == 1
    assert got[("dbstate_leader", ())] == 1 and got[("dbstate_ready", ())] == 1
    kinds = types(text)
    assert kinds["dbstate_passes"] == "counter" and kinds["dbstate_pass_duration_seconds"] == "histogram"
    assert kinds["dbstate_instance_up"] == "gauge"
    assert ("process_resident_memory_bytes", ()) in got  # the client's process collector
    assert any(name == "python_info" for name, _ in got)


def test_blocking_findings_are_counted_from_the_one_table_of_finding_types():
    from controller.core.plan import BLOCKING, FindingType

    assert {t for t in FindingType if t.blocks} == BLOCKING
    m = Metrics()
    m.observe_pass("ok", 0.1, [], {"orphan": 2, "volume-lost": 1, "name-conflict": 3}, {}, {})
    got = samples(render(m))
    assert got[("dbstate_blocking_findings", ())] == 4  # orphans report, they do not hold a declared resource back
    m.observe_pass("ok", 0.1, [], {"orphan": 2}, {}, {})
    assert samples(render(m))[("dbstate_blocking_findings", ())] == 0


def test_label_values_are_escaped_even_a_newline():
    m = Metrics()
    m.observe_pass("ok", 0.1, [], {}, {}, {}, {"x": ProbeResult("x", "", True, version='7"\\evil\nline')})
    text = render(m)
    assert 'dbstate_instance_version_info{host="default",name="x",version="7\\"\\\\evil\\nline"} 1.0' in text
    assert samples(text)[("dbstate_instance_version_info", (("name", "x"), ("version", '7"\\evil\nline')))] == 1


def test_a_failed_pass_does_not_move_the_last_success():
    m = Metrics()
    m.observe_pass("failed", 0.1, [("start", "failed")], {}, {}, {})
    assert samples(render(m))[("dbstate_last_successful_pass_timestamp_seconds", ())] == 0


def test_backups_and_a_lost_lease_are_series():
    m = Metrics()
    m.backed_up("kv", 1700000000.5, 4096)
    m.backup_failed("other")
    m.verified("kv", 1700000100.0)
    m.verified("kv", 1600000000.0)  # an older verification never moves the signal back
    m.verify_failed("kv")
    m.lease_lost = 2
    got = samples(render(m))
    assert got[("dbstate_backup_last_verified_timestamp_seconds", (("instance", "kv"),))] == 1700000100.0
    assert got[("dbstate_backup_verify_failures_total", (("instance", "kv"),))] == 1
    assert got[("dbstate_backup_last_success_timestamp_seconds", (("instance", "kv"),))] == 1700000000.5
    assert got[("dbstate_backup_last_size_bytes", (("instance", "kv"),))] == 4096
    assert got[("dbstate_backup_failures_total", (("instance", "other"),))] == 1
    assert got[("dbstate_lease_lost_total", ())] == 2


def test_each_engine_has_its_series_under_its_host_label():
    a, b = Metrics(), Metrics()
    a.observe_pass("ok", 0.2, [], {}, {"DatabaseInstance/pg": 0}, {"pg": 1})
    b.failed_pass()
    a.engine_up, b.engine_up = 1, 0
    text = Exposition({"a": a, "b": b}).render()
    for host, up, passes in (("a", 1, ("ok", 1)), ("b", 0, ("error", 1))):
        got = samples(text, host)
        assert got[("dbstate_engine_up", ())] == up
        assert got[("dbstate_passes_total", (("result", passes[0]),))] == passes[1]
    assert samples(text, "a")[("dbstate_instance_up", (("name", "pg"),))] == 1
    assert ("dbstate_instance_up", (("name", "pg"),)) not in samples(text, "b")
    assert sum(1 for f in text_string_to_metric_families(text) if f.name == "dbstate_engine_up") == 1  # one family
