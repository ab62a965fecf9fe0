"""The backtest engine: the live daily pipeline, stepped over a date range.

Each calendar day from ``start`` to ``end`` is one step at the configured run
time (``run_time_utc``, 21:30 UTC: after the US close, so an ETF fills at that
day's close; a crypto daily bar closes at 00:00 UTC, so crypto fills at the
previous day's close). A step is exactly what ``python main.py run`` does —
:func:`pipeline.run.run_pipeline`: strategies in parallel write
intents, reconcile snapshots the paper broker, the Commander nets, limits,
orders and books — with ``trigger="backtest"`` and the execution id
``bt-YYYYMMDD``. The paper broker fills with its fee, slippage and funding model.

Fill model (``fill_at`` of the paper account, :mod:`brokers.sim`; ``--fill-at``
overrides it): ``next_open`` (the default) rests each market order until the first
price after the run: an ETF order of a 21:30 UTC run fills at the next XNYS
session's open (a weekend or holiday waits for Monday's or the next session's),
a crypto order at the open of the next 1h bar (22:00 UTC) where 1h bars exist,
else the next 4h or daily bar. The fill lands when a later step brings the paper
account up to its as-of time (reconcile, before it resolves the orders), and that
step's Commander books it to the strategies that placed the order (a late fill,
``Execution.late_fills``). ``close`` fills at once at the as-of close, as before:
optimistic, kept for comparison. With ``fill_sensitivity`` (``backtest.yaml``)
the engine runs the other model too, on a fresh in-memory store, and
:attr:`BacktestResult.fill_sensitivity` gives each book's return under both.

The data is cut at the backtest's horizon (``end`` at the run time, see
:mod:`backtest.horizon`): a backtest to T sees what a live run at T
would have seen.

After every step the engine reads what the report needs (the paper account
through :meth:`brokers.sim.SimBroker.account_state`, the books, the execution)
into a :class:`StepRecord`, and checks that the books add up: Σ strategy books +
``external`` = the paper account's holdings per symbol, and NAV = starting cash +
realized + unrealized PnL − fees − funding from the paper account's own state.
Perpetual funding per strategy is what the Commander charged its book
(:mod:`commander.attribute`, ``Book.funding``); the engine does not split it again.

Strategies ahead (``strategy_workers``, ``--strategy-workers``; default 1 with more than one CPU and
120 days or more): a
classic strategy's intent depends only on its configuration and the market as of the step, so one worker
process (:mod:`backtest.strategy_worker`) computes them for the next steps while this process runs the
current step's reconcile and Commander; the step writes them as the strategy step would (the same intents).
LLM traders stay in the step. With 0, every strategy runs in its step, as in a live run.

Stopping: :func:`run_backtest` checks ``stop`` (a :class:`threading.Event`)
between steps, and a ``KeyboardInterrupt`` inside a step ends the loop; either
way the result holds the completed steps and ``interrupted`` is set, so a
partial report can be written; the strategy worker is stopped and reaped either way.
"""

from __future__ import annotations

import logging
import os
import uuid
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from datetime import date, datetime, timedelta
from pathlib import Path
from threading import Event
from typing import Any, Callable, Iterator, Literal

from backtest.horizon import BacktestFile, HorizonHistory, funding_coverage
from backtest.strategy_worker import StrategyWorker, default_workers, start_worker
from brokers.config import SimAccount
from brokers.sim import FillAt, SimBroker
from bus import paths
from bus.constants import NOISE_EPS
from bus.models import Book, EquityPoint, StrategyConfig, Trade
from bus.store import FirestoreStore, MemoryStore, Store
from commander.attribute import EXTERNAL
from market.funding import FundingHistory
from market.history import BUNDLED_DIR
from pipeline.leaderboard import leaderboard
from pipeline.run import PipelineResult, run_pipeline
from pipeline.settings import Settings, apply_settings
from pipeline.wiring import as_of_on, make_broker
from strategies.runner import run_strategies

log = logging.getLogger(__name__)
StoreKind = Literal["memory", "emulator"]
LLM_NOTE = ("kind llm: LLM traders run in backtests only from the digest cache or a configured endpoint; "
            "pass --llm to include them")


#: Bundled 1h crypto bars (``market/data/hourly``): read by backtests only, for the next 1h open a crypto
#: market order fills at (``fill_at: next_open``); marks and strategies keep their own timeframes.
HOURLY_DIR = BUNDLED_DIR / "hourly"


class BacktestInputError(ValueError):
    """Bad backtest input (dates, strategy ids, a non-paper account); nothing ran."""


@dataclass
class StepRecord:
    """What one step left behind, as the report needs it.

    Amounts in base currency; ``*_cum`` are cumulative since the start.

    Attributes:
        day: ``YYYY-MM-DD``; ``as_of`` the step's instant.
        status: the execution's status; ``reason`` why it skipped or failed.
        nav, cash, gross_exposure: the paper account after the step's fills
            (gross = Σ |market value| of holdings).
        equity: strategy id -> its book's equity after the step (``external`` included when held).
        traded: strategy id -> notional booked to it this step (Σ |Δunits| × fill price × multiplier).
        funding: strategy id -> funding the Commander charged its book this step (the change in
            ``Book.funding``; paid > 0).
        orders, rejected: fills booked / orders refused this step (a fill booked now may be of an
            order an earlier step placed: ``fill_at: next_open``, see :func:`step_fills`); fees:
            commissions of those fills; traded_total: their notional (Σ quantity × fill price × multiplier).
        conflicts: conflict type -> count; risk: risk rule -> count (this step).
        not_used: strategy id -> why its intent was not used (errored, stale, missing, skipped).
        book_mismatch: max over symbols of |Σ books + external − account holding| (units).
        external_units: max |units| in the ``external`` book (units nobody's book explains).
        nav_identity_error: NAV − (starting cash + realized + unrealized − fees − funding).
    """

    day: str
    as_of: datetime
    status: str
    reason: str | None
    nav: float
    cash: float
    gross_exposure: float
    equity: dict[str, float]
    traded: dict[str, float]
    funding: dict[str, float]
    orders: int
    rejected: int
    fees: float
    traded_total: float
    fees_cum: float
    funding_cum: float
    realized_cum: float
    unrealized: float
    conflicts: dict[str, int]
    risk: dict[str, int]
    not_used: dict[str, str]
    book_mismatch: float
    external_units: float
    nav_identity_error: float
    # For the report (backtest/report): each book after the step, base currency.
    book_gross: dict[str, float] = field(default_factory=dict)
    book_net: dict[str, float] = field(default_factory=dict)
    book_fills: dict[str, list[tuple[str, float, float]]] = field(default_factory=dict)
    slippage: dict[str, float] = field(default_factory=dict)
    slippage_total: float = 0.0
    # Leverage at the two other instants of a step (:func:`leverage_at_decision`, :func:`leverage_after_fills`);
    # ``book_gross`` / ``equity`` is the third (after the step, marked at its as-of prices).
    decision_leverage: dict[str, float] = field(default_factory=dict)
    fill_leverage: dict[str, float] = field(default_factory=dict)


@dataclass
class BacktestResult:
    """A finished (or interrupted) backtest: settings, steps, final state and notes.

    ``fill_model``: the paper account's ``fill_at`` the run used (``next_open`` | ``close``);
    ``fill_sensitivity``: each book's return under both fill models (:func:`compare_fills`; empty when
    not asked for); ``price_sources``: aliased symbol -> where its bars came from (perpetual bars, or
    its spot pair before them, :meth:`backtest.horizon.HorizonHistory.price_sources`).
    """

    settings: Settings
    start: date
    end: date
    store_kind: str
    strategies: list[str]
    steps: list[StepRecord] = field(default_factory=list)
    interrupted: bool = False
    notes: list[str] = field(default_factory=list)
    starting_cash: float = 0.0
    final_account: dict[str, Any] = field(default_factory=dict)
    books: dict[str, Book] = field(default_factory=dict)
    equity_points: dict[str, dict[str, EquityPoint]] = field(default_factory=dict)
    trades: dict[str, list[Trade]] = field(default_factory=dict)
    leaderboard: list[dict[str, Any]] = field(default_factory=list)
    funding_coverage: dict[str, tuple[str, str] | None] = field(default_factory=dict)
    periods_per_year: int = 365
    wall_seconds: float = 0.0
    fill_model: str = "next_open"
    fill_sensitivity: dict[str, Any] = field(default_factory=dict)
    price_sources: dict[str, str] = field(default_factory=dict)
    data_dirs: list[Path] = field(default_factory=list)

    @property
    def days(self) -> int:
        """Steps completed."""
        return len(self.steps)


def backtest_days(start: date, end: date) -> list[date]:
    """Every calendar day from ``start`` to ``end`` inclusive.

    Raises:
        BacktestInputError: ``start`` after ``end``.
    """
    if start > end:
        raise BacktestInputError(f"--start {start.isoformat()} is after --end {end.isoformat()}")
    return [start + timedelta(days=i) for i in range((end - start).days + 1)]


def choose_strategies(settings: Settings, ids: list[str] | None,
                      include_llm: bool) -> tuple[list[StrategyConfig], list[str]]:
    """The enabled strategies the backtest runs, and notes on those it leaves out.

    Kind-``llm`` strategies are left out unless ``include_llm`` (they then run
    through the same runner, which reads the digest cache or the configured endpoint,
    and writes a ``skipped`` intent when no endpoint is configured). A strategy named
    in ``ids`` runs even when its configuration says ``enabled: false``. The capital of
    strategies left out stays unallocated (cash).

    Raises:
        BacktestInputError: an id not in the configuration, or nothing left to run.
    """
    configured = {s.strategy_id: s for s in settings.strategies}
    if ids:
        unknown = [i for i in ids if i not in configured]
        if unknown:
            raise BacktestInputError(f"unknown strategy id(s) {unknown}; configured: {', '.join(configured)}")
        chosen = [configured[i] for i in ids]
    else:
        chosen = [s for s in settings.strategies if s.enabled]
    notes, out = [], []
    for s in chosen:
        if s.kind == "llm" and not include_llm:
            notes.append(f"{s.strategy_id} left out: {LLM_NOTE}")
            continue
        out.append(s if s.enabled else s.model_copy(update={"enabled": True}))
    if not out:
        raise BacktestInputError("no strategy to backtest" + (f" ({'; '.join(notes)})" if notes else ""))
    return out, notes


@contextmanager
def open_backtest_store(kind: StoreKind) -> Iterator[Store]:
    """A fresh, empty store for one backtest.

    * ``memory``: a :class:`~bus.store.MemoryStore`.
    * ``emulator``: a new project on ``$FIRESTORE_EMULATOR_HOST``, or on an emulator
      started here (no state imported or exported) and stopped on exit.

    Raises:
        bus.emulator.EmulatorError: the emulator is missing or did not start.
    """
    if kind == "memory":
        yield MemoryStore()
        return
    project = f"backtest-{uuid.uuid4().hex[:10]}"
    if os.environ.get("FIRESTORE_EMULATOR_HOST"):
        yield FirestoreStore(project)
        return
    from bus.emulator import FirestoreEmulator

    with FirestoreEmulator(project) as emu:
        os.environ["FIRESTORE_EMULATOR_HOST"] = emu.host
        try:
            yield FirestoreStore(project)
        finally:
            os.environ.pop("FIRESTORE_EMULATOR_HOST", None)


@dataclass(frozen=True)
class StepFill:
    """One fill booked by a step: ``filled_quantity`` units (> 0) of ``symbol`` at ``fill_price`` (quote
    currency per unit, slippage included), ``commission`` in base currency. ``late``: the fill of an order
    placed by an earlier step (``fill_at: next_open``), booked now."""

    symbol: str
    action: str
    filled_quantity: float
    fill_price: float
    commission: float
    late: bool = False


def step_fills(ex: Any) -> list[StepFill]:
    """The fills an execution booked: its own orders filled at once (``fill_at: close``), then the late
    fills of earlier orders (``Execution.late_fills``: a market order that waited for the next open)."""
    if ex is None:
        return []
    out = [StepFill(o.symbol, o.action, o.filled_quantity, o.fill_price, o.commission)
           for o in ex.orders_placed if o.filled_quantity and o.fill_price]
    out += [StepFill(f.symbol, "BUY" if f.quantity > 0 else "SELL", abs(f.quantity), f.price, f.commission, True)
            for f in ex.late_fills if abs(f.quantity) > NOISE_EPS]
    return out


class _Tracker:
    """Carries state from step to step: each book's units and cumulative funding after the previous step."""

    def __init__(self, sids: list[str]) -> None:
        self.sids = sids
        self.prev_units: dict[str, dict[str, float]] = {}
        self.prev_funding: dict[str, float] = {}
        self.prev_prices: dict[str, float] = {}

    def funding_step(self, books: dict[str, Book]) -> dict[str, float]:
        """Funding the Commander charged each book since the previous step (``Book.funding`` now − before)."""
        out = {s: b.funding - self.prev_funding.get(s, 0.0) for s, b in books.items()}
        self.prev_funding = {s: b.funding for s, b in books.items()}
        return {s: v for s, v in out.items() if abs(v) > NOISE_EPS}


def _record(day: date, res: Any, broker: SimBroker, store: Store, sids: list[str], tracker: _Tracker) -> StepRecord:
    ex = res.execution
    st = broker.account_state()  # the paper account after this step's fills
    snap = broker.portfolio(res.as_of)  # the same instant: marks, no new funding
    book_paths = [paths.book(s) for s in [*sids, EXTERNAL]]
    # in memory, validate the stored books without copying them first (validation builds new containers)
    docs = store.peek_all(book_paths) if isinstance(store, MemoryStore) else store.get_all(book_paths)
    books = {s: Book.model_validate(d) for s, d in ((s, docs[paths.book(s)]) for s in [*sids, EXTERNAL]) if d}
    units = {s: b.quantities() for s, b in books.items()}
    account_units = st.quantities()
    summed: dict[str, float] = {}
    for b in units.values():
        for sym, q in b.items():
            summed[sym] = summed.get(sym, 0.0) + q
    mismatch = max((abs(summed.get(s, 0.0) - account_units.get(s, 0.0)) for s in set(summed) | set(account_units)),
                   default=0.0)
    external_units = max((abs(q) for q in units.get(EXTERNAL, {}).values()), default=0.0)
    done = step_fills(ex)
    fills = {o.symbol: o.fill_price for o in done}
    specs = broker.specs
    traded: dict[str, float] = {}
    for sid, now in units.items():
        before = tracker.prev_units.get(sid, {})
        for sym in sorted(set(now) | set(before)):  # sorted: the same sums (to the last bit) in every process
            dq = now.get(sym, 0.0) - before.get(sym, 0.0)
            if abs(dq) > NOISE_EPS and sym in fills:
                mult = specs[sym].multiplier if sym in specs else 1.0
                traded[sid] = traded.get(sid, 0.0) + abs(dq) * fills[sym] * mult
    funding = tracker.funding_step(books)
    prices = ex.context.prices if ex else {}
    extras = _report_extras(units, tracker.prev_units, done, snap, broker, prices)
    mults = {sym: spec.multiplier for sym, spec in specs.items()}
    extras["decision_leverage"] = leverage_at_decision(ex, mults)
    late = any(f.late for f in done)  # next_open: the fills of the previous step's orders
    extras["fill_leverage"] = leverage_after_fills(
        {s: b for s, b in books.items() if s in extras["book_fills"] and s != EXTERNAL}, done,
        tracker.prev_prices if late else prices, mults)
    tracker.prev_units = units
    tracker.prev_prices = {**tracker.prev_prices, **prices}
    unrealized = sum(h.quantity * (h.market_price - h.avg_cost) * (specs[h.symbol].multiplier if h.symbol in specs
                                                                     else 1.0) for h in snap.holdings)
    identity = st.starting_cash + st.realized_pnl + unrealized - st.fees_paid - st.funding_paid
    conflicts: dict[str, int] = {}
    risk: dict[str, int] = {}
    not_used: dict[str, str] = {}
    if ex:
        for c in ex.decision.conflicts:
            conflicts[c.type] = conflicts.get(c.type, 0) + 1
        for r in ex.decision.risk_adjustments:
            risk[r.rule] = risk.get(r.rule, 0) + 1
        for kind, ids in (("errored", ex.errored_strategies), ("stale", ex.stale_strategies),
                          ("missing", ex.missing_strategies), ("skipped", ex.skipped_strategies)):
            for sid in ids:
                intent = res.intents.get(sid)
                why = intent.error_message if intent and intent.error_message else (
                    "the Commander could not size its intent (no price for a target)" if kind == "errored" else kind)
                not_used[sid] = f"{kind}: {why}"
    placed = ex.orders_placed if ex else []
    return StepRecord(
        day=day.isoformat(), as_of=res.as_of, status=ex.status if ex else "failed",
        reason=(ex.reason if ex else res.reconcile_error), nav=snap.net_liquidation, cash=snap.cash,
        gross_exposure=sum(abs(h.market_value) for h in snap.holdings),
        equity={s: b.equity for s, b in books.items() if s != EXTERNAL or b.positions},
        traded=traded, funding=funding,
        orders=len(done), rejected=sum(1 for o in placed if o.status == "Rejected"),
        fees=sum(o.commission for o in done),
        traded_total=sum(o.filled_quantity * o.fill_price * (specs[o.symbol].multiplier if o.symbol in specs
                                                              else 1.0) for o in done),
        fees_cum=st.fees_paid, funding_cum=st.funding_paid, realized_cum=st.realized_pnl, unrealized=unrealized,
        conflicts=conflicts, risk=risk, not_used=not_used, book_mismatch=mismatch, external_units=external_units,
        nav_identity_error=snap.net_liquidation - identity, **extras)


def leverage_at_decision(ex: Any, multipliers: dict[str, float]) -> dict[str, float]:
    """Book -> gross leverage the Commander decided for it: Σ |its contribution to the final target| × the
    decision's price × multiplier, over the capital it was sized on (``Decision.allocations``, its book equity
    at the decision's prices). A fraction (1.0 = gross exposure equal to equity); books without capital or
    without a price for a target symbol are left out. Empty without an execution."""
    if ex is None:
        return {}
    prices = ex.context.prices
    gross: dict[str, float] = {}
    for line in ex.decision.final_target:
        price = line.price if line.price is not None else prices.get(line.symbol)
        for sid, q in line.contributions.items():
            if price is None:
                gross[sid] = float("nan")
                continue
            gross[sid] = gross.get(sid, 0.0) + abs(q) * price * multipliers.get(line.symbol, 1.0)
    return {sid: g / ex.decision.allocations[sid] for sid, g in gross.items()
            if g == g and ex.decision.allocations.get(sid, 0.0) > 0}


def leverage_after_fills(books: dict[str, Book], fills: list[StepFill], before: dict[str, float],
                         multipliers: dict[str, float]) -> dict[str, float]:
    """Book -> gross leverage right after the fills this step booked to it: its units and cash after the step
    (:class:`~bus.models.Book`), the symbols filled marked at their fill prices, the others at ``before``
    (the prices of the decision the orders came from, symbol -> base currency per unit: the previous step's
    for ``fill_at: next_open``, this step's for ``close``). Gross exposure /
    equity, a fraction; a book whose equity so marked is not positive is left out.

    With ``fill_at: next_open`` the fills land at the next open, so the change from the decision is the gap
    from the decision's close to that open (and the costs); the book's cash also carries this step's funding.
    """
    marks = {**before, **{f.symbol: f.fill_price for f in fills}}
    out: dict[str, float] = {}
    for sid, b in books.items():
        values = [p.quantity * marks.get(sym, p.avg_price) * multipliers.get(sym, 1.0)
                  for sym, p in b.positions.items()]
        equity = b.cash + sum(values)
        if equity > 0:
            out[sid] = sum(abs(v) for v in values) / equity
    return out


def _report_extras(units: dict[str, dict[str, float]], before: dict[str, dict[str, float]], placed: list[Any],
                   snap: Any, broker: SimBroker, prices: dict[str, float]) -> dict[str, Any]:
    """The report's per-book fields of a :class:`StepRecord` (base currency).

    * ``book_gross`` / ``book_net``: Σ |units × mark × multiplier| and Σ units × mark × multiplier per book
      (marks: the account's holdings, else this step's fill, else the Commander's price);
    * ``book_fills``: book -> [(symbol, signed units booked, fill price)] this step (Δ of the book's units);
    * ``slippage``: book -> Σ Δunits × (fill − reference) × multiplier, a cost > 0; the reference is the fill
      with the paper broker's slippage taken back out (``CostModel.slippage_bps`` at the fill's notional:
      fill = reference × (1 ± bps/1e4), tick rounding not undone); ``slippage_total`` the same per order.
    """
    specs = broker.specs
    mult = {s: (specs[s].multiplier if s in specs else 1.0) for s in {*prices, *(o.symbol for o in placed)}}
    fills: dict[str, float] = {}
    slip_unit: dict[str, float] = {}
    total = 0.0
    for o in placed:
        if not (o.filled_quantity and o.fill_price):
            continue
        m = mult.get(o.symbol, 1.0)
        sign = 1.0 if o.action == "BUY" else -1.0
        bps = broker.cost_model(o.symbol).slippage_bps(o.filled_quantity * o.fill_price * m)
        ref = o.fill_price / (1.0 + sign * bps / 1e4)
        fills[o.symbol] = o.fill_price
        slip_unit[o.symbol] = o.fill_price - ref
        total += o.filled_quantity * abs(o.fill_price - ref) * m
    marks = {**prices, **fills, **{h.symbol: h.market_price for h in snap.holdings}}
    gross: dict[str, float] = {}
    net: dict[str, float] = {}
    book_fills: dict[str, list[tuple[str, float, float]]] = {}
    slippage: dict[str, float] = {}
    for sid, now in units.items():
        values = [q * marks.get(sym, 0.0) * (specs[sym].multiplier if sym in specs else 1.0) for sym, q in now.items()]
        gross[sid], net[sid] = sum(abs(v) for v in values), sum(values)
        prev = before.get(sid, {})
        for sym in sorted(set(now) | set(prev)):  # sorted: fills in the same order in every process
            dq = now.get(sym, 0.0) - prev.get(sym, 0.0)
            if abs(dq) > NOISE_EPS and sym in fills:
                book_fills.setdefault(sid, []).append((sym, dq, fills[sym]))
                slippage[sid] = slippage.get(sid, 0.0) + dq * slip_unit[sym] * mult.get(sym, 1.0)
    return {"book_gross": gross, "book_net": net, "book_fills": book_fills, "slippage": slippage,
            "slippage_total": total}


def run_backtest(settings: Settings, backtest: BacktestFile, start: date, end: date, store: Store, *,
                 strategies: list[StrategyConfig] | None = None, notes: list[str] | None = None,
                 data_dirs: list[Path] | None = None, store_kind: str = "memory",
                 on_step: Callable[[StepRecord, int, int], None] | None = None,
                 stop: Event | None = None, fill_at: FillAt | None = None,
                 fill_sensitivity: bool | None = None, strategy_workers: int | None = None) -> BacktestResult:
    """Step the daily pipeline from ``start`` to ``end`` on ``store`` (fresh and empty).

    Args:
        settings: validated configuration; its account must be a paper (``sim``) account.
        backtest: ``backtest.yaml`` (price aliases, annualization).
        strategies: the strategies to run (default: every enabled one); others are not
            written to the store, so the Commander never sees them.
        data_dirs: extra folders of bar CSVs, after the bundled ones.
        on_step: called after each step with (record, steps done, steps in all).
        stop: when set, the loop ends before the next step (a partial result).
        fill_at: the paper broker's fill model (``next_open`` | ``close``); default the account's.
        fill_sensitivity: also run the other fill model (in memory) and fill
            :attr:`BacktestResult.fill_sensitivity`; default ``backtest.fill_sensitivity``.
        strategy_workers: 1: compute the classic strategies ahead of the loop in a worker process
            (:mod:`backtest.strategy_worker`; the same intents); 0: in this process, in each step;
            default 1 when more than one CPU is available and there are at least
            :data:`backtest.strategy_worker.MIN_STEPS` days.

    Returns:
        the :class:`BacktestResult`; ``interrupted`` when ``stop`` or Ctrl-C ended it early.

    Raises:
        BacktestInputError: a non-sim account or bad dates.
        bus.store.StoreError: the store failed (nothing is traded on unrecorded state).
        backtest.strategy_worker.StrategyWorkerError: the strategy worker process died (no step after it ran).
    """
    import time

    t0 = time.perf_counter()
    acct = settings.account
    if not isinstance(acct, SimAccount):
        raise BacktestInputError(f"a backtest trades the paper broker only; mode {settings.trading.mode!r} "
                                 f"uses a {acct.kind!r} account")
    if fill_at is not None and fill_at != acct.fill_at:
        acct = acct.model_copy(update={"fill_at": fill_at})
        settings = replace(settings, account=acct)
    days = backtest_days(start, end)
    chosen = strategies if strategies is not None else [s for s in settings.strategies if s.enabled]
    horizon = as_of_on(end, settings)
    dirs = [BUNDLED_DIR, HOURLY_DIR, *(data_dirs or [])]
    as_ofs = [as_of_on(day, settings) for day in days]
    workers = default_workers(len(days)) if strategy_workers is None else strategy_workers
    # started first: the child's imports and bar loads overlap the set-up below
    worker = start_worker(chosen, as_ofs, dirs, horizon, backtest.price_aliases) if workers > 0 else None
    try:
        provider = HorizonHistory(dirs, horizon, backtest.price_aliases)
        funding = FundingHistory([BUNDLED_DIR, *(data_dirs or [])])
        run_settings = replace(settings, strategies=chosen)
        apply_settings(store, run_settings)
        broker = make_broker(store, run_settings, provider, funding)
        assert isinstance(broker, SimBroker)
        sids = [s.strategy_id for s in chosen]
        result = BacktestResult(settings=run_settings, start=start, end=end, store_kind=store_kind, strategies=sids,
                                notes=list(notes or []), starting_cash=float(acct.starting_cash),
                                periods_per_year=backtest.periods_per_year,
                                funding_coverage=funding_coverage(funding, horizon), data_dirs=list(data_dirs or []),
                                fill_model=acct.fill_at, price_sources=provider.price_sources(horizon))
        universe = {sym for s in chosen for sym in s.universe}
        result.notes += [f"{sym} priced from {src}" for sym, src in result.price_sources.items() if sym in universe]
        _run_days(result, days, as_ofs, StepRunner(store, provider, broker, chosen, worker), on_step, stop)
    finally:
        if worker is not None:
            worker.close()
    if result.interrupted and result.steps:
        result.notes.append(f"interrupted after {result.days} of {len(days)} days (last {result.steps[-1].day}): "
                            "a partial report")
    _finish(result, store, broker, sids)
    if (backtest.fill_sensitivity if fill_sensitivity is None else fill_sensitivity) and not result.interrupted:
        other: FillAt = "close" if result.fill_model == "next_open" else "next_open"
        alt = run_backtest(settings, backtest, start, end, MemoryStore(), strategies=chosen, data_dirs=data_dirs,
                           stop=stop, fill_at=other, fill_sensitivity=False, strategy_workers=strategy_workers)
        if not alt.interrupted:
            result.fill_sensitivity = compare_fills(result, alt)
    result.wall_seconds = time.perf_counter() - t0
    return result


@dataclass(frozen=True)
class StepRunner:
    """What every step runs on; ``worker``: the classic strategies' intents computed ahead (None: in the step).

    :meth:`run` is one day: ``python main.py backtest``'s second Ctrl-C abandons the day while it is on the stack
    (:class:`cli.commands.backtest.CtrlC`), also while the day waits for the worker."""

    store: Store
    provider: HorizonHistory
    broker: SimBroker
    chosen: list[StrategyConfig]
    worker: StrategyWorker | None

    def run(self, as_of: datetime, execution_id: str) -> PipelineResult:
        """One day: :func:`pipeline.run.run_pipeline`; with a worker, the strategy step first takes the intents it
        computed ahead (:func:`strategies.runner.run_strategies` writes them, and runs any strategy it does not
        compute, or all of them while the worker is not ready yet), then the pipeline runs reconcile and the
        Commander on them."""
        if self.worker is None:
            return run_pipeline(self.store, self.provider, self.broker, self.chosen, as_of, trigger="backtest",
                                execution_id=execution_id)
        enabled = [s for s in self.chosen if s.enabled]
        intents = run_strategies(self.store, enabled, self.provider, as_of, computed=self.worker.take(as_of))
        res = run_pipeline(self.store, self.provider, self.broker, [], as_of, trigger="backtest",
                           execution_id=execution_id)
        res.intents = intents
        return res


def _run_days(result: BacktestResult, days: list[date], as_ofs: list[datetime], step: StepRunner,
              on_step: Callable[[StepRecord, int, int], None] | None, stop: Event | None) -> None:
    """The loop of :func:`run_backtest`: each day's step and record into ``result``, until the end, ``stop`` or
    a Ctrl-C (``result.interrupted``)."""
    tracker = _Tracker(result.strategies)
    try:
        for i, day in enumerate(days):
            if stop is not None and stop.is_set():
                result.interrupted = True
                break
            res = step.run(as_ofs[i], f"bt-{day:%Y%m%d}")
            rec = _record(day, res, step.broker, step.store, result.strategies, tracker)
            result.steps.append(rec)
            if on_step:
                on_step(rec, i + 1, len(days))
    except KeyboardInterrupt:
        result.interrupted = True
        result.notes.append("interrupted by Ctrl-C inside a step: that step is not in the report")


def compare_fills(primary: BacktestResult, other: BacktestResult) -> dict[str, Any]:
    """Each book's total return under the two fill models (the same days, strategies and data).

    Shape (``report.json``'s ``fill_sensitivity``)::

        {"models": ["next_open", "close"],              # primary first
         "books": {strategy_id: {"next_open": 0.52, "close": 0.57, "difference": -0.05}},
         "account": {"next_open": ..., "close": ..., "difference": ...}}

    Returns are fractions (0.52 = +52 %) of each book's starting capital, as in the leaderboard
    (``total_return``); ``difference`` = primary − other, in fraction points (−0.05 = −5 points);
    the account's is NAV over starting cash. A book without a return in either run is left out.
    """
    a, b = primary.fill_model, other.fill_model

    def returns(r: BacktestResult) -> dict[str, float]:
        out = {row["strategy_id"]: row["total_return"] for row in r.leaderboard
               if row.get("total_return") is not None}
        if r.steps and r.starting_cash > 0:
            out[ACCOUNT] = r.steps[-1].nav / r.starting_cash - 1.0
        return out

    ra, rb = returns(primary), returns(other)
    rows = {k: {a: ra[k], b: rb[k], "difference": ra[k] - rb[k]} for k in ra if k in rb}
    account = rows.pop(ACCOUNT, None)
    return {"models": [a, b], "books": rows, "account": account}


#: The key of the whole account in :func:`compare_fills`' intermediate returns.
ACCOUNT = "__account__"


def _finish(result: BacktestResult, store: Store, broker: SimBroker, sids: list[str]) -> None:
    """Read the final books, equity points, trades, paper account and leaderboard into ``result``."""
    docs = store.get_all([paths.book(s) for s in [*sids, EXTERNAL]])
    result.books = {s: Book.model_validate(d) for s, d in ((s, docs[paths.book(s)]) for s in [*sids, EXTERNAL]) if d}
    for sid in sids:
        result.equity_points[sid] = {d: EquityPoint.model_validate(p)
                                     for d, p in store.list_docs(paths.equity_points(sid))}
        result.trades[sid] = [Trade.model_validate(t) for _, t in store.list_docs(paths.trades(sid))]
    st = broker.account_state()
    result.final_account = {"cash": st.cash, "starting_cash": st.starting_cash, "realized_pnl": st.realized_pnl,
                            "fees_paid": st.fees_paid, "funding_paid": st.funding_paid,
                            "order_count": st.order_count}
    result.final_account["positions"] = {s: p.model_dump() for s, p in st.positions.items() if p.quantity}
    if result.steps:
        last = result.steps[-1]
        result.final_account.update(nav=last.nav, unrealized_pnl=last.unrealized,
                                    nav_identity_error=last.nav_identity_error)
    result.leaderboard = leaderboard(store, result.settings.instruments)
