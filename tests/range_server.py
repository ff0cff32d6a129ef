"""A static file server with single byte-range support (GDAL's /vsicurl/ reads by ranges), run as its own process:
GDAL may hold the GIL while it reads, so a server thread in the test process could never answer.

    python tests/range_server.py DIR     # prints the port, serves until killed
"""

from __future__ import annotations

import http.server
import io
import sys
from functools import partial
from pathlib import Path


class RangeHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args) -> None:  # keep the test output clean
        pass

    def send_head(self):
        spec = self.headers.get("Range")
        path = Path(self.translate_path(self.path))
        if spec is None or not path.is_file():
            return super().send_head()
        size = path.stat().st_size
        start_text, _, end_text = spec.removeprefix("bytes=").partition("-")
        start = int(start_text) if start_text else max(0, size - int(end_text))
        end = min(size - 1, int(end_text)) if end_text and start_text else size - 1
        body = path.read_bytes()[start : end + 1]
        self.send_response(206)
        self.send_header("Content-Type", "application/octet-stream")
        self.send_header("Content-Range", f"bytes {start}-{end}/{size}")
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Accept-Ranges", "bytes")
        self.end_headers()
        return io.BytesIO(body)


if __name__ == "__main__":
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), partial(RangeHandler, directory=sys.argv[1]))
    print(server.server_address[1], flush=True)
    server.serve_forever()
