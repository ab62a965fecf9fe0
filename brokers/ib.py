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
  (``openTrades()``) and ``accountSummary()`` (``NetLiquidation``, ``AvailableFunds``,
  ``TotalCashValue`` in the base currency); market prices from the account's
  portfolio updates, else a market-data snapshot.
* **Contracts** are qualified once per symbol (``reqContractDetails``); an unknown
  symbol is :class:`~brokers.base.UnknownInstrument` naming it. Specs: tick =
  ``minTick``, lot = ``sizeIncrement``, minimum quantity = ``minSize``, multiplier;
  minimum notional and leverage come from the configured instrument (IB does not
  publish them).
* **Orders** carry ``orderRef`` = the client order id. IB does not refuse a reused
  ``orderRef``, so before placing, the broker looks for it among this session's
  trades, all open orders and today's executions, and refuses a duplicate itself.
"""

from __future__ import annotations

import asyncio
import logging
import math
from datetime import datetime, timezone
from typing import Any

from tenacity import AsyncRetrying, retry_if_exception_type, stop_after_attempt, wait_exponential

from brokers.aio_thread import LoopThread
from brokers.base import (
    CANCELLED, FILLED, WORKING, Broker, BrokerError, DuplicateOrder, NotConnected, OrderNotFound, OrderRejected,
    OrderRequest, OrderResult, UnknownInstrument, limit_price_for, round_to_tick,
)
from brokers.errors import from_connection, from_ib
from brokers.wallclock import require_current
from bus.models import Holding, InstrumentSpec, OpenOrder, PortfolioSnapshot

log = logging.getLogger(__name__)

_DONE = {"Filled", "Cancelled", "ApiCancelled", "Inactive"}
_STATUS = {"Filled": FILLED, "Cancelled": CANCELLED, "ApiCancelled": CANCELLED, "Inactive": "Rejected",
           "PendingCancel": WORKING, "PreSubmitted": WORKING, "Submitted": WORKING, "PendingSubmit": WORKING,
           "ApiPending": WORKING, "ValidationError": WORKING}


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

    def __init__(self, host: str, port: int, client_id: int, mode: str = "paper", account: str = "",
                 instruments: dict[str, InstrumentSpec] | None = None, base_currency: str = "USD",
                 connect_timeout: float = 5.0, request_timeout: float = 10.0, order_wait: float = 5.0,
                 reconnect_attempts: int = 3, reconnect_wait: float = 1.0, market_data_type: int = 1,
                 as_of_tolerance_seconds: float = 900.0) -> None:
        self.host, self.port, self.client_id = host, int(port), int(client_id)
        self.mode = mode  # type: ignore[assignment]
        self.account = account
        self._configured_account = account
        self.instruments = dict(instruments or {})
        self.base_currency = base_currency
        self.connect_timeout, self.request_timeout, self.order_wait = connect_timeout, request_timeout, order_wait
        self.reconnect_attempts, self.reconnect_wait = reconnect_attempts, reconnect_wait
        self.market_data_type = market_data_type
        self.as_of_tolerance_seconds = as_of_tolerance_seconds
        self.connections = 0
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

    def _drop(self) -> None:
        if self._ib is not None:
            try:
                self._ib.disconnect()
            except Exception:  # noqa: BLE001 - already broken; we only want it gone
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
        self.account = acct
        self._ib = ib
        self.connections += 1
        log.info("%s: connected to account %s", self._where(), acct)
        return ib

    def close(self) -> None:
        """Disconnect and stop the loop thread."""
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
            await ib.reqAllOpenOrdersAsync()
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
            orders = [_open_order(t) for t in ib.openTrades() if (t.order.account or self.account) == self.account]
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
            for sym, t in zip(contracts, tickers):
                px = _price_of(t)
                if not _finite(px):
                    raise NotConnected(f"{self._where()}: no price for {sym}")
                out[sym] = px
            return out

        return self._call(prices)

    async def _find(self, ib: Any, client_order_id: str) -> tuple[Any | None, list[Any]]:
        """The trade with ``orderRef`` == id (session or open orders), and today's fills with it."""
        trade = next((t for t in ib.trades() if t.order.orderRef == client_order_id), None)
        if trade is None:
            await ib.reqAllOpenOrdersAsync()
            trade = next((t for t in ib.trades() if t.order.orderRef == client_order_id), None)
        fills = [f for f in await ib.reqExecutionsAsync() if f.execution.orderRef == client_order_id]
        return trade, fills

    def place_order(self, order: OrderRequest, as_of: datetime) -> OrderResult:
        """Place with ``orderRef`` = client order id, after refusing a reused id; waits for the first status."""
        require_current(as_of, self.as_of_tolerance_seconds, self._where())
        ctx = f"{self._where()}: order {order.client_order_id}"

        async def place(ib: Any) -> OrderResult:
            from ib_async import LimitOrder, MarketOrder

            contract = (await self._qualified(ib, [order.symbol]))[order.symbol]
            spec = self._specs[order.symbol]
            trade, fills = await self._find(ib, order.client_order_id)
            if trade is not None or fills:
                status = trade.orderStatus.status if trade is not None else "Filled"
                raise DuplicateOrder(f"{ctx}: client order id already used at IB (status {status}); order refused")
            lots = order.quantity / spec.lot_size
            if order.quantity <= 0 or abs(lots - round(lots)) > 1e-9 or order.quantity < spec.min_quantity:
                raise OrderRejected(f"{ctx}: quantity {order.quantity} {order.symbol} breaks lot {spec.lot_size} / "
                                    f"minimum {spec.min_quantity}")
            common = dict(orderRef=order.client_order_id, account=self.account, tif="DAY")
            if order.order_type == "LMT":
                if order.limit_price is not None:
                    lmt = round_to_tick(order.limit_price, spec.tick_size, "down" if order.action == "BUY" else "up")
                else:
                    quote = _price_of((await ib.reqTickersAsync(contract))[0])
                    if not _finite(quote):
                        raise NotConnected(f"{ctx}: no quote for {order.symbol} to price the limit")
                    lmt = limit_price_for(order.action, quote, float(order.limit_offset_bps or 0.0), spec.tick_size)
                ib_order = LimitOrder(order.action, order.quantity, lmt, **common)
            else:
                lmt = None
                ib_order = MarketOrder(order.action, order.quantity, **common)
            trade = ib.placeOrder(contract, ib_order)
            await _settle(trade, self.order_wait, wait_fill=order.order_type == "MKT")
            return _result(trade, order.client_order_id, ctx, lmt)

        return self._call(place, self.request_timeout + self.order_wait)

    def cancel_order(self, client_order_id: str) -> OrderResult:
        """Cancel the working order with this ``orderRef``."""
        ctx = f"{self._where()}: cancel {client_order_id}"

        async def cancel(ib: Any) -> OrderResult:
            trade, fills = await self._find(ib, client_order_id)
            if trade is None:
                if fills:
                    raise OrderRejected(f"{ctx}: the order is already filled")
                raise OrderNotFound(f"{ctx}: no order with this client order id")
            if trade.orderStatus.status in _DONE:
                raise OrderRejected(f"{ctx}: the order is {trade.orderStatus.status}, not working")
            ib.cancelOrder(trade.order)
            deadline = asyncio.get_running_loop().time() + self.order_wait
            while trade.orderStatus.status not in _DONE and asyncio.get_running_loop().time() < deadline:
                await asyncio.sleep(0.02)
            return _result(trade, client_order_id, ctx, None, raise_errors=False)

        return self._call(cancel, self.request_timeout + self.order_wait)

    def order_status(self, client_order_id: str) -> OrderResult:
        """The order with this ``orderRef``: session trades, open orders, then today's executions."""
        ctx = f"{self._where()}: status {client_order_id}"

        async def status(ib: Any) -> OrderResult:
            trade, fills = await self._find(ib, client_order_id)
            if trade is not None:
                return _result(trade, client_order_id, ctx, None, raise_errors=False)
            if fills:
                shares = sum(f.execution.shares for f in fills)
                avg = sum(f.execution.shares * f.execution.price for f in fills) / shares
                known = {f.execution.execId: f for f in ib.fills()}
                fee = sum(known.get(f.execution.execId, f).commissionReport.commission for f in fills)
                return OrderResult(orderId=str(fills[0].execution.permId), client_order_id=client_order_id,
                                   status=FILLED, filled_quantity=shares, fill_price=avg, commission=fee)
            raise OrderNotFound(f"{ctx}: no order with this client order id")

        return self._call(status)


# ---------------------------------------------------------------------- helpers


def _finite(x: Any) -> bool:
    """A usable price: a positive finite number below IB's "unset" marker (1.797e308)."""
    return isinstance(x, (int, float)) and math.isfinite(x) and 0 < x < 1e300


def _price_of(ticker: Any) -> float:
    """Last price inside the spread, else the midpoint, else the close (``ib_async``'s marketPrice)."""
    px = ticker.marketPrice()
    if not _finite(px):
        px = ticker.close
    return float(px) if _finite(px) else float("nan")


async def _settle(trade: Any, wait: float, wait_fill: bool) -> None:
    """Wait until the order is acknowledged (and for a market order, filled with its commissions)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + wait
    while loop.time() < deadline:
        st = trade.orderStatus.status
        if st in _DONE or (st in ("Submitted", "PreSubmitted") and not wait_fill):
            if st != "Filled" or all(f.commissionReport.execId for f in trade.fills):
                return
        await asyncio.sleep(0.01)


def _result(trade: Any, client_order_id: str, ctx: str, lmt: float | None, raise_errors: bool = True) -> OrderResult:
    st = trade.orderStatus.status
    errors = [e for e in trade.log if e.errorCode and e.errorCode not in (202,)]
    if raise_errors and st in ("Cancelled", "Inactive", "ApiCancelled") and errors:
        raise from_ib(errors[-1].errorCode, errors[-1].message, ctx)
    filled = sum(f.execution.shares for f in trade.fills) or trade.orderStatus.filled
    avg = (sum(f.execution.shares * f.execution.price for f in trade.fills) / filled) if trade.fills else (
        trade.orderStatus.avgFillPrice or None)
    fee = sum(f.commissionReport.commission for f in trade.fills)
    lmt_out = lmt if lmt is not None else (trade.order.lmtPrice if _finite(trade.order.lmtPrice) else None)
    return OrderResult(orderId=str(trade.order.permId or trade.order.orderId), client_order_id=client_order_id,
                       status=_STATUS.get(st, st), filled_quantity=float(filled), fill_price=avg, commission=fee,
                       limit_price=lmt_out)


def _open_order(t: Any) -> OpenOrder:
    o, c = t.order, t.contract
    lmt = o.lmtPrice if _finite(o.lmtPrice) else None
    created = t.log[0].time if t.log else datetime.now(timezone.utc)
    return OpenOrder(orderId=str(o.permId or o.orderId), client_order_id=o.orderRef or f"ib-{o.permId}",
                     symbol=c.symbol, secType=c.secType, action=o.action,
                     totalQuantity=t.remaining() or o.totalQuantity,
                     orderType="LMT" if lmt is not None else "MKT", lmtPrice=lmt, status=WORKING, created_at=created,
                     order_details={"orderType": o.orderType, "tif": o.tif, "clientId": o.clientId,
                                    "ib_status": t.orderStatus.status})
