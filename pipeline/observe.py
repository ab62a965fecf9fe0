"""After a run, at the edge: its figures to the metrics, its alerts to the webhooks.

Called by the CLI's ``run`` and by the Commander's Cloud Function once the execution is
written (not by the backtest: a backtest alerts no one). Reads, in three queries and
one batched get: the orders still ``unknown``, the day's ``llm_usage`` documents, the
paused strategies, and the books and snapshot the figures show.
"""

from __future__ import annotations

import logging
import os
from datetime import datetime, timezone
from pathlib import Path

from bus import paths, telemetry
from bus.constants import CONFIG_DIR_ENV
from bus.models import Execution, Intent
from bus.store import Store
from pipeline.alerts import run_alerts
from pipeline.notify import Delivery, Notifier, load_alerts_config
from pipeline.settings import DEFAULT_DIR

log = logging.getLogger(__name__)


def paused_strategies(store: Store) -> dict[str, str]:
    """Strategy id -> why it is paused: by a person (``strategies/{id}.state``), or, for an enabled LLM
    trader, by its failure rate (``strategies/{id}/llm/state.paused_reason``, one batched get)."""
    docs = store.list_docs("strategies")
    out = {sid: f"paused by {d.get('state_changed_by') or 'a person'}: {d.get('state_reason') or 'no reason given'}"
           for sid, d in docs if d.get("state") == "paused"}
    llm = [sid for sid, d in docs if d.get("kind") == "llm" and d.get("enabled", True) and sid not in out]
    for path, st in store.get_all([paths.llm_state(s) for s in llm]).items() if llm else ():
        if st and st.get("paused_at"):
            out[path.split("/")[1]] = f"LLM trader paused: {st.get('paused_reason') or 'failure rate'}"
    return out


def after_run(store: Store, execution: Execution | None, *, config_dir: Path | None = None,
              reconcile_error: str | None = None, intents: dict[str, Intent] | None = None,
              now: datetime | None = None, notifier: Notifier | None = None) -> list[Delivery]:
    """Record the run's metrics and send its alerts; returns what became of each alert.

    Never raises for a store or webhook failure: the run is already recorded, and a
    failure here is logged (an alert must not turn a completed run into a failed one).

    Args:
        execution: the execution as recorded (None when the Commander did not run).
        config_dir: where ``alerts.yaml`` is (default ``$INTENT_BUS_CONFIG_DIR``, else the project's ``config/``).
        intents: this run's intents, for data staleness per series.
        now: the wall clock (UTC) of the budget day; default now.
    """
    now = now or datetime.now(timezone.utc)
    try:
        if execution is not None:
            _metrics(store, execution, intents or {})
        usages = store.list_where("llm_usage", "day", now.date().isoformat())
        alerts = run_alerts(execution, reconcile_error=reconcile_error, intents=intents,
                            unknown_orders=[d for _, d in store.list_where(paths.ORDERS, "status", "unknown")],
                            usages=[d for _, d in usages],
                            paused=paused_strategies(store))
        if notifier is None:
            folder = config_dir or Path(os.environ.get(CONFIG_DIR_ENV) or DEFAULT_DIR)
            notifier = Notifier(store, load_alerts_config(folder))
        return notifier.send(alerts)
    except Exception as exc:  # the run is on record already; say why the alerts did not go out
        log.error("alerts and metrics of the run failed: %s: %s", type(exc).__name__, exc)
        return []


def _metrics(store: Store, ex: Execution, intents: dict[str, Intent]) -> None:
    mode = str(ex.context.config_used.get("mode") or "paper")
    sids = sorted(ex.context.strategy_configs) or sorted(ex.context.strategy_intents_refs)
    docs = store.get_all([paths.portfolio(mode)] + [paths.book(s) for s in sids])
    snap = docs.get(paths.portfolio(mode)) or {}
    equity = {s: float(d["equity"]) for s in sids if (d := docs.get(paths.book(s))) and "equity" in d}
    nav = snap.get("net_liquidation")
    telemetry.observe_execution(ex, nav=float(nav) if nav is not None else None, mode=mode, book_equity=equity)
    for intent in intents.values():
        telemetry.observe_bars(ex.as_of, intent.source.bars)
