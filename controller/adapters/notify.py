"""Notifications through Apprise: any of its URLs (Slack, Discord, ntfy, e-mail, a JSON webhook, ...). A URL may hold
a token: it is never printed, logged or echoed in an error; a notifier is named by its scheme and position."""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence

import apprise

from controller.core import errors

# Apprise logs each request it makes (with its URL) at info and below: dbstate keeps only its warnings, scrubbed
logging.getLogger("apprise").setLevel(logging.WARNING)


def resolve(specs: Sequence[str]) -> list[str]:
    """`--notify` values: a URL, or `env:NAME` for a URL kept in the environment (a token on a command line would be
    in every process's /proc/*/cmdline)."""
    urls = []
    for i, given in enumerate(specs, 1):
        if given.startswith("env:"):
            name = given.removeprefix("env:")
            value = os.environ.get(name, "").strip()
            if not value:
                raise errors.DbstateError(f"--notify env:{name}: the variable {name} is not set (or empty)")
            urls.extend(value.split())
        elif given.strip():
            urls.append(given.strip())
        else:
            raise errors.DbstateError(f"--notify (the {_nth(i)}): empty")
    return urls


def _nth(i: int) -> str:
    return {1: "1st", 2: "2nd", 3: "3rd"}.get(i, f"{i}th")


class AppriseNotifier:
    """Implements `engine.ports.Notifier` for one Apprise URL."""

    def __init__(self, url: str, index: int, timeout: float = 5.0) -> None:
        self.apobj = apprise.Apprise()
        scheme = url.split("://", 1)[0] if "://" in url else "?"
        self.name = f"{scheme} (notifier {index})"
        if not self.apobj.add(url):
            raise errors.DbstateError(
                f"--notify: the {_nth(index)} URL ({scheme}://...) is not one Apprise understands (see its list of "
                "services); it is not shown here, since it may hold a token"
            )
        for server in self.apobj:
            # connect and read timeouts, so that a receiver that hangs costs at most this per attempt
            server.socket_connect_timeout = timeout
            server.socket_read_timeout = timeout

    def send(self, title: str, body: str) -> None:
        try:
            ok = self.apobj.notify(title=title, body=body)
        except Exception as e:  # a plugin's own error: reported as a failed send, never raised into the loop
            raise errors.DbstateError(f"{self.name}: {type(e).__name__}") from e
        if not ok:
            raise errors.DbstateError(f"{self.name}: not delivered (the service refused or did not answer)")


def notifiers(urls: Sequence[str]) -> list[AppriseNotifier]:
    return [AppriseNotifier(u, i) for i, u in enumerate(urls, 1)]
