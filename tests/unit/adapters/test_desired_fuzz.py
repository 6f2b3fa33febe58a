"""The loader never raises on arbitrary input: it returns resources or errors that carry a location."""

from __future__ import annotations

from pathlib import Path

import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from controller.adapters import desired
from tests.helpers import NETWORK, instance_yaml

KEYS = [
    "apiVersion",
    "kind",
    "metadata",
    "name",
    "spec",
    "engine",
    "version",
    "image",
    "containerName",
    "networks",
    "volumes",
    "env",
    "auth",
    "password",
    "method",
    "aliases",
    "uses",
    "instance",
    "POSTGRES_PASSWORD",
    "x",
]
scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.floats(allow_nan=False),
    st.text(max_size=20),
    st.sampled_from(
        ["dbstate.io/v1", "DatabaseInstance", "Network", "Consumer", "Volume", "${X}", "${", "postgres:16"]
    ),
)
documents = st.recursive(
    scalars,
    lambda children: st.one_of(
        st.lists(children, max_size=4),
        st.dictionaries(st.sampled_from(KEYS) | st.text(max_size=8), children, max_size=5),
    ),
    max_leaves=30,
)


def _check(loaded) -> None:
    for d in loaded.diagnostics:
        assert d.file and d.line >= 1 and d.column >= 1 and d.message
        assert "Traceback" not in d.message


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(documents, min_size=0, max_size=3))
def test_arbitrary_yaml_documents(docs):
    text = yaml.safe_dump_all(docs) if docs else ""
    _check(desired.load_text(text, "fuzz.yaml", {"X": "1"}))


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=400))
def test_arbitrary_bytes(tmp_path_factory, data):
    root = tmp_path_factory.mktemp("ds")
    (root / "f.yaml").write_bytes(data)
    _check(desired.load(root, environ={}))


@settings(max_examples=200, deadline=None)
@given(st.integers(min_value=0, max_value=600), st.text(max_size=5))
def test_mutated_valid_documents(cut, insert):
    base = NETWORK + "---\n" + instance_yaml(volume=None)
    text = base[:cut] + insert + base[cut:]
    _check(desired.load_text(text, "m.yaml", {"PG_PASSWORD": "pw"}))


def test_alias_bomb_is_refused():
    lines = ["a0: &a0 [x, x, x, x, x, x, x, x, x, x]"]
    for i in range(1, 9):
        lines.append(f"a{i}: &a{i} [" + ", ".join([f"*a{i - 1}"] * 10) + "]")
    loaded = desired.load_text("\n".join(lines) + "\n", "bomb.yaml")
    assert any("too large" in d.message for d in loaded.errors)


def test_deep_nesting_is_an_error_not_a_crash(tmp_path: Path):
    loaded = desired.load_text("[" * 5000 + "]" * 5000, "deep.yaml")
    assert loaded.errors and loaded.errors[0].line >= 1
