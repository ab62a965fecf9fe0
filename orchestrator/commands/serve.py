"""``python main.py serve``: the Cloud Functions on 127.0.0.1, against the Firestore emulator.

Each function is the real functions-framework app of its ``main.py`` target,
mounted under its name, so the paths match the cloud's
``https://{region}-{project}.cloudfunctions.net/{name}``::

    curl -X POST localhost:8080/orchestrator -d '{"dryRun": true}'

The emulator starts (or ``$FIRESTORE_EMULATOR_HOST`` is used) and the YAML
configuration is applied first, as ``run`` does; the functions then read it
from the store, as in the cloud. With ``$INTENT_BUS_TOKEN`` set, requests need
``Authorization: Bearer $INTENT_BUS_TOKEN`` (else 401). Logs are JSON lines on
stdout, in Cloud Logging's shape. Ctrl-C stops the server and saves the state.

:class:`LocalFunctions` serves them in a background thread for ``workflow run``,
the tests and the benchmarks.
"""

from __future__ import annotations

import json
import os
import threading
from pathlib import Path
from typing import Any, Iterable, Optional

import typer

from orchestrator.cli import app, fail

ROOT = Path(__file__).resolve().parent.parent.parent
MAIN = ROOT / "main.py"
TARGETS = ("orchestrator", "strategy", "reconcile", "allocation")
#: Read by functions.context (orchestrator may not import functions).
CONFIG_DIR_ENV = "INTENT_BUS_CONFIG_DIR"
TOKEN_ENV = "INTENT_BUS_TOKEN"


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


def functions_app(targets: Iterable[str] = TARGETS) -> Any:
    """One WSGI app with each target's functions-framework app mounted at ``/{target}``."""
    import functions_framework
    from werkzeug.middleware.dispatcher import DispatcherMiddleware

    return DispatcherMiddleware(_not_found, {f"/{t}": _at_root(functions_framework.create_app(t, str(MAIN)))
                                             for t in targets})


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


@app.command()
def serve(
    port: int = typer.Option(8080, "--port", help="TCP port on 127.0.0.1 (0: a free one)"),
    host: str = typer.Option("127.0.0.1", "--host", help="address to listen on; keep it on loopback"),
    config_dir: Optional[Path] = typer.Option(None, "--config", help="folder with the YAML configuration"),
    state_dir: Optional[Path] = typer.Option(None, "--state-dir", help="where the emulator's state is kept"),
) -> None:
    """Serve the functions on 127.0.0.1 against the Firestore emulator (configuration applied first)."""
    from bus import logs
    from bus.emulator import EmulatorError
    from orchestrator.config import ConfigError, apply_settings, load_settings
    from orchestrator.local import RunInputError, open_store

    try:
        settings = load_settings(config_dir)
    except ConfigError as exc:
        fail(str(exc))
    if config_dir:
        os.environ[CONFIG_DIR_ENV] = str(Path(config_dir).resolve())
    logs.configure()
    try:
        with open_store("emulator", state_dir) as st:
            apply_settings(st, settings)
            try:
                fns = LocalFunctions(host, port).start()
            except OSError as exc:
                fail(f"cannot listen on {host}:{port}: {exc.strerror or exc}")
            try:
                auth = f"bearer token required (${TOKEN_ENV})" if os.environ.get(TOKEN_ENV) else "none (loopback only)"
                emulator = os.environ.get("FIRESTORE_EMULATOR_HOST")
                typer.echo(f"Intent Bus functions on {fns.base_url} (Firestore emulator {emulator}, "
                           f"project {getattr(st, 'project', '?')}); auth: {auth}", err=True)
                for name, url in fns.urls().items():
                    typer.echo(f"  {name:<13} {url}", err=True)
                typer.echo(f"try: curl -X POST {fns.urls()['orchestrator']} -d '{{\"dryRun\": true}}'   (Ctrl-C stops)",
                           err=True)
                fns.wait()
            finally:
                fns.stop()
    except (EmulatorError, RunInputError) as exc:
        fail(str(exc))
    except KeyboardInterrupt:
        typer.echo("stopped; the emulator's state was saved", err=True)
