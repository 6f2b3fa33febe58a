"""The web view's pages, read from a state database and a backup directory at each request (read-only, no write lock):
what `dbstate serve` and `dbstate run` both serve, with a JSON twin of each page under /api/."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any
from urllib.parse import unquote

from controller.adapters import store
from controller.adapters.backups import BackupDir
from controller.core.errors import DbstateError
from controller.views import status as status_view
from controller.views import web

HTML = "text/html; charset=utf-8"
JSON = "application/json"
Page = tuple[int, str, str]  # status, content type, body


class Site:
    """The pages, read from the state database and the backup directory at each request."""

    def __init__(self, state: Path, backup_dir: Path, controller: str | None = None) -> None:
        """`controller`: where Prometheus reaches this controller's own /metrics (`dbstate run --listen`), listed
        among the targets."""
        self.state, self.backup_dir, self.controller = state, backup_dir, controller

    def _read(self) -> dict[str, Any]:
        data: dict[str, Any] = {
            "passes": [],
            "resources": [],
            "health": [],
            "overview": None,
            "engines": {},
            "jobs": [],
        }
        if self.state.exists():
            with store.Store(self.state, readonly=True) as db:
                data.update(passes=db.passes(limit=30), resources=db.resources(), health=db.health())
                data["overview"] = web.merge_overviews(db.overviews())
                data["engines"] = db.last_passes()
                data["jobs"] = db.jobs()
        backups: dict[str, list[dict[str, Any]]] = {}
        for m in BackupDir(self.backup_dir).manifests():
            backups.setdefault(m.instance, []).append(m.to_json())
        data["backups"] = backups
        return data

    def handle(self, path: str) -> Page | None:
        """The page at `path`, or None (not one of its pages)."""
        path = unquote(path.split("?", 1)[0])
        if not (
            path in ("/", "/api/overview", "/api/status", "/api/passes", "/api/targets")
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
            return 200, JSON, status_view.to_json(last, d["resources"], d["health"], newest, d["engines"], d["jobs"])
        if path == "/api/targets":
            return 200, JSON, _json(web.targets(d["overview"], self.controller))
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
