"""One LLM virtual trader's decision, as one intent: the entry point the strategy runner calls.

:func:`llm_intent` never raises and never writes the intent (the runner does):

1. no API key set for any model of the chain -> ``skipped``, naming the variables;
2. not due (less than the decision interval since the last decision) -> ``skipped``;
3. reads its book, its state, the trading config and today's budget documents
   (and, without a book, the last portfolio snapshot, to estimate its capital),
   and, in parallel, its closed trades;
4. builds the market context as of the run and renders its prompt;
5. asks the model chain (cache, budget, retries, fallbacks); the digest cache is
   consulted when the trader already decided at this as-of time (a replay);
6. checks each decision, turns what passes into its whole target book;
7. journals the decision in ``strategies/{id}/journal/{decision_id}`` and
   updates its state, then returns the intent (``success``, ``skipped`` when
   the budget is exhausted, ``error`` when every model failed).

Any failure becomes an ``error`` intent with the message, so the Commander
keeps the trader's current book (fail closed).
"""

from __future__ import annotations

import logging
import os
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone

from bus import paths as bus_paths
from bus.ids import new_id
from bus.journal import JournalEntry, TraderState
from bus.models import Book, Intent, IntentMetadata, IntentSource, PortfolioSnapshot, StrategyConfig, Trade, TradingConfig
from bus.store import Store
from market.funding import FundingHistory
from market.history import MarketView
from strategies.llm import budget, journal
from strategies.llm.checks import check_decisions
from strategies.llm.client import ask_chain, missing_keys, no_key_message
from strategies.llm.config import CODE_VERSION, TraderSpec, trader_spec
from strategies.llm.context import account_view, market_context, minutes_between, performance_view
from strategies.llm.prompts import render
from strategies.llm.targets import build_targets

log = logging.getLogger(__name__)
_pool = ThreadPoolExecutor(max_workers=8, thread_name_prefix="llm-io")


class LLMTraderError(RuntimeError):
    """The trader cannot decide (no store, no market data); becomes an ``error`` intent."""


@dataclass
class Timings:
    """Milliseconds spent in each phase of the last decision (for the overhead benchmark)."""

    total_ms: float = 0.0
    model_wait_ms: float = 0.0
    phases: dict[str, float] = field(default_factory=dict)

    @property
    def overhead_ms(self) -> float:
        """Everything but waiting for models."""
        return self.total_ms - self.model_wait_ms


def _capital_estimate(store: Store, config: StrategyConfig, trading: TradingConfig | None) -> float | None:
    """capital_allocation x NAV of the last portfolio snapshot (None without one)."""
    if trading is None:
        return None
    raw = store.get(bus_paths.portfolio(trading.mode))
    if not raw:
        return None
    return config.capital_allocation * PortfolioSnapshot.model_validate(raw).net_liquidation


def _trades(store: Store, strategy_id: str) -> list[Trade]:
    out = []
    for _, d in store.list_docs(bus_paths.trades(strategy_id)):
        try:
            out.append(Trade.model_validate(d))
        except ValueError:
            continue
    return out


def _signal(accepted: dict) -> float | None:
    opens = [a for a in accepted.values() if a.decision.action in ("open_long", "open_short")]
    if not opens:
        return None
    return sum((1 if a.decision.action == "open_long" else -1) * a.decision.confidence / 100 for a in opens) / len(opens)


def llm_intent(config: StrategyConfig, market: MarketView, store: Store | None, now: datetime | None = None,
               funding: FundingHistory | None = None, timings: Timings | None = None) -> Intent:
    """The trader's intent as of ``market.as_of`` (see the module docstring). Never raises.

    Args:
        config: a kind-``llm`` strategy document (its ``llm`` block a :class:`TraderSpec`).
        store: where its book, state, journal, budget and cache live.
        funding: funding history (default: the bundled one).
        timings: filled with the phases' durations when given.
    """
    t_start = time.perf_counter()
    as_of = market.as_of.to_pydatetime()
    now = now or datetime.now(timezone.utc)
    base = dict(intent_id=new_id(as_of), strategy_id=config.strategy_id, updated_at=now, as_of=as_of)
    source = IntentSource(code_version=CODE_VERSION)
    try:
        spec = trader_spec(config)
        source.model = spec.model_chain[0].id
        keys = list(dict.fromkeys(m.api_key_env for m in spec.model_chain))
        missing = missing_keys(spec.model_chain)
        if len(missing) == len(keys):
            return Intent(**base, status="skipped", source=source, error_message=no_key_message(spec.model_chain))
        if store is None:
            raise LLMTraderError("a kind-llm strategy needs the store (its book, journal, budget and cache)")
        intent = _decide(config, spec, market, store, now, base, source, funding, timings)
    except Exception as exc:  # noqa: BLE001 - fail closed, recorded in the intent
        log.warning("LLM trader %s failed: %s: %s", config.strategy_id, type(exc).__name__, exc)
        intent = Intent(**base, status="error", error_message=f"{type(exc).__name__}: {exc}", source=source)
    if timings is not None:
        timings.total_ms = (time.perf_counter() - t_start) * 1000
    return intent


def _decide(config: StrategyConfig, spec: TraderSpec, market: MarketView, store: Store, now: datetime,
            base: dict, source: IntentSource, funding: FundingHistory | None, timings: Timings | None) -> Intent:
    as_of = base["as_of"]
    sid = config.strategy_id
    clock = [time.perf_counter()]

    def lap(name: str) -> None:
        if timings is not None:
            t = time.perf_counter()
            timings.phases[name] = timings.phases.get(name, 0.0) + (t - clock[0]) * 1000
            clock[0] = t

    trades_read = _pool.submit(_trades, store, sid)  # in parallel with the documents: one round trip of wait
    keyed = [m for m in spec.model_chain if os.environ.get(m.api_key_env)]
    usage_paths = list(budget.usage_paths(keyed, now).values())
    before = budget.versions(usage_paths)
    docs = store.get_all([bus_paths.book(sid), bus_paths.llm_state(sid), bus_paths.TRADING_CONFIG, *usage_paths])
    seen = budget.seen_usages(docs, keyed, now, before)
    book = Book.model_validate(docs[bus_paths.book(sid)]) if docs[bus_paths.book(sid)] else None
    raw_state = docs[bus_paths.llm_state(sid)]
    state = (TraderState.model_validate(raw_state) if raw_state
             else TraderState(strategy_id=sid, started_at=as_of, updated_at=now))
    trading = TradingConfig.model_validate(docs[bus_paths.TRADING_CONFIG]) if docs[bus_paths.TRADING_CONFIG] else None
    last = state.last_decision_as_of
    interval = timedelta(seconds=spec.decision_interval_seconds)
    if last is not None and last < as_of < last + interval:
        return Intent(**base, status="skipped", source=source,
                      error_message=f"not due: last decision as of {last.isoformat()}, interval "
                                    f"{spec.decision_interval_seconds} s, next at {(last + interval).isoformat()}")
    capital = None if book else _capital_estimate(store, config, trading)
    trades = trades_read.result()
    lap("read_store")

    universe = list(config.universe)
    held = book.quantities() if book else {}
    symbols = [*universe, *[s for s in held if s not in universe]]
    mkt = market_context(market, symbols, funding, timedelta(hours=spec.max_data_age_hours))
    if not any(s in mkt.prices for s in universe):
        raise LLMTraderError("no fresh market data for any symbol of the universe: "
                             + "; ".join(f"{s}: {mkt.unavailable.get(s)}" for s in universe))
    account = account_view(book, mkt.prices, state.plans, capital)
    perf = performance_view(book, trades, account["equity"])
    invocation = state.invocations if state.last_invocation_as_of == as_of else state.invocations + 1
    lap("market_context")

    prompt = render(
        spec,
        {"trader": {"id": sid, "name": config.name}, "universe": universe, "risk": spec.risk,
         "majors": spec.risk.major_coins},
        {"now": as_of.isoformat(), "minutes_since_start": minutes_between(state.started_at, as_of),
         "invocations": invocation, "symbols": mkt.symbols,
         "unavailable": {s: mkt.unavailable[s] for s in symbols if s in mkt.unavailable},
         "account": account, "performance": perf})
    source.prompt_digest = prompt.digest
    decision_id = new_id(as_of)
    lap("render")

    # A cache entry for this prompt can exist only if this trader decided at this as-of before (a replay):
    # the prompt names the time. Without a state, look anyway.
    same_as_of = new_id(as_of).rsplit("-", 1)[0] + "-"
    replay = raw_state is None or any(d.startswith(same_as_of) for d in state.recent_decisions)
    chain = ask_chain(store, spec, prompt, now, decision_id, seen=seen, lookup_cache=replay)
    if timings is not None:
        timings.model_wait_ms += chain.model_wait_ms
    lap("ask_chain")

    entry = JournalEntry(
        decision_id=decision_id, strategy_id=sid, as_of=as_of, created_at=now, status="error",
        intent_id=base["intent_id"], invocation=invocation, prompt_version=prompt.version, templates=prompt.templates,
        prompt_digest=prompt.digest, system_prompt=prompt.system, user_prompt=prompt.user, attempts=chain.attempts,
        prompt_tokens=chain.prompt_tokens, completion_tokens=chain.completion_tokens,
        total_tokens=chain.prompt_tokens + chain.completion_tokens, cost_usd=chain.cost_usd,
        latency_ms=chain.model_wait_ms, budget=chain.budget, market_refs=mkt.refs,
        book_ref=bus_paths.book(sid) if book else None, equity=account["equity"], raw_response=chain.last_raw)
    state.invocations, state.last_invocation_as_of, state.updated_at = invocation, as_of, now
    targets = []
    meta = IntentMetadata(indicators={"decision_id": decision_id})
    if chain.answer is not None:
        ans = chain.answer
        decisions = ans.reply.decisions
        checked = check_decisions(decisions, spec.risk, universe, mkt.prices, account)
        targets, plans = build_targets(checked.accepted, held, state.plans, spec.instrument, as_of, decision_id)
        entry.status = "success"
        entry.model, entry.model_name, entry.request_digest = ans.model.id, ans.model.model, ans.request_digest
        entry.raw_response, entry.cache_hit = ans.content, ans.cache_hit
        entry.decisions = [d.model_dump() for d in decisions]
        entry.accepted = sorted(checked.accepted)
        entry.rejections = checked.rejections
        entry.target_positions = targets
        state.plans, state.last_decision_as_of, state.last_decision_id = plans, as_of, decision_id
        source.model = ans.model.id
        meta = IntentMetadata(signal_strength=_signal(checked.accepted), indicators={
            "decision_id": decision_id, "model": ans.model.id, "decisions": float(len(decisions)),
            "accepted": float(len(checked.accepted)), "rejected": float(len(checked.rejections)),
            "tokens": float(entry.total_tokens), "cost_usd": entry.cost_usd,
            "cache_hit": "true" if ans.cache_hit else "false"})
    elif chain.skipped:
        entry.status, entry.error_message = "skipped", chain.skipped
    else:
        entry.error_message = chain.error
    lap("checks")
    source.journal_ref = journal.write(store, entry, state, chain.writes)
    lap("journal_write")
    if entry.status == "success":
        return Intent(**base, status="success", target_positions=targets, metadata=meta, source=source)
    return Intent(**base, status=entry.status, metadata=meta, source=source,
                  error_message=f"{entry.error_message} (journal {source.journal_ref})")
