"""The local web server of `labor annotate` (standard library only: http.server).

It serves exactly these paths; anything else is a 404, and no path from a request ever reaches
the file system (static files are read from the package once, images by their index):

    GET  /, /index.html, /app.js, /style.css   the page
    GET  /api/session                         classes (names, colours, keys), images, item counts
    GET  /api/state                           every item's answer, and the progress
    GET  /api/image/I                         image I's items: anchor pixels, region pixels, answers
    GET  /image/I                             image I's bytes (I: its index in the selection)
    POST /api/answer  {image_id, x, y, class, seconds}    journaled before the reply
    POST /api/undo    {}                      takes back the last answer
    POST /api/save    {}                      writes the labels artifact now
    POST /api/finish  {}                      writes it and stops the server

A bad request gets 400 with {"error": MESSAGE}; POST bodies must be JSON (Content-Type
application/json: another web site cannot send that to this server without asking first). Served
on a loopback address, a request must also name a loopback host (a web page that rebinds its own
host name to 127.0.0.1 gets a 403).
"""

from __future__ import annotations

import json
import re
import socket
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from importlib import resources
from urllib.parse import urlsplit

from labor_cli.annotate.store import BadAnswer
from labor_cli.errors import LaborError

STATIC_FILES = {
    "index.html": "text/html; charset=utf-8",
    "app.js": "text/javascript; charset=utf-8",
    "style.css": "text/css; charset=utf-8",
}
PAGE_PATHS = {"/": "index.html", "/index.html": "index.html", "/app.js": "app.js", "/style.css": "style.css"}
IMAGE_PATH = re.compile(r"/image/(\d{1,9})")
ITEMS_PATH = re.compile(r"/api/image/(\d{1,9})")
MAX_BODY = 64 * 1024
LOOPBACK_NAMES = {"127.0.0.1", "localhost", "::1"}
CONTENT_POLICY = (
    "default-src 'self'; img-src 'self' data:; script-src 'self'; style-src 'self'; object-src 'none'; base-uri 'none'"
)


def read_static() -> dict[str, bytes]:
    folder = resources.files("labor_cli.annotate") / "static"
    return {name: (folder / name).read_bytes() for name in STATIC_FILES}


class AnnotateServer(ThreadingHTTPServer):
    """Serves one :class:`labor_cli.stages.annotate.Annotation`; ``result`` is set when the page finishes."""

    daemon_threads = True

    def __init__(self, annotation, host: str = "127.0.0.1", port: int = 0):
        self.annotation = annotation
        self.static = read_static()
        self.result = None
        self.address_family = socket.AF_INET6 if ":" in host else socket.AF_INET
        try:
            super().__init__((host, port), AnnotateHandler)
        except OSError as exc:
            raise LaborError(
                f"cannot serve on {host}:{port} ({exc.strerror or exc}); "
                "choose another --port (0: any free one) or --host"
            ) from None

    @property
    def url(self) -> str:
        host, port = self.server_address[:2]
        return f"http://[{host}]:{port}/" if ":" in host else f"http://{host}:{port}/"

    def finish(self):
        """Write the labels and stop serving (from a request thread: the stop runs on its own)."""
        self.result = self.annotation.save("finished")
        threading.Thread(target=self.shutdown, daemon=True).start()
        return self.result


class AnnotateHandler(BaseHTTPRequestHandler):
    server: AnnotateServer
    server_version = "labor-annotate"

    def log_message(self, format, *args) -> None:  # no access log in the terminal
        pass

    def do_GET(self) -> None:
        self._respond(self._get)

    def do_POST(self) -> None:
        self._respond(self._post)

    def _respond(self, route) -> None:
        """Run a route; any failure becomes a JSON error reply, never a dead server."""
        try:
            if not self._host_allowed():
                return self._json(403, {"error": "this server answers requests for 127.0.0.1 or localhost only"})
            route(urlsplit(self.path).path)
        except BadAnswer as exc:
            self._json(400, {"error": str(exc)})
        except LaborError as exc:
            self._json(500, {"error": str(exc)})
        except (BrokenPipeError, ConnectionResetError):
            pass
        except Exception as exc:  # noqa: BLE001 (a bug: say it on the page and in the terminal, keep serving)
            print(f"labor annotate: {self.command} {self.path}: {type(exc).__name__}: {exc}", file=sys.stderr)
            self._json(500, {"error": f"{type(exc).__name__}: {exc}"})

    def _host_allowed(self) -> bool:
        if str(self.server.server_address[0]) not in LOOPBACK_NAMES:
            return True  # --host: served to a network on purpose
        host = urlsplit(f"//{self.headers.get('Host', '')}").hostname
        return host in LOOPBACK_NAMES

    def _get(self, path: str) -> None:
        annotation = self.server.annotation
        images = len(annotation.chosen.image_ids)
        if path in PAGE_PATHS:
            name = PAGE_PATHS[path]
            return self._send(200, self.server.static[name], STATIC_FILES[name])
        if path == "/api/session":
            return self._json(200, annotation.page_info())
        if path == "/api/state":
            return self._json(200, {"answers": annotation.store.value_words(), "progress": annotation.store.progress()})
        match = ITEMS_PATH.fullmatch(path)
        if match and int(match.group(1)) < images:
            return self._json(200, annotation.image_items(int(match.group(1))))
        match = IMAGE_PATH.fullmatch(path)
        if match and int(match.group(1)) < images:
            data, content_type = annotation.image_file(int(match.group(1)))
            return self._send(200, data, content_type, cache="private, max-age=86400")
        self._json(404, {"error": f"not found: {path}"})

    def _post(self, path: str) -> None:
        routes = {"/api/answer", "/api/undo", "/api/save", "/api/finish"}
        if path not in routes:
            return self._json(404, {"error": f"not found: {path}"})
        body = self._body()
        annotation = self.server.annotation
        store = annotation.store
        if path == "/api/answer":
            item = store.answer(body)
            answer = store.value_words(item, item + 1)[0]
            return self._json(200, {"item": item, "answer": answer, "progress": store.progress()})
        if path == "/api/undo":
            item = store.undo()
            answer = None if item is None else store.value_words(item, item + 1)[0]
            return self._json(200, {"item": item, "answer": answer, "progress": store.progress()})
        result = self.server.finish() if path == "/api/finish" else annotation.save("saved")
        self._json(200, {"output": str(result.output), "summary": result.summary(), "progress": store.progress()})

    def _body(self):
        """The request's JSON body (checked: type, size, syntax)."""
        try:
            length = int(self.headers.get("Content-Length", ""))
        except ValueError:
            raise BadAnswer("missing Content-Length") from None
        if not 0 <= length <= MAX_BODY:
            raise BadAnswer(f"body of {length} bytes (at most {MAX_BODY})")
        data = self.rfile.read(length)  # read before any refusal: unread bytes would reset the connection
        if self.headers.get_content_type() != "application/json":
            raise BadAnswer("expected a JSON body (Content-Type: application/json)")
        try:
            return json.loads(data or b"{}")
        except ValueError as exc:
            raise BadAnswer(f"malformed JSON body: {exc}") from None

    def _json(self, status: int, payload) -> None:
        self._send(status, json.dumps(payload).encode(), "application/json")

    def _send(self, status: int, data: bytes, content_type: str, cache: str = "no-store") -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(data)))
        self.send_header("Cache-Control", cache)
        self.send_header("X-Content-Type-Options", "nosniff")
        self.send_header("Content-Security-Policy", CONTENT_POLICY)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(data)
