"""Library log records (docker-py, urllib3) and Python warnings go through dbstate's own logger: its format, and its
scrubbing of every known secret."""

from __future__ import annotations

import io
import json
import logging
import warnings

from controller import logs
from tests.helpers import SECRET


def test_a_library_warning_is_formatted_and_scrubbed_like_our_own_lines() -> None:
    out = io.StringIO()
    undo = logs.route_libraries(logs.logger("json", lambda: {SECRET}, out))
    try:
        logging.getLogger("urllib3.connectionpool").warning("Retrying after %s: url with password %s", "reset", SECRET)
        logging.getLogger("docker.utils.config").info("ignored: below warning")
        with warnings.catch_warnings():
            warnings.simplefilter("always")
            warnings.warn(f"an insecure request carrying {SECRET}", UserWarning, stacklevel=1)
    finally:
        undo()
    logging.getLogger("urllib3").warning("after the undo: not ours")
    records = [json.loads(line) for line in out.getvalue().splitlines()]
    assert [r["logger"] for r in records] == ["urllib3.connectionpool", "py.warnings"]
    assert records[0]["level"] == "warning" and records[0]["msg"].startswith("Retrying after reset")
    assert SECRET not in out.getvalue() and "***" in records[0]["msg"]
