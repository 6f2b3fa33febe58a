"""`dbstate schema`: the JSON Schema of one desired-state document, for editors."""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from typing import Any, TextIO

from controller.commands import options as common

DESCRIPTION = (
    "Print the JSON Schema (draft 2020-12) of one desired-state document. Save it and point editors at it with a "
    "first line `# yaml-language-server: $schema=PATH` in each YAML file."
)


@dataclass(frozen=True)
class Options:
    pass


def add_arguments(p: argparse.ArgumentParser) -> None:
    return None


def options(ns: argparse.Namespace) -> Options:
    return Options()


def document_schema() -> dict[str, Any]:
    from pydantic import TypeAdapter

    from controller.core import spec

    schema = TypeAdapter(spec.Document).json_schema(by_alias=True)
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": "https://dbstate.io/schemas/v1/desired-state.schema.json",
        "title": "dbstate desired-state document (dbstate.io/v1)",
        **schema,
    }


def run(opts: Options, out: TextIO, err: TextIO) -> int:
    from controller.views.common import dumps

    out.write(dumps(document_schema()))
    return common.EXIT_OK
