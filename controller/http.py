"""The controller's HTTP endpoints: /metrics (Prometheus), /healthz (the process is alive), /readyz (the engine is
reachable and the last pass completed), and the pages of the web view (read-only, GET only)."""

from __future__ import annotations

import socket
import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from controller.core.errors import DbstateError


class _IPv6Server(ThreadingHTTPServer):
    address_family = socket.AF_INET6


def display(listen: tuple[str, int]) -> str:
    host, port = listen
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def advertised(listen: tuple[str, int]) -> str:
    """Where others reach `listen`: a wildcard address is this machine's name."""
    host, port = listen
    return display((socket.gethostname() if host in ("", "0.0.0.0", "::") else host, port))  # noqa: S104


Page = tuple[int, str, str]  # status, content type, body
# no script, no frame, no outside asset: the pages are text and inline style only
SECURITY_HEADERS = {
    "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'; img-src 'self'; form-action 'none'; "
    "frame-ancestors 'none'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
}


def serve(
    listen: tuple[str, int],
    metrics: Callable[[], str] | None,
    ready: Callable[[], bool],
    pages: Callable[[str], Page | None] | None = None,
) -> ThreadingHTTPServer:
    """Serve in a thread of its own on `listen` (host, port); an IPv6 host is given without brackets."""
    host, port = listen

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            path = self.path.split("?", 1)[0]
            page = pages(self.path) if pages is not None and path not in ("/metrics", "/healthz", "/readyz") else None
            if page is not None:
                self._send(page[0], page[2], page[1])
            elif path == "/metrics" and metrics is not None:
                self._send(200, metrics(), "text/plain; version=0.0.4; charset=utf-8")
            elif path == "/healthz":
                self._send(200, "ok\n")
            elif path == "/readyz":
                ok = ready()
                self._send(200 if ok else 503, "ready\n" if ok else "not ready\n")
            else:
                self._send(404, "not found\n")

        def _send(self, code: int, body: str, ctype: str = "text/plain; charset=utf-8") -> None:
            data = body.encode()
            self.send_response(code)
            self.send_header("Content-Type", ctype)
            self.send_header("Content-Length", str(len(data)))
            for k, v in SECURITY_HEADERS.items():
                self.send_header(k, v)
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, format: str, *args: object) -> None:
            return

    server_class = _IPv6Server if ":" in host else ThreadingHTTPServer
    try:
        server = server_class((host, port), Handler)
    except OSError as e:  # not an address of this machine, a port in use, a name that does not resolve
        where = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
        raise DbstateError(f"cannot listen on {where}: {e.strerror or e} (--listen HOST:PORT)") from e
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, name="dbstate-http", daemon=True).start()
    return server
