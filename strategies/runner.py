"""The strategy step: run strategies as of one time and write their intents.

A strategy never writes nothing: an exception (including missing or stale
data) becomes an intent with ``status: "error"`` and the message, so the
Commander keeps that strategy's current book.
"""

from __future__ import annotations

import json
import logging
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timezone
from typing import Mapping

from bus import paths
from bus.ids import new_id
from bus.models import Intent, IntentSource, StrategyConfig
from bus.store import MemoryStore, Store
from market.history import MarketSource, MarketView
from market.usage import RecordingView
from strategies import registry
from strategies.base import StrategyContext

log = logging.getLogger(__name__)


def compute_intent(config: StrategyConfig, market: MarketView, now: datetime | None = None,
                   store: Store | None = None) -> Intent:
    """Run one strategy and return its intent (no I/O beyond market reads for classic strategies).

    Any exception becomes an ``error`` intent carrying ``"{Type}: {message}"``. Every intent, an
    ``error`` one too, records in ``source.bars`` the bar series the strategy read
    (:class:`market.usage.RecordingView`): source, timeframe, last close time, digest.
    A kind-``llm`` strategy is an LLM virtual trader (:func:`strategies.llm.trader.llm_intent`):
    it reads its book and writes its journal, budget and cache in ``store``.
    """
    recording = RecordingView(market)  # --- bars used: every intent records the bars its strategy read
    intent = _compute(config, recording, now, store)
    return intent.model_copy(update={"source": intent.source.model_copy(update={"bars": recording.used()})})


def _compute(config: StrategyConfig, market: MarketView, now: datetime | None, store: Store | None) -> Intent:
    if config.kind == "llm":
        from strategies.llm.trader import llm_intent

        return llm_intent(config, market, store, now)
    as_of = market.as_of.to_pydatetime()
    now = now or datetime.now(timezone.utc)
    base = dict(intent_id=new_id(as_of), strategy_id=config.strategy_id, updated_at=now, as_of=as_of)
    try:
        strategy = registry.create(config.strategy_id)
        result = strategy.compute(StrategyContext(config.strategy_id, as_of, market, config))
        return Intent(**base, status="success", metadata=result.metadata, target_positions=result.target_positions,
                      source=IntentSource(code_version=strategy.code_version))
    except Exception as exc:  # fail closed: recorded in the intent
        log.warning("strategy %s failed: %s: %s", config.strategy_id, type(exc).__name__, exc)
        return Intent(**base, status="error", error_message=f"{type(exc).__name__}: {exc}")


def intent_writes(intent: Intent) -> list[tuple[str, dict]]:
    """The two writes of an intent: ``latest`` and its immutable copy under its id."""
    doc = intent.to_store()
    return [(paths.intent(intent.strategy_id), doc), (paths.intent(intent.strategy_id, intent.intent_id), doc)]


def write_intent(store: Store, intent: Intent) -> bool:
    """Write ``latest`` and the immutable copy in one batch; returns whether ``latest`` was written.

    A ``latest`` intent is never replaced by one of an *earlier* as-of (a historical run
    after today's): that one is stored under its own id only, and the Commander keeps
    today's intent.

    Raises:
        bus.store.StoreError: the store is unreachable.
    """
    return write_intents(store, [intent])[intent.strategy_id]


#: Intents read per ``get_all`` and written per round of batches: two writes each (``latest`` and the copy),
#: Firestore's 500 writes per commit.
INTENTS_PER_BATCH = 250
#: Encoded bytes per write batch: under the 4 MiB message the emulator accepts (Firestore's API allows 10 MiB).
BATCH_BYTES = 3 * 1024 * 1024


def _by_size(writes: list[tuple[str, dict]], limit: int) -> list[list[tuple[str, dict]]]:
    """``writes`` in consecutive batches of at most ``limit`` bytes of compact JSON (a larger write goes alone)."""
    out: list[list[tuple[str, dict]]] = []
    size = 0
    for w in writes:
        n = len(json.dumps(w[1], default=str, separators=(",", ":")))
        if not out or (out[-1] and size + n > limit):
            out.append([])
            size = 0
        out[-1].append(w)
        size += n
    return out


def write_intents(store: Store, intents: list[Intent], per_batch: int = INTENTS_PER_BATCH) -> dict[str, bool]:
    """:func:`write_intent` for many intents: per ``per_batch`` of them, one ``get_all`` of their ``latest``
    documents and their writes in batches of at most :data:`BATCH_BYTES`. Strategy id -> whether ``latest`` was
    written (False: an intent of an earlier as-of than the stored ``latest``, stored under its id only).

    Raises:
        bus.store.StoreError: the store is unreachable (earlier batches stay written).
    """
    out: dict[str, bool] = {}
    for start in range(0, len(intents), per_batch):
        chunk = intents[start:start + per_batch]
        current = store.get_all([paths.intent(i.strategy_id) for i in chunk])
        writes: list[tuple[str, dict]] = []
        for intent in chunk:
            doc = current.get(paths.intent(intent.strategy_id))
            newer = doc.get("as_of") if doc else None
            out[intent.strategy_id] = not (isinstance(newer, datetime) and newer > intent.as_of)
            if not isinstance(newer, datetime) or out[intent.strategy_id]:
                writes += intent_writes(intent)
            else:
                log.info("intent %s of %s is as of %s, before the latest (%s): stored under its id only",
                         intent.intent_id, intent.strategy_id, intent.as_of.isoformat(), newer.isoformat())
                writes.append((paths.intent(intent.strategy_id, intent.intent_id), intent.to_store()))
        if isinstance(store, MemoryStore):  # no message size limit in memory: one batch, nothing to encode
            store.write_batch(writes)
            continue
        for batch in _by_size(writes, BATCH_BYTES):
            store.write_batch(batch)
    return out


def run_strategies(store: Store, configs: list[StrategyConfig], provider: MarketSource, as_of: datetime,
                   max_workers: int = 32, computed: Mapping[str, Intent] | None = None) -> dict[str, Intent]:
    """Run ``configs`` as of ``as_of``, write each intent, return them by strategy id.

    In parallel on threads when an LLM trader is among them (it spends its time waiting for its
    model); classic strategies are pure CPU work, which threads do not speed up under the GIL, so
    without an LLM trader they run one after the other on this thread (no pool is built: a
    backtest calls this once per day). The intents are then written in batches (:func:`write_intents`):
    the store's round trips grow by two per :data:`INTENTS_PER_BATCH` strategies, not two per strategy.

    Args:
        computed: strategy id -> its intent as of ``as_of``, already computed by :func:`compute_intent`
            elsewhere (a backtest computes its classic strategies ahead in a worker process,
            :mod:`backtest.strategy_worker`): not run again, written with the others in ``configs``' order.
    """
    done = computed or {}
    todo = [c for c in configs if c.strategy_id not in done]
    if not configs:
        return {}
    fresh: list[Intent] = []
    if todo:
        market = provider.view(as_of)

        def one(cfg: StrategyConfig) -> Intent:
            return compute_intent(cfg, market, store=store)

        if len(todo) == 1 or all(c.kind != "llm" for c in todo):
            fresh = list(map(one, todo))
        else:
            with ThreadPoolExecutor(max_workers=min(max_workers, len(todo))) as pool:
                fresh = list(pool.map(one, todo))
    rest = iter(fresh)
    intents = [done[c.strategy_id] if c.strategy_id in done else next(rest) for c in configs]
    write_intents(store, intents)
    return {i.strategy_id: i for i in intents}
