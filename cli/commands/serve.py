"""``python main.py serve``: the Cloud Functions on 127.0.0.1, against the Firestore emulator.

    curl -X POST localhost:8080/orchestrator -d '{"dryRun": true}'

The emulator starts (or ``$FIRESTORE_EMULATOR_HOST`` is used) and the YAML
configuration is applied first, as ``run`` does; the functions then read it
from the store, as in the cloud. With ``$INTENT_BUS_TOKEN`` set, requests need
``Authorization: Bearer $INTENT_BUS_TOKEN`` (else 401). Logs are JSON lines on
stdout, in Cloud Logging's shape. Ctrl-C stops the server and saves the state.
The server itself is :class:`ops.server.LocalFunctions`.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated

import typer

from bus.constants import CONFIG_DIR_ENV, TOKEN_ENV
from cli.app import app, fail
from cli.options import ConfigDir, StateDir, load_config, opened_store
from ops.server import LocalFunctions


@app.command()
def serve(
    port: Annotated[int, typer.Option("--port", help="TCP port on 127.0.0.1 (0: a free one)")] = 8080,
    host: Annotated[str, typer.Option("--host", help="address to listen on; keep it on loopback")] = "127.0.0.1",
    config_dir: ConfigDir = None,
    state_dir: StateDir = None,
) -> None:
    """Serve the functions on 127.0.0.1 against the Firestore emulator (configuration applied first)."""
    from bus import logs
    from pipeline.settings import apply_settings

    settings = load_config(config_dir)
    if config_dir:
        os.environ[CONFIG_DIR_ENV] = str(Path(config_dir).resolve())
    logs.configure()
    try:
        with opened_store("emulator", state_dir) as st:
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
    except KeyboardInterrupt:
        typer.echo("stopped; the emulator's state was saved", err=True)
