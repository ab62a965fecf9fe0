"""Document models of the bus: the only place document shapes are written down.

Every Firestore document the pipeline reads or writes is one of these pydantic
models. Field names follow DESIGN.md and the seed schema: snake_case, with
Interactive Brokers' camelCase names inside contract and order objects
(``secType``, ``orderId``, ``totalQuantity``, ``lmtPrice``).

Units: amounts are in the account's base currency (USD unless configured),
quantities in the instrument's units (shares, contracts, coins), rates are
fractions (0.01 = 1 %) unless a name ends in ``_pct`` or ``_bps``. Times are
timezone-aware UTC ``datetime`` objects.
"""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, AllowInfNan, AwareDatetime, BaseModel, ConfigDict, Field, Strict, model_validator

IntentStatus = Literal["success", "error", "skipped"]
#: ``placing``: written ahead of the venue calls; a run that died while placing stays ``placing``
#: until a later run resolves its orders.
ExecutionStatus = Literal["completed", "failed", "partial_success", "skipped", "placing"]
#: A strategy's lifecycle state (``strategies/{id}.state``): see :mod:`pipeline.lifecycle`.
LifecycleState = Literal["active", "paused", "isolated", "retired"]
Action = Literal["BUY", "SELL"]


def utc(dt: datetime) -> datetime:
    """Return ``dt`` as an aware UTC datetime.

    Raises:
        ValueError: if ``dt`` is naive (a time without a zone is ambiguous).
    """
    if dt.tzinfo is None:
        raise ValueError(f"naive datetime {dt.isoformat()} has no time zone; use UTC")
    return dt.astimezone(timezone.utc)


#: A timezone-aware datetime, converted to UTC; a naive one is refused.
UTCDateTime = Annotated[AwareDatetime, AfterValidator(utc)]


#: A number as a number: a string such as ``"10"`` is refused (strict), and so are NaN and ±inf.
FiniteNumber = Annotated[float, Strict(), AllowInfNan(False)]


class Doc(BaseModel):
    """Base of all documents: unknown fields are refused, times are aware UTC."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True, validate_assignment=False)

    def to_store(self) -> dict[str, Any]:
        """Dump to a plain dict the store can write (datetimes kept as datetimes)."""
        return self.model_dump(mode="python", by_alias=True)


# --------------------------------------------------------------------------- config


class RiskLimits(Doc):
    """Global risk limits of ``config/trading`` (fractions of NAV unless noted).

    Defaults are safe values; the Commander's risk step (commander/risk.py) applies them:

    * ``max_margin_use``: initial margin of the final target (Σ |notional| /
      instrument ``max_leverage``) at most this share of NAV, i.e. of what the
      account allows (0.85 = 85 %).
    * ``max_gross_leverage``: Σ |notional| / NAV at most this (2.0 = 2×).
    * ``max_symbol_exposure``: |net notional| of one symbol / NAV (0.5 = 50 %).
    * ``max_open_positions``: non-zero target positions (count).
    * ``unrealized_loss_halt``: when the holdings' unrealized loss exceeds this
      share of NAV, only orders that reduce exposure pass (0.20 = 20 %).
    * ``daily_loss_halt``: when NAV fell this share since the previous day's
      last run, only reducing orders pass (0.05 = 5 %).
    """

    max_gross_leverage: float = Field(2.0, gt=0)
    max_margin_use: float = Field(0.85, gt=0, le=1)
    max_symbol_exposure: float = Field(0.5, gt=0)
    max_open_positions: int = Field(10, ge=1)
    unrealized_loss_halt: float = Field(0.20, gt=0, le=1)
    daily_loss_halt: float = Field(0.05, gt=0, le=1)


class PerformanceAllocation(Doc):
    """Settings of the ``performance_based`` allocation (fractions of NAV per strategy).

    Weights are proportional to each book's annualized Sharpe ratio over
    ``lookback_days`` of daily equity points; ``floor`` ≤ weight ≤ ``cap``.
    Fewer than ``min_history_days`` points, or a Sharpe ≤ 0, gives the floor.
    """

    lookback_days: int = Field(90, ge=2)
    min_history_days: int = Field(20, ge=2)
    floor: float = Field(0.02, ge=0, le=1)
    cap: float = Field(0.4, gt=0, le=1)
    periods_per_year: int = Field(365, gt=0)


class TradingConfig(Doc):
    """``config/trading``: the kill switch, the mode and the Commander's settings.

    Attributes:
        tradingEnabled: kill switch; False turns every Commander run into a dry run.
        mode: ``paper`` or ``live``; selects ``positions/{mode}`` and ``locks/commander-{mode}``.
        allocation_method: ``custom`` (each strategy's ``capital_allocation``),
            ``equal`` or ``performance_based``.
        reserve_fraction: share of NAV never allocated (0.05 = 5 %).
        conflict_policy: how opposite targets on one symbol are settled.
        run_time_utc: the daily run time, ``HH:MM`` UTC; ``--as-of DATE`` means this time on DATE.
        portfolio_max_age_seconds: a snapshot older than this (vs the run's as-of) is refused.
        default_max_intent_age_seconds: intents older than this are stale unless a
            strategy sets its own ``max_intent_age_seconds``.
        min_order_notional: orders below this amount (base currency) are dropped.
        rebalance_band: an order smaller than this fraction of its symbol's target
            notional is dropped (it only chases rounding and fee drift); orders that
            close a position are never dropped by the band.
        open_order_ttl_seconds: open orders on managed symbols older than this are
            cancelled before new orders are placed.
        lease_ttl_seconds: the Commander's lease expires after this, should a run die.
        rebalance: when the allocation moves capital between the books (each book is a
            sub-account sized on its own equity; see :mod:`commander.allocate`): ``never``
            (the allocation only sets a new book's starting capital), ``monthly`` (at the
            first run of each calendar month, UTC) or ``on_config_change`` (when the fraction
            the allocation method gives a strategy differs from the one its book was set from).
            A rebalance sets every book's equity to its fraction × NAV by moving cash, and is
            recorded in the execution (``decision.capital_moves``).
    """

    tradingEnabled: bool = True
    mode: Literal["paper", "live"] = "paper"
    base_currency: str = "USD"
    allocation_method: Literal["custom", "equal", "performance_based"] = "custom"
    reserve_fraction: float = Field(0.05, ge=0, lt=1)
    conflict_policy: Literal["net", "highest_confidence", "first_come", "cancel"] = "net"
    priority_order: list[str] = Field(default_factory=list)
    run_time_utc: str = Field("21:30", pattern=r"^([01]\d|2[0-3]):[0-5]\d$")
    portfolio_max_age_seconds: int = Field(3600, gt=0)
    default_max_intent_age_seconds: int = Field(26 * 3600, gt=0)
    min_order_notional: float = Field(25.0, ge=0)
    rebalance_band: float = Field(0.02, ge=0, lt=1)
    open_order_ttl_seconds: int = Field(3600, gt=0)
    lease_ttl_seconds: int = Field(600, gt=0)
    rebalance: Literal["never", "monthly", "on_config_change"] = "never"
    performance: PerformanceAllocation = Field(default_factory=PerformanceAllocation)
    risk: RiskLimits = Field(default_factory=RiskLimits)


class StrategyRiskParameters(Doc):
    """Per-strategy risk parameters (fractions of the strategy's book equity).

    * ``max_drawdown``: past this drawdown below its high-water mark the book may only
      reduce (drawdown isolation, :mod:`commander.risk`).
    * ``drawdown_cooldown_days``: calendar days an isolation lasts at most; then the
      high-water mark is reset to the book's equity and the strategy trades again.
    * ``max_single_position_exposure``: |one position's notional| / book equity.
    * ``max_leverage``: gross exposure (Σ |notional|) / book equity.
    * ``leverage_headroom``: the fraction of ``max_leverage`` left unused when sizing, so the fill
      at the next open and its costs do not carry the book over its cap (:attr:`sizing_leverage`).
      Between runs the book still drifts with prices; the next run scales it back.
    """

    max_drawdown: float = Field(0.25, gt=0, le=1)
    drawdown_cooldown_days: int = Field(30, ge=1, description="calendar days before a drawdown isolation is "
                                        "released by resetting the high-water mark")
    max_single_position_exposure: float = Field(1.0, gt=0)
    max_leverage: float = Field(1.0, gt=0, description="gross exposure / book equity cap")
    leverage_headroom: float = Field(0.0, ge=0, lt=1, description="fraction of max_leverage left unused at sizing")

    @property
    def sizing_leverage(self) -> float:
        """The gross exposure / book equity a strategy is sized to: ``max_leverage × (1 − leverage_headroom)``."""
        return self.max_leverage * (1.0 - self.leverage_headroom)


class StrategyConfig(Doc):
    """``strategies/{strategy_id}``: one strategy's configuration.

    ``capital_allocation`` is a fraction (0..1) of allocatable capital under the
    ``custom`` method. ``params`` go to the strategy code unchanged.
    """

    strategy_id: str = Field(pattern=r"^[a-z0-9_\-]+$")
    name: str
    description: str = ""
    enabled: bool = True
    kind: Literal["classic", "llm"] = "classic"
    author: str = "system"
    capital_allocation: float = Field(0.0, ge=0, le=1)
    risk_parameters: StrategyRiskParameters = Field(default_factory=StrategyRiskParameters)
    params: dict[str, Any] = Field(default_factory=dict)
    universe: list[str] = Field(default_factory=list)
    max_intent_age_seconds: int | None = Field(None, gt=0)
    account: str | None = Field(None, description="the broker account it trades; None: the mode's default")
    llm: dict[str, Any] | None = None
    disabled_reason: str | None = Field(None, description="why the configuration apply disabled it (it is no "
                                        "longer in the files); its book is kept")
    state: LifecycleState = Field("active", description="set by a person (python main.py strategy ...): "
                                  "paused, isolated (reduce only) or retired (flatten, then disable)")
    state_reason: str | None = None
    state_changed_at: UTCDateTime | None = None
    state_changed_by: str | None = None


class StateChange(Doc):
    """``strategies/{id}/state_changes/{change_id}``: who changed a strategy's lifecycle state, when, why,
    and the state before and after (see :mod:`pipeline.lifecycle`)."""

    change_id: str
    strategy_id: str
    at: UTCDateTime
    by: str
    reason: str
    action: Literal["pause", "resume", "isolate", "retire", "retired_flat"]
    before: LifecycleState
    after: LifecycleState
    enabled_before: bool = True


# --------------------------------------------------------------------------- intents


#: Order types in IB's words. ``STP`` (stop market: a stop-loss) and ``MIT`` (market if touched: a take-profit)
#: are protective exits: ``auxPrice`` is their trigger price (quote currency per unit), ``reduce_only`` they
#: may only reduce the position, and the legs of one exit share an ``ocaGroup`` (one triggers, the other is
#: cancelled).
OrderType = Literal["MKT", "LMT", "STP", "MIT"]
PROTECTIVE_ORDER_TYPES: frozenset[str] = frozenset({"STP", "MIT"})


class Instrument(Doc):
    """An instrument as IB names it: symbol plus ``secType``/``exchange``/``currency``."""

    symbol: str
    secType: str = "STK"
    exchange: str = "SMART"
    currency: str = "USD"
    contract_details: dict[str, Any] | None = None


class TargetPosition(Instrument):
    """One line of a strategy's whole desired book.

    Exactly one size is given: ``quantity`` (signed units), ``weight`` (signed
    fraction of the strategy's capital; 1.0 fully long, -0.5 half short) or
    ``notional`` (signed amount in base currency).

    Raises:
        pydantic.ValidationError: when zero or several sizes are set.
    """

    quantity: FiniteNumber | None = None
    weight: FiniteNumber | None = None
    notional: FiniteNumber | None = None
    leverage: FiniteNumber | None = Field(None, gt=0)
    stop_loss: FiniteNumber | None = None
    take_profit: FiniteNumber | None = None
    confidence: FiniteNumber | None = Field(None, ge=0, le=100)

    @model_validator(mode="after")
    def _one_size(self) -> "TargetPosition":
        given = [n for n in ("quantity", "weight", "notional") if getattr(self, n) is not None]
        if len(given) != 1:
            raise ValueError(
                f"target {self.symbol}: exactly one of quantity, weight, notional is required, got {given or 'none'}"
            )
        return self


class IntentMetadata(Doc):
    """What a strategy saw: ``signal_strength`` (-1..1) and its indicators."""

    signal_strength: float | None = None
    indicators: dict[str, float | str | None] = Field(default_factory=dict)


# --------------------------------------------------------------------------- bars used (market data provenance)
# What an intent records about the bars its strategy read (market/usage.py fills it in): enough for an
# audit or a replay to check that it sees the same data. Kept together: BarsUsed and IntentSource.bars.


class BarsUsed(Doc):
    """One bar series a strategy read for an intent.

    Attributes:
        symbol / timeframe: the series (``SPY`` / ``1d``).
        source: where the bars came from: ``bundled`` (market/data), ``data-dir`` (a file of a
            ``--data-dir``), a source name of ``market.yaml`` (bars fetched and cached), or
            ``bundled+NAME`` / ``data-dir+NAME`` when the bars read span both.
        bars: how many bars were read (the widest read of the series).
        first_open: open time of the oldest bar read (UTC).
        last_close: close time of the newest bar read (UTC): no bar closing later was visible.
        digest: ``sha256:`` + hex digest of the bars read (:func:`market.bars.bars_digest`).
        flags: the validation warnings about the bars read (:mod:`market.validate`; zero volume), one
            line each; the bars were used.
    """

    symbol: str
    timeframe: str
    source: str
    bars: int = Field(ge=0)
    first_open: UTCDateTime
    last_close: UTCDateTime
    digest: str
    flags: list[str] = Field(default_factory=list)


class IntentSource(Doc):
    """Where an intent came from: code version, for LLM traders prompt digest, model, journal; and the bars read."""

    code_version: str = ""
    prompt_digest: str | None = None
    model: str | None = None
    journal_ref: str | None = None
    bars: list[BarsUsed] = Field(default_factory=list, description="every bar series the strategy read")
# --------------------------------------------------------------------------- end of bars used


class Intent(Doc):
    """``strategies/{id}/intent/latest`` and its immutable copy ``/intent/{intent_id}``.

    ``updated_at`` is the wall-clock write time; ``as_of`` is the market time the
    strategy computed at (equal in live runs, historical in backtests). Freshness
    is judged on ``as_of`` against the run's as-of.
    """

    intent_id: str
    strategy_id: str
    updated_at: UTCDateTime
    as_of: UTCDateTime
    status: IntentStatus
    error_message: str | None = None
    metadata: IntentMetadata = Field(default_factory=IntentMetadata)
    target_positions: list[TargetPosition] = Field(default_factory=list)
    source: IntentSource = Field(default_factory=IntentSource)


# --------------------------------------------------------------------------- instruments


class InstrumentSpec(Instrument):
    """Trading rules of one instrument at its venue.

    ``lot_size`` and ``min_quantity`` in units, ``tick_size`` in price units,
    ``min_notional`` in base currency, ``multiplier`` units per contract,
    ``max_leverage`` the venue's cap (1 for a cash equity account).
    """

    lot_size: float = Field(1.0, gt=0)
    tick_size: float = Field(0.01, gt=0)
    min_quantity: float = Field(0.0, ge=0)
    min_notional: float = Field(0.0, ge=0)
    multiplier: float = Field(1.0, gt=0)
    max_leverage: float = Field(1.0, gt=0)


#: The rules of a symbol without a spec (every field at its default; read-only, its ``symbol`` means nothing).
#: Shared so that hot loops do not build one model per unknown symbol.
DEFAULT_SPEC = InstrumentSpec(symbol="*")


# --------------------------------------------------------------------------- portfolio


class Holding(Instrument):
    """A position the broker holds: ``quantity`` signed units, prices in base currency."""

    quantity: float
    avg_cost: float = 0.0
    market_price: float
    market_value: float
    funding: float = Field(0.0, description="cumulative funding paid on this symbol's position, base currency "
                                            "(> 0 paid, < 0 received); perpetuals only")


class OpenOrder(Doc):
    """A working order at the broker (IB field names)."""

    orderId: str
    client_order_id: str
    symbol: str
    secType: str = "STK"
    action: Action
    totalQuantity: float = Field(gt=0)
    orderType: OrderType = "MKT"
    lmtPrice: float | None = None
    auxPrice: float | None = None
    ocaGroup: str | None = None
    reduce_only: bool = False
    status: str = "Submitted"
    created_at: UTCDateTime
    order_details: dict[str, Any] | None = None

    @property
    def protective(self) -> bool:
        """A resting protective exit (``STP`` stop-loss or ``MIT`` take-profit): conditional, so never pending."""
        return self.orderType in PROTECTIVE_ORDER_TYPES

    @property
    def signed_quantity(self) -> float:
        """Remaining quantity, positive for BUY and negative for SELL."""
        return self.totalQuantity if self.action == "BUY" else -self.totalQuantity


class PortfolioSnapshot(Doc):
    """``positions/{mode}/portfolio/latest`` and ``/portfolio/{snapshot_id}``.

    ``net_liquidation`` (NAV) and ``available_funds`` are in base currency.
    """

    snapshot_id: str
    updated_at: UTCDateTime
    as_of: UTCDateTime
    broker: str
    account: str
    mode: Literal["paper", "live"]
    base_currency: str = "USD"
    net_liquidation: float
    available_funds: float
    cash: float
    holdings: list[Holding] = Field(default_factory=list)
    open_orders: list[OpenOrder] = Field(default_factory=list)


# --------------------------------------------------------------------------- executions


class TargetLine(Instrument):
    """One symbol of an aggregated or final target: ``quantity`` in units,
    ``contributions`` maps strategy id -> its signed quantity."""

    quantity: float
    price: float | None = None
    contributions: dict[str, float] = Field(default_factory=dict)


class DiffLine(Doc):
    """Target vs actual for one symbol, before and after rounding.

    ``raw_quantity`` = target − (holding + pending); ``quantity`` is it rounded
    to the lot size, 0 when dropped; ``reason`` says why it was dropped.
    """

    symbol: str
    target: float
    holding: float
    pending: float
    raw_quantity: float
    quantity: float
    price: float | None = None
    notional: float = 0.0
    reason: str | None = None


class Conflict(Doc):
    """A disagreement between strategies on one symbol and how it was settled.

    ``crossed``: the strategies' wanted changes on the symbol go opposite ways, so one netted
    order serves them (``wanted``: each one's change in units; ``outcome``: the net change);
    its fill price and commission are shared pro rata, not what each would pay alone.
    """

    type: Literal["direction", "duplicate", "resource", "crossed"]
    symbol: str
    strategies: list[str]
    wanted: dict[str, float]
    policy: str
    outcome: float
    note: str = ""


class RiskAdjustment(Doc):
    """A change the risk step made: ``rule`` applied to a symbol or strategy."""

    rule: str
    symbol: str | None = None
    strategy_id: str | None = None
    before: float
    after: float
    note: str = ""


class OrderTicket(Doc):
    """What an order is, in IB's field names: the instrument, the side, the size (units > 0) and its type.

    Shared by the execution's :class:`OrderRecord` and the ``orders/{client_order_id}`` lifecycle
    (:class:`bus.orders.OrderLifecycle`).
    """

    orderId: str | None = None
    client_order_id: str
    symbol: str
    secType: str = "STK"
    exchange: str = "SMART"
    currency: str = "USD"
    action: Action
    totalQuantity: float = Field(gt=0)
    orderType: OrderType = "MKT"
    lmtPrice: float | None = None
    auxPrice: float | None = None
    ocaGroup: str | None = None
    reduce_only: bool = False


class OrderRecord(OrderTicket):
    """An order the Commander placed (or would place on a dry run), IB field names."""

    status: str
    filled_quantity: float = 0.0
    fill_price: float | None = None
    commission: float = 0.0
    error: str | None = None


class ProtectiveExitRecord(Doc):
    """One leg of a protective exit and what this run did with it (:mod:`commander.protect`).

    ``action``: ``place`` (new or amended: placed now), ``keep`` (resting unchanged), ``cancel``
    (no longer wanted, or replaced by an amended one), ``refuse`` (not placed: an invalid trigger side,
    a venue without protective orders, under the minimums). ``leg``: ``stop`` (``STP``) or ``take_profit``
    (``MIT``). ``side`` closes the strategy's position; ``quantity`` in units (> 0), ``trigger`` in quote
    currency per unit. ``status``: the venue's word after this run's call (``Submitted``, ``Cancelled``,
    ``Rejected``, ``Unknown``, ``CancelFailed``), ``DryRun``, or None when nothing was sent.
    """

    strategy_id: str
    symbol: str
    action: Literal["place", "keep", "cancel", "refuse"]
    leg: Literal["stop", "take_profit"]
    side: Action
    quantity: float
    trigger: float | None = None
    client_order_id: str | None = None
    oca_group: str | None = None
    status: str | None = None
    reason: str = ""


class CapitalMove(Doc):
    """Cash the allocation moved into (> 0) or out of (< 0) a book (base currency).

    ``kind``: ``open`` (a new book's starting capital: its fraction × NAV, capped at the
    cash no book holds) or ``rebalance`` (the book's equity set to its fraction × NAV, see
    ``TradingConfig.rebalance``). ``fraction`` is the share of NAV the allocation gave.
    """

    strategy_id: str
    kind: Literal["open", "rebalance"]
    amount: float
    equity_before: float
    equity_after: float
    fraction: float
    reason: str = ""


class Isolation(Doc):
    """A book's drawdown isolation this run (see :mod:`commander.risk`).

    ``status``: ``locked`` (reduce only), or ``released`` (after ``release_on``, or once the
    drawdown is back within the limit; on a cool-down release the high-water mark is reset to
    the book's equity: ``high_water_mark_reset``). Dates are ``YYYY-MM-DD`` (UTC);
    ``drawdown``/``limit`` are fractions.
    """

    strategy_id: str
    status: Literal["locked", "released"]
    since: str
    release_on: str
    drawdown: float
    limit: float
    high_water_mark_reset: bool = False
    reason: str = ""


class Decision(Doc):
    """The Commander's decision: the whole book before and after risk, and the diff.

    ``allocations``: strategy id -> the capital it was sized on (base currency): its book's
    equity at this run's prices, after this run's ``capital_moves``.
    """

    allocations: dict[str, float] = Field(default_factory=dict)
    capital_moves: list[CapitalMove] = Field(default_factory=list)
    isolation: list[Isolation] = Field(default_factory=list)
    zero_lots: dict[str, dict[str, float]] = Field(
        default_factory=dict, description="strategy id -> symbol -> signed units it wanted that are less than half a "
        "lot: they round to zero lots and are not traded (lot sizes are in context.specs)")
    aggregated_target: list[TargetLine] = Field(default_factory=list)
    final_target: list[TargetLine] = Field(default_factory=list)
    diff: list[DiffLine] = Field(default_factory=list)
    conflicts: list[Conflict] = Field(default_factory=list)
    risk_adjustments: list[RiskAdjustment] = Field(default_factory=list)


class BookCapital(Doc):
    """What sizing reads of a book besides its units (a decision input, recorded for replay).

    ``cash`` in base currency (this run's late fills included); ``capital_allocation`` the
    fraction of NAV its capital was last set from and ``capital_set_on`` when (``YYYY-MM-DD``);
    ``isolated_since`` the day its drawdown isolation began (None: not isolated).
    """

    cash: float
    capital_allocation: float | None = None
    capital_set_on: str | None = None
    isolated_since: str | None = None


class ExecutionContext(Doc):
    """Everything needed to replay: the refs to immutable documents, config and prices used."""

    portfolio_snapshot_ref: str | None = None
    strategy_intents_refs: dict[str, str] = Field(default_factory=dict)
    config_used: dict[str, Any] = Field(default_factory=dict)
    strategy_configs: dict[str, dict[str, Any]] = Field(default_factory=dict)
    books_used: dict[str, dict[str, float]] = Field(default_factory=dict)
    book_capital: dict[str, BookCapital] = Field(default_factory=dict)
    drawdowns: dict[str, float] = Field(default_factory=dict)
    sharpes: dict[str, float | None] = Field(default_factory=dict)
    prev_close_nav: float | None = None
    prices: dict[str, float] = Field(default_factory=dict)
    specs: dict[str, InstrumentSpec] = Field(default_factory=dict)
    code_version: str = ""


class LateFillRecord(Doc):
    """Fills of an earlier order booked by this run: signed units, their average price, commission, and
    each strategy's booked units."""

    client_order_id: str
    execution_id: str
    symbol: str
    quantity: float
    price: float
    commission: float = 0.0
    booked: dict[str, float] = Field(default_factory=dict)


class DustSnap(Doc):
    """A residual of less than one lot left in a book that wanted none of the symbol, moved to the
    ``external`` book (:func:`commander.attribute.snap_dust`). ``quantity`` signed units moved; ``price``
    the mark they moved at (quote currency per unit); ``value`` = quantity × price × multiplier (base
    currency), taken out of the book as a transfer (``Book.transfers``), so its profit is unchanged."""

    strategy_id: str
    symbol: str
    quantity: float
    price: float
    value: float
    lot_size: float
    execution_id: str | None = None
    as_of: UTCDateTime | None = None



class Execution(Doc):
    """``executions/{execution_id}``: the audit record of one Commander run."""

    execution_id: str
    executed_at: UTCDateTime
    as_of: UTCDateTime
    trigger: Literal["scheduled", "manual", "backtest", "replay"] = "manual"
    dry_run: bool
    status: ExecutionStatus
    summary: str = ""
    reason: str | None = None
    context: ExecutionContext = Field(default_factory=ExecutionContext)
    decision: Decision = Field(default_factory=Decision)
    orders_placed: list[OrderRecord] = Field(default_factory=list)
    orders_cancelled: list[OrderRecord] = Field(default_factory=list)
    external: dict[str, float] = Field(default_factory=dict)
    missing_strategies: list[str] = Field(default_factory=list)
    stale_strategies: list[str] = Field(default_factory=list)
    errored_strategies: list[str] = Field(default_factory=list)
    skipped_strategies: list[str] = Field(default_factory=list)
    unmanaged: list[str] = Field(default_factory=list)
    blocked: dict[str, str] = Field(default_factory=dict, description="symbol -> why no order went out on it "
                                    "(an earlier order the venue has not answered for)")
    late_fills: list[LateFillRecord] = Field(default_factory=list)
    protective_exits: list[ProtectiveExitRecord] = Field(default_factory=list, description="the stop-loss / "
                                                         "take-profit legs placed, kept, cancelled or refused "
                                                         "(commander.protect)")
    fill_model: str | None = Field(None, description="how the broker fills a market order: next_open, close "
                                   "(paper broker) or venue; None in older documents")
    dust: list[DustSnap] = Field(default_factory=list, description="residuals of less than one lot this run "
                                 "moved from a book to external (commander.attribute.snap_dust)")
    strategy_reasons: dict[str, str] = Field(default_factory=dict, description="strategy id -> why its intent "
                                             "was not used (missing, stale, errored, skipped)")
    detail_parts: dict[str, int] = Field(default_factory=dict, description="field path (e.g. 'decision.diff') "
                                         "-> number of documents under executions/{id}/parts holding it, when the "
                                         "record is too large for one document (commander.record)")
    detail_revision: str = Field("", description="digest of the whole record its parts were cut from; part "
                                 "ids start with it, so a rewritten record never mixes with the parts of an "
                                 "earlier write")


# --------------------------------------------------------------------------- books


class BookPosition(Doc):
    """A position in a strategy's virtual sub-account: signed units, average entry price."""

    quantity: float
    avg_price: float = 0.0



class Book(Doc):
    """``strategies/{id}/book/latest``: the strategy's virtual sub-account.

    ``positions`` maps symbol -> position. Amounts in base currency:
    ``equity`` = ``cash`` + Σ quantity × mark price; ``fees`` and ``funding``
    are cumulative costs already taken out of ``cash``; ``high_water_mark`` is
    the highest equity seen (shifted by rebalance transfers, reset when a drawdown
    isolation is released). ``starting_cash`` is the capital the allocation opened it
    with, ``transfers`` the cash rebalances moved in since (> 0 in, < 0 out), so its
    profit is ``equity − starting_cash − transfers``. ``capital_allocation`` /
    ``capital_set_on``: the fraction of NAV its capital was last set from, and when
    (``YYYY-MM-DD``). ``isolated_since``: the day its drawdown isolation began.
    """

    strategy_id: str
    updated_at: UTCDateTime
    execution_id: str | None = None
    starting_cash: float = 0.0
    cash: float = 0.0
    positions: dict[str, BookPosition] = Field(default_factory=dict)
    realized_pnl: float = 0.0
    unrealized_pnl: float = 0.0
    fees: float = 0.0
    funding: float = 0.0
    equity: float = 0.0
    high_water_mark: float = 0.0
    equity_curve: dict[str, float] = Field(default_factory=dict, description="YYYY-MM-DD -> equity, recent days")
    transfers: float = 0.0
    capital_allocation: float | None = None
    capital_set_on: str | None = None
    isolated_since: str | None = None
    dust: list[DustSnap] = Field(default_factory=list, description="the latest residuals below a lot moved to "
                                 "(or, in the external book, received from) other books, oldest first")

    @property
    def drawdown(self) -> float:
        """1 − equity / high-water mark (a fraction; 0 without history)."""
        return max(0.0, 1.0 - self.equity / self.high_water_mark) if self.high_water_mark > 0 else 0.0

    def quantities(self) -> dict[str, float]:
        """Symbol -> signed quantity, zero positions left out."""
        return {s: p.quantity for s, p in self.positions.items() if p.quantity != 0}

    def capital(self) -> BookCapital:
        """The sizing inputs of this book besides its units."""
        return BookCapital(cash=self.cash, capital_allocation=self.capital_allocation,
                           capital_set_on=self.capital_set_on, isolated_since=self.isolated_since)


class EquityPoint(Doc):
    """``strategies/{id}/equity/{date}``: the book at the end of one day (``date`` is ``YYYY-MM-DD``, UTC).

    Amounts in base currency; ``drawdown`` = 1 − equity / high-water mark (a fraction).
    """

    strategy_id: str
    date: str
    as_of: UTCDateTime
    equity: float
    cash: float
    realized_pnl: float
    unrealized_pnl: float
    fees: float = 0.0
    funding: float = 0.0
    high_water_mark: float
    drawdown: float = 0.0
    gross_exposure: float = 0.0


class Trade(Doc):
    """``strategies/{id}/trades/{trade_id}``: a closed (or reduced) position.

    ``quantity`` units closed, ``side`` of the position closed, prices per unit,
    ``realized_pnl`` in base currency (before fees).
    """

    trade_id: str
    strategy_id: str
    symbol: str
    side: Literal["long", "short"]
    quantity: float
    entry_price: float
    exit_price: float
    closed_at: UTCDateTime
    execution_id: str
    realized_pnl: float


class AccountState(Doc):
    """``positions/{mode}``: what the Commander remembers of the account between runs.

    ``last_nav`` is the NAV (base currency) at the last run on ``last_date``
    (``YYYY-MM-DD``, UTC); ``prev_close_nav`` the last NAV of an earlier day,
    which the daily-loss halt compares against.
    """

    mode: str
    updated_at: UTCDateTime
    last_date: str
    last_nav: float
    prev_close_date: str | None = None
    prev_close_nav: float | None = None
    funding_seen: dict[str, float] = Field(default_factory=dict, description="symbol -> the cumulative funding "
                                           "the books have been charged up to (Holding.funding at the last run)")
    last_trade_at: UTCDateTime | None = Field(
        None, description="wall-clock time of the last execution that filled orders; a snapshot taken before it "
                          "does not show those fills and is refused")
    orders_planned_at: UTCDateTime | None = Field(
        None, description="wall-clock time of the last write-ahead of orders (orders/*); a snapshot taken before "
                          "it may miss those orders' fills and is refused")


# --------------------------------------------------------------------------- paper broker (sim) account
# ``sim_accounts/{account}`` and ``sim_accounts/{account}/orders/{client_order_id}``, written and read only by
# brokers/sim.py. Fields added after the first version have defaults, so documents an older version stored load.


class SimPosition(Doc):
    """One symbol's position in the paper account (``SimAccountState.positions[symbol]``).

    Attributes:
        quantity: signed units of the instrument (> 0 long, < 0 short); 0 once closed (the entry stays, so
            its ``funding`` keeps counting up when the symbol is traded again).
        avg_cost: average entry price per unit, base currency (the paper broker converts no currency).
        funding: cumulative perpetual funding paid on this symbol, base currency (> 0 paid, < 0 received);
            0 for instruments without funding. Older documents lack it (0).
    """

    quantity: float = 0.0
    avg_cost: float = 0.0
    funding: float = 0.0


class SimRestingOrder(Doc):
    """A resting limit order of the paper account (``SimAccountState.open_orders[client_order_id]``).

    Attributes:
        orderId: the paper broker's order id (``sim-N``).
        symbol, action: instrument and side.
        totalQuantity: units ordered (> 0).
        remaining: units not yet filled (> 0); the paper broker fills a resting order whole.
        lmtPrice: limit price per unit, base currency, on the instrument's tick; for a market order
            waiting for the next open (``orderType`` ``MKT``), the as-of price it was placed at (the
            price its margin is reserved at).
        as_of: the market time the order was placed at (UTC).
        seq: the account's order number at placement; resting orders fill in this order.
        orderType: ``LMT`` (a resting limit order) or ``MKT`` (a market order waiting for the first
            price after ``as_of``: the paper broker's ``fill_at: next_open``), or a protective exit
            (``STP`` stop-loss, ``MIT`` take-profit) whose ``lmtPrice`` and ``auxPrice`` are its trigger.
        auxPrice, ocaGroup, reduce_only: a protective exit's trigger (quote currency per unit), its
            one-cancels-all group and whether it may only reduce the position. Older documents lack them.
    """

    orderId: str
    symbol: str
    action: Action
    totalQuantity: float = Field(gt=0)
    remaining: float = Field(gt=0)
    lmtPrice: float
    as_of: UTCDateTime
    seq: int
    orderType: OrderType = "LMT"
    auxPrice: float | None = None
    ocaGroup: str | None = None
    reduce_only: bool = False


class SimAccountState(Doc):
    """``sim_accounts/{account}``: the paper broker's account.

    Amounts are in base currency and cumulative since the account was created.

    Attributes:
        account: the account id (the document id).
        cash: the wallet balance. Buying a cash instrument (shares, coins) pays its notional from it; for a
            margined one (perpetual, future) it moves only by realized PnL, fees and funding.
        starting_cash: cash when the account was created.
        positions: symbol -> :class:`SimPosition` (closed ones stay, with quantity 0).
        open_orders: client order id -> resting limit order (:class:`SimRestingOrder`). Older documents lack it.
        fees_paid: commissions paid (slippage is not tracked apart: it is in the fill prices).
        realized_pnl: realized PnL of closed units (× multiplier), before fees and funding.
        funding_paid: perpetual funding paid (> 0) or received (< 0), all symbols. Older documents lack it (0).
        order_count: orders placed so far (the ``N`` of the next ``sim-N`` order id is one more).
        created_at, updated_at: wall-clock times the account was created and last written (UTC).
        last_as_of: the market time of the last fill, order or funding written (UTC); an earlier as-of is refused.
        accrued_to: the market time up to which resting fills and funding have been applied (UTC);
            None before the account was first brought up to a time.
    """

    account: str
    cash: float
    starting_cash: float
    positions: dict[str, SimPosition] = Field(default_factory=dict)
    open_orders: dict[str, SimRestingOrder] = Field(default_factory=dict)
    fees_paid: float = 0.0
    realized_pnl: float = 0.0
    funding_paid: float = 0.0
    order_count: int = 0
    created_at: UTCDateTime
    updated_at: UTCDateTime | None = None
    last_as_of: UTCDateTime | None = None
    accrued_to: UTCDateTime | None = None

    def quantities(self) -> dict[str, float]:
        """Symbol -> signed units held, closed positions left out."""
        return {s: p.quantity for s, p in self.positions.items() if p.quantity}


class SimOrder(Doc):
    """``sim_accounts/{account}/orders/{client_order_id}``: one paper order and its fill (IB field names).

    Attributes:
        orderId: the paper broker's order id (``sim-N``); ``client_order_id`` the caller's (the document id).
        symbol, action, orderType: instrument, side, ``MKT``, ``LMT``, ``STP`` or ``MIT``.
        auxPrice, ocaGroup, reduce_only: a protective exit's trigger, OCA group and reduce-only flag.
        totalQuantity: units ordered (> 0).
        lmtPrice: limit price per unit, base currency (None for a market order). Older documents lack it.
        as_of: the market time the order was placed at; ``placed_at`` the wall-clock time (UTC).
        status: ``Submitted`` (resting), ``Filled`` or ``Cancelled`` (the constants of :mod:`brokers.base`).
        filled_quantity: units filled (the whole order or 0).
        fill_price: price per unit filled at, base currency, slippage included (None until filled).
        commission: fee paid on the fill, base currency.
        maker: True when it filled resting (maker fee), False when it filled on arrival (taker fee);
            None until filled, and in older documents.
        filled_as_of: the market time a resting order filled at (the bar's close time); None otherwise.
    """

    orderId: str
    client_order_id: str
    symbol: str
    action: Action
    totalQuantity: float = Field(gt=0)
    orderType: OrderType = "MKT"
    lmtPrice: float | None = None
    auxPrice: float | None = None
    ocaGroup: str | None = None
    reduce_only: bool = False
    as_of: UTCDateTime
    placed_at: UTCDateTime
    status: str
    filled_quantity: float = 0.0
    fill_price: float | None = None
    commission: float = 0.0
    maker: bool | None = None
    filled_as_of: UTCDateTime | None = None
