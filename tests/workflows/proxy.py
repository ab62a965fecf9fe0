"""A loopback proxy in front of the step functions: it records each answer's size and can answer 503 for chosen
strategy ids (an instance that crashed), as the workflow would see it in the cloud."""

from __future__ import annotations

import json
import threading
import urllib.error
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 128  # a page of strategies connects at once (the default backlog of 5 resets some)


class StepProxy:
    """Forwards ``/{function}...`` to ``urls[function]``; ``victims``' ``POST /strategy`` get a 503 instead.

    Attributes:
        calls: strategy id -> POST /strategy calls seen (retries included).
        largest: (function, method) -> the largest answer body forwarded, in bytes.
    """

    def __init__(self, urls: dict[str, str], victims: set[str] | frozenset[str] = frozenset()) -> None:
        self.calls: dict[str, int] = {}
        self.largest: dict[tuple[str, str], int] = {}
        self._lock = threading.Lock()
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):  # quiet
                pass

            def _function(self) -> str:
                return self.path.lstrip("/").split("/", 1)[0].split("?", 1)[0]

            def _forward(self, body: bytes | None) -> None:
                name = self._function()
                req = urllib.request.Request(urls[name] + self.path.removeprefix(f"/{name}"), data=body,
                                             method=self.command, headers={
                                                 "Content-Type": "application/json",
                                                 "Authorization": self.headers.get("Authorization", "")})
                try:
                    with urllib.request.urlopen(req, timeout=120) as r:
                        code, payload = r.status, r.read()
                except urllib.error.HTTPError as e:
                    code, payload = e.code, e.read()
                with proxy._lock:
                    key = (name, self.command)
                    proxy.largest[key] = max(proxy.largest.get(key, 0), len(payload))
                self._answer(code, payload)

            def _answer(self, code: int, payload: bytes) -> None:
                self.send_response(code)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            def do_GET(self):
                self._forward(None)

            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                if self._function() == "strategy":
                    sid = json.loads(body).get("strategy")
                    with proxy._lock:
                        proxy.calls[sid] = proxy.calls.get(sid, 0) + 1
                    if sid in victims:
                        self._answer(503, json.dumps({"error": {"code": 503, "message": "instance crashed"}}).encode())
                        return
                self._forward(body)

        self.server = _Server(("127.0.0.1", 0), Handler)
        self.base_url = f"http://127.0.0.1:{self.server.server_port}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def urls(self) -> dict[str, str]:
        """Function name -> this proxy's URL for it."""
        return {name: f"{self.base_url}/{name}" for name in ("strategy", "reconcile", "allocation")}

    def close(self) -> None:
        """Stop serving."""
        self.server.shutdown()
        self.server.server_close()

    def __enter__(self) -> "StepProxy":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
