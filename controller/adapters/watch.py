"""Sources of work for the loop: file changes in the desired-state directory and git ref moves (one watchfiles
watcher, inotify-based, so an idle controller costs nothing), and a periodic `git pull --ff-only`."""

from __future__ import annotations

import threading
from collections.abc import Callable
from pathlib import Path

import watchfiles

from controller.adapters import git

GIT_FILES = ("HEAD", "packed-refs", "ORIG_HEAD", "FETCH_HEAD")


def watch(
    directory: Path,
    on_files: Callable[[str], None],
    on_commit: Callable[[str], None],
    stop: threading.Event,
    debounce_ms: int = 200,
) -> None:
    """Block until `stop`: calls `on_files(reason)` for YAML or env edits and `on_commit(revision)` when HEAD moves."""
    gitdir = git.git_dir(directory)
    paths = [directory] + ([gitdir] if gitdir is not None else [])
    last = git.revision(directory).commit
    for changes in watchfiles.watch(*paths, stop_event=stop, debounce=debounce_ms, step=50, raise_interrupt=False):
        touched = [Path(p) for _, p in changes]
        in_git = gitdir is not None and any(gitdir in t.parents or t == gitdir for t in touched)
        if any(t.suffix in (".yaml", ".yml", ".env") and (gitdir is None or gitdir not in t.parents) for t in touched):
            on_files("files changed")
        if in_git:
            now = git.revision(directory).commit
            if now != last:
                last = now
                on_commit(now or "")


def pull_periodically(
    directory: Path,
    remote: str,
    branch: str,
    interval: float,
    stop: threading.Event,
    on_error: Callable[[str], None],
    on_pulled: Callable[[str], None],
) -> None:
    while not stop.is_set():
        try:
            on_pulled(git.pull(directory, remote, branch))
        except git.GitError as e:
            on_error(str(e))
        stop.wait(interval)
