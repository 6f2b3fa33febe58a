"""Reading compose files for `dbstate import --compose`: the YAML and the `.env` beside it (compose's rules: the
shell's environment wins over `.env`); what the services mean is core/composefile.py's."""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path

import yaml

from controller.adapters import envfile
from controller.core.composefile import ComposeError, services
from controller.core.errors import DbstateError
from controller.core.importer import Found

MAX_BYTES = 1 << 20


def read(files: Sequence[Path], environ: Mapping[str, str] | None = None) -> list[Found]:
    environ = os.environ if environ is None else environ
    out: list[Found] = []
    for f in files:
        if not f.is_file():
            raise DbstateError(f"{f}: no such compose file")
        if f.stat().st_size > MAX_BYTES:
            raise DbstateError(f"{f}: larger than {MAX_BYTES} bytes; not a compose file")
        try:
            doc = yaml.safe_load(f.read_text())
        except (yaml.YAMLError, UnicodeDecodeError) as e:
            raise DbstateError(f"{f}: not a compose file: {e}") from e
        if not isinstance(doc, dict):
            raise DbstateError(f"{f}: not a compose file (no mapping at the top)")
        dotenv: dict[str, str] = {}
        if (f.parent / ".env").is_file():
            dotenv, problems = envfile.read(f.parent / ".env")
            if problems:
                raise DbstateError(str(problems[0]))
        try:
            out += services(doc, str(f.parent.resolve()), {**dotenv, **environ})
        except ComposeError as e:
            raise DbstateError(f"{f}: {e}") from e
    return out
