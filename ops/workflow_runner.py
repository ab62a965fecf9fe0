"""``workflows/pipeline.yaml`` through the PyPI ``workflows-emulator`` (a test/dev dependency).

The workflow runs with ``local: true`` (no OIDC: the emulator cannot mint
tokens) in a fresh ``contextvars.Context``, because the emulator keeps loop
variables in context variables that would leak into a later run.
"""

from __future__ import annotations

import contextvars
import json
import logging
from datetime import date
from pathlib import Path
from typing import Any

from bus.constants import STEP_FUNCTIONS
from ops.server import ROOT

PIPELINE_YAML = ROOT / "workflows" / "pipeline.yaml"


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
    except Exception as exc:  # jsonschema / YAML errors, reported on one line
        raise WorkflowRunError(f"{source}: refused by the workflows emulator: {str(exc).splitlines()[0]}") from None
    root = logging.getLogger()
    root.addFilter(_quiet_emulator)
    try:
        return contextvars.Context().run(execute_workflow, config, {"args": argument})
    except Exception as exc:  # WorkflowError and the emulator's own errors
        payload = getattr(exc, "payload", None)
        detail = payload.to_dict() if payload is not None and hasattr(payload, "to_dict") else (payload or str(exc))
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
