"""Run figures as Prometheus metrics (``prometheus-client``) and as structured-log fields.

The process's default prometheus-client collector set (these metrics, plus the client's process and
platform collectors) is served by ``serve`` at ``/metrics``
(:func:`exposition`). In the cloud nothing scrapes a function, so every observation is
also one structured log line, ``metric <name>`` with ``json_fields`` ``{"metric": name,
"labels": {...}, "value": v}``, which a log-based metric reads (``deploy`` creates them).

Metrics (units in the names, as Prometheus recommends):

=========================================  =========  ===================================
name                                       type       labels
=========================================  =========  ===================================
intent_bus_step_duration_seconds           histogram  step (strategies, reconcile, commander, pipeline)
intent_bus_executions_total                counter    status
intent_bus_orders_total                    counter    status (the venue's words: Filled, Rejected, ...)
intent_bus_order_rejections_total          counter    symbol
intent_bus_nav                             gauge      mode (account currency)
intent_bus_book_equity                     gauge      strategy_id (account currency)
intent_bus_data_staleness_seconds          gauge      symbol, timeframe (as-of − newest bar close)
intent_bus_lease_total                     counter    outcome (taken, refused)
intent_bus_llm_tokens_total                counter    model, kind (prompt, completion)
intent_bus_llm_cost_usd_total              counter    model (USD)
intent_bus_llm_request_duration_seconds    histogram  model
=========================================  =========  ===================================
"""

from __future__ import annotations

import logging
from datetime import datetime
from typing import Any, Iterable

from prometheus_client import Counter, Gauge, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

log = logging.getLogger("intent_bus.metrics")

CONTENT_TYPE = CONTENT_TYPE_LATEST

STEP_SECONDS = Histogram("intent_bus_step_duration_seconds", "Wall time of one pipeline step", ["step"],
                         buckets=(0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600))
EXECUTIONS = Counter("intent_bus_executions", "Commander executions by final status", ["status"])
ORDERS = Counter("intent_bus_orders", "Orders by the venue's status", ["status"])
REJECTIONS = Counter("intent_bus_order_rejections", "Orders the venue refused", ["symbol"])
NAV = Gauge("intent_bus_nav", "Account net liquidation value (account currency)", ["mode"])
BOOK_EQUITY = Gauge("intent_bus_book_equity", "A strategy book's equity (account currency)", ["strategy_id"])
STALENESS = Gauge("intent_bus_data_staleness_seconds", "As-of time minus the newest bar's close",
                  ["symbol", "timeframe"])
LEASE = Counter("intent_bus_lease", "Account lease attempts", ["outcome"])
LLM_TOKENS = Counter("intent_bus_llm_tokens", "LLM tokens used", ["model", "kind"])
LLM_COST = Counter("intent_bus_llm_cost_usd", "LLM cost (USD)", ["model"])
LLM_SECONDS = Histogram("intent_bus_llm_request_duration_seconds", "LLM request latency", ["model"],
                        buckets=(0.25, 0.5, 1, 2, 4, 8, 16, 32, 64))


def _emit(name: str, labels: dict[str, str], value: float) -> None:
    log.info("metric %s", name, extra={"data": {"metric": name, "labels": labels, "value": value}})


def observe_step(step: str, seconds: float) -> None:
    """One pipeline step took ``seconds`` (wall clock)."""
    STEP_SECONDS.labels(step=step).observe(seconds)
    _emit("intent_bus_step_duration_seconds", {"step": step}, seconds)


def observe_lease(taken: bool) -> None:
    """The account's lease was taken (True) or refused (False)."""
    outcome = "taken" if taken else "refused"
    LEASE.labels(outcome=outcome).inc()
    _emit("intent_bus_lease_total", {"outcome": outcome}, 1)


def observe_execution(execution: Any, nav: float | None = None, mode: str | None = None,
                      book_equity: dict[str, float] | None = None) -> None:
    """An execution's figures: its status, each placed order's status, rejections, NAV, book equity.

    Args:
        execution: a :class:`bus.models.Execution` (read by attribute only).
        nav / mode: the account's NAV (account currency) and mode, when known.
        book_equity: strategy id -> book equity (account currency).
    """
    EXECUTIONS.labels(status=execution.status).inc()
    _emit("intent_bus_executions_total", {"status": execution.status}, 1)
    for o in execution.orders_placed:
        status = str(o.status or "unknown")
        ORDERS.labels(status=status).inc()
        if status in ("Rejected", "Cancelled", "Inactive", "ApiCancelled"):
            REJECTIONS.labels(symbol=o.symbol).inc()
    if execution.orders_placed:
        _emit("intent_bus_orders_total", {"execution_id": execution.execution_id}, len(execution.orders_placed))
    if nav is not None and mode:
        NAV.labels(mode=mode).set(nav)
        _emit("intent_bus_nav", {"mode": mode}, nav)
    for sid, eq in (book_equity or {}).items():
        BOOK_EQUITY.labels(strategy_id=sid).set(eq)
        _emit("intent_bus_book_equity", {"strategy_id": sid}, eq)


def observe_bars(as_of: datetime, bars_used: Iterable[Any]) -> None:
    """Data staleness per series from an intent's ``source.bars`` (:class:`bus.models.BarsUsed`)."""
    for b in bars_used:
        age = max(0.0, (as_of - b.last_close).total_seconds())
        STALENESS.labels(symbol=b.symbol, timeframe=b.timeframe).set(age)
        _emit("intent_bus_data_staleness_seconds", {"symbol": b.symbol, "timeframe": b.timeframe}, age)


def observe_llm(model: str, prompt_tokens: int, completion_tokens: int, cost_usd: float, seconds: float) -> None:
    """One LLM request: tokens, cost (USD) and latency (seconds), by model."""
    LLM_TOKENS.labels(model=model, kind="prompt").inc(prompt_tokens)
    LLM_TOKENS.labels(model=model, kind="completion").inc(completion_tokens)
    LLM_COST.labels(model=model).inc(cost_usd)
    LLM_SECONDS.labels(model=model).observe(seconds)
    _emit("intent_bus_llm_tokens_total", {"model": model}, prompt_tokens + completion_tokens)


def exposition() -> bytes:
    """Every metric of this process in Prometheus' text format (serve's ``/metrics`` body; :data:`CONTENT_TYPE`)."""
    return generate_latest()
