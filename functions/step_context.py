"""What the strategy function reads per request: O(1) store reads, whatever the number of strategies.

:func:`functions.context.runtime` reads ``config/trading`` and the whole ``strategies`` collection; the
Commander (``/allocation``, ``/orchestrator``) needs all of it. A strategy step does not: ``POST /strategy``
reads its one ``strategies/{id}`` by path (:func:`strategy_config`) and ``GET /strategy`` one page of ids
(:func:`enabled_page`). ``config/trading`` is read once per run's as-of and process (:func:`step_runtime`):
every step of one workflow execution gets the plan's exact as-of instant, so the cache key is that
execution. Files (``brokers.yaml``, ``instruments.yaml``, ``market.yaml``) are cached by
:func:`functions.context.file_settings` as before.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from dataclasses import dataclass, replace
from datetime import date, datetime
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from bus.models import StrategyConfig, TradingConfig
    from bus.store import Store
    from pipeline.settings import Settings

#: Runs (as-of instants) whose ``config/trading`` this process keeps.
CACHED_RUNS = 32

_lock = threading.Lock()
_trading: OrderedDict[tuple[int, str], "TradingConfig"] = OrderedDict()


@dataclass
class StepRuntime:
    """One strategy-step request's view: the store, the market data, the settings (``trading`` from the store,
    the rest from the files) and the run's as-of (UTC)."""

    store: "Store"
    provider: Any
    settings: "Settings"
    as_of: datetime

    @property
    def mode(self) -> str:
        """The trading mode of ``config/trading`` (``paper`` or ``live``)."""
        return self.settings.trading.mode


def _trading_config(st: "Store", files: "Settings", as_of: datetime) -> "TradingConfig":
    """``config/trading``, read once per (store, as-of) in this process (an LRU of :data:`CACHED_RUNS`)."""
    from functions.context import read_trading_config

    key = (id(st), as_of.isoformat())
    with _lock:
        hit = _trading.get(key)
        if hit is not None:
            _trading.move_to_end(key)
            return hit
    trading = read_trading_config(st, files)
    with _lock:
        _trading[key] = trading
        while len(_trading) > CACHED_RUNS:
            _trading.popitem(last=False)
    return trading


def step_runtime(value: date | datetime | None) -> StepRuntime:
    """The store, the market data, the settings and the resolved as-of of one strategy-step request.

    Reads ``config/trading`` only on the first request of a run's as-of in this process.

    Raises:
        pipeline.wiring.RunInputError: ``value`` does not resolve (see :func:`pipeline.steps.resolve_step_as_of`).
        functions.context.NotConfigured: ``config/trading`` is missing or its mode has no broker account.
        bus.store.StoreError: the store is unreachable.
    """
    from functions import context
    from pipeline.steps import resolve_step_as_of

    st = context.store()
    files = context.file_settings()
    provider = context.market(st, files)
    as_of = resolve_step_as_of(value, files, provider)
    trading = _trading_config(st, files, as_of)
    return StepRuntime(st, provider, replace(files, trading=trading), as_of)


def strategy_config(st: "Store", strategy_id: str) -> "StrategyConfig | None":
    """``strategies/{strategy_id}`` (one read by path), or None when it does not exist."""
    from bus import paths
    from bus.models import StrategyConfig

    raw = st.get(paths.strategy(strategy_id))
    return None if raw is None else StrategyConfig.model_validate(raw)


def enabled_page(st: "Store", after: str | None, limit: int) -> tuple[list[str], str]:
    """One page of the ``strategies`` collection by id: (the enabled ids among at most ``limit`` documents
    after ``after``, the cursor of the next page or ``""`` when this was the last). One query of two fields
    (``strategy_id``, ``enabled``), two round trips with a cursor.

    A cursor whose document was deleted meanwhile starts again from the first id (:meth:`Store.list_page`):
    strategies are disabled, not deleted, so a run normally never meets one; if it does, the strategies
    before it run twice (their intents are written again), none is left out.
    """
    docs = st.list_page("strategies", "strategy_id", limit, start_after=after, descending=False,
                        fields=["strategy_id", "enabled"])
    ids = [sid for sid, doc in docs if doc.get("enabled", True)]
    return ids, (docs[-1][0] if len(docs) == limit else "")
