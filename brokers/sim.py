"""``sim``: a paper broker whose account lives in the store, realistic enough to trust.

State: ``sim_accounts/{account}`` (:class:`~bus.models.SimAccountState`) holds
cash, positions, resting orders, fees, funding and the time the account has been
brought up to; each order is also ``sim_accounts/{account}/orders/{client_order_id}``
(:class:`~bus.models.SimOrder`). Nothing lives in memory: a new instance reads the
same account. Outside ``brokers/`` read it through :meth:`SimBroker.account_state`
and :meth:`SimBroker.order_record`, never from the store.

Fills (arithmetic in :mod:`brokers.sim_costs`):

* A **market** order fills at the first price the market offers after it was
  placed (``fill_at="next_open"``, the default): it rests as ``Submitted`` and
  fills at the open of the first bar that opens at or after its as-of time, once
  a later call (as of a time at or after that open) brings the account up to date
  (:meth:`SimBroker.catch_up`, called by reconcile before it resolves orders, so
  the next run books the fill to the strategies that placed it). The open source
  (:class:`OpenSource`) says which bar: for US ETFs the next XNYS session's open
  (an order placed after the close, on a weekend or a holiday waits for the next
  session), for crypto the next 1h bar where 1h bars exist, else the next 4h or
  daily bar. Without an open source the order fills at the as-of price of the
  first later call. With ``fill_at="close"`` a market order fills at once against
  the as-of price (the newest closed bar's close: optimistic, for comparison).
  Either way the price is moved against the order by the half-spread plus a
  square-root size impact, rounded to the tick against it, and pays the
  **taker** fee. Resting market orders fill in placement order (the Commander
  places sells first, so their fills come first in the same bar).
* A **limit** order (``limit_price``, or ``limit_offset_bps`` through the as-of
  price) is rounded to the tick; if it is marketable on arrival it fills like a
  market order (never worse than its limit) and pays the taker fee; otherwise it
  **rests** and fills, paying the **maker** fee, in the first later bar whose
  low (buy) or high (sell) reaches it, at its limit (or at that bar's open when
  the bar opened through it). Without a bar source it fills, at its limit, when a
  later as-of price reaches it.
* A **protective exit** (``STP`` stop-loss, ``MIT`` take-profit; ``supports_protective``, on unless
  the broker is built with ``protective=False``) rests and watches only bars that opened after it was
  placed: for a stock (with an open source), the bars closing after the next session open; otherwise
  the bars closing at least one bar length (the spacing of the bar series) after placement, so a
  crypto daily bar that began before a 21:30 UTC exit never triggers it. A sell stop
  (a long's stop-loss) and a buy take-profit trigger in the first later bar whose **low** reaches the
  trigger; a buy stop and a sell take-profit in the first whose **high** does. **Gap rule**: when that
  bar *opens* beyond the trigger, the exit fills at the open (worse than the trigger for a stop, better
  for a take-profit); otherwise at the trigger. Either way the half-spread and size impact move the
  price against it and it pays the **taker** fee, as a market order. When both legs of one exit could
  trigger in the same bar and the open crossed neither, the **stop wins** (the conservative reading:
  the bar's path is not known); a leg whose trigger the open already crossed triggered first. A
  ``reduce_only`` exit fills at most the position held on the side it closes (never flips it; with
  nothing to reduce it is cancelled unfilled), and the legs sharing its ``oca_group`` are cancelled
  when one fills. Exits are checked after the bar's limit orders. An exit whose trigger the as-of
  price has already crossed is refused (as Binance refuses an order that would trigger at once), and
  a reduce-only exit reserves no margin. Without a bar source an exit triggers against later as-of
  prices and fills at that price.
* Venue rules as at the imitated venue: quantity a multiple of the lot size and
  at least the minimum quantity, notional at least the minimum notional, limit
  price on the tick.

Margin: a position's initial margin is ``|quantity × price × multiplier| /
leverage``, with the account's leverage for the symbol (``leverage``; by default
the instrument's ``max_leverage``, 1 for a cash account). Resting orders that
add exposure reserve margin at their limit price. Available funds = NAV − initial
margin − reserved margin; an order that would add exposure beyond NAV is refused
with :class:`~brokers.base.InsufficientFunds`. There is no liquidation engine: the
Commander's margin-use limit is what keeps the account away from maintenance margin.

Cash vs margined instruments: buying a share or a coin (``STK``, ``CRYPTO``) pays
its notional from cash; a perpetual or future (``PERP``, ``FUT``) is a margin
contract: cash (the wallet balance) moves only by realized PnL, fees and funding,
and NAV = cash + unrealized PnL of the contracts + value of the cash holdings.

Funding: every settlement of a perpetual's funding history between the time the
account was last brought up to date and the as-of time is applied to the position
held at that settlement (fills of bars closing at or before a settlement, and
market orders filling at an open at that instant, come first): the holder pays
``quantity × multiplier × mark × rate`` (marks from the price source as of the
settlement).

Time moves forward only: each call that reads or trades brings the account up to
its as-of time (resting fills, funding) and an earlier as-of is refused.
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from typing import Any, Iterable, Literal, Protocol

from pydantic import ValidationError

from brokers.base import (
    CANCELLED,
    FILLED,
    WORKING,
    AsOfRefused,
    Broker,
    BrokerError,
    DuplicateOrder,
    InsufficientFunds,
    NotConnected,
    OrderNotFound,
    OrderRejected,
    OrderRequest,
    OrderResult,
    PriceSource,
    UnknownInstrument,
    limit_price_for,
)
from brokers.config import Mode
from brokers.sim_costs import (
    MARGINED_SEC_TYPES,
    CostModel,
    exit_fill_base,
    exit_gapped,
    exit_triggered,
    funding_payment,
    initial_margin,
    limit_crossed,
    resting_fill_price,
)
from bus import paths
from bus.accounting import apply_fill
from bus.constants import LIMIT_EPS, MONEY_EPS, QTY_EPS
from bus.lent import read, read_collection, write_owned
from bus.models import (
    PROTECTIVE_ORDER_TYPES,
    Holding,
    InstrumentSpec,
    OpenOrder,
    PortfolioSnapshot,
    SimAccountState,
    SimOrder,
    SimPosition,
    SimRestingOrder,
)
from bus.store import Store


class BarSource(Protocol):
    """Bars of ``symbol`` that closed in ``(start, end]``, oldest first, as
    ``(close_time, open, high, low, close)`` tuples (UTC, quote currency per unit)."""

    def __call__(self, symbol: str, start: datetime,
                 end: datetime) -> list[tuple[datetime, float, float, float, float]]: ...


class OpenSource(Protocol):
    """The first bar of ``symbol`` that opens at or after ``after`` and no later than ``until``, as
    ``(open_time, open)`` (UTC, quote currency per unit); None when no such bar is known yet."""

    def __call__(self, symbol: str, after: datetime, until: datetime) -> tuple[datetime, float] | None: ...


#: Fill models of the paper broker's market orders: at the next open after the order (default), or at
#: the as-of close the order was placed at (optimistic; for comparison).
FillAt = Literal["next_open", "close"]


class FundingSource(Protocol):
    """Funding settlements of the perpetual ``symbol`` in ``(start, end]`` as ``(time, rate)`` (rate a fraction
    of notional per settlement); an empty list for a symbol without funding."""

    def __call__(self, symbol: str, start: datetime, end: datetime) -> list[tuple[datetime, float]]: ...


class SimBroker(Broker):
    """Paper broker persisted in ``store``.

    Args:
        store: where the account lives.
        account: account id (document id under ``sim_accounts``).
        prices: price source, as of a time (the bundled history in a local run).
        specs: venue rules per symbol; an order for a symbol not listed is refused.
        starting_cash: cash of a new account, base currency.
        fee_bps: taker commission, bps of filled notional (default for every symbol).
        slippage_bps: half-spread a market order pays, bps (default for every symbol).
        maker_fee_bps: commission of resting limit orders; ``fee_bps`` when None.
        impact_bps: square-root size impact at ``impact_ref_notional`` (base currency), bps.
        costs: per-symbol :class:`~brokers.sim_costs.CostModel` overriding the defaults above.
        leverage: per-symbol leverage the account trades at (capped by the spec's ``max_leverage``).
        funding: funding settlements of perpetuals; None: no funding is applied.
        bars: bars for resting limit orders; None: they fill only against later as-of prices.
        fill_at: ``next_open`` (market orders rest until the first price after their as-of time) or
            ``close`` (market orders fill at once at the as-of price).
        opens: the next-open source of ``fill_at="next_open"``; None: a resting market order fills at
            the as-of price of the first later call.
        protective: whether protective exits (``STP`` / ``MIT``) are taken (``supports_protective``).
    """

    name = "sim"

    def __init__(self, store: Store, account: str, prices: PriceSource, specs: dict[str, InstrumentSpec],
                 starting_cash: float = 100_000.0, fee_bps: float = 1.0, slippage_bps: float = 2.0,
                 mode: Mode = "paper", base_currency: str = "USD", *, maker_fee_bps: float | None = None,
                 impact_bps: float = 0.0, impact_ref_notional: float = 1_000_000.0,
                 costs: dict[str, CostModel] | None = None, leverage: dict[str, float] | None = None,
                 funding: FundingSource | None = None, bars: BarSource | None = None,
                 fill_at: FillAt = "next_open", opens: OpenSource | None = None, protective: bool = True) -> None:
        self.store = store
        self.account = account
        self.prices = prices
        self.specs = specs
        self.starting_cash = starting_cash
        self.fee_bps = fee_bps
        self.slippage_bps = slippage_bps
        self.mode = mode
        self.base_currency = base_currency
        self.default_costs = CostModel(taker_fee_bps=fee_bps, maker_fee_bps=fee_bps if maker_fee_bps is None
                                       else maker_fee_bps, half_spread_bps=slippage_bps, impact_bps=impact_bps,
                                       impact_ref_notional=impact_ref_notional)
        self.costs = dict(costs or {})
        self.leverage = dict(leverage or {})
        self.funding = funding
        self.bars = bars
        if fill_at not in ("next_open", "close"):
            raise ValueError(f"sim: fill_at must be next_open or close, got {fill_at!r}")
        self.fill_at: FillAt = fill_at
        self.fill_model = fill_at
        self.opens = opens
        self.supports_protective = protective

    # ------------------------------------------------------------------ state
    def _new_state(self) -> SimAccountState:
        return SimAccountState(account=self.account, cash=float(self.starting_cash),
                               starting_cash=float(self.starting_cash), created_at=datetime.now(timezone.utc))

    def account_state(self) -> SimAccountState:
        """The persisted account as stored, created with ``starting_cash`` on first use.

        It is not brought up to any time: resting fills and funding since ``accrued_to``
        are applied by the next :meth:`portfolio` or :meth:`place_order`.

        Raises:
            BrokerError: the stored document does not load as a :class:`~bus.models.SimAccountState`.
        """
        path = paths.sim_account(self.account)
        doc = read(self.store, path)  # lent (bus.lent): only validated into a new model
        if not doc:
            return self._new_state()
        try:
            return SimAccountState.model_validate(doc)
        except ValidationError as exc:
            raise BrokerError(f"sim: paper account {path} does not load: {exc}") from exc

    def order_records(self) -> list[SimOrder]:
        """Every order the paper account was sent, in client order id order.

        Raises:
            BrokerError: a stored document does not load as a :class:`~bus.models.SimOrder`.
        """
        prefix = paths.sim_order(self.account, "x")[:-2]
        try:
            return [SimOrder.model_validate(d) for _, d in read_collection(self.store, prefix)]
        except ValidationError as exc:
            raise BrokerError(f"sim: an order of {self.account} is malformed: {exc}") from exc

    def order_record(self, client_order_id: str) -> SimOrder | None:
        """The persisted order ``client_order_id`` and its fill; None when there is none.

        Raises:
            BrokerError: the stored document does not load as a :class:`~bus.models.SimOrder`.
        """
        path = paths.sim_order(self.account, client_order_id)
        doc = read(self.store, path)
        if doc is None:
            return None
        try:
            return SimOrder.model_validate(doc)
        except ValidationError as exc:
            raise BrokerError(f"sim: paper order {path} does not load: {exc}") from exc

    def _check_time(self, st: SimAccountState, as_of: datetime) -> None:
        last = st.last_as_of
        if last is not None and as_of < last:
            raise AsOfRefused(
                f"sim: paper account {self.account} has fills as of {last.isoformat()}; as-of {as_of.isoformat()} "
                "is earlier and time cannot run backwards on one account (use a fresh --state-dir)")

    def _price(self, symbol: str, as_of: datetime) -> float:
        try:
            return float(self.prices(symbol, as_of))
        except LookupError as exc:
            raise NotConnected(f"sim: no price for {symbol} as of {as_of.isoformat()}: {exc}") from exc

    def _spec(self, symbol: str) -> InstrumentSpec:
        spec = self.specs.get(symbol)
        if spec is None:
            raise UnknownInstrument(f"sim: unknown instrument {symbol!r}")
        return spec

    def cost_model(self, symbol: str) -> CostModel:
        """The costs applied to ``symbol``."""
        return self.costs.get(symbol, self.default_costs)

    def leverage_for(self, symbol: str) -> float:
        """The leverage the account trades ``symbol`` at: configured, capped by the venue's maximum."""
        spec = self._spec(symbol)
        return min(float(self.leverage.get(symbol, spec.max_leverage)), spec.max_leverage)

    def _margined(self, symbol: str) -> bool:
        return self._spec(symbol).secType in MARGINED_SEC_TYPES

    def _margin(self, positions: dict[str, SimPosition], marks: dict[str, float]) -> float:
        return sum(initial_margin(p.quantity, marks[s], self._spec(s).multiplier, self.leverage_for(s))
                   for s, p in positions.items() if p.quantity)

    def _reserved(self, open_orders: dict[str, SimRestingOrder], positions: dict[str, SimPosition]) -> float:
        """Margin held by resting orders that add exposure, at their limit price (a resting market
        order: at the price it was placed at)."""
        total = 0.0
        for o in open_orders.values():
            if o.reduce_only:
                continue  # an exit that may only reduce the position adds no exposure
            q0 = (positions.get(o.symbol) or _FLAT).quantity
            signed = o.remaining if o.action == "BUY" else -o.remaining
            added = max(0.0, abs(q0 + signed) - abs(q0))
            total += initial_margin(added, o.lmtPrice, self._spec(o.symbol).multiplier, self.leverage_for(o.symbol))
        return total

    def _nav(self, cash: float, positions: dict[str, SimPosition], marks: dict[str, float]) -> float:
        nav = cash
        for s, p in positions.items():
            if not p.quantity:
                continue
            m = self._spec(s).multiplier
            nav += p.quantity * m * ((marks[s] - p.avg_cost) if self._margined(s) else marks[s])
        return nav

    def _apply_fill(self, st: SimAccountState, symbol: str, action: str, quantity: float, price: float,
                    maker: bool) -> float:
        """Book a fill into ``st`` (cash, position, fees, realized PnL); returns the fee."""
        spec = self._spec(symbol)
        sign = 1.0 if action == "BUY" else -1.0
        notional = quantity * price * spec.multiplier
        fee = self.cost_model(symbol).fee(notional, maker)
        before = st.positions.get(symbol) or _FLAT
        q1, avg, realized = apply_fill(before.quantity, before.avg_cost, sign * quantity, price)
        q1 = round(q1, 12)  # quantities are lot multiples: drop float noise (0.15 - 0.1 + 0.05)
        st.positions[symbol] = before.model_copy(update={"quantity": q1, "avg_cost": avg})
        if self._margined(symbol):
            st.cash += realized * spec.multiplier - fee
        else:
            st.cash -= sign * notional + fee
        st.fees_paid += fee
        st.realized_pnl += realized * spec.multiplier
        return fee

    # ------------------------------------------------------------------ time
    def _advance(self, st: SimAccountState, as_of: datetime) -> tuple[list[tuple[str, SimOrder]], bool]:
        """Bring ``st`` up to ``as_of``: resting fills and funding, in time order.

        Returns the order documents to write and whether the account changed.
        """
        start = st.accrued_to
        writes: list[tuple[str, SimOrder]] = []
        if start is None or as_of <= start:
            st.accrued_to = max(as_of, start) if start else as_of
            return writes, False
        changed = False
        symbols = {o.symbol for o in st.open_orders.values()}
        symbols |= {s for s, p in st.positions.items() if p.quantity and self._margined(s)}
        for sym in sorted(symbols):
            events: list[tuple[datetime, int, Any]] = []
            limits = any(o.symbol == sym and o.orderType != "MKT" for o in st.open_orders.values())
            armed: dict[str, datetime] = {}
            try:
                if self.funding is not None and self._margined(sym):
                    events += [(t, 1, rate) for t, rate in self.funding(sym, start, as_of)]
                if self.bars is not None and limits:
                    exits = any(o.symbol == sym and o.orderType in PROTECTIVE_ORDER_TYPES
                                for o in st.open_orders.values())
                    got = self.bars(sym, start - _PERIOD_LOOKBACK if exits else start, as_of)
                    events += [(b[0], 0, b) for b in got if b[0] > start]
                    if exits:
                        armed = self._armed(st, sym, as_of, _bar_period(got))
                events += self._market_events(st, sym, as_of)
            except LookupError as exc:
                raise NotConnected(f"sim: {sym} between {start.isoformat()} and {as_of.isoformat()}: {exc}") from exc
            if limits and self.bars is None:
                px = self._price(sym, as_of)
                events.append((as_of, 0, (as_of, None, px, px, px)))  # no open: fills at the limit
            # at one instant fills come first (a market order at a bar's open, then that instant's funding)
            for when, kind, data in sorted(events, key=lambda e: (e[0], e[1] == 1, e[2][0] if e[1] == 2 else 0)):
                if kind == 0:
                    writes += self._fill_resting(st, sym, when, data)
                    writes += self._trigger_exits(st, sym, when, data, armed)
                elif kind == 2:
                    writes += self._fill_market(st, data, when)
                else:
                    pos = st.positions.get(sym)
                    if pos is not None and pos.quantity:
                        changed = True
                        pay = funding_payment(pos.quantity, self._spec(sym).multiplier, self._price(sym, when), data)
                        st.cash -= pay
                        st.funding_paid += pay
                        pos.funding += pay
        st.accrued_to = as_of
        return writes, changed or bool(writes)

    def _market_events(self, st: SimAccountState, sym: str, as_of: datetime) -> list[tuple[datetime, int, Any]]:
        """``(open time, 2, (seq, client order id, open))`` of each resting market order of ``sym`` whose
        first price after its as-of time is known by ``as_of`` (raises LookupError as the open source does)."""
        out: list[tuple[datetime, int, Any]] = []
        for coid, o in st.open_orders.items():
            if o.symbol != sym or o.orderType != "MKT":
                continue
            if self.opens is None:
                if as_of > o.as_of:
                    out.append((as_of, 2, (o.seq, coid, self._price(sym, as_of))))
                continue
            found = self.opens(sym, o.as_of, as_of)
            if found is not None:
                out.append((found[0], 2, (o.seq, coid, float(found[1]))))
        return out

    def _fill_market(self, st: SimAccountState, data: tuple[int, str, float],
                     when: datetime) -> list[tuple[str, SimOrder]]:
        """Fill the resting market order ``data = (seq, client order id, open)`` at that open (taker)."""
        _, coid, bar_open = data
        o = st.open_orders.pop(coid)
        spec = self._spec(o.symbol)
        price = self.cost_model(o.symbol).market_fill(o.action, bar_open, o.remaining, spec.multiplier,
                                                      spec.tick_size)
        fee = self._apply_fill(st, o.symbol, o.action, o.remaining, price, maker=False)
        rec = self.order_record(coid) or SimOrder(  # written with the order: missing only if lost by hand
            orderId=o.orderId, client_order_id=coid, symbol=o.symbol, action=o.action,
            totalQuantity=o.totalQuantity, orderType="MKT", as_of=o.as_of, placed_at=o.as_of, status=WORKING)
        rec = rec.model_copy(update=dict(status=FILLED, filled_quantity=o.totalQuantity, fill_price=price,
                                         commission=fee, filled_as_of=when, maker=False))
        return [(paths.sim_order(self.account, coid), rec)]

    def _fill_resting(self, st: SimAccountState, sym: str, when: datetime,
                      bar: tuple[datetime, float | None, float, float, float]) -> list[tuple[str, SimOrder]]:
        _, bar_open, high, low, _close = bar
        writes = []
        for coid, o in sorted(st.open_orders.items(), key=lambda kv: kv[1].seq):
            if o.symbol != sym or o.orderType != "LMT" or not limit_crossed(o.action, o.lmtPrice, low, high):
                continue
            price = o.lmtPrice if bar_open is None else resting_fill_price(o.action, o.lmtPrice, bar_open)
            fee = self._apply_fill(st, sym, o.action, o.remaining, price, maker=True)
            del st.open_orders[coid]
            rec = self.order_record(coid) or SimOrder(  # written with the order: missing only if lost by hand
                orderId=o.orderId, client_order_id=coid, symbol=o.symbol, action=o.action,
                totalQuantity=o.totalQuantity, orderType="LMT", lmtPrice=o.lmtPrice, as_of=o.as_of, placed_at=o.as_of,
                status=WORKING)
            rec = rec.model_copy(update=dict(status=FILLED, filled_quantity=o.totalQuantity, fill_price=price,
                                             commission=fee, filled_as_of=when, maker=True))
            writes.append((paths.sim_order(self.account, coid), rec))
        return writes

    def _armed(self, st: SimAccountState, sym: str, as_of: datetime, period: timedelta) -> dict[str, datetime]:
        """Client order id -> the time after which a bar's close counts for each resting exit of ``sym``: only
        bars that opened after the exit was placed may trigger it. A stock (session market, with an open
        source) watches the bars closing after the first session open after placement; anything else the
        bars closing at least one bar ``period`` after placement."""
        out: dict[str, datetime] = {}
        for coid, o in st.open_orders.items():
            if o.symbol != sym or o.orderType not in PROTECTIVE_ORDER_TYPES:
                continue
            if self.opens is not None and self._spec(sym).secType == "STK":
                found = self.opens(sym, o.as_of, as_of)
                out[coid] = found[0] if found is not None else as_of
            else:
                out[coid] = o.as_of + period - _TICK
        return out

    def _trigger_exits(self, st: SimAccountState, sym: str, when: datetime,
                       bar: tuple[datetime, float | None, float, float, float],
                       armed: dict[str, datetime] | None = None) -> list[tuple[str, SimOrder]]:
        """Fill the protective exits of ``sym`` this bar triggers (module docstring: gap rule, stop wins,
        reduce-only clip, OCA); their OCA siblings are cancelled. ``armed``: client order id -> the time a
        bar must close after to count (:meth:`_armed`); by default the exit's placement."""
        _, bar_open, high, low, close = bar
        opened = close if bar_open is None else bar_open  # without a bar, the as-of price is all there is
        armed = armed or {}
        exits = [(c, o) for c, o in st.open_orders.items()
                 if o.symbol == sym and o.orderType in PROTECTIVE_ORDER_TYPES and armed.get(c, o.as_of) < when]

        def first(item: tuple[str, SimRestingOrder]) -> tuple[bool, bool, int]:
            o = item[1]
            return (not exit_gapped(o.orderType, o.action, o.lmtPrice, opened), o.orderType != "STP", o.seq)

        writes: list[tuple[str, SimOrder]] = []
        for coid, o in sorted(exits, key=first):
            if coid not in st.open_orders or not exit_triggered(o.orderType, o.action, o.lmtPrice, low, high):
                continue  # cancelled by its OCA sibling this bar, or not touched
            del st.open_orders[coid]
            held = (st.positions.get(sym) or _FLAT).quantity
            qty = o.remaining
            if o.reduce_only:
                closable = held if o.action == "SELL" else -held
                qty = max(0.0, min(qty, round(closable, 12)))
            rec = self._exit_record(coid, o)
            if qty <= QTY_EPS:  # reduce-only with nothing to reduce: cancelled unfilled
                writes.append((paths.sim_order(self.account, coid), rec.model_copy(update={"status": CANCELLED})))
            else:
                spec = self._spec(sym)
                base = exit_fill_base(o.orderType, o.action, o.lmtPrice, opened)
                price = self.cost_model(sym).market_fill(o.action, base, qty, spec.multiplier, spec.tick_size)
                fee = self._apply_fill(st, sym, o.action, qty, price, maker=False)
                writes.append((paths.sim_order(self.account, coid), rec.model_copy(update=dict(
                    status=FILLED, filled_quantity=qty, fill_price=price, commission=fee, filled_as_of=when,
                    maker=False))))
            for c2, o2 in list(st.open_orders.items()):
                if o.ocaGroup and o2.ocaGroup == o.ocaGroup:
                    del st.open_orders[c2]
                    writes.append((paths.sim_order(self.account, c2),
                                   self._exit_record(c2, o2).model_copy(update={"status": CANCELLED})))
        return writes

    def _exit_record(self, coid: str, o: SimRestingOrder) -> SimOrder:
        """The stored record of a resting exit (rebuilt when lost by hand)."""
        return self.order_record(coid) or SimOrder(
            orderId=o.orderId, client_order_id=coid, symbol=o.symbol, action=o.action, totalQuantity=o.totalQuantity,
            orderType=o.orderType, auxPrice=o.auxPrice, ocaGroup=o.ocaGroup, reduce_only=o.reduce_only,
            as_of=o.as_of, placed_at=o.as_of, status=WORKING)

    def _load(self, as_of: datetime) -> tuple[SimAccountState, list[tuple[str, SimOrder]], bool]:
        st = self.account_state()
        self._check_time(st, as_of)
        return st, *self._advance(st, as_of)

    def _save(self, st: SimAccountState, as_of: datetime, extra: Iterable[tuple[str, SimOrder]] = ()) -> None:
        st.updated_at = datetime.now(timezone.utc)
        st.last_as_of = as_of
        write_owned(self.store, [(paths.sim_account(self.account), st.to_store()),  # fresh dumps (bus.lent)
                                 *((path, rec.to_store()) for path, rec in extra)])

    # ------------------------------------------------------------------ Broker
    def catch_up(self, as_of: datetime) -> None:
        """Bring the account up to ``as_of`` (resting fills, funding; persisted if any), so that
        :meth:`order_status` answers with the fills up to then.

        Raises:
            AsOfRefused: ``as_of`` is before the account's last fill.
            NotConnected: a price, bar or funding settlement needed is missing.
        """
        st, writes, changed = self._load(as_of)
        if changed:
            self._save(st, as_of, writes)

    def portfolio(self, as_of: datetime) -> PortfolioSnapshot:
        """Bring the account up to ``as_of`` (resting fills, funding; persisted if any) and snapshot it."""
        st, writes, changed = self._load(as_of)
        if changed:
            self._save(st, as_of, writes)
        holdings = []
        marks = {}
        for sym, p in sorted(st.positions.items()):
            if not p.quantity:
                continue
            spec = self._spec(sym)
            px = self._price(sym, as_of)
            marks[sym] = px
            holdings.append(Holding(symbol=sym, secType=spec.secType, exchange=spec.exchange, currency=spec.currency,
                                    quantity=p.quantity, avg_cost=p.avg_cost, market_price=px,
                                    market_value=p.quantity * px * spec.multiplier, funding=p.funding))
        nav = self._nav(st.cash, st.positions, marks)
        open_orders = [OpenOrder(orderId=o.orderId, client_order_id=coid, symbol=o.symbol,
                                 secType=self._spec(o.symbol).secType, action=o.action,
                                 totalQuantity=o.remaining, orderType=o.orderType,
                                 lmtPrice=o.lmtPrice if o.orderType == "LMT" else None, auxPrice=o.auxPrice,
                                 ocaGroup=o.ocaGroup, reduce_only=o.reduce_only, status=WORKING,
                                 created_at=o.as_of)
                       for coid, o in sorted(st.open_orders.items(), key=lambda kv: kv[1].seq)]
        available = nav - self._margin(st.positions, marks) - self._reserved(st.open_orders, st.positions)
        return PortfolioSnapshot(
            snapshot_id="", updated_at=datetime.now(timezone.utc), as_of=as_of, broker=self.name,
            account=self.account, mode=self.mode, base_currency=self.base_currency, net_liquidation=nav,
            available_funds=available, cash=st.cash, holdings=holdings, open_orders=open_orders)

    def instrument_specs(self, symbols: list[str]) -> dict[str, InstrumentSpec]:
        """Specs as configured; ``max_leverage`` is the leverage this account trades the symbol at."""
        out = {}
        for s in symbols:
            spec = self._spec(s)
            lev = self.leverage_for(s)
            out[s] = spec if lev == spec.max_leverage else spec.model_copy(update={"max_leverage": lev})
        return out

    def quotes(self, symbols: list[str], as_of: datetime) -> dict[str, float]:
        """As-of prices from the price source (NotConnected when missing, UnknownInstrument for unlisted symbols)."""
        for s in symbols:
            self._spec(s)
        return {s: self._price(s, as_of) for s in symbols}

    def _check_rules(self, order: OrderRequest, spec: InstrumentSpec) -> None:
        if order.quantity <= 0:
            raise OrderRejected(f"sim: quantity must be positive, got {order.quantity}")
        lots = order.quantity / spec.lot_size
        if abs(lots - round(lots)) > QTY_EPS:
            raise OrderRejected(
                f"sim: {order.symbol} quantity {order.quantity} is not a multiple of lot {spec.lot_size}")
        if order.quantity < spec.min_quantity - QTY_EPS:
            raise OrderRejected(f"sim: {order.symbol} quantity {order.quantity} below minimum {spec.min_quantity}")

    def _limit_price(self, order: OrderRequest, spec: InstrumentSpec, px: float) -> float:
        if order.limit_price is not None:
            lmt = float(order.limit_price)
            if abs(lmt / spec.tick_size - round(lmt / spec.tick_size)) > MONEY_EPS:
                raise OrderRejected(f"sim: {order.symbol} limit price {lmt} is not a multiple of tick {spec.tick_size}")
            return lmt
        return limit_price_for(order.action, px, float(order.limit_offset_bps or 0.0), spec.tick_size)

    def _place_exit(self, order: OrderRequest, spec: InstrumentSpec, as_of: datetime, order_path: str) -> OrderResult:
        """Rest a protective exit (``STP`` / ``MIT``) until a later bar triggers it (module docstring).

        Raises:
            OrderRejected: protective orders are off, the trigger is off the tick, the as-of price has
                already crossed it, or its notional at the trigger is under the minimum.
            InsufficientFunds: an exit that is not reduce-only would add exposure beyond NAV.
        """
        if not self.supports_protective:
            raise OrderRejected(f"sim: account {self.account} takes no protective orders ({order.order_type})")
        trigger = float(order.trigger_price or 0.0)
        if abs(trigger / spec.tick_size - round(trigger / spec.tick_size)) > MONEY_EPS:
            raise OrderRejected(f"sim: {order.symbol} trigger {trigger} is not a multiple of tick {spec.tick_size}")
        st, writes, _ = self._load(as_of)
        px = self._price(order.symbol, as_of)
        if exit_triggered(order.order_type, order.action, trigger, px, px):
            raise OrderRejected(f"sim: {order.order_type} {order.action} {order.symbol} at {trigger:g} would "
                                f"trigger at once (price {px:g})")
        if order.quantity * trigger * spec.multiplier < spec.min_notional - LIMIT_EPS:
            raise OrderRejected(f"sim: {order.symbol} notional at the trigger below minimum {spec.min_notional}")
        q0 = (st.positions.get(order.symbol) or _FLAT).quantity
        st.order_count += 1
        order_id = f"sim-{st.order_count}"
        st.open_orders[order.client_order_id] = SimRestingOrder(
            orderId=order_id, symbol=order.symbol, action=order.action, totalQuantity=order.quantity,
            remaining=order.quantity, lmtPrice=trigger, as_of=as_of, seq=st.order_count, orderType=order.order_type,
            auxPrice=trigger, ocaGroup=order.oca_group, reduce_only=order.reduce_only)
        if not order.reduce_only and self._adds_exposure(q0, order.quantity * (1 if order.action == "BUY" else -1)):
            self._check_funds(st, order, as_of, px)
        record = SimOrder(orderId=order_id, client_order_id=order.client_order_id, symbol=order.symbol,
                          action=order.action, totalQuantity=order.quantity, orderType=order.order_type,
                          auxPrice=trigger, ocaGroup=order.oca_group, reduce_only=order.reduce_only, as_of=as_of,
                          placed_at=datetime.now(timezone.utc), status=WORKING)
        self._save(st, as_of, [*writes, (order_path, record)])
        return OrderResult(orderId=order_id, client_order_id=order.client_order_id, status=WORKING)

    def place_order(self, order: OrderRequest, as_of: datetime) -> OrderResult:
        """Fill a market order at the next open (or now, with ``fill_at="close"``), a limit order now or
        later, rest a protective exit (see the module docstring); persisted."""
        spec = self._spec(order.symbol)
        self._check_rules(order, spec)
        order_path = paths.sim_order(self.account, order.client_order_id)
        if read(self.store, order_path) is not None:
            raise DuplicateOrder(f"sim: client order id {order.client_order_id} already used; order refused")
        if order.order_type in PROTECTIVE_ORDER_TYPES:
            return self._place_exit(order, spec, as_of, order_path)
        st, writes, _ = self._load(as_of)
        px = self._price(order.symbol, as_of)
        costs = self.cost_model(order.symbol)
        market_fill = costs.market_fill(order.action, px, order.quantity, spec.multiplier, spec.tick_size)
        lmt: float | None = None
        resting_at: float | None = None  # the limit price of an order that rests (not marketable now)
        fill = market_fill
        if order.order_type == "LMT":
            lmt = self._limit_price(order, spec, px)
            marketable = market_fill <= lmt if order.action == "BUY" else market_fill >= lmt
            resting_at = None if marketable else lmt
        waits = order.order_type != "LMT" and self.fill_at == "next_open"  # a market order waits for the open
        price_for_rules = resting_at if resting_at is not None else fill
        notional = order.quantity * price_for_rules * spec.multiplier
        if notional < spec.min_notional - LIMIT_EPS:
            raise OrderRejected(f"sim: {order.symbol} notional {notional:.2f} below minimum {spec.min_notional}")
        sign = 1.0 if order.action == "BUY" else -1.0
        q0 = (st.positions.get(order.symbol) or _FLAT).quantity
        st.order_count += 1
        order_id = f"sim-{st.order_count}"
        now = datetime.now(timezone.utc)
        record = SimOrder(orderId=order_id, client_order_id=order.client_order_id, symbol=order.symbol,
                          action=order.action, totalQuantity=order.quantity, orderType=order.order_type, lmtPrice=lmt,
                          as_of=as_of, placed_at=now, status=WORKING)
        if resting_at is not None or waits:
            st.open_orders[order.client_order_id] = SimRestingOrder(
                orderId=order_id, symbol=order.symbol, action=order.action, totalQuantity=order.quantity,
                remaining=order.quantity, lmtPrice=resting_at if resting_at is not None else px, as_of=as_of,
                seq=st.order_count, orderType="MKT" if waits else "LMT")
            if self._adds_exposure(q0, sign * order.quantity):
                self._check_funds(st, order, as_of, px)
            self._save(st, as_of, [*writes, (order_path, record)])
            return OrderResult(orderId=order_id, client_order_id=order.client_order_id, status=WORKING,
                               limit_price=lmt)
        fee = self._apply_fill(st, order.symbol, order.action, order.quantity, fill, maker=False)
        if self._adds_exposure(q0, sign * order.quantity):
            self._check_funds(st, order, as_of, px)
        record = record.model_copy(update=dict(status=FILLED, filled_quantity=order.quantity, fill_price=fill,
                                               commission=fee, maker=False))
        self._save(st, as_of, [*writes, (order_path, record)])
        return OrderResult(orderId=order_id, client_order_id=order.client_order_id, status=FILLED,
                           filled_quantity=order.quantity, fill_price=fill, commission=fee, limit_price=lmt)

    @staticmethod
    def _adds_exposure(q0: float, signed_qty: float) -> bool:
        return abs(q0 + signed_qty) > abs(q0) + QTY_EPS

    def _check_funds(self, st: SimAccountState, order: OrderRequest, as_of: datetime, px: float) -> None:
        """Refuse an order when the margin of the positions as they will be once the resting market orders
        have filled (sells placed first free what later buys need), plus the margin reserved by resting
        limit orders, would exceed NAV (InsufficientFunds)."""
        marks = {s: (px if s == order.symbol else self._price(s, as_of))
                 for s, p in st.positions.items() if p.quantity}
        nav = self._nav(st.cash, st.positions, marks)
        projected = {s: p.model_copy() for s, p in st.positions.items()}
        for o in st.open_orders.values():
            if o.orderType == "MKT":
                q = (projected.get(o.symbol) or _FLAT).quantity + (o.remaining if o.action == "BUY" else -o.remaining)
                projected[o.symbol] = SimPosition(quantity=q)
                marks.setdefault(o.symbol, px if o.symbol == order.symbol else o.lmtPrice)
        limits = {c: o for c, o in st.open_orders.items() if o.orderType != "MKT"}
        need = self._margin(projected, marks) + self._reserved(limits, projected)
        if need > nav + LIMIT_EPS:
            raise InsufficientFunds(
                f"sim: {order.action} {order.quantity} {order.symbol} needs margin {need:.2f} beyond NAV {nav:.2f}")

    def cancel_order(self, client_order_id: str) -> OrderResult:
        """Cancel a resting order: limit, market waiting for the open, or protective exit (OrderNotFound, or
        OrderRejected when it is not working)."""
        rec = self.order_record(client_order_id)
        if rec is None:
            raise OrderNotFound(f"sim: no order with client order id {client_order_id}")
        st = self.account_state()
        if rec.status != WORKING or client_order_id not in st.open_orders:
            raise OrderRejected(f"sim: order {client_order_id} is {rec.status}, not working; nothing to cancel")
        del st.open_orders[client_order_id]
        rec = rec.model_copy(update={"status": CANCELLED})
        st.updated_at = datetime.now(timezone.utc)
        write_owned(self.store, [(paths.sim_account(self.account), st.to_store()),
                                 (paths.sim_order(self.account, client_order_id), rec.to_store())])
        return self._result(rec)

    def order_status(self, client_order_id: str) -> OrderResult:
        """The persisted order record (OrderNotFound when there is none)."""
        rec = self.order_record(client_order_id)
        if rec is None:
            raise OrderNotFound(f"sim: no order with client order id {client_order_id}")
        return self._result(rec)

    @staticmethod
    def _result(rec: SimOrder) -> OrderResult:
        return OrderResult(orderId=rec.orderId, client_order_id=rec.client_order_id, status=rec.status,
                           filled_quantity=rec.filled_quantity, fill_price=rec.fill_price,
                           commission=rec.commission, limit_price=rec.lmtPrice)

    def set_position(self, symbol: str, quantity: float, avg_cost: float) -> None:
        """Change a holding directly, as a manual trade at the broker would (tests, demos).

        The position is replaced whole: its cumulative ``funding`` starts again at 0.
        """
        self._spec(symbol)
        st = self.account_state()
        st.positions[symbol] = SimPosition(quantity=float(quantity), avg_cost=float(avg_cost))
        self.store.set(paths.sim_account(self.account), st.to_store())


#: How far back the bars are read to see their spacing (the bar period) when an exit rests.
_PERIOD_LOOKBACK = timedelta(days=8)
_TICK = timedelta(microseconds=1)


def _bar_period(bars: list[tuple[datetime, float, float, float, float]]) -> timedelta:
    """The shortest spacing of consecutive bar closes (a bar's length); one day when it cannot be seen."""
    gaps = [b[0] - a[0] for a, b in zip(bars, bars[1:], strict=False) if b[0] > a[0]]
    return min(gaps) if gaps else timedelta(days=1)


#: A position that is not there: no units, no cost, no funding (never mutated).
_FLAT = SimPosition()
