"""Consumers named by compose project and service: resolved to whatever compose named the container; declared once."""

from __future__ import annotations

from controller.adapters import desired
from controller.core import composeref, diff, live
from controller.core.adoption import COMPOSE_PROJECT, COMPOSE_SERVICE
from controller.core.plan import Action, FindingType
from controller.core.scope import Scope
from tests.helpers import ENV, network, redis_instance
from tests.unit.core.test_diff import managed, net, world

N8N = """apiVersion: dbstate.io/v1
kind: Consumer
metadata: {name: n8n}
spec:
  compose: {project: n8n, service: n8n}
  networks: [{name: net-a, aliases: [n8n]}]
  uses: [{instance: kv-a, hostEnv: DB_HOST}]
"""
TEXT = "---\n".join([network("net-a"), redis_instance("kv-a", "kv-a-db"), N8N])


def test_a_compose_consumer_is_the_container_compose_made_whatever_its_name():
    s = desired.load_text(TEXT, "t.yaml", ENV).state
    assert s.consumers[0].container_name == "n8n-n8n-1"  # until observed: compose v2's name of replica 1
    v1 = live.Container(
        "c" * 64,
        "n8n_n8n_1",
        "n8n:1",
        "running",
        labels={COMPOSE_PROJECT: "n8n", COMPOSE_SERVICE: "n8n"},
        networks=(),
        env={"DB_HOST": "kv-a"},
    )
    observed = world(managed(s), v1)
    resolved = composeref.resolve(s, observed)
    assert resolved.consumers[0].container_name == "n8n_n8n_1"
    p = diff.diff(resolved, observed, scope=Scope(compose_projects=frozenset({"n8n"})))
    assert [(c.action, c.target) for c in p.changes] == [(Action.CONNECT, "n8n_n8n_1")]
    assert composeref.resolve(s, world(managed(s))) is s  # no such container: the diff says it is missing
    p = diff.diff(s, world(managed(s), networks=(net("net-a"),)))
    assert [f.type for f in p.findings] == [FindingType.MISSING_CONSUMER]


def test_a_consumer_is_named_once():
    for change, message in (
        ("  compose: {project: n8n, service: n8n}\n", "name the container once"),
        ("", "name the container once"),
    ):
        text = N8N.replace("  compose: {project: n8n, service: n8n}\n", change)
        if change:
            text = text.replace("spec:\n", "spec:\n  containerName: n8n\n")
        errors = [str(e) for e in desired.load_text(text, "t.yaml", ENV).errors]
        assert any(message in e for e in errors), errors
    errors = [
        str(e) for e in desired.load_text(N8N.replace("spec:\n", "spec:\n  image: n8n:1\n"), "t.yaml", ENV).errors
    ]
    assert any("image must be null" in e for e in errors), errors
