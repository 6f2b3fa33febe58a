"""Writing desired-state YAML (for `dbstate import`): documents with their comments, in a stable layout."""

from __future__ import annotations

from collections.abc import Sequence

import yaml

from controller.core.importer import Document


def render(documents: Sequence[Document], header: str) -> str:
    """One file's text: `header` as comment lines, then each document with its comments above it."""
    parts = []
    for d in documents:
        comments = "".join(f"# {line}\n" for line in d.comments)
        body = yaml.safe_dump(d.body, sort_keys=False, default_flow_style=False, width=120, allow_unicode=True)
        parts.append(comments + body)
    return "".join(f"# {line}\n" for line in header.splitlines()) + "---\n".join(parts)
