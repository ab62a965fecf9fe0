"""A webhook receiver on 127.0.0.1 that records every POST body, and can fail the first N with a status."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


class FakeWebhook:
    """``with FakeWebhook() as hook:`` serves ``hook.url``; ``hook.bodies`` are the JSON bodies received
    (accepted ones only); ``hook.fail_next(n, status)`` answers the next ``n`` POSTs with ``status``."""

    def __init__(self) -> None:
        self.bodies: list[dict[str, Any]] = []
        self.refused = 0
        self._fail: list[int] = []
        self._lock = threading.Lock()
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 (http.server's name)
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                with outer._lock:
                    status = outer._fail.pop(0) if outer._fail else 200
                    if status == 200:
                        outer.bodies.append(json.loads(body))
                    else:
                        outer.refused += 1
                self.send_response(status)
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"ok")

            def log_message(self, *args: Any) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}/hook"

    def fail_next(self, n: int, status: int = 500) -> None:
        with self._lock:
            self._fail.extend([status] * n)

    def kinds(self) -> list[str]:
        """The ``alert.kind`` of each generic JSON body received, in order."""
        with self._lock:
            return [b["alert"]["kind"] for b in self.bodies if "alert" in b]

    def __enter__(self) -> "FakeWebhook":
        self._thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)
