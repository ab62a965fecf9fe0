"""What a run should tell a person: alerts derived from the run's documents (pure).

:func:`run_alerts` reads nothing and sends nothing: it maps an execution, the
orders still ``unknown``, the day's LLM usage documents and the paused
strategies to a list of :class:`Alert`. :mod:`pipeline.notify` de-duplicates,
rate-limits and posts them.

Kinds (``Alert.kind``), each with the key that de-duplicates it:

===================  ==================================================  =====================
kind                 when                                                key
===================  ==================================================  =====================
execution_failed     the execution's status is ``failed``                the reason
execution_partial    ``partial_success`` (an order refused or lost)      the reason
execution_skipped    ``skipped`` (kill switch, lease, no snapshot, ...)  the reason
broker_disconnect    reconcile could not read the broker                 the error's class
risk_halt            a loss halt scaled the book                         the halt rule
drawdown_isolation   a strategy past its ``max_drawdown``: reduce only   the strategy id
market_data          a strategy's data was stale or invalid              the strategy id
order_unknown        an order's answer was lost (``unknown``)            the client order id
llm_budget           a model reached its alert threshold or its limit    deployment, day, level
strategy_paused      a strategy or LLM trader is paused                  the strategy id
===================  ==================================================  =====================
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Iterable, Literal

from bus.models import Execution

Severity = Literal["info", "warning", "critical"]

#: Halt rules of :mod:`commander.risk` (their ``RiskAdjustment.rule``).
HALT_RULES = frozenset({"unrealized_loss_halt", "daily_loss_halt"})
#: A strategy reason that names its market data (stale or invalid bars, prices).
_DATA_WORDS = re.compile(r"\b(bars?|data|price[sd]?|stale|series|candles?)\b", re.IGNORECASE)


@dataclass(frozen=True)
class Alert:
    """One thing a person should know.

    Attributes:
        kind: one of the kinds in the module table.
        key: what makes two alerts of a kind the same (de-duplication within the window).
        severity: ``info``, ``warning`` or ``critical``.
        title: one line.
        text: the detail, plain text (no secrets: built from recorded reasons only).
        execution_id: the run it came from, when there is one.
    """

    kind: str
    key: str
    severity: Severity
    title: str
    text: str
    execution_id: str | None = None

    def as_dict(self) -> dict[str, Any]:
        """The generic webhook body's ``alert`` object."""
        return {"kind": self.kind, "key": self.key, "severity": self.severity, "title": self.title,
                "text": self.text, "execution_id": self.execution_id}


def _short(text: str | None, limit: int = 120) -> str:
    text = (text or "").strip().replace("\n", " ")
    return text if len(text) <= limit else text[:limit - 1] + "…"


def execution_alerts(ex: Execution, reconcile_error: str | None = None) -> list[Alert]:
    """Alerts of one execution: its status, a broker it could not read, halts, isolations, bad data.

    Args:
        ex: the execution as recorded.
        reconcile_error: ``"ErrorClass: message"`` when this run's reconcile failed, else None
            (the execution's reason also says ``reconcile failed: ...`` when the run skipped for it).
    """
    out: list[Alert] = []
    eid = ex.execution_id
    status_kinds: dict[str, tuple[str, Severity]] = {
        "failed": ("execution_failed", "critical"), "partial_success": ("execution_partial", "warning"),
        "skipped": ("execution_skipped", "warning")}
    status_kind = status_kinds.get(ex.status)
    if status_kind:
        kind, sev = status_kind
        why = ex.reason or ex.summary
        out.append(Alert(kind, _short(why, 80), sev, f"execution {eid} {ex.status}", _short(why, 500), eid))
    broken = reconcile_error
    if broken is None and (ex.reason or "").startswith("reconcile failed:"):
        broken = (ex.reason or "").removeprefix("reconcile failed:").strip()
    if broken:
        cls = broken.split(":", 1)[0].strip() or "BrokerError"
        out.append(Alert("broker_disconnect", cls, "critical", "broker unreachable: no snapshot, nothing traded",
                         _short(broken, 500), eid))
    seen: set[tuple[str, str]] = set()
    for adj in ex.decision.risk_adjustments:
        if adj.rule in HALT_RULES and ("halt", adj.rule) not in seen:
            seen.add(("halt", adj.rule))
            out.append(Alert("risk_halt", adj.rule, "critical", f"risk halt: {adj.rule}", _short(adj.note, 500), eid))
        elif adj.rule == "strategy_drawdown" and adj.strategy_id and ("dd", adj.strategy_id) not in seen:
            seen.add(("dd", adj.strategy_id))
            out.append(Alert("drawdown_isolation", adj.strategy_id, "warning",
                             f"{adj.strategy_id} isolated by drawdown: reduce only", _short(adj.note, 500), eid))
    reasons = {sid: ex.strategy_reasons.get(sid, "stale intent") for sid in ex.stale_strategies}
    errored = {sid: ex.strategy_reasons.get(sid, "") for sid in ex.errored_strategies}
    reasons.update({sid: r for sid, r in errored.items() if _DATA_WORDS.search(r)})
    return out + data_alerts(reasons, eid)


def data_alerts(reasons: dict[str, str], execution_id: str | None = None) -> list[Alert]:
    """``market_data`` alerts: strategy id -> why its data was stale or invalid."""
    return [Alert("market_data", sid, "warning", f"{sid}: market data stale or invalid, not traded",
                  _short(why, 500), execution_id) for sid, why in sorted(reasons.items())]


def intent_data_errors(intents: dict[str, Any]) -> dict[str, str]:
    """Strategy id -> error message of each ``error`` intent (:class:`bus.models.Intent`) that names its data."""
    return {sid: i.error_message for sid, i in intents.items()
            if i.status == "error" and i.error_message and _DATA_WORDS.search(i.error_message)}


def order_alerts(unknown_orders: Iterable[dict[str, Any]]) -> list[Alert]:
    """One ``order_unknown`` alert per ``orders/*`` document (as stored) whose status is ``unknown``."""
    out = []
    for o in unknown_orders:
        if o.get("status") != "unknown":
            continue
        coid, sym, eid = str(o.get("client_order_id", "?")), o.get("symbol"), o.get("execution_id")
        qty = o.get("totalQuantity", o.get("quantity"))
        if o.get("orderType") in ("STP", "MIT"):  # a protective exit: conditional, reduce-only, blocks nothing
            text = (f"protective exit {o.get('orderType')} {o.get('action')} {qty} {sym} at {o.get('auxPrice')} "
                    f"(execution {eid}); the next run asks the venue again. {_short(o.get('error'), 300)}")
        else:
            text = (f"{o.get('action')} {qty} {sym} (execution {eid}); no new order on {sym} "
                    f"until the venue answers for it. {_short(o.get('error'), 300)}")
        out.append(Alert("order_unknown", coid, "critical", f"order {coid} unknown: the venue's answer was lost",
                         text.strip(), eid))
    return out


def budget_alerts(usages: Iterable[dict[str, Any]]) -> list[Alert]:
    """``llm_budget`` alerts from ``llm_usage/*`` documents (as stored): threshold reached, or exhausted."""
    out = []
    for u in usages:
        dep, day = str(u.get("deployment", "?")), str(u.get("day", "?"))
        used = (f"{u.get('total_tokens', 0)} tokens, {float(u.get('cost_usd') or 0):.4f} USD "
                f"(limits: {u.get('token_limit')} tokens, {u.get('cost_limit_usd')} USD)")
        if u.get("exhausted_at"):
            out.append(Alert("llm_budget", f"{dep}:{day}:exhausted", "critical",
                             f"LLM budget exhausted: {dep} on {day}", used))
        elif u.get("alerted_at"):
            out.append(Alert("llm_budget", f"{dep}:{day}:threshold", "warning",
                             f"LLM budget at {float(u.get('alert_threshold') or 0.8):.0%}: {dep} on {day}", used))
    return out


def paused_alerts(paused: dict[str, str]) -> list[Alert]:
    """``strategy_paused`` alerts: strategy id -> why it is paused."""
    return [Alert("strategy_paused", sid, "warning", f"{sid} is paused", _short(why, 500) or "paused")
            for sid, why in sorted(paused.items())]


def run_alerts(ex: Execution | None, *, reconcile_error: str | None = None, intents: dict[str, Any] | None = None,
               unknown_orders: Iterable[dict[str, Any]] = (), usages: Iterable[dict[str, Any]] = (),
               paused: dict[str, str] | None = None) -> list[Alert]:
    """Every alert of one run, in a stable order (execution, data, orders, budgets, paused strategies).

    ``intents`` (strategy id -> :class:`bus.models.Intent`) adds a ``market_data`` alert for each
    ``error`` intent that names its data, when the execution did not already (a skipped run
    classifies no intent).
    """
    out = execution_alerts(ex, reconcile_error) if ex is not None else []
    have = {a.key for a in out if a.kind == "market_data"}
    eid = ex.execution_id if ex is not None else None
    out += data_alerts({s: m for s, m in intent_data_errors(intents or {}).items() if s not in have}, eid)
    if ex is None and reconcile_error:
        out.append(Alert("broker_disconnect", reconcile_error.split(":", 1)[0], "critical",
                         "broker unreachable: no snapshot", _short(reconcile_error, 500)))
    return out + order_alerts(unknown_orders) + budget_alerts(usages) + paused_alerts(paused or {})
