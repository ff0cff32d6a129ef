"""A static file server on 127.0.0.1 with HTTP Range requests, as GDAL's /vsicurl/ needs (http.server has none).

HEAD and GET; `Range: bytes=a-b`, `bytes=a-`, `bytes=-n` and several ranges at once (multipart/byteranges);
206 Partial Content with Content-Range, 416 when unsatisfiable, Accept-Ranges on every answer. Every
request is appended to a JSON-lines log so a test can check that reads really were partial.

It runs in a child process (`python http_range_server.py ROOT LOG`, prints its port): rasterio holds the
GIL while GDAL opens a dataset, so a server thread in the test's own process would never get to answer.
"""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import uuid
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Optional
from urllib.parse import unquote, urlsplit


def parse_ranges(header: str, size: int) -> Optional[list[tuple[int, int]]]:
    """'bytes=0-99,200-' -> [(0, 99), (200, size - 1)] (inclusive); None if malformed or unsatisfiable."""
    unit, _, spec = header.partition("=")
    if unit.strip() != "bytes" or not spec:
        return None
    ranges = []
    for part in spec.split(","):
        first, dash, last = part.strip().partition("-")
        if not dash:
            return None
        if first == "":  # suffix: the last N bytes
            if not last.isdigit() or int(last) == 0:
                return None
            ranges.append((max(0, size - int(last)), size - 1))
            continue
        if not first.isdigit() or (last and not last.isdigit()):
            return None
        start, end = int(first), min(int(last) if last else size - 1, size - 1)
        if start >= size or end < start:
            return None
        ranges.append((start, end))
    return ranges


@dataclass(frozen=True)
class RangeServer:
    """The test's handle on a running server: where it serves from, its URLs, and what it was asked."""

    root: Path
    port: int
    log: Path

    def url(self, name: str) -> str:
        return f"http://127.0.0.1:{self.port}/{name}"

    def requests(self) -> list[dict]:
        """{"method", "path", "range", "status"} per request, in order."""
        return [json.loads(line) for line in self.log.read_text().splitlines()] if self.log.exists() else []

    def partial_reads(self, name: str) -> int:
        return sum(r["status"] == 206 and r["path"] == f"/{name}" for r in self.requests())


def _handler(root: Path, log: Path) -> type[BaseHTTPRequestHandler]:
    log_lock = threading.Lock()  # one line per request, whole, whatever thread answers

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args: object) -> None:  # quiet: tests read the request log instead
            pass

        def _file(self) -> Optional[Path]:
            relative = unquote(urlsplit(self.path).path).lstrip("/")
            path = (root / relative).resolve()
            if not relative or not path.is_relative_to(root.resolve()) or not path.is_file():
                return None
            return path

        def _answer(self, status: int, headers: dict[str, str], body: bytes = b"", send_body: bool = True) -> None:
            record = {
                "method": self.command,
                "path": urlsplit(self.path).path,
                "range": self.headers.get("Range"),
                "status": status,
            }
            with log_lock, open(log, "a") as file:
                file.write(json.dumps(record) + "\n")
            self.send_response(status)
            headers = {"Accept-Ranges": "bytes", "Content-Length": str(len(body)), **headers}
            if (
                self.command == "HEAD" and "no-length" in self.path
            ):  # a server that sends no Content-Length (issue 23 item 16)
                del headers["Content-Length"]
            for key, value in headers.items():
                self.send_header(key, value)
            self.end_headers()
            if send_body:
                self.wfile.write(body)

        def do_HEAD(self) -> None:
            self.do_GET(send_body=False)

        def do_GET(self, send_body: bool = True) -> None:
            path = self._file()
            if path is None:
                self._answer(404, {"Content-Type": "text/plain"}, b"not found", send_body)
                return
            data = path.read_bytes()
            size, kind = len(data), {"Content-Type": "application/octet-stream"}
            header = self.headers.get("Range")
            if header is None:  # HEAD too: Content-Length is the file's, no body follows
                self._answer(200, kind, data, send_body)
                return
            ranges = parse_ranges(header, size)
            if ranges is None:
                self._answer(416, {"Content-Range": f"bytes */{size}"}, b"", send_body)
            elif len(ranges) == 1:
                start, end = ranges[0]
                self._answer(
                    206, {**kind, "Content-Range": f"bytes {start}-{end}/{size}"}, data[start : end + 1], send_body
                )
            else:
                boundary = uuid.uuid4().hex
                parts = [
                    f"--{boundary}\r\nContent-Type: application/octet-stream\r\nContent-Range: bytes {s}-{e}/{size}\r\n\r\n".encode()
                    + data[s : e + 1]
                    + b"\r\n"
                    for s, e in ranges
                ]
                body = b"".join(parts) + f"--{boundary}--\r\n".encode()
                self._answer(206, {"Content-Type": f"multipart/byteranges; boundary={boundary}"}, body, send_body)

    return Handler


class serve_directory:
    """Context manager: a RangeServer for `root` on a free port of 127.0.0.1, in a child process."""

    def __init__(self, root: Path, log: Path) -> None:
        self.root, self.log = root, log
        self._process: Optional[subprocess.Popen] = None

    def __enter__(self) -> RangeServer:
        command = [sys.executable, __file__, str(self.root), str(self.log)]
        self._process = subprocess.Popen(command, stdout=subprocess.PIPE, text=True)
        port = self._process.stdout.readline().strip()
        if not port.isdigit():
            self._process.kill()
            raise RuntimeError(f"the test HTTP server did not start (said {port!r})")
        return RangeServer(self.root, int(port), self.log)

    def __exit__(self, *_: object) -> None:
        assert self._process is not None
        self._process.terminate()
        self._process.wait(timeout=10)


def main(root: str, log: str) -> None:
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _handler(Path(root), Path(log)))
    httpd.daemon_threads = True
    print(httpd.server_address[1], flush=True)
    httpd.serve_forever()


if __name__ == "__main__":
    main(*sys.argv[1:3])
