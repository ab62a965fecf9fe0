"""The Cloud Functions on 127.0.0.1: each ``main.py`` target's real functions-framework app.

Each function is mounted under its name, so the paths match the cloud's
``https://{region}-{project}.cloudfunctions.net/{name}``. :class:`LocalFunctions`
serves them in a background thread for ``serve``, ``workflow run``, the tests
and the benchmarks.
"""

from __future__ import annotations

import json
import threading
from pathlib import Path
from typing import Any, Iterable

from bus.constants import FUNCTION_TARGETS

ROOT = Path(__file__).resolve().parent.parent
MAIN = ROOT / "main.py"
TARGETS = FUNCTION_TARGETS


def _not_found(environ: dict[str, Any], start_response: Any) -> list[bytes]:
    body = json.dumps({"error": {"code": 404, "status": "NOT_FOUND",
                                 "message": f"no function at {environ.get('PATH_INFO', '/')}",
                                 "functions": [f"/{t}" for t in TARGETS]}}).encode()
    start_response("404 NOT FOUND", [("Content-Type", "application/json"), ("Content-Length", str(len(body)))])
    return [body]


def _at_root(app: Any) -> Any:
    """``/strategy`` reaches the mounted app as ``/``, as in the cloud (not as a redirect to ``/strategy/``)."""

    def wsgi(environ: dict[str, Any], start_response: Any) -> Any:
        if not environ.get("PATH_INFO"):
            environ["PATH_INFO"] = "/"
        return app(environ, start_response)

    return wsgi


def metrics_app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
    """``GET /metrics``: this process's Prometheus metrics (:mod:`bus.telemetry`), in the text format."""
    from bus.telemetry import CONTENT_TYPE, exposition

    if environ.get("REQUEST_METHOD", "GET") not in ("GET", "HEAD"):
        start_response("405 METHOD NOT ALLOWED", [("Allow", "GET"), ("Content-Length", "0")])
        return [b""]
    body = exposition()
    start_response("200 OK", [("Content-Type", CONTENT_TYPE), ("Content-Length", str(len(body)))])
    return [body]


def functions_app(targets: Iterable[str] = TARGETS) -> Any:
    """One WSGI app with each target's functions-framework app mounted at ``/{target}``, and ``/metrics``."""
    import functions_framework
    from werkzeug.middleware.dispatcher import DispatcherMiddleware

    mounts = {f"/{t}": _at_root(functions_framework.create_app(t, str(MAIN))) for t in targets}
    return DispatcherMiddleware(_not_found, {**mounts, "/metrics": metrics_app})


class LocalFunctions:
    """The functions served on ``host:port`` (0: a free port) by a threaded server in a background thread.

    Use as a context manager; :attr:`base_url` and :meth:`urls` say where they are.
    """

    def __init__(self, host: str = "127.0.0.1", port: int = 0) -> None:
        self.host = host
        self.port = port
        self._server: Any = None
        self._thread: threading.Thread | None = None

    @property
    def base_url(self) -> str:
        """``http://host:port`` (the bound port once started)."""
        return f"http://{self.host}:{self.port}"

    def urls(self) -> dict[str, str]:
        """Function name -> URL."""
        return {t: f"{self.base_url}/{t}" for t in TARGETS}

    def start(self) -> "LocalFunctions":
        """Bind and serve in a daemon thread.

        Raises:
            OSError: the port is taken.
        """
        import logging

        from werkzeug.serving import make_server

        logging.getLogger("werkzeug").setLevel(logging.WARNING)  # our handlers log every request already
        self._server = make_server(self.host, self.port, functions_app(), threaded=True)
        self.port = self._server.server_port
        self._thread = threading.Thread(target=self._server.serve_forever, name="intent-bus-functions", daemon=True)
        self._thread.start()
        return self

    def wait(self) -> None:
        """Block until the server stops (Ctrl-C raises KeyboardInterrupt here)."""
        while self._thread is not None and self._thread.is_alive():
            self._thread.join(0.5)

    def stop(self) -> None:
        """Stop serving and wait for the thread."""
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        if self._thread is not None:
            self._thread.join(10)
            self._thread = None

    def __enter__(self) -> "LocalFunctions":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
