"""``workflows/pipeline.yaml`` through the PyPI ``workflows-emulator`` (a test/dev dependency).

The workflow runs with ``local: true`` (no OIDC: the emulator cannot mint
tokens) in a fresh ``contextvars.Context``, because the emulator keeps loop
variables in context variables that would leak into a later run.

The workflow answers ids and counts (its steps never carry whole documents). A local run shows the whole
picture from the store instead (:func:`expand_result`): the orders placed and each errored strategy's reason.
"""

from __future__ import annotations

import contextvars
import json
import logging
import os
from datetime import date
from pathlib import Path
from typing import TYPE_CHECKING, Any

from bus.constants import STEP_FUNCTIONS
from ops.server import ROOT

if TYPE_CHECKING:
    from bus.store import Store

PIPELINE_YAML = ROOT / "workflows" / "pipeline.yaml"


class WorkflowRunError(RuntimeError):
    """The workflow failed: an error raised by a step, or the emulator refused the YAML."""


def run_workflow(argument: dict[str, Any], source: Path = PIPELINE_YAML, store: "Store | None" = None) -> Any:
    """Run ``source`` in the workflows emulator with ``argument``; return the workflow's result, expanded from
    the store (:func:`expand_result`): ``store``, or the functions' store when ``$FIRESTORE_EMULATOR_HOST`` is set.

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
    _isolate_parallel_loop_variables()
    root = logging.getLogger()
    root.addFilter(_quiet_emulator)
    try:
        result = contextvars.Context().run(execute_workflow, config, {"args": argument})
    except Exception as exc:  # WorkflowError and the emulator's own errors
        payload = getattr(exc, "payload", None)
        detail = payload.to_dict() if payload is not None and hasattr(payload, "to_dict") else (payload or str(exc))
        raise WorkflowRunError(f"workflow failed: {json.dumps(detail, default=str)[:2000]}") from None
    finally:
        root.removeFilter(_quiet_emulator)
    if store is None and os.environ.get("FIRESTORE_EMULATOR_HOST"):
        from functions.context import store as functions_store

        store = functions_store()
    return expand_result(result, store) if store is not None else result


def expand_result(result: Any, store: "Store") -> Any:
    """The workflow's ``result`` plus, from ``executions/{execution_id}`` in ``store``: ``orders_placed`` (the
    order records) and ``strategy_failures`` (errored strategy id -> why: its step failed, its code raised, or its
    intent named an unknown instrument). ``result`` as it is when it names no execution or the store has none.
    """
    from bus.store import StoreError
    from commander.replay import load_execution

    eid = result.get("execution_id") if isinstance(result, dict) else None
    if not eid:
        return result
    try:
        ex = load_execution(store, eid)  # its parts joined, when it was split
    except StoreError as exc:
        logging.getLogger(__name__).warning("execution %s not read, result left as counts: %s", eid, exc)
        return result
    if ex is None:
        return result
    return {**result, "orders_placed": [o.model_dump(mode="json", exclude_none=True) for o in ex.orders_placed],
            "strategy_failures": {sid: ex.strategy_reasons.get(sid, "") for sid in ex.errored_strategies}}


def _isolate_parallel_loop_variables() -> None:
    """Make the emulator run each ``parallel`` step in a copy of the caller's ``contextvars`` context.

    The emulator sets a ``parallel for``'s loop variable (``sid``) as a new ``ContextVar`` in the context of
    the thread that runs the step, and reads a variable by name from the first ``ContextVar`` of that name it
    finds. A ``parallel for`` run again (the pipeline's next page of strategies) then leaves two ``sid``
    variables, and an iteration may read the previous page's value: strategies run twice and others never.
    Run in a copy, each step's loop variables are gone when it ends, as in Cloud Workflows. Idempotent.
    """
    from workflows_emulator.main import StepParallel

    original = StepParallel.execute_task_config
    if original in _ISOLATED:
        return

    def isolated(self: Any, *args: Any, **kwargs: Any) -> Any:
        return contextvars.copy_context().run(original, self, *args, **kwargs)

    _ISOLATED.add(isolated)
    StepParallel.execute_task_config = isolated


#: The emulator's ``parallel`` step functions this module put in place (:func:`_isolate_parallel_loop_variables`).
_ISOLATED: set[Any] = set()


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
