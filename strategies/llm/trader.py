"""One LLM virtual trader's decision, as one intent: the entry point the strategy runner calls.

:func:`llm_intent` never raises and never writes the intent (the runner does):

1. no API key set for any model of the chain -> ``skipped``, naming the variables
   (in ``replay`` mode no key is needed: no model is asked);
2. paused (its failure rate passed ``max_failure_rate``, see :func:`failure_pause`) -> ``skipped``
   with the reason, until ``python main.py llm resume``; not due (less than the decision
   interval since the last decision) -> ``skipped``;
3. reads its book, its state and today's budget and breaker documents in one
   ``get_all`` (without a book, also the trading config's mode and the NAV of the latest
   portfolio snapshot, in one more: its capital is its allocation x that NAV, or an
   assumed NAV before the first snapshot, :func:`capital_estimate`, and its opens are
   weights of it), and, in parallel, its closed trades;
4. builds the market context as of the run and renders its prompt;
5. asks the model chain (cache, budget, retries, fallbacks); the digest cache is
   consulted when the trader already decided at this as-of time (a replay);
6. checks each decision, turns what passes into its whole target book;
7. journals the decision in ``strategies/{id}/journal/{decision_id}`` and updates its
   state (the prompt's memory of its latest decisions, the failure-rate window) in one
   commit, with the reply's cache entry and the budget charge of a model without a daily
   limit, then returns the intent (``success``, ``skipped`` when the budget is
   exhausted or a replay has no recorded reply, ``error`` when every model failed).

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
from typing import Any, Sequence

from bus import paths as bus_paths
from bus.ids import new_id
from bus.journal import DecisionMemo, JournalEntry, MemoItem, TraderState
from bus.models import (
    Book,
    Intent,
    IntentMetadata,
    IntentSource,
    StrategyConfig,
    TargetPosition,
    Trade,
)
from bus.store import Store
from market.funding import FundingHistory
from market.history import MarketView
from strategies.llm import journal
from strategies.llm.checks import CheckResult, check_decisions
from strategies.llm.client import Answer, ChainResult, ask_chain, missing_keys, no_key_message, state_paths
from strategies.llm.config import CODE_VERSION, TraderSpec, trader_spec
from strategies.llm.context import (
    MarketContext,
    account_view,
    market_context,
    memory_view,
    minutes_between,
    performance_view,
)
from strategies.llm.prompts import RenderedPrompt, render
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


def capital_estimate(config: StrategyConfig, spec: TraderSpec, nav: float | None) -> tuple[float, str]:
    """The capital of a trader without a book: (base currency, basis).

    ``capital_allocation`` x the NAV of the account's latest portfolio snapshot (basis
    ``snapshot``): the starting capital the Commander gives a new book
    (:func:`commander.allocate.book_capital`, before its cap at the cash no book holds).
    Without a snapshot (the very first run: strategies run before reconcile),
    ``capital_allocation`` x ``spec.assumed_nav`` (basis ``assumed``). Either way the
    trader's opens are sent as weights of this amount (:func:`build_targets`), so the
    Commander scales them to the capital the book really opens with.

    Args:
        nav: the latest snapshot's net liquidation (base currency; :func:`snapshot_nav`), None without one.
    """
    if nav is not None:
        return config.capital_allocation * nav, "snapshot"
    return config.capital_allocation * spec.assumed_nav, "assumed"


def snapshot_nav(store: Store) -> float | None:
    """The net liquidation (base currency) of the account's latest portfolio snapshot
    (``positions/{mode}/portfolio/latest``, the mode of ``config/trading``, ``paper`` without one),
    or None without one. One ``get_all`` of the trading config and both modes' snapshots (``mode`` is
    ``paper`` or ``live``, :class:`~bus.models.TradingConfig`), projected on ``mode`` and ``net_liquidation``.

    Raises:
        bus.store.StoreError: the store is unreachable.
    """
    docs = store.get_all([bus_paths.TRADING_CONFIG, *(bus_paths.portfolio(m) for m in ("paper", "live"))],
                         fields=["mode", "net_liquidation"])
    mode = (docs.get(bus_paths.TRADING_CONFIG) or {}).get("mode") or "paper"
    raw = docs.get(bus_paths.portfolio(mode))
    return float(raw["net_liquidation"]) if raw and raw.get("net_liquidation") is not None else None


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
    return sum((1 if a.decision.action == "open_long" else -1) * a.decision.confidence / 100
               for a in opens) / len(opens)


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
        if len(missing) == len(keys) and spec.llm_mode != "replay":
            return Intent(**base, status="skipped", source=source, error_message=no_key_message(spec.model_chain))
        if store is None:
            raise LLMTraderError("a kind-llm strategy needs the store (its book, journal, budget and cache)")
        intent = _decide(config, spec, market, store, now, base, source, funding, timings)
    except Exception as exc:  # fail closed, recorded in the intent
        log.warning("LLM trader %s failed: %s: %s", config.strategy_id, type(exc).__name__, exc)
        intent = Intent(**base, status="error", error_message=f"{type(exc).__name__}: {exc}", source=source)
    if timings is not None:
        timings.total_ms = (time.perf_counter() - t_start) * 1000
    return intent


@dataclass(frozen=True)
class _Call:
    """The fixed facts of one decision: the trader, its spec, the store, the wall clock, the as-of."""

    config: StrategyConfig
    spec: TraderSpec
    store: Store
    now: datetime
    as_of: datetime

    @property
    def sid(self) -> str:
        """The trader's strategy id."""
        return self.config.strategy_id


@dataclass
class _Reads:
    """The trader's documents as one decision read them (one ``get_all``; the trading config only
    matters without a book, :meth:`capital` reads it then).

    ``state`` is a fresh one when the trader has no state document yet (``no_state_doc``).
    ``docs`` are today's budget and breaker documents of the models that may be asked
    (:func:`strategies.llm.client.state_paths`), by path.
    """

    book: Book | None
    state: TraderState
    no_state_doc: bool
    docs: dict[str, dict | None]

    def capital(self, call: "_Call") -> tuple[float, str] | None:
        """:func:`capital_estimate` when the trader has no book (one more read: the snapshot's NAV);
        None when it has one."""
        if self.book:
            return None
        return capital_estimate(call.config, call.spec, snapshot_nav(call.store))


@dataclass
class _View:
    """What the prompt shows and the checks use: the universe, the held units, the symbols
    looked at (universe, then held ones outside it), their market context, the account
    (:func:`account_view`) and its performance (:func:`performance_view`)."""

    universe: list[str]
    held: dict[str, float]
    symbols: list[str]
    mkt: MarketContext
    account: dict[str, Any]
    perf: dict[str, Any]


class _Laps:
    """Adds the milliseconds since the previous lap to ``timings.phases[name]`` (nothing without timings)."""

    def __init__(self, timings: Timings | None) -> None:
        self.timings = timings
        self.last = time.perf_counter()

    def __call__(self, name: str) -> None:
        if self.timings is not None:
            t = time.perf_counter()
            self.timings.phases[name] = self.timings.phases.get(name, 0.0) + (t - self.last) * 1000
            self.last = t


def _decide(config: StrategyConfig, spec: TraderSpec, market: MarketView, store: Store, now: datetime,
            base: dict, source: IntentSource, funding: FundingHistory | None, timings: Timings | None) -> Intent:
    """Steps 2-7 of the module docstring, once a key and the store are there; raises on failure.

    Read the documents (with the trades in parallel) -> not due? -> market context ->
    render the prompt -> ask the model chain -> check the answer and build the targets ->
    journal -> the intent. ``source`` is filled in along the way.
    """
    call = _Call(config, spec, store, now, base["as_of"])
    lap = _Laps(timings)
    trades_read = _pool.submit(_trades, store, call.sid)  # in parallel with the documents: one round trip of wait
    reads = _read_documents(call)
    not_due = _paused(reads.state) or _not_due(call, reads.state)
    if not_due:
        return Intent(**base, status="skipped", source=source, error_message=not_due)
    capital = reads.capital(call)
    trades = trades_read.result()
    lap("read_store")

    view = _market_view(call, market, funding, reads, trades, capital)
    invocation = _invocation(reads.state, call.as_of)
    lap("market_context")

    prompt = _render_prompt(call, reads.state, view, invocation)
    source.prompt_digest = prompt.digest
    decision_id = new_id(call.as_of)
    lap("render")

    chain = _ask(call, prompt, decision_id, reads)
    if timings is not None:
        timings.model_wait_ms += chain.model_wait_ms
    lap("ask_chain")
    try:
        entry = _journal_entry(call, base["intent_id"], decision_id, invocation, prompt, chain, view, reads.book)
        state = reads.state
        state.invocations, state.last_invocation_as_of, state.updated_at = invocation, call.as_of, now
        targets, meta = _outcome(call, chain, view, state, decision_id, entry, source)
        lap("checks")
        source.journal_ref = journal.write(store, entry, state, chain.writes, chain.charges)
        chain.charges = []  # written with the journal
    except BaseException:
        chain.write_charges(store)  # no journal commit carried them: the replies paid for are still counted
        raise
    lap("journal_write")
    return _intent(base, entry, targets, meta, source)


def _read_documents(call: _Call) -> _Reads:
    """The trader's book and state and today's budget and breaker documents of the models with a key,
    in one ``get_all``."""
    sid, now = call.sid, call.now
    keyed = [m for m in call.spec.model_chain if os.environ.get(m.api_key_env) or call.spec.llm_mode == "replay"]
    extra = state_paths(keyed, now)
    docs = call.store.get_all([bus_paths.book(sid), bus_paths.llm_state(sid), *extra])
    raw_book, raw_state = docs[bus_paths.book(sid)], docs[bus_paths.llm_state(sid)]
    book = Book.model_validate(raw_book) if raw_book else None
    state = (TraderState.model_validate(raw_state) if raw_state
             else TraderState(strategy_id=sid, started_at=call.as_of, updated_at=now))
    return _Reads(book, state, raw_state is None, {p: docs.get(p) for p in extra})


def _paused(state: TraderState) -> str | None:
    """Why the trader does not decide: it is paused (see :func:`failure_pause`), or None."""
    if state.paused_at is None:
        return None
    return (f"paused since {state.paused_at.isoformat()}: {state.paused_reason}; "
            f"resume with `python main.py llm resume {state.strategy_id}`")


def failure_pause(statuses: Sequence[str], window: int, max_rate: float) -> str | None:
    """Why a trader must be paused: its errored decisions among the last ``window`` exceed
    ``max_rate`` (a fraction) of ``window``; None otherwise. Fewer decisions than the window
    count against the whole window (3 errors in the first 5 of a 20-window is 15 %)."""
    last = statuses[-window:]
    errors = sum(1 for s in last if s == "error")
    if errors / window > max_rate:
        return (f"{errors} of the last {len(last)} decisions failed ({errors / window:.0%} of a {window}-decision "
                f"window; limit {max_rate:.0%})")
    return None


def _not_due(call: _Call, state: TraderState) -> str | None:
    """Why the trader does not decide now (less than its decision interval since its last decision), or None."""
    last = state.last_decision_as_of
    interval = timedelta(seconds=call.spec.decision_interval_seconds)
    if last is not None and last < call.as_of < last + interval:
        return (f"not due: last decision as of {last.isoformat()}, interval "
                f"{call.spec.decision_interval_seconds} s, next at {(last + interval).isoformat()}")
    return None


def _market_view(call: _Call, market: MarketView, funding: FundingHistory | None, reads: _Reads,
                 trades: list[Trade], capital: tuple[float, str] | None) -> _View:
    """The market context as of the run of the universe and the held symbols, the account and its performance.

    Raises:
        LLMTraderError: no symbol of the universe has fresh market data.
    """
    universe = list(call.config.universe)
    held = reads.book.quantities() if reads.book else {}
    symbols = [*universe, *[s for s in held if s not in universe]]
    mkt = market_context(market, symbols, funding, timedelta(hours=call.spec.max_data_age_hours))
    if not any(s in mkt.prices for s in universe):
        raise LLMTraderError("no fresh market data for any symbol of the universe: "
                             + "; ".join(f"{s}: {mkt.unavailable.get(s)}" for s in universe))
    account = account_view(reads.book, mkt.prices, reads.state.plans, capital[0] if capital else None, call.as_of,
                           capital_basis=capital[1] if capital else None)
    perf = performance_view(reads.book, trades, account["equity"])
    return _View(universe, held, symbols, mkt, account, perf)


def _invocation(state: TraderState, as_of: datetime) -> int:
    """This invocation's number: the last one again when it was at this as-of (a replay), else the next."""
    return state.invocations if state.last_invocation_as_of == as_of else state.invocations + 1


def _render_prompt(call: _Call, state: TraderState, view: _View, invocation: int) -> RenderedPrompt:
    """The trader's system and user prompts (versioned templates, see :func:`render`)."""
    as_of, spec = call.as_of, call.spec
    mkt = view.mkt
    return render(
        spec,
        {"trader": {"id": call.sid, "name": call.config.name}, "universe": view.universe, "risk": spec.risk,
         "majors": spec.risk.major_coins},
        {"now": as_of.isoformat(), "minutes_since_start": minutes_between(state.started_at, as_of),
         "invocations": invocation, "symbols": mkt.symbols, "cadence": cadence(spec.decision_interval_seconds),
         "memory": memory_view(_memory(state, as_of, spec.memory_decisions), mkt.prices, as_of),
         "unavailable": {s: mkt.unavailable[s] for s in view.symbols if s in mkt.unavailable},
         "account": view.account, "performance": view.perf})


def _memory(state: TraderState, as_of: datetime, last: int) -> list[DecisionMemo]:
    """The last ``last`` decisions before ``as_of`` (a replay at an earlier as-of time sees only what came before)."""
    before = [m for m in state.memory if m.as_of < as_of]
    return before[-last:] if last > 0 else []


def render_only(config: StrategyConfig, market: MarketView, store: Store, now: datetime | None = None,
                funding: FundingHistory | None = None) -> RenderedPrompt:
    """The prompt the trader would send as of ``market.as_of``, built exactly as :func:`llm_intent` builds it
    (its book, state and memory from ``store``), without asking a model and without writing anything.

    Raises:
        LLMTraderError: no fresh market data for the universe.
        strategies.llm.config.LLMConfigError: the strategy has no valid ``llm`` block.
        bus.store.StoreError: the store is unreachable.
    """
    now = now or datetime.now(timezone.utc)
    spec = trader_spec(config)
    call = _Call(config, spec, store, now, market.as_of.to_pydatetime())
    reads = _read_documents(call)
    capital = reads.capital(call)
    view = _market_view(call, market, funding, reads, _trades(store, call.sid), capital)
    return _render_prompt(call, reads.state, view, _invocation(reads.state, call.as_of))


def resume(store: Store, strategy_id: str) -> str | None:
    """Clear a trader's pause (``python main.py llm resume``) and its failure-rate window; return the
    reason it was paused (None when it was not).

    Raises:
        LLMTraderError: the trader has no state (it never decided).
        bus.store.StoreError: the store is unreachable.
    """
    raw = store.get(bus_paths.llm_state(strategy_id))
    if not raw:
        raise LLMTraderError(f"trader {strategy_id!r} has no state: it never decided")
    state = TraderState.model_validate(raw)
    why = state.paused_reason
    state.paused_at, state.paused_reason, state.recent_statuses = None, None, []
    store.set(bus_paths.llm_state(strategy_id), journal.compact(state))
    return why


def cadence(seconds: int) -> str:
    """``14400`` -> ``4 hours``; ``86400`` -> ``1 day``; ``1800`` -> ``30 minutes``."""
    for unit, n in (("day", 86400), ("hour", 3600), ("minute", 60)):
        if seconds % n == 0:
            k = seconds // n
            return f"{k} {unit}" + ("s" if k != 1 else "")
    return f"{seconds} seconds"


def _ask(call: _Call, prompt: RenderedPrompt, decision_id: str, reads: _Reads) -> ChainResult:
    """Ask the model chain (:func:`ask_chain`: digest cache, budget, retries, reply validation, fallbacks).

    A cache entry for this prompt can exist only if this trader decided at this as-of
    before (a replay): the prompt names the time. Without a state, look anyway.
    """
    same_as_of = new_id(call.as_of).rsplit("-", 1)[0] + "-"
    replay = reads.no_state_doc or any(d.startswith(same_as_of) for d in reads.state.recent_decisions)
    return ask_chain(call.store, call.spec, prompt, call.now, decision_id, docs=reads.docs, lookup_cache=replay)


def _journal_entry(call: _Call, intent_id: str, decision_id: str, invocation: int, prompt: RenderedPrompt,
                   chain: ChainResult, view: _View, book: Book | None) -> JournalEntry:
    """The decision's journal entry: the prompt, the attempts, their tokens and cost; status
    ``error`` until :func:`_outcome` records the answer (or why there is none)."""
    return JournalEntry(
        decision_id=decision_id, strategy_id=call.sid, as_of=call.as_of, created_at=call.now, status="error",
        intent_id=intent_id, invocation=invocation, prompt_version=prompt.version, templates=prompt.templates,
        prompt_digest=prompt.digest, system_prompt=prompt.system, user_prompt=prompt.user, attempts=chain.attempts,
        prompt_tokens=chain.prompt_tokens, completion_tokens=chain.completion_tokens,
        total_tokens=chain.prompt_tokens + chain.completion_tokens, cost_usd=chain.cost_usd,
        latency_ms=chain.model_wait_ms, budget=chain.budget, market_refs=view.mkt.refs,
        book_ref=bus_paths.book(call.sid) if book else None, equity=view.account["equity"], raw_response=chain.last_raw,
        held_margins={p["symbol"]: p["margin"] for p in view.account["positions"]})


def _outcome(call: _Call, chain: ChainResult, view: _View, state: TraderState, decision_id: str,
             entry: JournalEntry, source: IntentSource) -> tuple[list[TargetPosition], IntentMetadata]:
    """The target book and the intent's metadata from the chain's result.

    With an answer: check its decisions (:func:`check_decisions`), turn what passes into
    the whole target book (:func:`build_targets`), and record both in the journal entry,
    the state (exit plans, last decision) and the source (the model that answered).
    Without one: record in the entry why (``skipped`` or ``error``), no targets.
    """
    if chain.answer is None:
        if chain.skipped:
            entry.status, entry.error_message = "skipped", chain.skipped
        else:
            entry.error_message = chain.error
        _remember(call, state, entry, view, None)
        return [], IntentMetadata(indicators={"decision_id": decision_id})
    ans = chain.answer
    checked = check_decisions(ans.reply.decisions, call.spec.risk, view.universe, view.mkt.prices, view.account)
    # Without a book, opens are weights of the estimated capital: the Commander sizes them on the real one.
    basis = None if view.account["has_book"] else view.account["equity"]
    targets, plans = build_targets(checked.accepted, view.held, state.plans, call.spec.instrument, call.as_of,
                                   decision_id, weight_of=basis)
    _journal_answer(entry, ans, checked, targets)
    state.plans, state.last_decision_as_of, state.last_decision_id = plans, call.as_of, decision_id
    _remember(call, state, entry, view, checked)
    source.model = ans.model.id
    return targets, _metadata(decision_id, ans, checked, entry)


def _remember(call: _Call, state: TraderState, entry: JournalEntry, view: _View, checked: CheckResult | None) -> None:
    """Record the decision in the state: the prompt's memory (its decisions, their prices, any rejection),
    the failure-rate window, and a pause when the rate passed its limit (logged as a warning)."""
    spec = call.spec
    rejected = {r.index: r.rule for r in entry.rejections}
    prices = view.mkt.prices
    items = [MemoItem(symbol=d.get("symbol", ""), action=d.get("action", ""), notional=d.get("notional"),
                      quantity=d.get("quantity"), leverage=d.get("leverage"), price=prices.get(d.get("symbol", "")),
                      rejected=rejected.get(i))
             for i, d in enumerate(entry.decisions) if d.get("action") != "hold"] if checked else []
    note = None if entry.status == "success" else (entry.error_message or "")[:300]
    memo = DecisionMemo(as_of=call.as_of, status=entry.status, model=entry.model, items=items, note=note)
    kept = [m for m in state.memory if m.as_of != call.as_of]  # a replay at the same as-of replaces its memo
    state.memory = [*kept, memo][-max(spec.memory_decisions, 1):]
    state.recent_statuses = [*state.recent_statuses, entry.status][-spec.failure_window:]
    why = failure_pause(state.recent_statuses, spec.failure_window, spec.max_failure_rate)
    if why and state.paused_at is None:
        state.paused_at, state.paused_reason = call.now, why
        log.warning("LLM trader %s paused: %s", call.sid, why)


def _journal_answer(entry: JournalEntry, ans: Answer, checked: CheckResult, targets: list[TargetPosition]) -> None:
    """Record the answer, the checks' verdicts and the target book in the journal entry (status ``success``)."""
    entry.status = "success"
    entry.model, entry.model_name, entry.request_digest = ans.model.id, ans.model.model, ans.request_digest
    entry.raw_response, entry.cache_hit = ans.content, ans.cache_hit
    entry.decisions = [d.model_dump() for d in ans.reply.decisions]
    entry.accepted = sorted(checked.accepted)
    entry.rejections = checked.rejections
    entry.target_positions = targets


def _metadata(decision_id: str, ans: Answer, checked: CheckResult, entry: JournalEntry) -> IntentMetadata:
    """The intent's metadata of an answered decision: signal strength and the decision's figures."""
    return IntentMetadata(signal_strength=_signal(checked.accepted), indicators={
        "decision_id": decision_id, "model": ans.model.id, "decisions": float(len(ans.reply.decisions)),
        "accepted": float(len(checked.accepted)), "rejected": float(len(checked.rejections)),
        "tokens": float(entry.total_tokens), "cost_usd": entry.cost_usd,
        "cache_hit": "true" if ans.cache_hit else "false"})


def _intent(base: dict, entry: JournalEntry, targets: list[TargetPosition], meta: IntentMetadata,
            source: IntentSource) -> Intent:
    """The intent of a journalled decision: ``success`` with its targets, else the entry's status and
    message, naming the journal entry."""
    if entry.status == "success":
        return Intent(**base, status="success", target_positions=targets, metadata=meta, source=source)
    return Intent(**base, status=entry.status, metadata=meta, source=source,
                  error_message=f"{entry.error_message} (journal {source.journal_ref})")
