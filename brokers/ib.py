"""``ib``: Interactive Brokers through TWS or IB Gateway, with ``ib_async`` (pinned 2.1.0).

The client runs on its own event-loop thread (:class:`~brokers.aio_thread.LoopThread`);
every call below is a coroutine on that loop with a timeout.

* **Connection**: host, port and client id from configuration; paper vs live is the
  port. After connecting, the managed account must match the mode (paper codes start
  with ``D``): a live account on a paper run, or the reverse, is refused.
* **Reconnect**: every call first checks the connection and, if TWS dropped it (the
  nightly reset, a restart), connects again, up to ``reconnect_attempts`` times with
  exponential backoff (``tenacity``). Connection refused or a timeout is
  :class:`~brokers.base.NotConnected`; a request timing out mid-run drops the
  connection so the next call starts clean.
* **Reconcile** from ``reqPositions`` (``positions()``), ``reqAllOpenOrders``
  (open trades) and ``accountSummary()`` (``NetLiquidation``, ``AvailableFunds``,
  ``TotalCashValue`` in the base currency); market prices from the account's
  portfolio updates, else a market-data snapshot.
* **Contracts** are qualified once per symbol (``reqContractDetails``); an unknown
  symbol is :class:`~brokers.base.UnknownInstrument` naming it. Specs: tick =
  ``minTick``, lot = ``sizeIncrement``, minimum quantity = ``minSize``, multiplier;
  minimum notional and leverage come from the configured instrument (IB does not
  publish them).
* **Orders** carry ``orderRef`` = the client order id. IB does not refuse a reused
  ``orderRef``, so before placing, the broker looks for it among this session's
  trades, all open orders, completed orders and executions, and refuses a duplicate
  itself.
* **Placing** returns as soon as the venue's answer says what happens next: a market
  order filled (with its commission reports), a limit order working, or an order held
  until the open (``PreSubmitted`` with warning 399 outside regular hours: the next run
  finds its fill at the open through :meth:`IBBroker.order_status`). Notices are not
  rejections: 399, 404 and 10349 ("Order TIF was set to DAY based on order preset") leave
  the order going on, although ``ib_async`` 2.1.0 marks the trade ``ValidationError`` or
  ``Cancelled`` until the next status; the status reported is the last one IB itself sent.
* **Connectivity** between TWS and IB (error 1100, restored by 1101 / 1102): while it is
  lost, TWS answers from stale data and holds order reports back, so every call raises
  :class:`~brokers.base.NotConnected` (nothing is sent); a 1100 while an order waits for its
  answer raises it too (the order's fate is unknown: the Commander records ``unknown`` and
  the next run asks again).
* **Order status** by ``orderRef`` from any later session (a reconnect, a TWS restart, the
  next day): this session's trades, all open orders (``reqAllOpenOrders``), completed
  orders (``reqCompletedOrders``) and executions (``reqExecutions``), with the average fill
  price and the commissions of the executions and their commission reports. When no
  execution is listed any more (and no status carries an average price), the fill price is
  None, never 0.
* **Protective exits** (``supports_protective``): ``STP`` (stop-loss) and ``MIT`` (take-profit) go out
  as IB ``STP`` / ``MIT`` orders with ``auxPrice`` = the trigger (on the tick: a stop rounds toward the
  market, so it never fires later than asked; a take-profit to the nearest tick), ``tif`` ``GTC`` (they
  hold between runs and days), and the legs of one exit share ``ocaGroup`` with ``ocaType`` 1 ("cancel
  all remaining orders with block": IB itself cancels the sibling when one leg fills). IB simulates
  them for US stocks: they rest ``PreSubmitted`` until touched, and trigger in the regular session only.
  A held position gets a standalone OCA pair; no bracket (``parentId``) is used: an exit is placed
  by the run after its entry filled (the Commander places exits once this run's entries are done).
  **No reduce-only for stocks at IB**: an ``STP`` for a position not held would OPEN one when touched.
  So the broker refuses (``OrderRejected``) an exit whose side does not reduce the position held now
  (after this run's fills), or whose quantity plus the same-side exits already resting in other OCA
  groups of that contract passes that position (legs of one group count once). A later order that
  shrinks the position leaves a resting exit too big: the Commander amends or cancels it.
"""

from __future__ import annotations

import asyncio
import logging
import math
from collections.abc import Sequence
from datetime import datetime, timezone
from typing import Any, TypeGuard

from tenacity import AsyncRetrying, retry_if_exception_type, stop_after_attempt, wait_exponential

from brokers.aio_thread import LoopThread
from brokers.base import (
    CANCELLED,
    FILLED,
    WORKING,
    Broker,
    BrokerError,
    DuplicateOrder,
    NotConnected,
    OrderNotFound,
    OrderRejected,
    OrderRequest,
    OrderResult,
    UnknownInstrument,
    limit_price_for,
    round_to_tick,
)
from brokers.config import Mode
from brokers.errors import IB_LINK_LOST, IB_LINK_RESTORED, IB_ORDER_GOES_ON, from_connection, from_ib, ib_informational
from brokers.wallclock import require_current
from bus.constants import QTY_EPS
from bus.models import PROTECTIVE_ORDER_TYPES, Holding, InstrumentSpec, OpenOrder, OrderType, PortfolioSnapshot

log = logging.getLogger(__name__)

_DONE = {"Filled", "Cancelled", "ApiCancelled", "Inactive"}
#: IB's order states -> the words an OrderResult speaks (a held order stays ``PreSubmitted``).
_STATUS = {"Filled": FILLED, "Cancelled": CANCELLED, "ApiCancelled": CANCELLED, "Inactive": "Rejected",
           "PendingCancel": WORKING, "PreSubmitted": "PreSubmitted", "Submitted": WORKING, "PendingSubmit": WORKING,
           "ApiPending": WORKING}
#: Seconds between two looks at an order waiting for its answer.
_POLL = 0.01


class IBBroker(Broker):
    """One IB account through TWS / IB Gateway.

    Args:
        host, port, client_id: where TWS listens and the API client id to use.
        mode: ``paper`` or ``live``; must match the account TWS serves.
        account: IB account code; empty: the only managed account.
        instruments: configured instruments (``secType``/``exchange``/``currency`` to
            qualify with, ``min_notional`` and ``max_leverage`` for specs).
        connect_timeout, request_timeout, order_wait: seconds.
        reconnect_attempts, reconnect_wait: connect attempts per call and the first backoff (s).
        as_of_tolerance_seconds: an as-of further than this from the wall clock is refused.
    """

    name = "ib"
    exits_need_fill = True
    supports_protective = True

    def __init__(self, host: str, port: int, client_id: int, mode: Mode = "paper", account: str = "",
                 instruments: dict[str, InstrumentSpec] | None = None, base_currency: str = "USD",
                 connect_timeout: float = 5.0, request_timeout: float = 10.0, order_wait: float = 5.0,
                 reconnect_attempts: int = 3, reconnect_wait: float = 1.0, market_data_type: int = 1,
                 as_of_tolerance_seconds: float = 900.0) -> None:
        self.host, self.port, self.client_id = host, int(port), int(client_id)
        self.mode = mode
        self.account = account
        self._configured_account = account
        self.instruments = dict(instruments or {})
        self.base_currency = base_currency
        self.connect_timeout, self.request_timeout, self.order_wait = connect_timeout, request_timeout, order_wait
        self.reconnect_attempts, self.reconnect_wait = reconnect_attempts, reconnect_wait
        self.market_data_type = market_data_type
        self.as_of_tolerance_seconds = as_of_tolerance_seconds
        self.connections = 0
        self._link_lost: str | None = None  # TWS's last word on its link to IB when it is down (1100)
        self._ib: Any = None
        self._contracts: dict[str, Any] = {}
        self._specs: dict[str, InstrumentSpec] = {}
        self._loop = LoopThread(f"ib-{host}:{port}-{client_id}")

    def __repr__(self) -> str:
        return f"IBBroker({self.host}:{self.port} client {self.client_id}, {self.mode}, account {self.account or '?'})"

    # ------------------------------------------------------------------ plumbing
    def _where(self) -> str:
        return f"ib {self.host}:{self.port} client {self.client_id}"

    def _call(self, fn: Any, timeout: float | None = None) -> Any:
        """Run ``fn(ib)`` (a coroutine function) on the loop after making sure we are connected."""
        budget = (self.connect_timeout + self.reconnect_wait * 2 ** self.reconnect_attempts) * self.reconnect_attempts

        async def run() -> Any:
            ib = await self._connected()
            if self._link_lost:  # one round trip first: a 1101/1102 TWS already sent is read before its answer
                await asyncio.wait_for(ib.reqCurrentTimeAsync(), self.request_timeout)
            self._check_link()
            try:
                return await asyncio.wait_for(fn(ib), timeout or self.request_timeout)
            except (asyncio.TimeoutError, ConnectionError, OSError) as exc:
                self._drop()
                raise from_connection(exc, f"{self._where()}: request") from exc

        try:
            return self._loop.call(run, budget + (timeout or self.request_timeout))
        except TimeoutError as exc:
            self._loop.loop.call_soon_threadsafe(self._drop)
            raise from_connection(exc, self._where()) from exc

    def _check_link(self) -> None:
        """Raise NotConnected while TWS has lost its link to IB (1100 without 1101/1102 since)."""
        if self._link_lost:
            raise NotConnected(f"{self._where()}: {self._link_lost}; TWS answers from stale data and holds order "
                               f"reports until the link is restored (1101/1102)")

    def _on_ib_error(self, req_id: int, code: int, text: str, contract: Any = None) -> None:
        """ib_async's errorEvent: follow TWS's link to IB (1100 lost, 1101/1102 restored)."""
        if code in IB_LINK_LOST:
            self._link_lost = f"IB {code}: {text}"
            log.warning("%s: %s", self._where(), self._link_lost)
        elif code in IB_LINK_RESTORED:
            if self._link_lost:
                log.info("%s: IB %s: %s", self._where(), code, text)
            self._link_lost = None

    def _drop(self) -> None:
        if self._ib is not None:
            try:
                self._ib.disconnect()
            except Exception:  # already broken; we only want it gone
                pass
            self._ib = None

    async def _connected(self) -> Any:
        from ib_async import IB

        if self._ib is not None and self._ib.isConnected():
            return self._ib
        self._drop()
        retrying = AsyncRetrying(stop=stop_after_attempt(self.reconnect_attempts),
                                 wait=wait_exponential(multiplier=self.reconnect_wait, max=60),
                                 retry=retry_if_exception_type((OSError, asyncio.TimeoutError, ConnectionError)),
                                 reraise=True)
        try:
            async for attempt in retrying:
                with attempt:
                    ib = IB()
                    ib.RequestTimeout = self.request_timeout
                    try:
                        await ib.connectAsync(self.host, self.port, clientId=self.client_id,
                                              timeout=self.connect_timeout, account=self._configured_account)
                    except BaseException:
                        ib.disconnect()
                        raise
        except (OSError, asyncio.TimeoutError, ConnectionError) as exc:
            raise from_connection(exc, f"{self._where()}: connect ({self.reconnect_attempts} attempts)") from exc
        accounts = ib.managedAccounts()
        acct = self._configured_account or (accounts[0] if len(accounts) == 1 else "")
        if not acct or acct not in accounts:
            ib.disconnect()
            raise BrokerError(f"{self._where()}: account {self._configured_account or '(none configured)'} is not "
                              f"among the managed accounts {accounts}")
        if (self.mode == "paper") != acct.startswith("D"):
            ib.disconnect()
            raise BrokerError(f"{self._where()}: account {acct} is a {'paper' if acct.startswith('D') else 'live'} "
                              f"account but this run's mode is {self.mode}; check the port")
        if self.market_data_type != 1:
            ib.reqMarketDataType(self.market_data_type)
        self._link_lost = None  # a new connection: TWS tells again if its link is down
        ib.errorEvent += self._on_ib_error
        self.account = acct
        self._ib = ib
        self.connections += 1
        log.info("%s: connected to account %s", self._where(), acct)
        return ib

    def close(self) -> None:
        """Disconnect and stop the loop thread (a second call does nothing)."""
        if self._loop.loop.is_closed():
            return
        try:
            self._loop.loop.call_soon_threadsafe(self._drop)
        finally:
            self._loop.close()

    # ------------------------------------------------------------------ contracts
    def _contract_for(self, symbol: str) -> Any:
        from ib_async import Contract

        inst = self.instruments.get(symbol)
        if inst is not None:
            return Contract(symbol=symbol, secType=inst.secType, exchange=inst.exchange, currency=inst.currency)
        return Contract(symbol=symbol, secType="STK", exchange="SMART", currency=self.base_currency)

    async def _qualified(self, ib: Any, symbols: list[str]) -> dict[str, Any]:
        todo = [s for s in symbols if s not in self._contracts]
        for sym in todo:
            details = await ib.reqContractDetailsAsync(self._contract_for(sym))
            if not details:
                raise UnknownInstrument(f"{self._where()}: unknown instrument {sym!r} (no contract details)")
            if len(details) > 1:
                raise UnknownInstrument(f"{self._where()}: instrument {sym!r} is ambiguous ({len(details)} contracts)")
            d = details[0]
            self._contracts[sym] = d.contract
            conf = self.instruments.get(sym)
            self._specs[sym] = InstrumentSpec(
                symbol=sym, secType=d.contract.secType, exchange=d.contract.exchange or "SMART",
                currency=d.contract.currency, lot_size=float(d.sizeIncrement or 1.0),
                tick_size=float(d.minTick or 0.01), min_quantity=float(d.minSize or 0.0),
                min_notional=conf.min_notional if conf else 0.0, multiplier=float(d.contract.multiplier or 1.0),
                max_leverage=conf.max_leverage if conf else 1.0,
                contract_details={"conId": d.contract.conId, "primaryExchange": d.contract.primaryExchange,
                                  "longName": d.longName})
        return {s: self._contracts[s] for s in symbols}

    # ------------------------------------------------------------------ Broker
    def portfolio(self, as_of: datetime) -> PortfolioSnapshot:
        """Positions, all open orders and the account summary (NetLiquidation, AvailableFunds, TotalCashValue)."""
        require_current(as_of, self.as_of_tolerance_seconds, self._where())

        async def read(ib: Any) -> PortfolioSnapshot:
            positions = [p for p in await ib.reqPositionsAsync() if p.account == self.account and p.position]
            working = await ib.reqAllOpenOrdersAsync()  # what TWS holds now, not this client's cache
            summary = await ib.accountSummaryAsync(self.account)
            values = {v.tag: v.value for v in summary if v.currency in (self.base_currency, "BASE", "")}
            missing = [t for t in ("NetLiquidation", "AvailableFunds", "TotalCashValue") if t not in values]
            if missing:
                raise NotConnected(f"{self._where()}: account summary of {self.account} lacks {missing}")
            marks = {item.contract.conId: item.marketPrice for item in ib.portfolio(self.account)}
            need = [p.contract for p in positions if not _finite(marks.get(p.contract.conId))]
            if need:
                for t in await ib.reqTickersAsync(*need):
                    marks[t.contract.conId] = _price_of(t)
            holdings = []
            for p in positions:
                c = p.contract
                mult = float(c.multiplier or 1.0)
                px = marks.get(c.conId)
                if not _finite(px):
                    raise NotConnected(f"{self._where()}: no market price for {c.symbol}")
                holdings.append(Holding(symbol=c.symbol, secType=c.secType, exchange="SMART" if c.secType == "STK"
                                        else c.exchange, currency=c.currency, quantity=p.position,
                                        avg_cost=p.avgCost / mult, market_price=px, market_value=p.position * px * mult,
                                        contract_details={"conId": c.conId}))
            # working orders (held ones included) keep their orderRef: reconcile matches them to our records
            orders = [_open_order(t) for t in {id(t): t for t in working}.values()
                      if _venue_status(t) not in _DONE and (t.order.account or self.account) == self.account]
            return PortfolioSnapshot(
                snapshot_id="", updated_at=datetime.now(timezone.utc), as_of=as_of, broker=self.name,
                account=self.account, mode=self.mode, base_currency=self.base_currency,
                net_liquidation=float(values["NetLiquidation"]), available_funds=float(values["AvailableFunds"]),
                cash=float(values["TotalCashValue"]), holdings=holdings, open_orders=orders)

        return self._call(read)

    def instrument_specs(self, symbols: list[str]) -> dict[str, InstrumentSpec]:
        """Specs from contract details (qualified once per symbol); UnknownInstrument names the symbol."""
        async def specs(ib: Any) -> dict[str, InstrumentSpec]:
            await self._qualified(ib, symbols)
            return {s: self._specs[s] for s in symbols}

        return self._call(specs)

    def quotes(self, symbols: list[str], as_of: datetime) -> dict[str, float]:
        """Market-data snapshots: last inside the spread, else midpoint, else close (NotConnected without one)."""
        require_current(as_of, self.as_of_tolerance_seconds, self._where())

        async def prices(ib: Any) -> dict[str, float]:
            contracts = await self._qualified(ib, symbols)
            tickers = await ib.reqTickersAsync(*contracts.values())
            out = {}
            for sym, t in zip(contracts, tickers, strict=True):  # one ticker per contract, in order
                px = _price_of(t)
                if not _finite(px):
                    raise NotConnected(f"{self._where()}: no price for {sym}")
                out[sym] = px
            return out

        return self._call(prices)

    async def _find(self, ib: Any, client_order_id: str) -> tuple[Any | None, list[Any]]:
        """The trade with ``orderRef`` == id and the executions with it, from any session.

        Looks in this session's trades, then all open orders (``reqAllOpenOrders``: working and
        held ones, after a reconnect or a TWS restart too), then completed orders
        (``reqCompletedOrders``: filled or cancelled ones, no longer open); executions come from
        ``reqExecutions`` (their commission reports with them)."""
        trade = _match(ib.trades(), client_order_id)
        if trade is None:
            await ib.reqAllOpenOrdersAsync()
            trade = _match(ib.trades(), client_order_id)
        fills = [f for f in await ib.reqExecutionsAsync() if f.execution.orderRef == client_order_id]
        if trade is None:
            trade = _match(await ib.reqCompletedOrdersAsync(True), client_order_id)
        return trade, fills

    async def _settle(self, ib: Any, trade: Any, wait_fill: bool) -> None:
        """Wait (at most ``order_wait``) until the order's answer says what happens next: done (a
        fill with its commission reports), held until the open (399), or, unless ``wait_fill``,
        acknowledged as working.

        Raises:
            NotConnected: TWS lost its link to IB (1100) or the connection dropped meanwhile: the
                order was sent and its fate is unknown.
        """
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.order_wait
        while True:
            if self._link_lost or not ib.isConnected():
                raise NotConnected(f"{self._where()}: order {trade.order.orderRef} sent, then "
                                   f"{self._link_lost or 'the connection dropped'}: its state is unknown")
            st = _venue_status(trade)
            if st in _DONE:
                if st != "Filled" or all(f.commissionReport.execId for f in trade.fills):
                    return
            elif _held(trade) or (st in ("Submitted", "PreSubmitted") and not wait_fill):
                return
            if loop.time() >= deadline:
                return
            await asyncio.sleep(_POLL)

    def place_order(self, order: OrderRequest, as_of: datetime) -> OrderResult:
        """Place with ``orderRef`` = client order id, after refusing a reused id; returns on the first
        answer that says what happens next (see the module docstring).

        Raises:
            DuplicateOrder: the id is already at IB (any session); OrderRejected (and
                InsufficientFunds): IB refused it; NotConnected: not sent (no connection, link
                lost), or sent and its answer lost.
        """
        require_current(as_of, self.as_of_tolerance_seconds, self._where())
        ctx = f"{self._where()}: order {order.client_order_id}"

        async def place(ib: Any) -> OrderResult:
            from ib_async import LimitOrder, MarketOrder, Order

            contract = (await self._qualified(ib, [order.symbol]))[order.symbol]
            spec = self._specs[order.symbol]
            trade, fills = await self._find(ib, order.client_order_id)
            if trade is not None or fills:
                status = _venue_status(trade) if trade is not None else "Filled"
                raise DuplicateOrder(f"{ctx}: client order id already used at IB (status {status}); order refused")
            lots = order.quantity / spec.lot_size
            if order.quantity <= 0 or abs(lots - round(lots)) > QTY_EPS or order.quantity < spec.min_quantity:
                raise OrderRejected(f"{ctx}: quantity {order.quantity} {order.symbol} breaks lot {spec.lot_size} / "
                                    f"minimum {spec.min_quantity}")
            common = dict(orderRef=order.client_order_id, account=self.account, tif="DAY")
            ib_order: Order
            if order.order_type == "LMT":
                if order.limit_price is not None:
                    lmt = round_to_tick(order.limit_price, spec.tick_size, "down" if order.action == "BUY" else "up")
                else:
                    quote = _price_of((await ib.reqTickersAsync(contract))[0])
                    if not _finite(quote):
                        raise NotConnected(f"{ctx}: no quote for {order.symbol} to price the limit")
                    lmt = limit_price_for(order.action, quote, float(order.limit_offset_bps or 0.0), spec.tick_size)
                ib_order = LimitOrder(order.action, order.quantity, lmt, **common)
            elif order.order_type in PROTECTIVE_ORDER_TYPES:
                lmt = None
                await self._check_exit_size(ib, contract, order, ctx)
                ib_order = Order(action=order.action, totalQuantity=order.quantity, orderType=order.order_type,
                                 auxPrice=_trigger_on_tick(order, spec.tick_size), ocaGroup=order.oca_group or "",
                                 ocaType=1 if order.oca_group else 0, orderRef=order.client_order_id,
                                 account=self.account, tif="GTC")
            else:
                lmt = None
                ib_order = MarketOrder(order.action, order.quantity, **common)
            self._check_link()  # a 1100 that arrived during the checks above: nothing is sent
            trade = ib.placeOrder(contract, ib_order)
            await self._settle(ib, trade, wait_fill=order.order_type == "MKT")  # an exit rests: not waited for
            return _result(trade, order.client_order_id, ctx, lmt, known=ib.fills())

        return self._call(place, self.request_timeout + self.order_wait)

    async def _check_exit_size(self, ib: Any, contract: Any, order: OrderRequest, ctx: str) -> None:
        """Refuse an exit that could open or flip a position (IB has no reduce-only for stocks).

        The exit must reduce the position held now, and its quantity plus the same-side exits
        already resting in other OCA groups of the contract (each group counted once, at its
        largest leg) may not pass that position.

        Raises:
            OrderRejected: naming the position and the resting exits.
        """
        held = sum(p.position for p in await ib.reqPositionsAsync()
                   if p.account == self.account and p.contract.conId == contract.conId)
        sign = 1.0 if order.action == "SELL" else -1.0  # a SELL exit reduces a long
        if held * sign <= QTY_EPS:
            raise OrderRejected(f"{ctx}: a {order.action} {order.order_type} exit needs a "
                                f"{'long' if sign > 0 else 'short'} position in {order.symbol}, held {held:g}; "
                                f"IB has no reduce-only for {contract.secType}: it would open one")
        groups: dict[str, float] = {}
        for t in await ib.reqAllOpenOrdersAsync():
            o = t.order
            if (t.contract.conId != contract.conId or o.orderType not in PROTECTIVE_ORDER_TYPES
                    or o.action != order.action or _venue_status(t) in _DONE
                    or (o.account or self.account) != self.account):
                continue
            key = o.ocaGroup or f"ref:{o.orderRef or o.permId}"
            groups[key] = max(groups.get(key, 0.0), float(t.remaining() or o.totalQuantity))
        mine = order.oca_group or f"ref:{order.client_order_id}"
        others = sum(q for k, q in groups.items() if k != mine)
        total = others + max(groups.get(mine, 0.0), order.quantity)
        if total > abs(held) + QTY_EPS:
            raise OrderRejected(f"{ctx}: exit of {order.quantity:g} {order.symbol} plus {others:g} resting in other "
                                f"exits would pass the position {held:g}; IB has no reduce-only for "
                                f"{contract.secType}")

    def cancel_order(self, client_order_id: str) -> OrderResult:
        """Cancel the working order with this ``orderRef``."""
        ctx = f"{self._where()}: cancel {client_order_id}"

        async def cancel(ib: Any) -> OrderResult:
            trade, fills = await self._find(ib, client_order_id)
            if trade is None:
                if fills:
                    raise OrderRejected(f"{ctx}: the order is already filled")
                raise OrderNotFound(f"{ctx}: no order with this client order id")
            if _venue_status(trade) in _DONE:
                raise OrderRejected(f"{ctx}: the order is {_venue_status(trade)}, not working")
            ib.cancelOrder(trade.order)
            deadline = asyncio.get_running_loop().time() + self.order_wait
            while _venue_status(trade) not in _DONE and asyncio.get_running_loop().time() < deadline:
                await asyncio.sleep(_POLL)
            return _result(trade, client_order_id, ctx, None, raise_errors=False, fills=fills, known=ib.fills())

        return self._call(cancel, self.request_timeout + self.order_wait)

    def order_status(self, client_order_id: str) -> OrderResult:
        """The order with this ``orderRef`` from any session: its status, filled units, average price and
        commissions (see the module docstring; a price no execution tells is None).

        Raises:
            OrderNotFound: IB has no order and no execution with this ``orderRef``.
            NotConnected: IB cannot be asked (no connection, or TWS's link to IB is lost).
        """
        ctx = f"{self._where()}: status {client_order_id}"

        async def status(ib: Any) -> OrderResult:
            trade, fills = await self._find(ib, client_order_id)
            if trade is not None:
                return _result(trade, client_order_id, ctx, None, raise_errors=False, fills=fills, known=ib.fills())
            if fills:
                filled, avg, fee = _fill_numbers(None, fills, ib.fills())
                return OrderResult(orderId=str(fills[0].execution.permId), client_order_id=client_order_id,
                                   status=FILLED, filled_quantity=filled, fill_price=avg, commission=fee)
            raise OrderNotFound(f"{ctx}: no order with this client order id")

        return self._call(status)


# ---------------------------------------------------------------------- helpers


def _finite(x: Any) -> TypeGuard[float]:
    """A usable price: a positive finite number below IB's "unset" marker (1.797e308)."""
    return isinstance(x, (int, float)) and math.isfinite(x) and 0 < x < 1e300


def _price_of(ticker: Any) -> float:
    """Last price inside the spread, else the midpoint, else the close (``ib_async``'s marketPrice)."""
    px = ticker.marketPrice()
    if not _finite(px):
        px = ticker.close
    return float(px) if _finite(px) else float("nan")


def _match(trades: list[Any], client_order_id: str) -> Any | None:
    """The trade with this ``orderRef`` (a working one before a finished one, the latest of each)."""
    found = [t for t in trades if t.order.orderRef == client_order_id]
    if not found:
        return None
    working = [t for t in found if _venue_status(t) not in _DONE]
    return (working or found)[-1]


def _venue_status(trade: Any) -> str:
    """The order's status as IB itself last reported it.

    ``ib_async`` 2.1.0 overwrites the status on a notice about an order that goes on:
    ``ValidationError`` on warning 399 (held until the open) or 404, ``Cancelled`` on 10349
    (TIF set by preset). Those are not the order's status: the last status IB sent is.
    """
    st = trade.orderStatus.status
    if st == "Cancelled":
        last = next((e for e in reversed(trade.log) if e.status == st), None)
        if last is None or last.errorCode not in IB_ORDER_GOES_ON:
            return st
    elif st != "ValidationError":
        return st
    for e in reversed(trade.log):
        if e.status == "ValidationError" or e.errorCode in IB_ORDER_GOES_ON:
            continue
        return e.status
    return "PendingSubmit"


def _held(trade: Any) -> bool:
    """The order is held until the session opens: warning 399 and still pre-submitted."""
    return _venue_status(trade) in ("PreSubmitted", "PendingSubmit") and any(e.errorCode == 399 for e in trade.log)


def _number(x: Any) -> float:
    """A finite number, else 0 (IB's "unset" is 1.797e308)."""
    return float(x) if isinstance(x, (int, float)) and math.isfinite(x) and abs(x) < 1e300 else 0.0


def _fill_numbers(trade: Any | None, fills: list[Any], known: list[Any]) -> tuple[float, float | None, float]:
    """(filled units, average price or None, commission) of an order from its trade and executions.

    Executions are taken once each (by execId), with the commission report the client holds for
    them. The average comes from the executions when they cover every filled unit, else from
    IB's own ``avgFillPrice``; when neither tells it, None (never 0).
    """
    reports = {f.execution.execId: f for f in known}
    by_id: dict[str, Any] = {}
    for f in [*(trade.fills if trade is not None else []), *fills]:
        by_id.setdefault(f.execution.execId, reports.get(f.execution.execId, f))
    execs = list(by_id.values())
    exec_qty = sum(_number(f.execution.shares) for f in execs)
    filled = exec_qty
    if trade is not None:
        filled = max(filled, _number(trade.orderStatus.filled), _number(trade.order.filledQuantity))
    avg: float | None = None
    if exec_qty > 0 and exec_qty >= filled - QTY_EPS:
        avg = sum(_number(f.execution.shares) * _number(f.execution.price) for f in execs) / exec_qty
    elif trade is not None and _finite(trade.orderStatus.avgFillPrice):
        avg = float(trade.orderStatus.avgFillPrice)
    if filled <= 0 or (avg is not None and avg <= 0):
        avg = None
    fee = sum(_number(f.commissionReport.commission) for f in execs)
    return filled, avg, fee


def _result(trade: Any, client_order_id: str, ctx: str, lmt: float | None, raise_errors: bool = True,
            fills: Sequence[Any] = (), known: Sequence[Any] = ()) -> OrderResult:
    """The trade as an OrderResult; with ``raise_errors``, a refused order raises its IB error instead."""
    st = _venue_status(trade)
    errors = [e for e in trade.log if e.errorCode and not ib_informational(e.errorCode)]
    if raise_errors and st in ("Cancelled", "Inactive", "ApiCancelled") and errors:
        raise from_ib(errors[-1].errorCode, errors[-1].message, ctx)
    filled, avg, fee = _fill_numbers(trade, list(fills), list(known))
    lmt_out = lmt if lmt is not None else (trade.order.lmtPrice if _finite(trade.order.lmtPrice) else None)
    return OrderResult(orderId=str(trade.order.permId or trade.order.orderId), client_order_id=client_order_id,
                       status=_STATUS.get(st, st), filled_quantity=float(filled), fill_price=avg, commission=fee,
                       limit_price=lmt_out)


def _trigger_on_tick(order: OrderRequest, tick: float) -> float:
    """The trigger on the tick grid: a stop toward the market (a SELL stop up, a BUY stop down), so it
    never fires later than asked; a take-profit to the nearest tick."""
    assert order.trigger_price is not None  # OrderRequest checks it for STP / MIT
    if order.order_type == "STP":
        return round_to_tick(order.trigger_price, tick, "up" if order.action == "SELL" else "down")
    return round_to_tick(order.trigger_price, tick, "nearest")


def _open_order(t: Any) -> OpenOrder:
    """A working IB order; an ``STP`` / ``MIT`` is a protective exit with ``auxPrice`` and ``ocaGroup``
    (reduce-only: this broker only places exits that reduce the position, see the module docstring)."""
    o, c = t.order, t.contract
    lmt = o.lmtPrice if _finite(o.lmtPrice) else None
    created = t.log[0].time if t.log else datetime.now(timezone.utc)
    kind: OrderType = o.orderType if o.orderType in PROTECTIVE_ORDER_TYPES else ("LMT" if lmt is not None else "MKT")
    protective = kind in PROTECTIVE_ORDER_TYPES
    return OpenOrder(orderId=str(o.permId or o.orderId), client_order_id=o.orderRef or f"ib-{o.permId}",
                     symbol=c.symbol, secType=c.secType, action=o.action,
                     totalQuantity=t.remaining() or o.totalQuantity,
                     orderType=kind, lmtPrice=lmt, auxPrice=float(o.auxPrice) if protective and _finite(o.auxPrice)
                     else None, ocaGroup=(o.ocaGroup or None) if protective else None, reduce_only=protective,
                     status=WORKING, created_at=created,
                     order_details={"orderType": o.orderType, "tif": o.tif, "clientId": o.clientId,
                                    "ib_status": t.orderStatus.status, "ocaType": o.ocaType})
