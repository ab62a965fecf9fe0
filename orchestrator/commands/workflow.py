"""``python main.py workflow run``: ``workflows/pipeline.yaml`` through the workflows emulator.

The same YAML the cloud runs, executed by the PyPI ``workflows-emulator``
(a test/dev dependency) against the functions on loopback:

* by default it starts everything itself, as ``serve`` does: the Firestore
  emulator (or ``$FIRESTORE_EMULATOR_HOST``), the configuration, and the
  functions on a free port, then stops them;
* ``--functions http://127.0.0.1:8080`` uses a running ``python main.py serve``
  instead (with ``$INTENT_BUS_TOKEN`` passed as its bearer token).

The workflow runs with ``local: true`` (no OIDC: the emulator cannot mint
tokens) in a fresh ``contextvars.Context``, because the emulator keeps loop
variables in context variables that would leak into a later run.
Prints the workflow's result as JSON. Exit codes as ``run``: 0 completed or
skipped, 1 failed, 2 bad input, 3 partial success.
"""

from __future__ import annotations

import contextvars
import json
import logging
import os
from datetime import date
from pathlib import Path
from typing import Any, Optional

import typer

from orchestrator.cli import EXIT_FAILED, EXIT_PARTIAL, app, fail
from orchestrator.commands.serve import ROOT, TOKEN_ENV, LocalFunctions

PIPELINE_YAML = ROOT / "workflows" / "pipeline.yaml"
STEP_FUNCTIONS = ("strategy", "reconcile", "allocation")

workflow_app = typer.Typer(no_args_is_help=True, help="The Cloud Workflows pipeline (workflows/pipeline.yaml).")
app.add_typer(workflow_app, name="workflow")


class WorkflowRunError(RuntimeError):
    """The workflow failed: an error raised by a step, or the emulator refused the YAML."""


def run_workflow(argument: dict[str, Any], source: Path = PIPELINE_YAML) -> Any:
    """Run ``source`` in the workflows emulator with ``argument``; return the workflow's result.

    Raises:
        WorkflowRunError: the emulator is not installed, refused the YAML, or the workflow raised.
    """
    try:
        from workflows_emulator.main import execute_workflow, load_workflow
    except ImportError as exc:
        raise WorkflowRunError(f"the workflows emulator is not installed ({exc.name}): "
                               "pip install -r requirements-dev.txt") from None
    try:
        config = load_workflow(str(source))
    except Exception as exc:  # noqa: BLE001 - jsonschema / YAML errors, reported on one line
        raise WorkflowRunError(f"{source}: refused by the workflows emulator: {str(exc).splitlines()[0]}") from None
    root = logging.getLogger()
    root.addFilter(_quiet_emulator)
    try:
        return contextvars.Context().run(execute_workflow, config, {"args": argument})
    except Exception as exc:  # noqa: BLE001 - WorkflowError and the emulator's own errors
        payload = getattr(exc, "payload", None)
        detail = payload.to_dict() if hasattr(payload, "to_dict") else (payload or str(exc))
        raise WorkflowRunError(f"workflow failed: {json.dumps(detail, default=str)[:2000]}") from None
    finally:
        root.removeFilter(_quiet_emulator)


def _quiet_emulator(record: logging.LogRecord) -> bool:
    """Drop the emulator's dump of the whole workflow context at every failed call (it logs on the root
    logger); the failure itself reaches the workflow, which records and logs it."""
    return not (record.pathname.endswith(("workflows_emulator/render.py", "workflows_emulator\\render.py"))
                and record.getMessage().startswith("Error e"))


def local_argument(urls: dict[str, str], dry_run: bool, as_of: date | None = None,
                   strategies: list[str] | None = None, token: str | None = None) -> dict[str, Any]:
    """The workflow argument for a local run (``local: true``, manual trigger)."""
    arg: dict[str, Any] = {"urls": {k: urls[k] for k in STEP_FUNCTIONS}, "dryRun": dry_run, "trigger": "manual",
                           "local": True}
    if as_of:
        arg["asOf"] = as_of.isoformat()
    if strategies:
        arg["strategies"] = strategies
    if token:
        arg["token"] = token
    return arg


@workflow_app.command("run")
def run(
    dry_run: bool = typer.Option(False, "--dry-run", help="decide and record, but place no order"),
    as_of: Optional[str] = typer.Option(None, "--as-of", help="YYYY-MM-DD; default: last day of the bundled data"),
    strategies: Optional[str] = typer.Option(None, "--strategies", help="comma-separated ids; default: all enabled"),
    functions: Optional[str] = typer.Option(None, "--functions",
                                            help="base URL of a running `python main.py serve`; default: start them"),
    config_dir: Optional[Path] = typer.Option(None, "--config", help="folder with the YAML configuration"),
    state_dir: Optional[Path] = typer.Option(None, "--state-dir", help="where the emulator's state is kept"),
    source: Path = typer.Option(PIPELINE_YAML, "--source", help="the workflow YAML"),
) -> None:
    """Run workflows/pipeline.yaml through the workflows emulator against the local functions."""
    day = None
    if as_of:
        try:
            day = date.fromisoformat(as_of)
        except ValueError:
            fail(f"--as-of {as_of!r} is not a date (YYYY-MM-DD)")
    ids = [s.strip() for s in strategies.split(",") if s.strip()] if strategies else None
    if strategies is not None and not ids:
        fail("--strategies is empty")
    logging.getLogger("workflows").setLevel(logging.WARNING)  # the emulator logs every step at INFO
    try:
        if functions:
            urls = {k: f"{functions.rstrip('/')}/{k}" for k in STEP_FUNCTIONS}
            result = run_workflow(local_argument(urls, dry_run, day, ids, os.environ.get(TOKEN_ENV)), source)
        else:
            result = _run_with_local_functions(dry_run, day, ids, config_dir, state_dir, source)
    except WorkflowRunError as exc:
        fail(str(exc), EXIT_FAILED)
    typer.echo(json.dumps(result, indent=2, default=str))
    status = result.get("status") if isinstance(result, dict) else None
    if status == "failed":
        raise typer.Exit(EXIT_FAILED)
    if status == "partial_success":
        raise typer.Exit(EXIT_PARTIAL)


def _run_with_local_functions(dry_run: bool, day: date | None, ids: list[str] | None, config_dir: Path | None,
                              state_dir: Path | None, source: Path) -> Any:
    from bus import logs
    from bus.emulator import EmulatorError
    from orchestrator.commands.serve import CONFIG_DIR_ENV
    from orchestrator.config import ConfigError, apply_settings, load_settings
    from orchestrator.local import RunInputError, open_store

    try:
        settings = load_settings(config_dir)
    except ConfigError as exc:
        fail(str(exc))
    if ids:
        unknown = [i for i in ids if i not in settings.strategy_ids()]
        if unknown:
            fail(f"unknown strategy id(s) {unknown}; configured: {', '.join(settings.strategy_ids())}")
    if config_dir:
        os.environ[CONFIG_DIR_ENV] = str(Path(config_dir).resolve())
    logs.configure(to_stderr=True)  # stdout carries the result
    logging.getLogger("workflows").setLevel(logging.WARNING)
    try:
        with open_store("emulator", state_dir) as st:
            apply_settings(st, settings)
            with LocalFunctions() as fns:
                return run_workflow(local_argument(fns.urls(), dry_run, day, ids, os.environ.get(TOKEN_ENV)), source)
    except (EmulatorError, RunInputError) as exc:
        fail(str(exc))
    except KeyboardInterrupt:
        fail("interrupted; the emulator was stopped and its state saved", 130)
