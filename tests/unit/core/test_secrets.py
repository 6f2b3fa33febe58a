"""A Secret never prints itself: repr, str, format, pydantic dumps and JSON all redact it."""

import json
import pickle

import pytest

from controller.core import spec
from controller.core.secrets import REDACTED, Secret

VALUE = "correct-horse-battery"


def _instance() -> spec.DatabaseInstance:
    return spec.DatabaseInstance.model_validate(
        {
            "apiVersion": "dbstate.io/v1",
            "kind": "DatabaseInstance",
            "metadata": {"name": "pg"},
            "spec": {
                "engine": "postgres",
                "version": "16",
                "image": "postgres:16",
                "containerName": "pg-db",
                "networks": [{"name": "edge"}],
                "env": {"POSTGRES_PASSWORD": Secret(VALUE, "${PW}"), "POSTGRES_USER": "app"},
                "auth": {"method": "scram-sha-256", "user": "app", "password": Secret(VALUE, "${PW}")},
            },
        }
    )


@pytest.mark.parametrize(
    "render",
    [
        repr,
        str,
        lambda s: f"{s}",
        lambda s: f"{s!r}",
        lambda s: format(s, ">30"),
        lambda s: "%s" % s,  # noqa: UP031 - the old operator must redact too
    ],
)
def test_secret_renders_redacted(render):
    out = render(Secret(VALUE, "${PW}"))
    assert VALUE not in out
    assert REDACTED in out or "${PW}" in out


def test_secret_reveal_and_equality():
    s = Secret(VALUE)
    assert s.reveal() == VALUE
    assert s == Secret(VALUE)
    assert s != Secret("other")


def test_secret_cannot_be_pickled():
    with pytest.raises(TypeError):
        pickle.dumps(Secret(VALUE))


@pytest.mark.parametrize(
    "dump",
    [
        lambda m: m.model_dump_json(),
        lambda m: json.dumps(m.model_dump(mode="json")),
        lambda m: repr(m),
        lambda m: str(m),
        lambda m: str(m.model_dump()),
    ],
)
def test_models_never_print_secrets(dump):
    out = dump(_instance())
    assert VALUE not in out


def test_spec_hash_changes_with_secret_value():
    a = _instance()
    env = dict(a.spec.env)
    env["POSTGRES_PASSWORD"] = Secret("another", "${PW}")
    b = a.model_copy(update={"spec": a.spec.model_copy(update={"env": env})})
    assert spec.spec_hash(a) != spec.spec_hash(b)
    assert VALUE not in spec.spec_hash(a)


def test_spec_hash_ignores_policy_and_auth():
    a = _instance()
    b = a.model_copy(
        update={"spec": a.spec.model_copy(update={"policy": spec.InstancePolicy(drift=spec.DriftPolicy.WARN)})}
    )
    assert spec.spec_hash(a) == spec.spec_hash(b)


def test_models_are_frozen():
    inst = _instance()
    with pytest.raises(Exception, match="frozen"):
        inst.spec.image = "postgres:17"  # type: ignore[misc]


def test_collect_finds_the_secrets_of_a_whole_desired_state():
    from controller.adapters import desired
    from controller.core import secrets
    from tests.helpers import BASE_FILES, SECRET, instance_yaml

    text = "---\n".join([*BASE_FILES.values(), instance_yaml()])
    state = desired.load_text(text, "t.yaml", {"PG_PASSWORD": SECRET}).state
    assert secrets.collect(state) == {SECRET}
