"""Structured logs: one line per event, JSON or text, to stderr, every value scrubbed of known secrets."""

from __future__ import annotations

import json
import sys
import threading
import time
from collections.abc import Callable
from typing import Any, TextIO

from controller.core import secrets
from controller.core.text import printable

Log = Callable[..., None]  # log(level=..., msg=..., **fields)


def logger(fmt: str, known_secrets: Callable[[], set[str]], stream: TextIO | None = None) -> Log:
    out = stream or sys.stderr
    lock = threading.Lock()

    def log(**fields: Any) -> None:
        record = {"ts": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime()) + "Z", **fields}
        if fmt == "json":
            line = json.dumps(record, default=str)
        else:
            head = f"{record.pop('ts')} {str(record.pop('level', 'info')).upper():7} {record.pop('msg', '')}"
            line = head + "".join(f" {k}={v}" for k, v in record.items() if v is not None)
        line = printable(secrets.scrub(line, known_secrets()))  # one record, one line: nothing can forge another
        with lock:
            out.write(line + "\n")
            out.flush()

    return log
