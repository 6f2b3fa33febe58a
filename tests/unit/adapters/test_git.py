"""The git adapter with real git: revision and dirty state, export of a commit, and no interference with a person
committing while dbstate reads the repository in the background."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from controller.adapters import git
from tests.helpers import git as git_


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    root = tmp_path / "repo"
    (root / "ds").mkdir(parents=True)
    (root / "ds" / "a.yaml").write_text("a: 1\n")
    git_(root, "init", "-q")
    git_(root, "add", "-A")
    git_(root, "commit", "-qm", "one")
    return root


def test_revision_and_dirty(repo: Path):
    head = git_(repo, "rev-parse", "HEAD")
    assert git.revision(repo / "ds") == git.Revision(head, False)
    (repo / "ds" / "a.yaml").write_text("a: 2\n")
    assert git.revision(repo / "ds") == git.Revision(head, True)
    assert git.revision(repo.parent) == git.Revision(None, None)


def test_export_is_the_committed_content(repo: Path, tmp_path: Path):
    (repo / "ds" / "a.yaml").write_text("a: uncommitted\n")
    out = git.export(repo / "ds", git_(repo, "rev-parse", "HEAD"), tmp_path / "out")
    assert (out / "a.yaml").read_text() == "a: 1\n"


def test_background_reads_never_break_a_commit(repo: Path):
    stop = threading.Event()

    def reader() -> None:
        while not stop.is_set():
            git.revision(repo / "ds")

    threads = [threading.Thread(target=reader) for _ in range(2)]
    for t in threads:
        t.start()
    try:
        for i in range(40):
            (repo / "ds" / "a.yaml").write_text(f"a: {i}\n")
            git_(repo, "add", "-A")
            git_(repo, "commit", "-qm", f"change {i}")  # raises if .git/index.lock was held by a reader
    finally:
        stop.set()
        for t in threads:
            t.join()
