"""Planfiles on disk (`plan --out FILE`, `apply FILE`): written whole or not at all, readable by their owner only, and
read back with one clear error when the file is missing or is not JSON."""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any

from controller.core import errors


def write(path: Path, text: str) -> None:
    """`text` into `path` through a temporary file beside it (mode 0600), renamed over it at the end."""
    path = path.expanduser()
    directory = path.parent if str(path.parent) else Path()
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=directory)
        with os.fdopen(fd, "w") as f:
            f.write(text)
        os.replace(tmp, path)
    except OSError as e:
        raise errors.DbstateError(f"cannot write the planfile {path}: {e.strerror or e}") from e


def read(path: Path) -> dict[str, Any]:
    try:
        text = path.expanduser().read_text()
    except OSError as e:
        raise errors.DbstateError(f"cannot read the planfile {path}: {e.strerror or e}") from e
    try:
        doc = json.loads(text)
    except json.JSONDecodeError as e:
        raise errors.DbstateError(f"{path} is not a planfile (not JSON, line {e.lineno})") from e
    if not isinstance(doc, dict):
        raise errors.DbstateError(f"{path} is not a planfile")
    return doc
