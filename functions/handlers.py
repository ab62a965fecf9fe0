"""One handler per Cloud Function. Thin: validate, check ids in the store, delegate to
:mod:`pipeline.steps`, shape the JSON answer. No trading logic and no state here.

* ``orchestrator``: POST :class:`~functions.bodies.OrchestratorBody` -> 200 the run's summary,
  202 the workflow started (workflow mode), 409 lease refused.
* ``strategy``: GET ``?asOf=`` -> 200 ``{"strategies": [enabled ids], "asOf": "YYYY-MM-DD", "mode"}``;
  POST :class:`~functions.bodies.StrategyBody` (the id in the body or the path) -> 200 the intent written.
* ``reconcile``: POST :class:`~functions.bodies.ReconcileBody` -> 200 the snapshot and the
  ``execution_id`` that holds the lease; 409 lease held; 502 broker unreachable.
* ``allocation``: POST :class:`~functions.bodies.AllocationBody` -> 200 the execution's summary;
  409 lease refused; 500 the run failed (recorded as ``failed``).

Errors: 400 bad input, 401 no token (local), 404 unknown strategy, 405 wrong
method, 409 lease refused, 500 internal (with ``error_id``), 502 broker unreachable.
"""

from __future__ import annotations

import logging
from datetime import date, datetime
from typing import TYPE_CHECKING, Any

import flask

from bus import logs
from functions import workflow_client
from functions.bodies import AllocationBody, OrchestratorBody, PlanQuery, ReconcileBody, StrategyBody, StrategyId
from functions.errors import BadRequest, Conflict, HttpError, Internal, NotFound
from functions.http import parse_body, respond, validate

if TYPE_CHECKING:
    from bus.models import Execution, StrategyConfig
    from functions.context import Runtime

log = logging.getLogger("functions")


class BadGateway(HttpError):
    """502: the broker could not be read; nothing was written."""

    status_code = 502
    status = "UNAVAILABLE"


# --------------------------------------------------------------------------- helpers


def _runtime() -> "Runtime":
    from functions.context import runtime

    return runtime()


def _as_of(rt: "Runtime", value: date | datetime | None) -> datetime:
    from pipeline.wiring import RunInputError

    try:
        return rt.as_of(value)
    except RunInputError as exc:
        raise BadRequest(f"asOf: {exc}", "asOf", str(exc)) from None


def _known(rt: "Runtime", ids: list[str], field: str) -> None:
    unknown = [i for i in ids if i not in rt.strategies]
    if unknown:
        reason = f"unknown strategy id(s) {unknown}; configured: {', '.join(sorted(rt.strategies)) or 'none'}"
        raise NotFound(f"{field}: {reason}", field, reason)


def _enabled(rt: "Runtime", ids: list[str] | None, field: str) -> list["StrategyConfig"]:
    if ids is None:
        return rt.enabled()
    _known(rt, ids, field)
    disabled = [i for i in ids if not rt.strategies[i].enabled]
    if disabled:
        reason = f"strategy id(s) {disabled} are disabled; enable them in strategies/{{id}} first"
        raise BadRequest(f"{field}: {reason}", field, reason)
    return [rt.strategies[i] for i in ids]


def _summary(as_of: datetime, execution: "Execution", **more: Any) -> dict[str, Any]:
    from pipeline.run import PipelineResult
    from pipeline.summary import summarize

    return {**summarize(PipelineResult(as_of=as_of, execution=execution)), **more}


def _outcome(doc: dict[str, Any], execution: "Execution") -> tuple[int, dict[str, Any]]:
    """200 for a recorded run; 409 when the lease was refused; 500 when it failed."""
    from pipeline.steps import lease_refused

    if lease_refused(execution):
        raise Conflict(f"another run holds the account: {execution.reason}", extra=doc)
    if execution.status == "failed":
        raise Internal(f"execution {execution.execution_id} failed: {execution.reason}", extra=doc)
    return 200, doc


# --------------------------------------------------------------------------- orchestrator


def _orchestrator_post(request: flask.Request) -> tuple[int, dict[str, Any]]:
    body = validate(OrchestratorBody, parse_body(request))
    rt = _runtime()
    chosen = _enabled(rt, body.strategies, "strategies")
    as_of = _as_of(rt, body.asOf)
    if workflow_client.mode() == "workflow":
        return _start_workflow(body)
    from bus.ids import new_id
    from pipeline.observe import after_run
    from pipeline.steps import run_exclusive
    from pipeline.summary import summarize

    execution_id = new_id(as_of)
    with logs.context(execution_id=execution_id):
        log.info("pipeline: %d strategies as of %s, dry run %s", len(chosen), as_of.isoformat(), body.dryRun)
        res = run_exclusive(rt.store, rt.provider, rt.broker(), chosen, as_of, rt.mode, dry_run=body.dryRun,
                            run_reconcile=body.runReconcile, trigger=body.trigger, execution_id=execution_id)
        assert res.execution is not None
        log.info("execution %s: %s", res.execution.status, res.execution.summary)
        after_run(rt.store, res.execution, reconcile_error=res.reconcile_error, intents=res.intents)
    return _outcome(summarize(res), res.execution)


def _start_workflow(body: OrchestratorBody) -> tuple[int, dict[str, Any]]:
    name = workflow_client.workflow_name()
    argument = workflow_client.workflow_argument(body.model_dump(mode="json"), workflow_client.function_urls())
    execution = workflow_client.starter().start(name, argument)
    log.info("started workflow execution %s", execution)
    return 202, {"workflow_execution": execution, "workflow": name, "argument": argument}


def orchestrator(request: flask.Request) -> flask.Response:
    """``POST /orchestrator``: the whole pipeline (inline, under the account's lease) or the workflow."""
    return respond("orchestrator", request, {"POST": _orchestrator_post})


# --------------------------------------------------------------------------- strategy


def _strategy_plan(request: flask.Request) -> tuple[int, dict[str, Any]]:
    query = validate(PlanQuery, request.args.to_dict())
    rt = _runtime()
    as_of = _as_of(rt, query.asOf)
    return 200, {"strategies": [c.strategy_id for c in rt.enabled()], "asOf": as_of.date().isoformat(),
                 "as_of": as_of.isoformat(), "mode": rt.mode}


def _strategy_post(request: flask.Request) -> tuple[int, dict[str, Any]]:
    body = validate(StrategyBody, parse_body(request))
    from_path = request.path.strip("/") or None
    if from_path is not None:
        validate(StrategyBody, {"strategy": from_path})  # same rules for the path as for the body
        if body.strategy and body.strategy != from_path:
            reason = f"the body names {body.strategy!r} but the path names {from_path!r}"
            raise BadRequest(f"strategy: {reason}", "strategy", reason)
    sid: StrategyId | None = from_path or body.strategy
    if sid is None:
        raise BadRequest("strategy: required, in the body or as the path /strategy/{id}", "strategy", "required")
    rt = _runtime()
    config = _enabled(rt, [sid], "strategy")[0]
    as_of = _as_of(rt, body.asOf)
    from pipeline.steps import run_strategy_step

    with logs.context(strategy_id=sid):
        intent = run_strategy_step(rt.store, rt.provider, config, as_of)
        log.info("intent %s: %s", intent.intent_id, intent.status)
    return 200, {"strategy_id": sid, "intent_id": intent.intent_id, "status": intent.status,
                 "error_message": intent.error_message, "as_of": intent.as_of.isoformat(),
                 "target_positions": [t.model_dump(exclude_none=True) for t in intent.target_positions]}


def strategy(request: flask.Request) -> flask.Response:
    """``GET /strategy``: the plan; ``POST /strategy[/{id}]``: one strategy's intent."""
    return respond("strategy", request, {"GET": _strategy_plan, "POST": _strategy_post})


# --------------------------------------------------------------------------- reconcile


def _reconcile_post(request: flask.Request) -> tuple[int, dict[str, Any]]:
    body = validate(ReconcileBody, parse_body(request))
    rt = _runtime()
    as_of = _as_of(rt, body.asOf)
    from pipeline.steps import run_reconcile_step

    out = run_reconcile_step(rt.store, rt.broker(), as_of, rt.mode)
    if out.refused_by is not None:
        raise Conflict(f"another run holds the account's lease ({out.refused_by})",
                       extra={"execution_id": None, "refused_by": out.refused_by})
    if out.conflict is not None:  # caller input: an as-of before the account's last fill (not retried)
        raise Conflict(f"asOf: {out.conflict}", extra={"execution_id": None})
    if out.error is not None:
        raise BadGateway(f"reconcile failed, nothing written: {out.error}", extra={"execution_id": None})
    snap = out.snapshot
    assert snap is not None and out.execution_id is not None
    with logs.context(execution_id=out.execution_id):
        log.info("snapshot %s: NAV %.2f, %d holdings", snap.snapshot_id, snap.net_liquidation, len(snap.holdings))
    return 200, {"execution_id": out.execution_id, "snapshot_id": snap.snapshot_id, "as_of": as_of.isoformat(),
                 "net_liquidation": snap.net_liquidation, "holdings": {h.symbol: h.quantity for h in snap.holdings}}


def reconcile(request: flask.Request) -> flask.Response:
    """``POST /reconcile``: take the account's lease and snapshot the broker."""
    return respond("reconcile", request, {"POST": _reconcile_post})


# --------------------------------------------------------------------------- allocation


def _allocation_post(request: flask.Request) -> tuple[int, dict[str, Any]]:
    body = validate(AllocationBody, parse_body(request))
    rt = _runtime()
    _known(rt, list(body.strategyErrors), "strategyErrors")
    as_of = _as_of(rt, body.asOf)
    from pipeline.observe import after_run
    from pipeline.steps import run_allocation_step

    with logs.context(execution_id=body.executionId):
        for sid, msg in sorted(body.strategyErrors.items()):
            log.error("strategy step failed, recorded as an error intent: %s", msg, extra={"strategy_id": sid})
        ex, replayed = run_allocation_step(rt.store, rt.broker(), as_of, dry_run=body.dryRun, trigger=body.trigger,
                                           execution_id=body.executionId, reconcile_error=body.reconcileError,
                                           strategy_errors=dict(body.strategyErrors))
        log.info("execution %s: %s%s", ex.status, ex.summary, " (replayed)" if replayed else "",
                 extra={"execution_id": ex.execution_id})
        if not replayed:
            after_run(rt.store, ex, reconcile_error=body.reconcileError)
    return _outcome(_summary(as_of, ex, replayed=replayed), ex)


def allocation(request: flask.Request) -> flask.Response:
    """``POST /allocation``: the Commander, after recording the strategies that failed."""
    return respond("allocation", request, {"POST": _allocation_post})
