"""What `deploy/` ships for Prometheus and Grafana: the alert rules pass `promtool check rules` and fire in
`promtool test rules`, and every series the rules and the dashboard name is one dbstate exposes."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

from controller.adapters.prometheus import render
from controller.core.health import ProbeResult
from controller.engine.metrics import Metrics

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"
RULES = DEPLOY / "prometheus" / "alerts.yaml"
DASHBOARD = DEPLOY / "grafana" / "dbstate.json"
DASHBOARDS = sorted((DEPLOY / "grafana").glob("*.json"))  # dbstate's own, and one per engine
NAME = re.compile(r"\b((?:dbstate|process)_[a-z_]+)\b")


def promtool() -> str:
    found = shutil.which("promtool")
    assert found, "promtool is missing: `bash scripts/setup` installs Debian's prometheus package, which has it"
    return found


def test_the_alert_rules_are_valid_and_fire_as_their_tests_say() -> None:
    checked = subprocess.run([promtool(), "check", "rules", str(RULES)], capture_output=True, text=True, timeout=60)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert "SUCCESS: 25 rules found" in checked.stdout
    tested = subprocess.run(
        [promtool(), "test", "rules", "alerts_test.yaml"],
        cwd=RULES.parent,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert tested.returncode == 0 and "SUCCESS" in tested.stdout, tested.stdout + tested.stderr


def exposed() -> set[str]:
    m = Metrics()
    m.observe_pass("ok", 0.2, [("start", "ok")], {"orphan": 1}, {"DatabaseInstance/pg": 1}, {"pg": 1},
                   {"pg": ProbeResult("pg", "10.0.0.2", True, version="15.4", rtt_ms=3.0)})  # fmt: skip
    m.backed_up("pg", 1.0, 10)
    m.verified("pg", 2.0)
    m.verify_failed("pg")
    names = set()
    for line in render(m).splitlines():
        if line.startswith("# TYPE ") or not line.startswith("#"):
            names.add(line.removeprefix("# TYPE ").split("{")[0].split()[0])
    return names


def named_in_deploy() -> set[str]:
    """Every series the alert rules and the dashboard name."""
    exprs = [t["expr"] for d in DASHBOARDS for p in json.loads(d.read_text())["panels"] for t in p["targets"]]
    return set(NAME.findall(RULES.read_text())) | {n for e in exprs for n in NAME.findall(e)}


def test_every_series_the_rules_and_the_dashboard_name_is_exposed() -> None:
    named = named_in_deploy()
    assert {
        "dbstate_instance_up",
        "dbstate_backup_last_success_timestamp_seconds",
        "dbstate_backup_last_verified_timestamp_seconds",
        "dbstate_backup_verify_failures_total",
        "dbstate_lease_lost_total",
    } <= named
    missing = named - exposed()
    assert missing == set(), f"named in deploy/ but not on /metrics: {sorted(missing)}"


def test_the_dashboards_are_importable_json_with_a_datasource_input() -> None:
    uids = set()
    for path in DASHBOARDS:
        dash = json.loads(path.read_text())
        assert dash["__inputs"][0]["pluginId"] == "prometheus", path.name
        uids.add(dash["uid"])
        ids = [p["id"] for p in dash["panels"]]
        assert len(ids) == len(set(ids)) and all(p["targets"] for p in dash["panels"]), path.name
    assert uids == {"dbstate", "dbstate-postgres", "dbstate-mariadb", "dbstate-redis"}
    # the engines' series are checked against what real exporters return in tests/e2e/test_monitoring.py


def test_the_prometheus_example_reads_the_targets_dbstate_lists_and_the_rules() -> None:
    checked = subprocess.run(
        [promtool(), "check", "config", str(DEPLOY / "prometheus" / "prometheus.yml")],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert checked.returncode == 0, checked.stdout + checked.stderr
    text = (DEPLOY / "prometheus" / "prometheus.yml").read_text()
    assert "/api/targets" in text and "honor_labels: true" in text
