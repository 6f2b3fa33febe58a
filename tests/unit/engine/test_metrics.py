"""The controller's metrics in the Prometheus text format: every series, its type, and label values escaped."""

from __future__ import annotations

import re

from controller.core.health import ProbeResult
from controller.engine.metrics import Metrics

LINE = re.compile(r'^[a-z_]+(\{[a-z_]+="(?:[^"\\]|\\.)*"(,[a-z_]+="(?:[^"\\]|\\.)*")*\})? -?[0-9.e+]+$')


def test_a_pass_is_counted_timed_and_described():
    m = Metrics()
    probes = {"pg": ProbeResult("pg", "10.0.0.2", True, version="15.4", rtt_ms=12.5)}
    m.observe_pass(
        "ok", 0.3, [("start", "ok"), ("create", "failed")], {"orphan": 2}, {"DatabaseInstance/pg": 1}, {"pg": 1}, probes
    )
    m.failed_pass()
    m.engine_up, m.ready, m.leader = 1, 1, 1
    text = m.render()
    assert 'dbstate_passes_total{result="ok"} 1' in text
    assert 'dbstate_passes_total{result="error"} 1' in text
    assert 'dbstate_passes_total{result="failed"} 0' in text
    assert 'dbstate_pass_duration_seconds_bucket{le="0.25"} 0' in text
    assert 'dbstate_pass_duration_seconds_bucket{le="0.5"} 1' in text
    assert "dbstate_pass_duration_seconds_count 1" in text
    assert 'dbstate_changes_total{action="create",outcome="failed"} 1' in text
    assert 'dbstate_findings{type="orphan"} 2' in text
    assert 'dbstate_drift{kind="DatabaseInstance",name="pg"} 1' in text
    assert 'dbstate_instance_up{name="pg"} 1' in text
    assert 'dbstate_instance_probe_rtt_seconds{name="pg"} 0.012500' in text
    assert 'dbstate_instance_version_info{name="pg",version="15.4"} 1' in text
    assert "dbstate_leader 1" in text and "dbstate_ready 1" in text
    for line in text.splitlines():
        assert line.startswith("# HELP ") or line.startswith("# TYPE ") or LINE.match(line), line


def test_label_values_are_escaped():
    m = Metrics()
    m.observe_pass("ok", 0.1, [], {}, {}, {}, {"x": ProbeResult("x", "", True, version='7"\\evil')})
    assert 'dbstate_instance_version_info{name="x",version="7\\"\\\\evil"} 1' in m.render()


def test_a_failed_pass_does_not_move_the_last_success():
    m = Metrics()
    m.observe_pass("failed", 0.1, [("start", "failed")], {}, {}, {})
    assert "dbstate_last_successful_pass_timestamp_seconds 0.000" in m.render()
