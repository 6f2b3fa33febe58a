"""The git revision of the desired-state directory, and whether its working tree is dirty."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

from controller.core.errors import DbstateError
from controller.core.revision import Revision

__all__ = ["GitError", "Revision", "export", "git_dir", "pull", "revision"]


class GitError(DbstateError):
    """git could not do what was asked (not a repository, a diverged history)."""


# Every call passes --no-optional-locks: dbstate reads the repository in the background, and `git status` would
# otherwise refresh the index under .git/index.lock and make a person's concurrent `git commit` fail.
def _git(directory: Path, *args: str) -> str | None:
    try:
        r = subprocess.run(
            ["git", "--no-optional-locks", "-C", str(directory), *args],
            capture_output=True,
            text=True,
            timeout=10,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    return r.stdout.strip() if r.returncode == 0 else None


def revision(directory: Path) -> Revision:
    if shutil.which("git") is None or not directory.is_dir():
        return Revision(None, None)
    # one call: the commit (`# branch.oid`) and the changes below the directory (every line not starting with `#`)
    status = _git(directory, "status", "--porcelain=v2", "--branch", "--untracked-files=normal", "--", ".")
    if status is None:
        return Revision(None, None)
    lines = status.splitlines()
    oid = next((line.split()[2] for line in lines if line.startswith("# branch.oid ")), "(initial)")
    if oid == "(initial)":
        return Revision(None, None)
    return Revision(oid, any(not line.startswith("#") for line in lines))


def git_dir(directory: Path) -> Path | None:
    out = _git(directory, "rev-parse", "--absolute-git-dir")
    return Path(out) if out else None


def export(directory: Path, commit: str, into: Path) -> Path:
    """The committed content of `directory` at `commit`, written below `into`; returns the exported directory."""
    prefix = _git(directory, "rev-parse", "--show-prefix")
    top = _git(directory, "rev-parse", "--show-toplevel")
    if prefix is None or top is None:
        raise GitError(f"{directory} is not in a git repository (--source commit needs one)")
    tree = f"{commit}:{prefix}" if prefix else commit
    into.mkdir(parents=True, exist_ok=True)
    # from the top level: run in a subdirectory, git archive would limit itself to that path inside `tree`
    archive = subprocess.run(
        ["git", "--no-optional-locks", "-C", top, "archive", "--format=tar", tree],
        capture_output=True,
        timeout=60,
        check=False,
    )
    if archive.returncode != 0:
        raise GitError(f"cannot read {directory} at {commit[:12]}: {archive.stderr.decode(errors='replace').strip()}")
    subprocess.run(["tar", "-x", "-C", str(into)], input=archive.stdout, check=True, timeout=60)
    return into


def pull(directory: Path, remote: str, branch: str) -> str:
    """Fast-forward the checkout from REMOTE BRANCH. Raises GitError when it cannot (diverged history)."""
    fetch = subprocess.run(
        ["git", "--no-optional-locks", "-C", str(directory), "fetch", "--quiet", remote, branch],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    if fetch.returncode != 0:
        raise GitError(f"git fetch {remote} {branch} failed: {fetch.stderr.strip()}")
    merge = subprocess.run(
        ["git", "--no-optional-locks", "-C", str(directory), "merge", "--ff-only", "--quiet", "FETCH_HEAD"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    if merge.returncode != 0:
        raise GitError(
            f"{remote}/{branch} has diverged from the local history: nothing is applied from it until "
            "the histories are reconciled by hand"
        )
    return _git(directory, "rev-parse", "HEAD") or ""
