"""`dbstate serve --state PATH`: the read-only web view of a state database without a controller; `Site` also serves
it beside /metrics in `dbstate run`."""

from __future__ import annotations

import argparse
import json
import signal
import threading
from dataclasses import dataclass
from pathlib import Path
from types import FrameType
from typing import Any, TextIO
from urllib.parse import unquote

from controller.commands import options as common
from controller.core.errors import DbstateError

DESCRIPTION = """\
Serve the web view of a state database (read-only, opened for each request without a write lock): every declared
resource with its sync state and health, the open findings with what a human should do, the pending changes, the
pass history, and per instance its consumers, their connections and its backups. Each page has a JSON twin under
/api/ (/api/overview, /api/instances/NAME, /api/status: the same as `dbstate status --output json`, /api/passes).
`dbstate run` serves the same pages on its --listen address.

The pages hold no secret (what they show is redacted before it is stored) and need no internet (no external asset,
no JavaScript), but they show the layout of your platform: bind to 127.0.0.1 (the default) and publish them behind a
reverse proxy that authenticates, never on an open interface."""

HTML = "text/html; charset=utf-8"
JSON = "application/json"
Page = tuple[int, str, str]  # status, content type, body


class Site:
    """The pages, read from the state database and the backup directory at each request."""

    def __init__(self, state: Path, backup_dir: Path) -> None:
        self.state, self.backup_dir = state, backup_dir

    def _read(self) -> dict[str, Any]:
        from controller.adapters import store
        from controller.adapters.backups import BackupDir
        from controller.views import web

        data: dict[str, Any] = {"passes": [], "resources": [], "health": [], "overview": None, "engines": {}}
        if self.state.exists():
            with store.Store(self.state, readonly=True) as db:
                data.update(passes=db.passes(limit=30), resources=db.resources(), health=db.health())
                data["overview"] = web.merge_overviews(db.overviews())
                data["engines"] = db.last_passes()
        backups: dict[str, list[dict[str, Any]]] = {}
        for m in BackupDir(self.backup_dir).manifests():
            backups.setdefault(m.instance, []).append(m.to_json())
        data["backups"] = backups
        return data

    def handle(self, path: str) -> Page | None:
        """The page at `path`, or None (not one of its pages)."""
        from controller.views import status as status_view
        from controller.views import web

        path = unquote(path.split("?", 1)[0])
        if not (
            path in ("/", "/api/overview", "/api/status", "/api/passes")
            or path.startswith(("/instances/", "/api/instances/"))
        ):
            return None
        try:
            d = self._read()
        except DbstateError as e:
            return 503, "text/plain; charset=utf-8", f"the state database cannot be read: {e}\n"
        if path == "/api/status":
            newest = [ms[-1] for _name, ms in sorted(d["backups"].items())]
            last = d["passes"][0] if d["passes"] else None
            return 200, JSON, status_view.to_json(last, d["resources"], d["health"], newest, d["engines"])
        if path == "/api/passes":
            return 200, JSON, _json(d["passes"])
        if path in ("/", "/api/overview"):
            model = web.overview_model(
                str(self.state), d["passes"], d["resources"], d["health"], d["overview"], d["backups"], d["engines"]
            )
            return (200, HTML, web.render("overview.html", model)) if path == "/" else (200, JSON, _json(model))
        name = path.rsplit("/", 1)[1]
        model_or_none = web.instance_model(name, d["resources"], d["health"], d["overview"], d["backups"].get(name, []))
        if model_or_none is None:
            return 404, "text/plain; charset=utf-8", f"no DatabaseInstance {name}\n"
        if path.startswith("/api/"):
            return 200, JSON, _json(model_or_none)
        return 200, HTML, web.render("instance.html", model_or_none)


def _json(value: Any) -> str:
    return json.dumps(value, indent=2, default=str) + "\n"


@dataclass(frozen=True)
class Options:
    state: Path
    backup_dir: Path
    listen: tuple[str, int]


def add_arguments(p: argparse.ArgumentParser) -> None:
    common.add_state(p)
    common.add_backup_dir(p)
    p.add_argument(
        "--listen",
        default="127.0.0.1:9465",
        metavar="HOST:PORT",
        help="where to serve (default: 127.0.0.1:9465; [::1]:PORT for IPv6); put an authenticating proxy in front",
    )


def options(ns: argparse.Namespace) -> Options:
    from controller.adapters import store
    from controller.commands.run import listen_address

    where = listen_address(ns.listen)
    if where is None:
        raise DbstateError("--listen: say where to serve, as HOST:PORT")
    return Options(ns.state or store.default_path(), common.backup_dir(ns), where)


def run(opts: Options, out: TextIO, err: TextIO) -> int:
    from controller import http

    if not opts.state.exists():
        raise DbstateError(f"no state database at {opts.state}: run `dbstate apply` or `run` first (or --state)")
    site = Site(opts.state, opts.backup_dir)
    stop = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    server = http.serve(opts.listen, None, lambda: True, site.handle)
    print(f"serving the web view of {opts.state} on http://{http.display(opts.listen)}/", file=err, flush=True)
    stop.wait()
    server.shutdown()
    return common.EXIT_OK
