"""One handler per Cloud Function. Thin: validate, check ids in the store, delegate to
:mod:`pipeline.steps`, shape the JSON answer. No trading logic and no state here.

* ``orchestrator``: POST :class:`~functions.bodies.OrchestratorBody` -> 200 the run's summary,
  202 the workflow started (workflow mode), 409 lease refused.
* ``strategy``: GET ``?asOf=&after=&limit=`` -> 200 one page of enabled ids
  ``{"strategies": [ids], "count", "next": cursor or "", "asOf": "YYYY-MM-DD", "as_of", "mode"}``;
  POST :class:`~functions.bodies.StrategyBody` (the id in the body or the path) -> 200 the intent written:
  ``{"strategy_id", "intent_id", "status", "error_message", "as_of", "targets": count}``. A failing strategy
  is a 200 with ``status: "error"``: its step wrote the ``error`` intent itself.
* ``reconcile``: POST :class:`~functions.bodies.ReconcileBody` -> 200 the snapshot's id, NAV, ``holdings``
  (a count) and the ``execution_id`` that holds the lease; 409 lease held; 502 broker unreachable.
* ``allocation``: POST :class:`~functions.bodies.AllocationBody` -> 200 the execution's ids and counts
  (:func:`_answer`); 409 lease refused; 500 the run failed (recorded as ``failed``).

The step functions (strategy, reconcile, allocation) answer ids and counts, never whole documents: a few KB
whatever the number of strategies, holdings or orders (Workflows keeps every answer in its variables, 512 KB
in all). ``POST /strategy`` reads its one strategy by path and ``config/trading`` once per run's as-of
(:mod:`functions.step_context`); ``POST /orchestrator`` (inline) still answers the run's full summary.

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
    from bus.models import Execution, PortfolioSnapshot, StrategyConfig
    from functions.context import Runtime
    from functions.step_context import StepRuntime

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


#: Characters of a free-text field (a summary, a reason, an error) kept in an answer.
TEXT_CAP = 1000


def _short(text: str | None, cap: int = TEXT_CAP) -> str | None:
    """``text`` cut to ``cap`` characters (an answer stays small; the whole text is in the store)."""
    return text if text is None or len(text) <= cap else text[:cap - 1] + "…"


def _answer(as_of: datetime, ex: "Execution", **more: Any) -> dict[str, Any]:
    """The allocation step's answer: ids and counts, at most a few KB whatever the number of strategies or orders
    (the execution document holds the rest). ``orders``: orders placed (a count); ``order_statuses``: status ->
    count; ``strategies``: intents read, and how many were not used, by why."""
    statuses: dict[str, int] = {}
    for o in ex.orders_placed:
        statuses[o.status] = statuses.get(o.status, 0) + 1
    return {"execution_id": ex.execution_id, "as_of": as_of.isoformat(), "status": ex.status, "dry_run": ex.dry_run,
            "summary": _short(ex.summary), "reason": _short(ex.reason), "orders": len(ex.orders_placed),
            "order_statuses": statuses,
            "strategies": {"intents": len(ex.context.strategy_intents_refs), "errored": len(ex.errored_strategies),
                           "missing": len(ex.missing_strategies), "stale": len(ex.stale_strategies),
                           "skipped": len(ex.skipped_strategies)},
            **more}


def _outcome(doc: dict[str, Any], execution: "Execution") -> tuple[int, dict[str, Any]]:
    """200 for a recorded run; 409 when the lease was refused; 500 when it failed."""
    from pipeline.steps import lease_refused

    if lease_refused(execution):
        raise Conflict(f"another run holds the account: {_short(execution.reason)}", extra=doc)
    if execution.status == "failed":
        raise Internal(f"execution {execution.execution_id} failed: {_short(execution.reason)}", extra=doc)
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


def _step_runtime(value: date | datetime | None) -> "StepRuntime":
    from functions.step_context import step_runtime
    from pipeline.wiring import RunInputError

    try:
        return step_runtime(value)
    except RunInputError as exc:
        raise BadRequest(f"asOf: {exc}", "asOf", str(exc)) from None


def _strategy_plan(request: flask.Request) -> tuple[int, dict[str, Any]]:
    query = validate(PlanQuery, request.args.to_dict())
    from functions.step_context import enabled_page

    rt = _step_runtime(query.asOf)
    ids, cursor = enabled_page(rt.store, query.after, query.limit)
    return 200, {"strategies": ids, "count": len(ids), "next": cursor, "asOf": rt.as_of.date().isoformat(),
                 "as_of": rt.as_of.isoformat(), "mode": rt.mode}


def _strategy_id(request: flask.Request, body: StrategyBody) -> StrategyId:
    from_path = request.path.strip("/") or None
    if from_path is not None:
        validate(StrategyBody, {"strategy": from_path})  # same rules for the path as for the body
        if body.strategy and body.strategy != from_path:
            reason = f"the body names {body.strategy!r} but the path names {from_path!r}"
            raise BadRequest(f"strategy: {reason}", "strategy", reason)
    sid: StrategyId | None = from_path or body.strategy
    if sid is None:
        raise BadRequest("strategy: required, in the body or as the path /strategy/{id}", "strategy", "required")
    return sid


def _strategy_post(request: flask.Request) -> tuple[int, dict[str, Any]]:
    body = validate(StrategyBody, parse_body(request))
    sid = _strategy_id(request, body)
    from functions.step_context import strategy_config
    from pipeline.steps import run_strategy_step

    rt = _step_runtime(body.asOf)
    config = strategy_config(rt.store, sid)  # one read by path, not the whole collection
    if config is None:
        reason = f"unknown strategy id(s) {[sid]}: no document strategies/{sid}"
        raise NotFound(f"strategy: {reason}", "strategy", reason)
    if not config.enabled:
        reason = f"strategy id(s) {[sid]} are disabled; enable them in strategies/{{id}} first"
        raise BadRequest(f"strategy: {reason}", "strategy", reason)
    with logs.context(strategy_id=sid):
        intent = run_strategy_step(rt.store, rt.provider, config, rt.as_of)
        log.info("intent %s: %s", intent.intent_id, intent.status)
    return 200, {"strategy_id": sid, "intent_id": intent.intent_id, "status": intent.status,
                 "error_message": _short(intent.error_message), "as_of": intent.as_of.isoformat(),
                 "targets": len(intent.target_positions)}


def strategy(request: flask.Request) -> flask.Response:
    """``GET /strategy``: the plan; ``POST /strategy[/{id}]``: one strategy's intent."""
    return respond("strategy", request, {"GET": _strategy_plan, "POST": _strategy_post})


# --------------------------------------------------------------------------- reconcile


def reconcile_answer(execution_id: str, snap: "PortfolioSnapshot", as_of: datetime) -> dict[str, Any]:
    """The reconcile step's answer: ``{"execution_id", "snapshot_id", "as_of", "net_liquidation"`` (base
    currency), ``"holdings"`` (a count)``}``; the holdings themselves are in the snapshot document."""
    return {"execution_id": execution_id, "snapshot_id": snap.snapshot_id, "as_of": as_of.isoformat(),
            "net_liquidation": snap.net_liquidation, "holdings": len(snap.holdings)}


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
    return 200, reconcile_answer(out.execution_id, snap, as_of)


def reconcile(request: flask.Request) -> flask.Response:
    """``POST /reconcile``: take the account's lease and snapshot the broker."""
    return respond("reconcile", request, {"POST": _reconcile_post})


# --------------------------------------------------------------------------- allocation


def _allocation_post(request: flask.Request) -> tuple[int, dict[str, Any]]:
    body = validate(AllocationBody, parse_body(request))
    rt = _runtime()
    _known(rt, list(body.strategyErrors), "strategyErrors")
    _known(rt, list(body.strategies), "strategies")
    as_of = _as_of(rt, body.asOf)
    from pipeline.observe import after_run
    from pipeline.steps import run_allocation_step

    expected = None
    if body.checkIntents:
        expected = list(body.strategies) or [c.strategy_id for c in rt.enabled()]
    with logs.context(execution_id=body.executionId):
        for sid, msg in sorted(body.strategyErrors.items()):
            log.error("strategy step failed, recorded as an error intent: %s", msg, extra={"strategy_id": sid})
        ex, replayed = run_allocation_step(rt.store, rt.broker(), as_of, dry_run=body.dryRun, trigger=body.trigger,
                                           execution_id=body.executionId, reconcile_error=body.reconcileError,
                                           strategy_errors=dict(body.strategyErrors), expected=expected)
        log.info("execution %s: %s%s", ex.status, ex.summary, " (replayed)" if replayed else "",
                 extra={"execution_id": ex.execution_id})
        if not replayed:
            after_run(rt.store, ex, reconcile_error=body.reconcileError)
    return _outcome(_answer(as_of, ex, replayed=replayed), ex)


def allocation(request: flask.Request) -> flask.Response:
    """``POST /allocation``: the Commander, after recording the strategies that failed."""
    return respond("allocation", request, {"POST": _allocation_post})
