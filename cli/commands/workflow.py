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

import logging
import os
from datetime import date
from pathlib import Path
from typing import Annotated, Any, Optional

import typer

from bus.constants import CONFIG_DIR_ENV, STEP_FUNCTIONS, TOKEN_ENV
from cli.app import EXIT_FAILED, EXIT_INTERRUPTED, EXIT_PARTIAL, app, fail
from cli.options import AsOf, ConfigDir, DryRun, StateDir, Strategies, load_config, named_strategies, opened_store
from cli.output import print_json
from ops.server import LocalFunctions
from ops.workflow_runner import PIPELINE_YAML, WorkflowRunError, local_argument, run_workflow

workflow_app = typer.Typer(no_args_is_help=True, help="The Cloud Workflows pipeline (workflows/pipeline.yaml).")
app.add_typer(workflow_app, name="workflow")


@workflow_app.command("run")
def run(
    dry_run: DryRun = False,
    as_of: AsOf = None,
    strategies: Strategies = None,
    functions: Annotated[Optional[str], typer.Option(
        "--functions", help="base URL of a running `python main.py serve`; default: start them")] = None,
    config_dir: ConfigDir = None,
    state_dir: StateDir = None,
    source: Annotated[Path, typer.Option("--source", help="the workflow YAML")] = PIPELINE_YAML,
) -> None:
    """Run workflows/pipeline.yaml through the workflows emulator against the local functions."""
    ids = list(strategies) if strategies else None
    logging.getLogger("workflows").setLevel(logging.WARNING)  # the emulator logs every step at INFO
    try:
        if functions:
            urls = {k: f"{functions.rstrip('/')}/{k}" for k in STEP_FUNCTIONS}
            result = run_workflow(local_argument(urls, dry_run, as_of, ids, os.environ.get(TOKEN_ENV)), source)
        else:
            result = _run_with_local_functions(dry_run, as_of, ids, config_dir, state_dir, source)
    except WorkflowRunError as exc:
        fail(str(exc), EXIT_FAILED)
    print_json(result)
    status = result.get("status") if isinstance(result, dict) else None
    if status == "failed":
        raise typer.Exit(EXIT_FAILED)
    if status == "partial_success":
        raise typer.Exit(EXIT_PARTIAL)


def _run_with_local_functions(dry_run: bool, day: date | None, ids: list[str] | None, config_dir: Path | None,
                              state_dir: Path | None, source: Path) -> Any:
    from bus import logs
    from pipeline.settings import apply_settings

    settings = load_config(config_dir)
    named_strategies(settings, ids)  # unknown ids: one line, before anything starts
    if config_dir:
        os.environ[CONFIG_DIR_ENV] = str(Path(config_dir).resolve())
    logs.configure(to_stderr=True)  # stdout carries the result
    logging.getLogger("workflows").setLevel(logging.WARNING)
    try:
        with opened_store("emulator", state_dir) as st:
            apply_settings(st, settings)
            with LocalFunctions() as fns:
                return run_workflow(local_argument(fns.urls(), dry_run, day, ids, os.environ.get(TOKEN_ENV)), source)
    except KeyboardInterrupt:
        fail("interrupted; the emulator was stopped and its state saved", EXIT_INTERRUPTED)
