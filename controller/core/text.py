"""Text that came from outside (a server's version, a container's name or env, an engine's error) made safe to print:
no control character reaches a terminal or a log line, so nothing a server says can move the cursor, retitle the
window, hide a line or forge a log record."""

from __future__ import annotations

import re

# C0 controls (with TAB, LF and CR), DEL and the C1 controls; ESC (\x1b) is among them
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")
# what dbstate itself may write: newlines and tabs between lines, and SGR colour codes (ESC [ digits m)
_OWN_SGR = re.compile(r"\x1b\[[0-9;]*m")
_NOT_OURS = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")


def printable(value: str) -> str:
    """One value from outside, on one line: every control character shown as `?`."""
    return _CONTROL.sub("?", value)


def terminal_safe(text: str) -> str:
    """Whole output: dbstate's own newlines, tabs and colour codes kept, every other control character shown as `?`
    (a last safety net; values from outside are already `printable`)."""
    parts = _OWN_SGR.split(text)
    codes = _OWN_SGR.findall(text)
    out = [_NOT_OURS.sub("?", parts[0])]
    for code, part in zip(codes, parts[1:], strict=True):
        out += [code, _NOT_OURS.sub("?", part)]
    return "".join(out)
