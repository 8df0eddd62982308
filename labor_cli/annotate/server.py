"""The local web server of `labor annotate` (standard library only: http.server).

It serves exactly these paths; anything else is a 404, and no path from a request ever reaches
the file system (static files are read from the package once, images by their index):

    GET  /, /index.html, /app.js, /style.css   the page
    GET  /api/session                         classes (names, colours, keys), images, item counts
    GET  /api/state                           every item's answer, and the progress
    GET  /api/image/I                         image I's items: anchor pixels, region pixels, A's suggestions, answers
    GET  /image/I                             image I's bytes (I: its index in the selection)
    POST /api/answer  {image_id, x, y, class, seconds, accepted, keys, split}   journaled before the reply
    POST /api/undo    {}                      takes back the last answer
    POST /api/redo    {}                      gives back the last answer taken back
    POST /api/save    {}                      writes the labels artifact now
    POST /api/finish  {}                      writes it and stops the server

A bad request gets 400 with {"error": MESSAGE} (one line); POST bodies must be JSON (Content-Type
application/json: another web site cannot send that to this server without asking first). Served
on a loopback address, a request must also name a loopback host (a web page that rebinds its own
host name to 127.0.0.1 gets a 403).

Connections cost no thread until their request has arrived: one reader thread collects every
connection's request head and body (at most ``request_timeout`` seconds each), and only complete
requests go to a small pool of ``WORKERS`` threads. Stalled or half-sent requests (slowloris) are
closed when their time is up and never hold a worker; a client that hangs up is forgotten quietly.
"""

from __future__ import annotations

import io
import json
import re
import selectors
import socket
import sys
import threading
import time
from collections import OrderedDict
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, HTTPServer
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
POST_PATHS = ("/api/answer", "/api/undo", "/api/redo", "/api/save", "/api/finish")
MAX_BODY = 64 * 1024
MAX_HEAD = 16 * 1024  # request line and headers
DRAIN_LIMIT = 16 * 1024 * 1024  # an oversized body is read (and thrown away) up to this, so that its 400 arrives
REQUEST_TIMEOUT = 10.0  # seconds a client has to send its request (and to take the reply)
WORKERS = 8  # threads that answer complete requests
MAX_WAITING = 512  # connections still sending their request; beyond it the oldest is closed
CONTENT_LENGTH = re.compile(rb"^content-length[ \t]*:[ \t]*(\S*)[ \t]*\r?$", re.IGNORECASE | re.MULTILINE)
LOOPBACK_NAMES = {"127.0.0.1", "localhost", "::1"}
CONTENT_POLICY = (
    "default-src 'self'; img-src 'self' data:; script-src 'self'; style-src 'self'; object-src 'none'; base-uri 'none'"
)


def read_static() -> dict[str, bytes]:
    folder = resources.files("labor_cli.annotate") / "static"
    return {name: (folder / name).read_bytes() for name in STATIC_FILES}


def request_complete(data: bytes) -> bool:
    """Whether a connection's bytes so far hold a whole request for a worker: the head and the declared
    body; or enough to refuse it (a head too long, a bad or oversized Content-Length: the worker says so)."""
    end = data.find(b"\r\n\r\n")
    if end < 0:
        return len(data) > MAX_HEAD
    found = CONTENT_LENGTH.search(data, 0, end + 2)
    if found is None:
        return True
    try:
        length = int(found.group(1))
    except ValueError:
        return True
    return length > MAX_BODY or len(data) >= end + 4 + length


@dataclass
class Waiting:
    """A connection whose request is still arriving."""

    address: tuple
    deadline: float
    data: bytearray = field(default_factory=bytearray)


class RequestReader:
    """One thread that reads every connection's request until it is whole, then hands it to ``dispatch``
    (connection, address, bytes). Connections past their deadline, or that hang up, are closed quietly."""

    def __init__(self, dispatch, timeout: float):
        self.dispatch, self.timeout = dispatch, timeout
        self.selector = selectors.DefaultSelector()
        self.waiting: OrderedDict[socket.socket, Waiting] = OrderedDict()
        self.wake_reader, self.wake_writer = socket.socketpair()
        self.wake_reader.setblocking(False)
        self.selector.register(self.wake_reader, selectors.EVENT_READ)
        self.incoming: list[tuple[socket.socket, tuple]] = []
        self.lock = threading.Lock()
        self.stopping = False
        self.thread = threading.Thread(target=self._run, name="labor-annotate-reader", daemon=True)
        self.thread.start()

    def add(self, connection: socket.socket, address: tuple) -> None:
        with self.lock:
            self.incoming.append((connection, address))
        self._wake()

    def stop(self) -> None:
        self.stopping = True
        self._wake()
        self.thread.join(5)
        for connection in list(self.waiting) + [c for c, _ in self.incoming]:
            _close(connection)
        self.selector.close()
        self.wake_reader.close()
        self.wake_writer.close()

    def _wake(self) -> None:
        try:
            self.wake_writer.send(b"\0")
        except OSError:
            pass  # already stopped, or the wake-up is pending anyway

    def _run(self) -> None:
        while not self.stopping:
            for key, _ in self.selector.select(timeout=0.2):
                if key.fileobj is self.wake_reader:
                    self._take_incoming()
                else:
                    self._read(key.fileobj)
            self._expire()

    def _take_incoming(self) -> None:
        try:
            while self.wake_reader.recv(4096):
                pass
        except BlockingIOError:
            pass
        with self.lock:
            incoming, self.incoming = self.incoming, []
        for connection, address in incoming:
            if len(self.waiting) >= MAX_WAITING:
                self._forget(next(iter(self.waiting)))
            connection.setblocking(False)
            self.waiting[connection] = Waiting(address, time.monotonic() + self.timeout)
            self.selector.register(connection, selectors.EVENT_READ)

    def _read(self, connection: socket.socket) -> None:
        waiting = self.waiting.get(connection)
        if waiting is None:
            return
        try:
            chunk = connection.recv(65536)
        except BlockingIOError:
            return
        except OSError:
            chunk = b""
        if not chunk:  # the client hung up before its request was whole: nothing to answer
            return self._forget(connection)
        waiting.data += chunk
        if request_complete(bytes(waiting.data)):
            self.selector.unregister(connection)
            del self.waiting[connection]
            self.dispatch(connection, waiting.address, bytes(waiting.data))

    def _expire(self) -> None:
        now = time.monotonic()
        for connection in [c for c, w in self.waiting.items() if w.deadline < now]:
            self._forget(connection)

    def _forget(self, connection: socket.socket) -> None:
        self.selector.unregister(connection)
        del self.waiting[connection]
        _close(connection)


def _close(connection: socket.socket) -> None:
    try:
        connection.close()
    except OSError:
        pass


class _Prefixed(io.RawIOBase):
    """A request's bytes already read, then the rest of the connection (an oversized body's tail)."""

    def __init__(self, data: bytes, connection: socket.socket):
        self.data, self.connection = memoryview(data), connection

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:
        if len(self.data):
            count = min(len(buffer), len(self.data))
            buffer[:count] = self.data[:count]
            self.data = self.data[count:]
            return count
        return self.connection.recv_into(buffer)


@dataclass
class Prefetched:
    """What a worker hands the handler: the connection and the request read so far."""

    connection: socket.socket
    data: bytes


class AnnotateServer(HTTPServer):
    """Serves one :class:`labor_cli.stages.annotate.Annotation`; ``result`` is set when the page finishes."""

    request_queue_size = 128  # many connections opening at once wait in the kernel, not refused

    def __init__(self, annotation, host: str = "127.0.0.1", port: int = 0, request_timeout: float = REQUEST_TIMEOUT):
        self.annotation = annotation
        self.static = read_static()
        self.result = None
        self.request_timeout = request_timeout
        self.address_family = socket.AF_INET6 if ":" in host else socket.AF_INET
        self.reader, self.workers = None, None  # started once the port is ours
        try:
            super().__init__((host, port), AnnotateHandler)
        except OSError as exc:
            raise LaborError(
                f"cannot serve on {host}:{port} ({exc.strerror or exc}); "
                "choose another --port (0: any free one) or --host"
            ) from None
        self.workers = ThreadPoolExecutor(WORKERS, thread_name_prefix="labor-annotate")
        self.reader = RequestReader(self._dispatch, request_timeout)

    @property
    def url(self) -> str:
        host, port = self.server_address[:2]
        return f"http://[{host}]:{port}/" if ":" in host else f"http://{host}:{port}/"

    def finish(self):
        """Write the labels and stop serving (from a request thread: the stop runs on its own)."""
        self.result = self.annotation.save("finished")
        threading.Thread(target=self.shutdown, daemon=True).start()
        return self.result

    def process_request(self, request, client_address) -> None:
        """An accepted connection goes to the reader: no thread is spent on it until its request is whole."""
        self.reader.add(request, client_address)

    def _dispatch(self, connection: socket.socket, address: tuple, data: bytes) -> None:
        try:
            self.workers.submit(self._answer, connection, address, data)
        except RuntimeError:  # shutting down
            _close(connection)

    def _answer(self, connection: socket.socket, address: tuple, data: bytes) -> None:
        try:
            connection.setblocking(True)
            connection.settimeout(self.request_timeout)
            self.RequestHandlerClass(Prefetched(connection, data), address, self)
        except Exception:  # noqa: BLE001 (reported in one line by handle_error)
            self.handle_error(connection, address)
        finally:
            self.shutdown_request(connection)

    def handle_error(self, request, client_address) -> None:
        """A client that hung up or stalled is no news; anything else is one line, never a traceback."""
        error = sys.exc_info()[1]
        if isinstance(error, (ConnectionError, TimeoutError)):
            return
        print(f"labor annotate: {client_address[0]}: {type(error).__name__}: {error}", file=sys.stderr)

    def server_close(self) -> None:
        super().server_close()
        if self.reader is not None:
            self.reader.stop()
            self.workers.shutdown(wait=True, cancel_futures=True)


class AnnotateHandler(BaseHTTPRequestHandler):
    server: AnnotateServer
    server_version = "labor-annotate"

    def setup(self) -> None:
        self.connection = self.request.connection
        self.rfile = io.BufferedReader(_Prefixed(self.request.data, self.connection))
        self.wfile = _SocketWriter(self.connection)

    def finish(self) -> None:
        pass  # the server closes the connection

    def log_message(self, format, *args) -> None:  # no access log in the terminal
        pass

    def send_error(self, code, message=None, explain=None) -> None:
        """http.server's own refusals (a bad request line, headers too long) as one-line JSON too, with a
        status line even where the request line was too broken to name a version."""
        self.close_connection = True
        if self.request_version == "HTTP/0.9":
            self.request_version = "HTTP/1.0"
        self._json(code, {"error": message or HTTPStatus(code).phrase})

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
        except (ConnectionError, TimeoutError):
            self.close_connection = True
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
            return self._json(200, annotation.page_state())
        match = ITEMS_PATH.fullmatch(path)
        if match and int(match.group(1)) < images:
            return self._json(200, annotation.image_items(int(match.group(1))))
        match = IMAGE_PATH.fullmatch(path)
        if match and int(match.group(1)) < images:
            data, content_type = annotation.image_file(int(match.group(1)))
            return self._send(200, data, content_type, cache="private, max-age=86400")
        self._json(404, {"error": f"not found: {path}"})

    def _post(self, path: str) -> None:
        if path not in POST_PATHS:
            return self._json(404, {"error": f"not found: {path}"})
        body = self._body()
        annotation = self.server.annotation
        store = annotation.store
        if path == "/api/answer":
            return self._json(200, annotation.changed(store.answer(body)))
        if path in ("/api/undo", "/api/redo"):
            return self._json(200, annotation.changed(store.undo() if path == "/api/undo" else store.redo()))
        result = self.server.finish() if path == "/api/finish" else annotation.save("saved")
        self._json(200, {"output": str(result.output), "summary": result.summary(), "progress": store.progress()})

    def _body(self):
        """The request's JSON body (checked: type, size, syntax)."""
        try:
            length = int(self.headers.get("Content-Length", ""))
        except ValueError:
            raise BadAnswer("missing Content-Length") from None
        if not 0 <= length <= MAX_BODY:
            self.close_connection = True
            self._discard(length)
            raise BadAnswer(f"body of {length} bytes (at most {MAX_BODY})")
        data = self.rfile.read(length)  # read before any refusal: unread bytes would reset the connection
        if self.headers.get_content_type() != "application/json":
            raise BadAnswer("expected a JSON body (Content-Type: application/json)")
        try:
            return json.loads(data or b"{}")
        except (ValueError, RecursionError) as exc:  # RecursionError: brackets nested too deep to parse
            problem = "nested too deeply" if isinstance(exc, RecursionError) else str(exc).splitlines()[0]
            raise BadAnswer(f"malformed JSON body: {problem}") from None

    def _discard(self, length: int) -> None:
        """Read and drop an oversized body (up to DRAIN_LIMIT, within the timeout), so that the 400 is
        read by the client instead of the connection being reset under it."""
        left, deadline = min(max(length, 0), DRAIN_LIMIT), time.monotonic() + self.server.request_timeout
        while left > 0 and time.monotonic() < deadline:
            chunk = self.rfile.read1(min(left, 65536))
            if not chunk:
                return
            left -= len(chunk)

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


class _SocketWriter(io.BufferedIOBase):
    """Writes go straight to the socket (as socketserver's own writer does)."""

    def __init__(self, connection: socket.socket):
        self.connection = connection

    def writable(self) -> bool:
        return True

    def write(self, data) -> int:
        self.connection.sendall(data)
        with memoryview(data) as view:
            return view.nbytes
