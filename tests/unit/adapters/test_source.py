"""Reading the desired state once for every engine: a shared reading is reused until a file, the env file or the
revision changes, and each engine gets its part of it."""

from __future__ import annotations

import os
from pathlib import Path

from controller.adapters.source import DirectorySource, EngineSource, SharedSource
from tests.helpers import TWO_HOSTS


def net(name: str, host: str) -> str:
    return f"apiVersion: dbstate.io/v1\nkind: Network\nmetadata: {{name: {name}}}\nspec: {{host: {host}}}\n"


def test_a_shared_reading_is_reused_until_a_file_changes(tmp_path: Path):
    (tmp_path / "hosts.yaml").write_text(TWO_HOSTS)
    (tmp_path / "n.yaml").write_text(net("net-a", "a") + "---\n" + net("net-b", "b"))
    shared = SharedSource(DirectorySource(tmp_path))
    a, b = EngineSource(shared, "a"), EngineSource(shared, "b")
    first = shared.load()
    assert [n.metadata.name for n in a.load().loaded.state.networks] == ["net-a"]
    assert [n.metadata.name for n in b.load().loaded.state.networks] == ["net-b"]
    assert shared.load() is first  # nothing changed: not read again
    (tmp_path / "n.yaml").write_text(net("net-a", "a") + "---\n" + net("net-b2", "b"))
    os.utime(tmp_path / "n.yaml", ns=(1, 1))  # even a write that keeps the size, within one clock tick
    assert shared.load() is not first
    assert [n.metadata.name for n in b.load().loaded.state.networks] == ["net-b2"]
    (tmp_path / "more.yaml").write_text(net("net-c", "a"))  # a new file
    assert [n.metadata.name for n in a.load().loaded.state.networks] == ["net-a", "net-c"]
