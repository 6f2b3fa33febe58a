"""Structured logs: one line per event, JSON or text, to stderr, every value scrubbed of known secrets."""

from __future__ import annotations

import json
import logging
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


class _Through(logging.Handler):
    """Hands a library's log record (docker-py, urllib3, a Python warning) to dbstate's own logger: the same format,
    the same scrubbing of secrets, one line per record."""

    def __init__(self, log: Log) -> None:
        super().__init__(level=logging.WARNING)
        self.log = log

    def emit(self, record: logging.LogRecord) -> None:
        try:
            message = record.getMessage()
        except Exception:  # a library's broken format string must not take the controller down
            message = str(record.msg)
        self.log(level=record.levelname.lower(), msg=message, logger=record.name)


def route_libraries(log: Log) -> Callable[[], None]:
    """Send warnings and errors of every library (and `warnings.warn`) through `log` until the returned undo."""
    handler = _Through(log)
    root = logging.getLogger()
    root.addHandler(handler)
    logging.captureWarnings(True)

    def undo() -> None:
        root.removeHandler(handler)
        logging.captureWarnings(False)

    return undo
