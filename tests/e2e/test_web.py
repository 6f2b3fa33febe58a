"""The web view in a real browser (Debian's chromium, headless) against a `dbstate run` on the real engine with the
example converged, then a container stopped under `policy.drift: warn` (a finding, not repaired): the DOM shows each
resource in its state, a screenshot is kept as an artifact, the JSON twins agree with `dbstate status --output json`,
and no page or answer holds a password."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import urllib.request
from html.parser import HTMLParser
from pathlib import Path

import docker
import pytest

from tests.e2e.helpers import REPO, dbstate, demo_env, wait_for
from tests.e2e.test_run import Controller

pytestmark = pytest.mark.engine
ARTIFACTS = REPO / "test-artifacts"


def chromium(*args: str) -> subprocess.CompletedProcess[str]:
    found = shutil.which("chromium")
    assert found, "chromium is missing: `bash scripts/setup` installs Debian's chromium"
    return subprocess.run(
        [found, "--headless=new", "--no-sandbox", "--disable-gpu", "--hide-scrollbars", *args],
        capture_output=True,
        text=True,
        timeout=120,
    )


class Rows(HTMLParser):
    """The rows of the resources table and the items of the findings list, as the browser's DOM has them."""

    def __init__(self) -> None:
        super().__init__()
        self.rows: dict[str, dict[str, str]] = {}
        self.findings: list[dict[str, str]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = {k: v or "" for k, v in attrs}
        if tag == "tr" and "data-key" in a:
            self.rows[a["data-key"]] = a
        if tag == "li" and "data-type" in a:
            self.findings.append(a)


def example(tmp_path: Path) -> tuple[Path, Path]:
    root = tmp_path / "example"
    shutil.copytree(REPO / "examples/local", root)
    return root, root / "demo.env"


def warn_on_redis_drift(root: Path) -> None:
    """policy.drift: warn on the example's Redis: a stop of its container is reported, not repaired."""
    instances = root / "instances.yaml"
    text = instances.read_text()
    marker = '  auth: {method: password, password: "${REDIS_PASSWORD}"}\n'
    assert marker in text
    instances.write_text(text.replace(marker, marker + "  policy: {drift: warn}\n"))


def get(port: int, path: str) -> str:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=10) as r:
        assert r.headers["Content-Security-Policy"].startswith("default-src 'none'")
        return str(r.read().decode())


def test_the_web_view_in_a_real_browser(tmp_path: Path, engine_host: str, docker_client: docker.DockerClient) -> None:
    root, env_file = example(tmp_path)
    state = tmp_path / "state.db"
    passwords = [v for k, v in demo_env().items() if "PASSWORD" in k or "SECRET" in k]
    c = Controller(root, engine_host, state, tmp_path / "run.log", "--env-file", str(env_file), "--probe-interval", "2")
    try:
        wait_for(c.ready, timeout=60)

        def settled() -> dict[str, object] | None:
            model = json.loads(c.get("/api/overview")[1] or "{}")
            resources = model.get("resources", [])
            instances = [r for r in resources if r["kind"] == "DatabaseInstance"]
            up = all(r["health"] and r["health"]["state"] == "up" for r in instances)
            return model if len(instances) == 6 and up and model["counts"] == {"in-sync": 20} else None

        wait_for(settled, timeout=120, interval=1)
        warn_on_redis_drift(root)
        wait_for(lambda: '"drift": "warn"' in c.get("/api/instances/redis")[1], timeout=30, interval=0.5)
        docker_client.containers.get("redis-redis-1").stop(timeout=2)

        def drifted() -> dict[str, object] | None:
            model = json.loads(c.get("/api/overview")[1] or "{}")
            return model if any(f["type"] == "drift" for f in model.get("findings", [])) else None

        wait_for(drifted, timeout=60, interval=1)
        dom = chromium("--dump-dom", f"http://127.0.0.1:{c.port}/").stdout
        ARTIFACTS.mkdir(exist_ok=True)
        shot = ARTIFACTS / "web-overview.png"
        made = chromium("--window-size=1200,1800", f"--screenshot={shot}", f"http://127.0.0.1:{c.port}/")
        assert shot.exists() and shot.stat().st_size > 10_000, made.stderr[-500:]
        phone = chromium("--window-size=400,900", f"--screenshot={ARTIFACTS / 'web-instance-phone.png'}",
                         f"http://127.0.0.1:{c.port}/instances/postgres")  # fmt: skip
        assert phone.returncode == 0

        parsed = Rows()
        parsed.feed(dom)
        assert len(parsed.rows) == 20
        assert parsed.rows["DatabaseInstance/redis"]["data-status"] == "findings"
        others = {k: r["data-status"] for k, r in parsed.rows.items() if k != "DatabaseInstance/redis"}
        assert set(others.values()) == {"in-sync"}, others
        assert parsed.rows["DatabaseInstance/postgres"]["data-health"] == "up"
        assert any(f["data-type"] == "drift" and f["data-key"] == "DatabaseInstance/redis" for f in parsed.findings)
        assert re.search(r"<title>dbstate: 19/20 in sync</title>", dom)

        page = get(c.port, "/instances/postgres")
        assert 'data-consumer="gitlab"' in page and "verified" in page

        # the JSON twin of status agrees with the command
        api = json.loads(get(c.port, "/api/status"))
        cli = json.loads(dbstate("status", "--output", "json", host=engine_host, state=state).stdout)
        assert {r["key"]: r["status"] for r in api["resources"]} == {r["key"]: r["status"] for r in cli["resources"]}
        assert api["last_pass"]["id"] <= cli["last_pass"]["id"]

        paths = ("/api/overview", "/api/status", "/api/passes", "/api/instances/postgres", "/api/instances/redis")
        answers = [dom, page] + [get(c.port, p) for p in paths]
        for text in answers:
            for pw in passwords:
                assert pw not in text
    finally:
        code, _seconds = c.stop()
    assert code == 0
