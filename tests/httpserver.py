"""A real HTTP server on 127.0.0.1 for tests: static files, byte ranges, injectable faults.

Usage::

    with FileServer(tmp_path / "www") as server:
        server.fail("/a.csv", times=2, status=503)   # two 503s, then the file
        url = server.url("/a.csv")
        ...
        assert server.count("/a.csv") == 3

Every request is logged (:attr:`FileServer.requests`) with its path, Range
header, status and the body bytes actually sent, so a test can assert that
a client fetched a few KB and not a whole archive. Faults apply to one path
(``"*"`` for every path) and to the next ``times`` requests (``None``: all).
"""

from __future__ import annotations

import email.utils
import hashlib
import re
import socket
import struct
import threading
import time
import urllib.parse
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path


@dataclass
class Request:
    """One request as the server saw it."""

    method: str
    path: str
    query: str
    range: str | None
    status: int = 0
    bytes_sent: int = 0
    started: float = field(default_factory=time.monotonic)


@dataclass
class _Fault:
    kind: str  # fail | drop | truncate | delay | corrupt | ignore_range | shift | short | html
    # | partial_plain | unannounced
    path: str
    times: int | None
    status: int = 500
    after_bytes: int = 0
    seconds: float = 0.0
    options: dict = field(default_factory=dict)

    def matches(self, path: str) -> bool:
        return (self.path == "*" or self.path == path) and (self.times is None or self.times > 0)


_RANGE = re.compile(r"^bytes=(\d*)-(\d*)$")
HTML_PAGE = (
    b"<!DOCTYPE html>\n<html><head><title>503 Service Unavailable</title></head>\n"
    b"<body><h1>Service Unavailable</h1><p>Please try again later.</p></body></html>\n"
)


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    protocol_version = "HTTP/1.1"

    def log_message(self, format, *args):  # noqa: A002 - silence stderr logging
        pass

    def do_HEAD(self):  # noqa: N802 - http.server naming
        self._serve(head=True)

    def do_GET(self):  # noqa: N802
        self._serve(head=False)

    def _serve(self, head: bool) -> None:
        owner = self.server.owner
        parts = urllib.parse.urlsplit(self.path)
        path = urllib.parse.unquote(parts.path)
        record = Request(self.command, path, parts.query, self.headers.get("Range"))
        owner._log(record)
        self.close_connection = True
        delay = owner._take("delay", path)
        if delay is not None and owner._stopping.wait(delay.seconds):
            return
        failure = owner._take("fail", path)
        if failure is not None:
            body = f"injected {failure.status}\n".encode()
            self._respond(record, failure.status, body, {"Retry-After": "0"}, head)
            return
        file = (owner.root / path.lstrip("/")).resolve()
        if not file.is_file() or owner.root not in file.parents:
            self._respond(record, 404, b"not found\n", {}, head)
            return
        data = file.read_bytes()
        if owner._take("corrupt", path) is not None:
            data = data[: max(1, len(data) // 3)]  # a JPEG cut short never decodes
        etag = owner.etag_of(data)
        last_modified = email.utils.formatdate(file.stat().st_mtime, usegmt=True)
        status = 200
        headers = {"Accept-Ranges": "bytes", "ETag": etag, "Last-Modified": last_modified}
        page = owner._take("html", path)
        if page is not None:  # a proxy's or portal's error page, with status 200
            body = HTML_PAGE.ljust(len(data), b" ") if page.options["pad"] else HTML_PAGE
            extra = {"ETag": etag} if page.options["same_etag"] else {}
            self._respond(record, 200, body, extra, head, fault_path=path)
            return
        unannounced = owner._take("unannounced", path)
        if unannounced is not None and not self.headers.get("Range"):
            self._respond(record, 200, data[: unannounced.after_bytes], headers, head,
                          announce=False)  # fmt: skip
            return
        partial = owner._take("partial_plain", path)
        if partial is not None and not self.headers.get("Range"):
            first, last = partial.options["start"], partial.options["stop"]
            headers["Content-Range"] = f"bytes {first}-{last}/{len(data)}"
            self._respond(record, 206, data[first : last + 1], headers, head)
            return
        wanted = self.headers.get("Range")
        condition = self.headers.get("If-Range")
        if wanted and condition is not None and condition not in (etag, last_modified):
            wanted = None  # RFC 9110: the file changed, so the whole of it is the answer
        ignore_once = wanted and owner._take("ignore_range", path) is not None
        if wanted and not owner.ignore_range and not ignore_once:
            match = _RANGE.match(wanted.strip())
            if match is None or match.groups() == ("", ""):
                self._respond(record, 400, b"bad range\n", {}, head)
                return
            first, last = match.groups()
            size = len(data)
            if first == "":
                start, stop = max(0, size - int(last)), size
            else:
                start = int(first)
                stop = min(size, int(last) + 1) if last else size
            if start >= size:
                self._respond(record, 416, b"", {"Content-Range": f"bytes */{size}"}, head)
                return
            shift = owner._take("shift", path)
            if shift is not None:  # other bytes than asked, honestly labelled
                by = shift.after_bytes
                start, stop = min(size - 1, start + by), min(size, stop + by)
            short = owner._take("short", path)
            if short is not None:  # fewer bytes than asked, honestly labelled
                stop = max(start + 1, stop - short.after_bytes)
            headers["Content-Range"] = f"bytes {start}-{stop - 1}/{size}"
            status, data = 206, data[start:stop]
        self._respond(record, status, data, headers, head, fault_path=path)

    def _respond(self, record, status, body, headers, head, fault_path=None, announce=True):
        owner = self.server.owner
        record.status = status
        self.send_response(status)
        if announce:  # without it the client reads to the close of the connection
            self.send_header("Content-Length", str(len(body)))
        self.send_header("Content-Type", "application/octet-stream")
        self.send_header("Connection", "close")
        for name, value in headers.items():
            self.send_header(name, value)
        self.end_headers()
        if head:
            return
        cut = None
        if fault_path is not None:
            cut = owner._take("drop", fault_path) or owner._take("truncate", fault_path)
        # Logged before writing: a client may finish reading before this thread resumes.
        if cut is None:
            record.bytes_sent = len(body)
            self.wfile.write(body)
            return
        sent = body[: min(cut.after_bytes, max(0, len(body) - 1))]
        record.bytes_sent = len(sent)
        self.wfile.write(sent)
        if cut.kind == "drop":
            # An abortive close (RST): the client sees "connection reset". The pause lets
            # the bytes already sent reach the client first, as a mid-body drop would.
            time.sleep(0.1)
            self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        self.connection.close()

    def finish(self):
        try:
            super().finish()
        except OSError:  # the socket was closed on purpose by a fault
            pass


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    owner: FileServer

    def handle_error(self, request, client_address):  # clients hanging up are normal here
        pass


class FileServer:
    """Serve the files of ``root`` on ``http://127.0.0.1:<port>/`` from a background thread."""

    def __init__(self, root: str | Path):
        self.root = Path(root).resolve()
        self.root.mkdir(parents=True, exist_ok=True)
        self.ignore_range = False
        self.requests: list[Request] = []
        self._faults: list[_Fault] = []
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._server = _Server(("127.0.0.1", 0), _Handler)
        self._server.owner = self
        self.port = self._server.server_address[1]
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True
        )

    # -- lifecycle
    def start(self) -> FileServer:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stopping.set()
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)

    def __enter__(self) -> FileServer:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    # -- addresses and log
    def url(self, path: str = "/") -> str:
        return f"http://127.0.0.1:{self.port}/{path.lstrip('/')}"

    def _log(self, record: Request) -> None:
        with self._lock:
            self.requests.append(record)

    def requests_for(self, path: str) -> list[Request]:
        with self._lock:
            return [r for r in self.requests if r.path == "/" + path.lstrip("/")]

    def count(self, path: str) -> int:
        return len(self.requests_for(path))

    def bytes_sent(self, path: str | None = None) -> int:
        """Body bytes sent in total (or for one path)."""
        with self._lock:
            records = list(self.requests)
        if path is not None:
            records = [r for r in records if r.path == "/" + path.lstrip("/")]
        return sum(r.bytes_sent for r in records)

    def clear_log(self) -> None:
        with self._lock:
            self.requests.clear()

    # -- faults
    def _add(self, fault: _Fault) -> None:
        fault.path = fault.path if fault.path == "*" else "/" + fault.path.lstrip("/")
        with self._lock:
            self._faults.append(fault)

    def _take(self, kind: str, path: str) -> _Fault | None:
        """The first active fault of ``kind`` for ``path``, consuming one of its uses."""
        with self._lock:
            for fault in self._faults:
                if fault.kind == kind and fault.matches(path):
                    if fault.times is not None:
                        fault.times -= 1
                    return fault
        return None

    def fail(self, path: str, *, times: int | None = 1, status: int = 500) -> None:
        """Answer ``status`` (e.g. 500, 503, 429, 404) to the next ``times`` requests."""
        self._add(_Fault("fail", path, times, status=status))

    def drop(self, path: str, *, after_bytes: int, times: int | None = 1) -> None:
        """Reset the connection after ``after_bytes`` bytes of the body."""
        self._add(_Fault("drop", path, times, after_bytes=after_bytes))

    def truncate(self, path: str, *, after_bytes: int, times: int | None = 1) -> None:
        """Close cleanly after ``after_bytes`` bytes though Content-Length announced more."""
        self._add(_Fault("truncate", path, times, after_bytes=after_bytes))

    def delay(self, path: str, seconds: float, *, times: int | None = None) -> None:
        """Wait ``seconds`` before answering (a slow server, or one past the timeout)."""
        self._add(_Fault("delay", path, times, seconds=seconds))

    def corrupt(self, path: str, *, times: int | None = None) -> None:
        """Serve only the first third of the file, with a matching Content-Length."""
        self._add(_Fault("corrupt", path, times))

    @staticmethod
    def etag_of(data: bytes) -> str:
        """The strong validator the server sends for a file's content."""
        return '"' + hashlib.sha256(data).hexdigest()[:20] + '"'

    def etag(self, path: str) -> str:
        return self.etag_of((self.root / path.lstrip("/")).read_bytes())

    def html_page(
        self, path: str, *, pad: bool = False, same_etag: bool = False, times: int | None = 1
    ) -> None:
        """Answer 200 with an HTML error page; ``pad``: as long as the file; ``same_etag``:
        labelled with the file's ETag (a misbehaving cache)."""
        self._add(_Fault("html", path, times, options={"pad": pad, "same_etag": same_etag}))

    def partial_to_plain_get(self, path: str, start: int, stop: int, *, times: int = 1) -> None:
        """Answer a GET without Range with 206 and bytes ``start..stop`` only."""
        self._add(_Fault("partial_plain", path, times, options={"start": start, "stop": stop}))

    def unannounced_cut(self, path: str, *, after_bytes: int, times: int = 1) -> None:
        """Answer without Content-Length and close after ``after_bytes`` bytes."""
        self._add(_Fault("unannounced", path, times, after_bytes=after_bytes))

    def ignore_range_once(self, path: str, *, times: int | None = 1) -> None:
        """Answer the next ``times`` ranged requests with 200 and the whole file."""
        self._add(_Fault("ignore_range", path, times))

    def shift_range(self, path: str, by: int, *, times: int | None = 1) -> None:
        """Answer ranged requests with the bytes ``by`` further on (Content-Range says so)."""
        self._add(_Fault("shift", path, times, after_bytes=by))

    def short_range(self, path: str, by: int, *, times: int | None = 1) -> None:
        """Answer ranged requests with ``by`` bytes fewer than asked (Content-Range says so)."""
        self._add(_Fault("short", path, times, after_bytes=by))

    def clear_faults(self) -> None:
        with self._lock:
            self._faults.clear()
