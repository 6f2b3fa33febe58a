"""Which engine each resource lives on (`kind: Host`, `spec.host`): the checks that keep an engine's resources
together, and the part of the desired state each engine's reconciler is given."""

from __future__ import annotations

import pytest

from controller.adapters import desired
from controller.core import errors, placement
from tests.helpers import TWO_HOSTS


def doc(kind: str, name: str, spec: str = "") -> str:
    return f"---\napiVersion: dbstate.io/v1\nkind: {kind}\nmetadata: {{name: {name}}}\n{spec}"


def redis(name: str, host: str | None, net: str, ports: str = "[]") -> str:
    where = f"  host: {host}\n" if host else ""
    return doc(
        "DatabaseInstance",
        name,
        f"""spec:
{where}  engine: redis
  version: "7"
  image: redis:7.2
  containerName: {name}-redis
  networks: [{{name: {net}, aliases: [{name}]}}]
  ports: {ports}
  auth: {{method: none}}
""",
    )


def app(name: str, host: str, net: str, use: str) -> str:
    return doc(
        "Consumer",
        name,
        f"""spec:
  host: {host}
  containerName: {name}
  networks: [{{name: {net}}}]
  uses: [{use}]
""",
    )


def errors_of(text: str) -> list[str]:
    return [f"{d.kind}/{d.name}: {d.field}: {d.message}" for d in desired.load_text(text).errors]


def test_a_two_engine_state_loads_and_each_engine_gets_its_own_part():
    text = (
        TWO_HOSTS
        + doc("Network", "net-a", "spec: {host: a}\n")
        + doc("Network", "net-b", "spec: {host: b}\n")
        + redis("kv-a", "a", "net-a")
        + redis("kv-b", "b", "net-b")
        + app("web", "a", "net-a", "{instance: kv-a}")
    )
    loaded = desired.load_text(text)
    assert loaded.errors == () and placement.names(loaded.state) == ("a", "b")
    a, b = placement.slice_loaded(loaded, "a").state, placement.slice_loaded(loaded, "b").state
    assert [i.metadata.name for i in a.instances] == ["kv-a"] and [c.metadata.name for c in a.consumers] == ["web"]
    assert [i.metadata.name for i in b.instances] == ["kv-b"] and [n.metadata.name for n in b.networks] == ["net-b"]
    assert b.consumers == ()


def test_a_client_key_is_a_file_reference_not_a_secret_value():
    loaded = desired.load_text(TWO_HOSTS)
    (b,) = [h for h in loaded.state.hosts if h.metadata.name == "b"]
    assert b.spec.tls is not None and b.spec.tls.key == "tls/key.pem" and loaded.errors == ()


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (TWO_HOSTS + doc("Network", "n"), "Network/n: spec: spec.host is required: 2 Hosts are declared (a, b)"),
        (doc("Network", "n", "spec: {host: c}\n"), "Network/n: spec.host: Host 'c' is not declared"),
        (
            TWO_HOSTS + doc("Network", "net-a", "spec: {host: a}\n") + redis("kv", "b", "net-a"),
            "DatabaseInstance/kv: spec.networks[0].name: Network/net-a lives on Host a, this one on b",
        ),
        (
            TWO_HOSTS
            + doc("Network", "net-a", "spec: {host: a}\n")
            + doc("Network", "net-b", "spec: {host: b}\n")
            + redis("kv", "b", "net-b")
            + app("web", "a", "net-a", "{instance: kv}"),
            "Consumer/web: spec.uses[0].instance: DatabaseInstance/kv lives on Host b, this one on a: to use it "
            "across engines, declare `published: ADDRESS:PORT`, a port it publishes",
        ),
        (
            TWO_HOSTS
            + doc("Network", "net-a", "spec: {host: a}\n")
            + doc("Network", "net-b", "spec: {host: b}\n")
            + redis("kv", "b", "net-b", '["10.0.0.2:6379:6379"]')
            + app("web", "a", "net-a", '{instance: kv, published: "10.0.0.2:6380"}'),
            "Consumer/web: spec.uses[0].published: kv publishes no port 6380 (its ports: 10.0.0.2:6379:6379)",
        ),
        (
            TWO_HOSTS.replace('"unix:///run/a.sock"', '"tcp://10.0.0.2:2376"'),
            "Host/a: spec.endpoint: tcp://10.0.0.2:2376 is the endpoint of 2 Hosts (a, b): one engine, one Host",
        ),
    ],
)
def test_placement_errors_name_the_file_line_and_field(text: str, expected: str):
    assert expected in errors_of(text)


def test_a_use_across_engines_through_a_published_port_is_valid():
    text = (
        TWO_HOSTS
        + doc("Network", "net-a", "spec: {host: a}\n")
        + doc("Network", "net-b", "spec: {host: b}\n")
        + redis("kv", "b", "net-b", '["10.0.0.2:6379:6379"]')
        + app("web", "a", "net-a", '{instance: kv, published: "10.0.0.2:6379"}')
    )
    assert errors_of(text) == []


def test_tls_goes_with_tcp_only():
    text = TWO_HOSTS.replace('"tcp://10.0.0.2:2376"', '"ssh://ops@10.0.0.2"')
    assert any("tls goes with a tcp:// endpoint" in e for e in errors_of(text))


def test_a_broken_host_holds_back_what_does_not_say_its_engine():
    text = TWO_HOSTS.replace("tcp://10.0.0.2:2376", "http://x") + doc("Network", "n")
    problems = errors_of(text)
    assert any("Host b has errors, so which engine is meant is not known" in p for p in problems)
    loaded = desired.load_text(text)
    assert ("Network", "n") in loaded.state.held_back and loaded.state.networks == ()


def test_an_engine_no_longer_declared_gets_nothing_to_act_on():
    loaded = desired.load_text(TWO_HOSTS)
    with pytest.raises(errors.DesiredStateError, match="Host c is no longer declared"):
        placement.slice_loaded(loaded, "c")
    with pytest.raises(errors.DesiredStateError, match="Host documents were declared"):
        placement.slice_loaded(loaded, placement.DEFAULT)  # a process started before the Hosts were committed


def test_without_hosts_everything_is_on_the_default_engine():
    loaded = desired.load_text(doc("Network", "n"))
    assert placement.names(loaded.state) == ("default",)
    assert placement.slice_loaded(loaded, placement.DEFAULT) is loaded
