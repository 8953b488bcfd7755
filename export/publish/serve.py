"""``vitrina serve DIR``: a static HTTP server for a sync repository, with Range support.

Plain files only (see ``repository.py``), so nginx or any static server works
as well; this one exists so field staff can serve from a laptop. Single byte
ranges (``Range: bytes=START-`` or ``START-END``) get 206 Partial Content, which
the sync client uses to resume interrupted downloads.
"""

from __future__ import annotations

import os
import re
import shutil
import threading
from functools import partial
from http import HTTPStatus
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

_RANGE = re.compile(r"^bytes=(\d+)-(\d*)$")
_COPY_CHUNK = 1 << 16


class RangeRequestHandler(SimpleHTTPRequestHandler):
    """Serves files under ``directory`` with single-range support; no directory listings."""

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002 - stdlib signature
        if os.environ.get("VITRINA_SERVE_LOG"):
            super().log_message(format, *args)

    def list_directory(self, path):  # noqa: ANN001 - stdlib signature
        self.send_error(HTTPStatus.NOT_FOUND, "no directory listings")
        return None

    def send_head(self):  # noqa: ANN201 - stdlib signature
        self._range = None
        header = self.headers.get("Range")
        path = self.translate_path(self.path)
        if not header or not os.path.isfile(path):
            return super().send_head()
        m = _RANGE.match(header.strip())
        size = os.path.getsize(path)
        if not m:
            self.send_error(HTTPStatus.REQUESTED_RANGE_NOT_SATISFIABLE, "only single byte ranges are supported")
            return None
        start = int(m.group(1))
        end = min(int(m.group(2)) if m.group(2) else size - 1, size - 1)
        if start >= size or start > end:
            self.send_response(HTTPStatus.REQUESTED_RANGE_NOT_SATISFIABLE)
            self.send_header("Content-Range", f"bytes */{size}")
            self.send_header("Content-Length", "0")
            self.end_headers()
            return None
        f = open(path, "rb")
        f.seek(start)
        self._range = (start, end)
        self.send_response(HTTPStatus.PARTIAL_CONTENT)
        self.send_header("Content-Type", self.guess_type(path))
        self.send_header("Content-Range", f"bytes {start}-{end}/{size}")
        self.send_header("Content-Length", str(end - start + 1))
        self.send_header("Accept-Ranges", "bytes")
        self.end_headers()
        return f

    def copyfile(self, source, outputfile):  # noqa: ANN001 - stdlib signature
        if getattr(self, "_range", None) is None:
            return shutil.copyfileobj(source, outputfile, _COPY_CHUNK)
        start, end = self._range
        left = end - start + 1
        while left > 0:
            chunk = source.read(min(_COPY_CHUNK, left))
            if not chunk:
                break
            outputfile.write(chunk)
            left -= len(chunk)

    def end_headers(self) -> None:
        if getattr(self, "_range", None) is None:
            self.send_header("Accept-Ranges", "bytes")
        super().end_headers()


class _QuietServer(ThreadingHTTPServer):
    """Clients that hang up mid-file (a killed sync, a timeout) are normal, not tracebacks."""

    daemon_threads = True

    def handle_error(self, request, client_address) -> None:  # noqa: ANN001
        import sys

        if not isinstance(sys.exc_info()[1], (BrokenPipeError, ConnectionResetError)):
            super().handle_error(request, client_address)


def make_server(
    directory: str | Path,
    host: str = "127.0.0.1",
    port: int = 0,
    handler: type[RangeRequestHandler] = RangeRequestHandler,
) -> ThreadingHTTPServer:
    """A ready (not yet serving) server; ``port=0`` picks a free port (see ``server.server_address``)."""
    directory = Path(directory)
    if not directory.is_dir():
        raise ValueError(f"cannot serve {directory}: not a directory")
    return _QuietServer((host, port), partial(handler, directory=str(directory)))


def serve_in_thread(
    directory: str | Path,
    host: str = "127.0.0.1",
    port: int = 0,
    handler: type[RangeRequestHandler] = RangeRequestHandler,
) -> tuple[ThreadingHTTPServer, str]:
    """Start a server on a daemon thread; returns it and its base URL. Stop with ``server.shutdown()``."""
    server = make_server(directory, host, port, handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    h, p = server.server_address[:2]
    return server, f"http://{str(h)}:{p}"
