"""The git adapter with real git: revision and dirty state, export of a commit, and no interference with a person
committing while dbstate reads the repository in the background."""

from __future__ import annotations

import subprocess
import threading
from pathlib import Path

import pytest

from controller.adapters import git


def run(root: Path, *args: str) -> str:
    return subprocess.run(
        ["git", "-C", str(root), "-c", "user.email=t@t", "-c", "user.name=t", *args],
        check=True,
        capture_output=True,
        text=True,
    ).stdout.strip()


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    root = tmp_path / "repo"
    (root / "ds").mkdir(parents=True)
    (root / "ds" / "a.yaml").write_text("a: 1\n")
    run(root, "init", "-q")
    run(root, "add", "-A")
    run(root, "commit", "-qm", "one")
    return root


def test_revision_and_dirty(repo: Path):
    head = run(repo, "rev-parse", "HEAD")
    assert git.revision(repo / "ds") == git.Revision(head, False)
    (repo / "ds" / "a.yaml").write_text("a: 2\n")
    assert git.revision(repo / "ds") == git.Revision(head, True)
    assert git.revision(repo.parent) == git.Revision(None, None)


def test_export_is_the_committed_content(repo: Path, tmp_path: Path):
    (repo / "ds" / "a.yaml").write_text("a: uncommitted\n")
    out = git.export(repo / "ds", run(repo, "rev-parse", "HEAD"), tmp_path / "out")
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
            run(repo, "add", "-A")
            run(repo, "commit", "-qm", f"change {i}")  # raises if .git/index.lock was held by a reader
    finally:
        stop.set()
        for t in threads:
            t.join()
