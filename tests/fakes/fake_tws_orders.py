"""The order side of the fake TWS (:mod:`tests.fakes.fake_tws`): orders, fills, executions,
completed orders, and the US trading session with its clock.

Split out of ``fake_tws.py`` to keep both files readable. :class:`OrderDesk` is a mixin of
:class:`~tests.fakes.fake_tws.FakeTWS`: it relies on the server's lock, connection list,
account state (``cash``, ``positions``, ``prices``, ``contracts``) and senders (``_error``,
``_send_position``, ``_push_account``, ``values``). Every method runs with the server's lock
held. The scripting methods are documented in ``fake_tws.py``'s module docstring.

Wire layouts are those ``ib_async`` 2.1.0 decodes from a server of version 176
(``decoder.py``: ``openOrder``, ``orderStatus``, ``execDetails``, ``completedOrder``).
Standard library only.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from datetime import time as dtime
from typing import TYPE_CHECKING, Any, Callable
from zoneinfo import ZoneInfo

from tests.fakes.fake_tws_exits import PROTECTIVE

if TYPE_CHECKING:
    from tests.fakes.fake_tws import FakeContract, _Conn

UNSET_DOUBLE = 1.7976931348623157e308
EASTERN = ZoneInfo("America/New_York")  # what TWS prints as "US/Eastern"
WORKING = ("PreSubmitted", "Submitted")
SHAREHOLDER = "Not an insider or substantial shareholder"  # what TWS fills in for retail orders

# Texts as TWS / IB Gateway send them (see fake_tws.py for the sources).
MSG_TIF_PRESET = "Order TIF was set to DAY based on order preset."
MSG_HELD = ("Order Message:\n{action} {qty:g} {symbol} {exchange}\n"
            "Warning: Your order will not be placed at the exchange until {until} US/Eastern.")


@dataclass
class FakeOrder:
    """An order the fake holds. ``status``: PreSubmitted (held until the session opens),
    Submitted (working, possibly partly filled), Filled, Cancelled."""

    orderId: int
    clientId: int
    permId: int
    contract: FakeContract
    action: str
    totalQuantity: float
    orderType: str
    lmtPrice: float | None
    tif: str
    account: str
    orderRef: str
    status: str = "Submitted"
    filled: float = 0.0
    avgFillPrice: float = 0.0
    lastFillPrice: float = 0.0
    commission: float = 0.0  # charged so far (IBKR Pro fixed, the minimum is per order)
    partial: float | None = None  # the first fill is only this many shares (partial_next)
    completed_time: datetime | None = None
    completed_status: str = ""  # as reqCompletedOrders reports it: "Filled Size: 10", "Cancelled by Trader"
    auxPrice: float | None = None  # STP / MIT trigger (fake_tws_exits.py)
    ocaGroup: str = ""
    ocaType: int = 0
    triggered: bool = False  # an STP / MIT that fired (now a market order)


@dataclass
class FakeExecution:
    """One fill. ``cum_qty``/``avg_price``: the order's filled quantity and average price after it."""

    execId: str
    order: FakeOrder
    shares: float
    price: float
    time: datetime
    commission: float
    realizedPNL: float
    cum_qty: float = 0.0
    avg_price: float = 0.0


def contract_fields(c: FakeContract, exchange: str = "SMART") -> list:
    """conId, symbol, secType, lastTradeDate, strike, right, multiplier, exchange, currency, localSymbol,
    tradingClass."""
    return [c.conId, c.symbol, c.secType, "", 0.0, "", c.multiplier, exchange, c.currency, c.symbol, c.symbol]


def next_regular_open(after: datetime) -> datetime:
    """The next weekday 09:30 US/Eastern strictly after ``after`` (UTC). Exchange holidays are ignored."""
    et = after.astimezone(EASTERN)
    day = et.date()
    while True:
        start = datetime.combine(day, dtime(9, 30), tzinfo=EASTERN)
        if start > et and start.weekday() < 5:
            return start.astimezone(timezone.utc)
        day += timedelta(days=1)


def eastern(t: datetime, fmt: str = "%Y%m%d %H:%M:%S") -> str:
    """``t`` in US/Eastern, formatted."""
    return t.astimezone(EASTERN).strftime(fmt)


def _exec_side(o: FakeOrder) -> str:
    return "BOT" if o.action == "BUY" else "SLD"


def ibkr_pro_fixed(quantity: float, value: float) -> float:
    """IBKR Pro fixed commission for an order's cumulative fill: USD 0.005 a share, at least USD 1,
    at most 1 % of the trade value."""
    return round(min(max(0.005 * quantity, 1.0), 0.01 * value), 2)


class OrderDesk:
    """Mixin of :class:`~tests.fakes.fake_tws.FakeTWS`: orders, fills, the session and its clock."""

    # Provided by FakeTWS.
    account: str
    cash: float
    contracts: dict
    prices: dict[str, float]
    positions: dict[str, list[float]]
    _conns: list
    _lock: Any
    _error: Callable[..., None]
    _send_position: Callable[..., None]
    _push_account: Callable[[], None]
    values: Callable[[], dict[str, float]]
    _check_exit_triggers: Callable[[str, float], None]
    _after_fill: Callable[[FakeOrder, float], None]
    _touched: Callable[[FakeOrder, float], bool]
    _fire: Callable[[FakeOrder, float], None]

    def _init_orders(self) -> None:
        self.orders: list[FakeOrder] = []
        self.executions: list[FakeExecution] = []
        self.placed: list[dict] = []  # orderId, orderRef, action, quantity, type as the client sent them
        self._perm = itertools.count(1_900_000_001)
        self._exec = itertools.count(1)
        self._reject: list[tuple[int, str]] = []
        self._clock: datetime | None = None  # None: the wall clock
        self._session = "open"
        self._reopen: datetime | None = None
        self._partial: list[float] = []
        self._tif_preset: str | None = None  # None, "missing" (TIF other than DAY) or "every"
        self._held: list[Callable[[], None]] | None = None  # order reports held back (connectivity lost)
        self._hidden_execs: set[str] = set()  # fills TWS has not heard of yet (connectivity lost)

    # ------------------------------------------------------------------ scripting
    def reject_next(self, code: int = 201, message: str = "Order rejected - reason:scripted rejection") -> None:
        """The next order placed is refused with this error code and text."""
        self._reject.append((code, message))

    def set_clock(self, when: datetime | None) -> None:
        """Fix the fake's clock at ``when`` (timezone-aware); ``None``: follow the wall clock again."""
        if when is not None and when.tzinfo is None:
            raise ValueError("set_clock needs a timezone-aware datetime")
        with self._lock:
            self._clock = when

    def now(self) -> datetime:
        """The fake's time (UTC): execution and completion times, reqCurrentTime, the next open."""
        return (self._clock or datetime.now(timezone.utc)).astimezone(timezone.utc)

    @property
    def session(self) -> str:
        """``open`` or ``closed``."""
        return self._session

    @property
    def reopen_time(self) -> datetime | None:
        """While closed: when warning 399 says the held orders go to the exchange."""
        return self._reopen

    def set_session(self, state: str, reopen: datetime | None = None, expire_day_orders: bool = True) -> None:
        """``closed``: the regular session ends. Orders placed from now on are accepted but held
        (``PreSubmitted`` + warning 399 naming ``reopen``, by default the next weekday 09:30
        US/Eastern after :meth:`now`); prices no longer fill resting limit orders; working DAY orders
        expire (``Cancelled``, the rest of a partly filled one too). ``open``: :meth:`open_session` at
        the current prices."""
        if state == "open":
            self.open_session()
            return
        if state != "closed":
            raise ValueError(f"session state {state!r}: 'open' or 'closed'")
        with self._lock:
            self._session = "closed"
            self._reopen = reopen or next_regular_open(self.now())
            if expire_day_orders:
                for o in self.orders:
                    if o.status == "Submitted" and o.tif == "DAY":
                        o.status = "Cancelled"
                        self._complete(o, "Cancelled by System:\n")
                        self._push_order(o)
                self._push_account()

    def open_session(self, price: float | dict[str, float] | None = None,
                     at: datetime | None = None) -> list[FakeOrder]:
        """The regular session opens at ``price`` (a number: the one symbol held orders are in; a dict:
        per symbol; ``None``: current prices). A fixed clock moves to ``at`` (default: the announced
        reopen time). Held orders go out: market orders, and limit orders the open price crosses, fill
        at the open price; other limit orders rest ``Submitted``; resting limit orders the open crosses
        fill at the open price too. Connected clients get execDetails + commissionReport + orderStatus;
        with none connected the fills are only booked, for reqExecutions / reqCompletedOrders later.
        Returns the orders that were held."""
        with self._lock:
            held = [o for o in self.orders if o.status == "PreSubmitted" and o.orderType not in PROTECTIVE]
            if isinstance(price, dict):
                opens = {s: float(p) for s, p in price.items()}
            elif price is not None:
                symbols = {o.contract.symbol for o in held}
                if len(symbols) != 1:
                    raise ValueError(f"one open price but held orders in {sorted(symbols)}: pass a dict")
                opens = {symbols.pop(): float(price)}
            else:
                opens = {}
            self.prices.update(opens)
            if at is not None:
                self._clock = at
            elif self._clock is not None and self._reopen is not None and self._clock < self._reopen:
                self._clock = self._reopen
            self._session, self._reopen = "open", None
            for o in held:
                px = self.prices[o.contract.symbol]
                o.status = "Submitted"
                if o.orderType == "MKT" or self._crosses(o, px):
                    self._fill(o, px)
                else:
                    self._push_order(o)
            for o in self.orders:
                if o.status == "Submitted" and o not in held and o.contract.symbol in opens:
                    if self._crosses(o, opens[o.contract.symbol]):
                        self._fill(o, opens[o.contract.symbol])
            for sym in sorted({o.contract.symbol for o in self.orders if o.orderType in PROTECTIVE}):
                self._check_exit_triggers(sym, self.prices[sym])  # a gap through a stop fills at the open
            self._push_account()
            return held

    def partial_next(self, amount: float) -> None:
        """The next order placed fills only partly at its first fill: ``amount`` below 1 is a fraction
        of its quantity (rounded down to the size increment, at least one increment), else a number of
        shares. It then shows ``Submitted`` with filled/remaining; the rest fills on :meth:`fill_rest`,
        or stays working (a DAY order expires when the session closes)."""
        if amount <= 0:
            raise ValueError("partial_next needs a positive fraction or quantity")
        with self._lock:
            self._partial.append(float(amount))

    def fill_rest(self, order_id: int, price: float | None = None, client_id: int | None = None) -> FakeOrder:
        """Fill what is left of a working order (client ``order_id``) at ``price`` (default: the
        current price) now, whatever the session; reports go out as for any fill."""
        with self._lock:
            found = [o for o in self.orders if o.orderId == order_id and o.status in WORKING
                     and (client_id is None or o.clientId == client_id)]
            if len(found) != 1:
                raise LookupError(f"{len(found)} working orders with id {order_id} (client {client_id})")
            o = found[0]
            o.partial = None
            if o.status == "PreSubmitted":
                o.status = "Submitted"
            self._fill(o, float(price if price is not None else self.prices[o.contract.symbol]))
            self._push_account()
            return o

    def tif_preset(self, on: bool = True, every_order: bool = False) -> None:
        """TWS's order preset sets the TIF: each order placed whose TIF is not DAY (with
        ``every_order``: each order) first gets informational error 10349 "Order TIF was set to DAY
        based on order preset.", its TIF becomes DAY, and it is then handled, and fills, as usual."""
        with self._lock:
            self._tif_preset = ("every" if every_order else "missing") if on else None

    def open_orders(self) -> list[FakeOrder]:
        """Working orders (held ``PreSubmitted`` ones included)."""
        with self._lock:
            return [o for o in self.orders if o.status in WORKING]

    def completed_orders(self) -> list[FakeOrder]:
        """Finished orders (filled or cancelled), in the order they finished: what reqCompletedOrders lists."""
        with self._lock:
            done = [o for o in self.orders if o.status in ("Filled", "Cancelled")]
            return sorted(done, key=lambda o: o.completed_time or datetime.min.replace(tzinfo=timezone.utc))

    # ------------------------------------------------------------------ encoders
    def _open_order_fields(self, o: FakeOrder) -> list:
        c = o.contract
        lmt = o.lmtPrice if o.lmtPrice is not None else UNSET_DOUBLE
        fields: list[Any] = [5, o.orderId, *contract_fields(c),
                             o.action, o.totalQuantity, o.orderType, lmt, o.auxPrice or 0.0, o.tif, o.ocaGroup,
                             o.account, "O", 0,
                             o.orderRef, o.clientId, o.permId, 0, 0, 0.0, "", "", "", "", ""]  # ..faPercentage
        fields += [""]  # faProfile (server < 177)
        fields += ["", "", "", "", "", -1, "", "", 0, "", "", "", "", "", 0, 0, 0, 0, "", o.ocaType or 3, 0, 0, "",
                   0, "", "", 0, "", ""]  # modelCode .. deltaNeutralAuxPrice (empty type: no extra block)
        fields += [0, 0, "", "", "", "", ""]  # continuousUpdate .. comboLegsDescrip
        fields += [0, 0, 0]  # combo legs, order combo legs, smart combo routing params
        fields += ["", "", ""]  # scaleInitLevelSize, scaleSubsLevelSize, scalePriceIncrement (unset)
        fields += [""]  # hedgeType
        fields += [0, "", "", 0, 0]  # optOutSmartRouting, clearingAccount, clearingIntent, notHeld, dnc present
        fields += [""]  # algoStrategy
        fields += [0, 0, o.status, "", "", "", "", "", "", "", "", "", "", "", "", "", "", 0, 0]  # .. randomizePrice
        fields += [0]  # conditions
        fields += ["", "", "", "", "", "", "", 0, "", "", "", "", 0, 0, "", 0]  # adjustedOrderType .. usePriceMgmtAlgo
        fields += ["", 0, 0]  # duration (>=159), postToAts (>=160), autoCancelParent (>=162)
        fields += ["", "", "", "", ""]  # minTradeQty .. midOffsetAtHalf (>=170)
        return fields

    @staticmethod
    def _status_fields(o: FakeOrder) -> list:
        return [3, o.orderId, o.status, o.filled, o.totalQuantity - o.filled, o.avgFillPrice, o.permId, 0,
                o.lastFillPrice, o.clientId, "", 0.0]

    @staticmethod
    def _exec_fields(req_id: int, e: FakeExecution) -> list:
        o = e.order
        return [11, req_id, o.orderId, *contract_fields(o.contract, o.contract.primaryExchange), e.execId,
                e.time.astimezone(timezone.utc).strftime("%Y%m%d %H:%M:%S UTC"), o.account,
                o.contract.primaryExchange, _exec_side(o), e.shares, e.price, o.permId,
                o.clientId, 0, e.cum_qty, e.avg_price, o.orderRef, "", "", "", 1]

    @staticmethod
    def _commission_fields(e: FakeExecution) -> list:
        return [59, 1, e.execId, e.commission, "USD", e.realizedPNL, "", ""]

    @staticmethod
    def _completed_fields(o: FakeOrder) -> list:
        """completedOrder (101) as ib_async's decoder reads it at server version 176: no order id or
        client id (TWS does not send them), the order state's completedTime / completedStatus."""
        c = o.contract
        lmt = o.lmtPrice if o.lmtPrice is not None else UNSET_DOUBLE
        done = eastern(o.completed_time) + " US/Eastern" if o.completed_time else ""
        fields: list[Any] = [101, *contract_fields(c),
                             o.action, o.totalQuantity, o.orderType, lmt, o.auxPrice or 0.0, o.tif, o.ocaGroup,
                             o.account, "", 0,
                             o.orderRef, o.permId, 0, 0, 0.0, "", "", "", ""]  # action .. faPercentage
        fields += [""]  # faProfile (server < 177)
        fields += ["", "", "", "", "", 0, "", -1, "", "", "", "", "", 2147483647, 0, 0, "", o.ocaType or 3, 0, "", 0,
                   "", ""]  # modelCode .. deltaNeutralAuxPrice (empty type: no extra block)
        fields += [0, 0, "", "", ""]  # continuousUpdate, referencePriceType, trailStopPrice, trailingPercent, ..
        fields += [0, 0, 0]  # combo legs, order combo legs, smart combo routing params
        fields += ["", "", ""]  # scaleInitLevelSize, scaleSubsLevelSize, scalePriceIncrement (unset)
        fields += [""]  # hedgeType
        fields += ["", "IB", 0, 0]  # clearingAccount, clearingIntent, notHeld, delta-neutral contract present
        fields += [""]  # algoStrategy
        fields += [0, o.status, 0, 0]  # solicited, status, randomizeSize, randomizePrice
        fields += [0]  # conditions
        fields += ["", "", "", 1, 0, "", o.filled, "", 0, SHAREHOLDER, 0, 0, "",  # trailStopPrice .. parentPermId
                   done, o.completed_status]
        fields += ["", "", "", "", ""]  # minTradeQty .. midOffsetAtHalf (>=170)
        return fields

    def _send_open_order(self, conn: _Conn, o: FakeOrder) -> None:
        conn.send(*self._open_order_fields(o))

    def _send_status(self, conn: _Conn, o: FakeOrder) -> None:
        conn.send(*self._status_fields(o))

    def _send_exec(self, conn: _Conn, req_id: int, e: FakeExecution) -> None:
        conn.send(*self._exec_fields(req_id, e))
        conn.send(*self._commission_fields(e))

    # ------------------------------------------------------------------ reporting
    def _notify(self, report: Callable[[], None], exec_id: str | None = None) -> None:
        """Run ``report`` now, or hold it until connectivity is restored."""
        if self._held is None:
            report()
            return
        self._held.append(report)
        if exec_id:
            self._hidden_execs.add(exec_id)

    def _clients_of(self, o: FakeOrder) -> list:
        return [c for c in list(self._conns) if c.clientId == o.clientId or c.clientId == 0]

    def _push_order(self, o: FakeOrder) -> None:
        """openOrder + orderStatus to the order's client (and client 0), as they are now."""
        msgs = [self._open_order_fields(o), self._status_fields(o)]

        def report() -> None:
            for conn in self._clients_of(o):
                for m in msgs:
                    conn.send(*m)

        self._notify(report)

    def _complete(self, o: FakeOrder, text: str) -> None:
        o.completed_time, o.completed_status = self.now(), text

    # ------------------------------------------------------------------ trading
    @staticmethod
    def _crosses(o: FakeOrder, price: float) -> bool:
        if o.orderType != "LMT" or o.lmtPrice is None:
            return False
        return price <= o.lmtPrice if o.action == "BUY" else price >= o.lmtPrice

    @staticmethod
    def _partial_qty(amount: float, total: float, increment: float) -> float | None:
        q = amount * total if amount < 1 else amount
        q = max(increment, math.floor(q / increment + 1e-9) * increment)
        return q if q < total else None

    def _fill(self, o: FakeOrder, price: float) -> FakeExecution:
        qty = o.totalQuantity - o.filled
        if o.partial is not None:
            qty, o.partial = min(qty, o.partial), None
        sign = 1.0 if o.action == "BUY" else -1.0
        q0, avg0 = self.positions.get(o.contract.symbol, [0.0, 0.0])
        q1 = q0 + sign * qty
        realized = 0.0
        if q0 == 0 or (q0 > 0) == (sign > 0):
            avg1 = (abs(q0) * avg0 + qty * price) / abs(q1)
        else:
            closed = min(qty, abs(q0))
            realized = (price - avg0) * closed * (1 if q0 > 0 else -1)
            avg1 = avg0 if abs(q1) > 0 and (q1 > 0) == (q0 > 0) else price
        cum = o.filled + qty
        value = o.avgFillPrice * o.filled + price * qty
        total_commission = ibkr_pro_fixed(cum, value)
        commission = round(total_commission - o.commission, 2)
        o.commission = total_commission
        self.cash -= sign * qty * price + commission
        if q1 == 0:
            self.positions.pop(o.contract.symbol, None)
        else:
            self.positions[o.contract.symbol] = [q1, avg1]
        o.filled, o.avgFillPrice, o.lastFillPrice = cum, value / cum, price
        if o.filled >= o.totalQuantity - 1e-9:
            o.status = "Filled"
            self._complete(o, f"Filled Size: {cum:g}")
        else:
            o.status = "Submitted"
        e = FakeExecution(f"0000e0d5.{next(self._exec):08x}.01.01", o, qty, price, self.now(), commission,
                          realized - commission if realized else 0.0, cum, o.avgFillPrice)
        self.executions.append(e)
        msgs = [self._exec_fields(-1, e), self._commission_fields(e), self._status_fields(o),
                self._open_order_fields(o)]

        def report() -> None:
            for conn in list(self._conns):
                if conn.clientId == o.clientId or conn.clientId == 0:
                    for m in msgs:
                        conn.send(*m)
                if conn.positions_sub:
                    self._send_position(conn, o.contract.symbol)

        self._notify(report, e.execId)
        self._after_fill(o, qty)  # OCA siblings (fake_tws_exits.py)
        return e

    def _margin_ok(self, symbol: str, signed_qty: float, price: float) -> tuple[bool, float, float]:
        q0 = self.positions.get(symbol, [0.0, 0.0])[0]
        if abs(q0 + signed_qty) <= abs(q0):
            return True, 0.0, 0.0
        v = self.values()
        init_after = v["InitMarginReq"] + 0.5 * (abs(q0 + signed_qty) - abs(q0)) * price
        return init_after <= v["EquityWithLoanValue"], v["EquityWithLoanValue"], init_after

    # ------------------------------------------------------------------ handlers (lock held)
    def _m3(self, conn: _Conn, f: list[str]) -> None:  # placeOrder
        order_id, symbol = int(f[1]), f[3]
        action, qty, otype = f[16], float(f[17] or 0), f[18]
        lmt = float(f[19]) if f[19] else None
        aux = float(f[20]) if f[20] and float(f[20]) < UNSET_DOUBLE else None
        tif, oca_group, account, order_ref = f[21], f[22], f[23] or self.account, f[26]
        oca_type = int(f[47] or 0) if len(f) > 47 else 0
        self.placed.append({"orderId": order_id, "clientId": conn.clientId, "orderRef": order_ref, "action": action,
                            "totalQuantity": qty, "orderType": otype, "lmtPrice": lmt, "account": account})
        if any(o.orderId == order_id and o.clientId == conn.clientId for o in self.orders):
            self._error(conn, order_id, 103, "Duplicate order id")
            return
        c = self.contracts.get(symbol)
        if c is None:
            self._error(conn, order_id, 200, "No security definition has been found for the request")
            return
        if self._reject:
            code, text = self._reject.pop(0)
            self._error(conn, order_id, code, text)
            return
        if qty <= 0:
            self._error(conn, order_id, 434, "The order size cannot be zero.")
            return
        if abs(qty / c.sizeIncrement - round(qty / c.sizeIncrement)) > 1e-9:
            self._error(conn, order_id, 10318, f"The order size {qty:g} is not a multiple of {c.sizeIncrement:g}.")
            return
        if otype == "LMT" and (lmt is None or abs(lmt / c.minTick - round(lmt / c.minTick)) > 1e-6):
            self._error(conn, order_id, 110, "The price does not conform to the minimum price variation for this "
                                             "contract.")
            return
        if otype in PROTECTIVE and (aux is None or abs(aux / c.minTick - round(aux / c.minTick)) > 1e-6):
            self._error(conn, order_id, 110, "The price does not conform to the minimum price variation for this "
                                             "contract.")
            return
        px = self.prices[symbol]
        sign = 1.0 if action == "BUY" else -1.0
        ok, ewl, init = self._margin_ok(symbol, sign * qty, px)
        if not ok:
            self._error(conn, order_id, 201, "Order rejected - reason:YOUR ORDER IS NOT ACCEPTED. IN ORDER TO OBTAIN "
                                             f"THE DESIRED POSITION YOUR EQUITY WITH LOAN VALUE [{ewl:.2f} USD] MUST "
                                             f"EXCEED THE INITIAL MARGIN [{init:.2f} USD]")
            return
        o = FakeOrder(order_id, conn.clientId, next(self._perm), c, action, qty, otype, lmt, tif or "DAY", account,
                      order_ref, auxPrice=aux, ocaGroup=oca_group, ocaType=oca_type)
        if self._partial:
            o.partial = self._partial_qty(self._partial.pop(0), qty, c.sizeIncrement)
        if self._tif_preset == "every" or (self._tif_preset == "missing" and tif != "DAY"):
            self._error(conn, order_id, 10349, MSG_TIF_PRESET)
            o.tif = "DAY"
        self.orders.append(o)
        if self._session == "closed":
            o.status = "PreSubmitted"
            self._send_open_order(conn, o)
            self._send_status(conn, o)
            self._error(conn, order_id, 399, MSG_HELD.format(
                action=action, qty=qty, symbol=symbol, exchange=c.primaryExchange,
                until=eastern(self._reopen or next_regular_open(self.now()), "%Y-%m-%d %H:%M:%S")))
        elif otype in PROTECTIVE:  # simulated by IB: rests PreSubmitted until touched
            o.status = "PreSubmitted"
            self._send_open_order(conn, o)
            self._send_status(conn, o)
            if self._touched(o, px):
                self._fire(o, px)
        else:
            self._send_open_order(conn, o)
            self._send_status(conn, o)
            if otype == "MKT" or self._crosses(o, px):
                self._fill(o, px)
        self._push_account()

    def _m4(self, conn: _Conn, f: list[str]) -> None:  # cancelOrder: 4, 1, orderId, manualCancelOrderTime
        order_id = int(f[2])
        o = next((x for x in self.orders if x.orderId == order_id and x.clientId == conn.clientId), None)
        if o is None:
            self._error(conn, order_id, 135, f"Can't find order with id ={order_id}")
            return
        if o.status not in WORKING:
            self._error(conn, order_id, 10148, f"OrderId {order_id} that needs to be cancelled cannot be cancelled, "
                                               f"state: {o.status}.")
            return
        o.status = "Cancelled"
        self._complete(o, "Cancelled by Trader")
        self._send_status(conn, o)
        self._error(conn, order_id, 202, "Order Canceled - reason:")
        self._push_account()

    def _open_orders_for(self, conn: _Conn, all_clients: bool) -> None:
        for o in self.orders:
            if o.status in WORKING and (all_clients or o.clientId == conn.clientId or conn.clientId == 0):
                self._send_open_order(conn, o)
                self._send_status(conn, o)
        conn.send(53, 1)

    def _m5(self, conn: _Conn, f: list[str]) -> None:  # reqOpenOrders
        self._open_orders_for(conn, all_clients=False)

    def _m16(self, conn: _Conn, f: list[str]) -> None:  # reqAllOpenOrders
        self._open_orders_for(conn, all_clients=True)

    def _m99(self, conn: _Conn, f: list[str]) -> None:  # reqCompletedOrders: 99, apiOnly (all orders are API)
        for o in self.completed_orders():
            if not any(e.order is o and e.execId in self._hidden_execs for e in self.executions):
                conn.send(*self._completed_fields(o))
        conn.send(102)

    def _m7(self, conn: _Conn, f: list[str]) -> None:  # reqExecutions: 7, 3, reqId, clientId, acct, time, symbol, ..
        def field(i: int) -> str:
            return f[i] if len(f) > i else ""

        req_id, client_id, symbol, side = int(f[2]), int(field(3) or 0), field(6), field(9)
        for e in self.executions:
            o = e.order
            if e.execId in self._hidden_execs or (client_id and o.clientId != client_id):
                continue
            if (symbol and o.contract.symbol != symbol) or (side and side not in (o.action, _exec_side(o))):
                continue
            self._send_exec(conn, req_id, e)
        conn.send(55, 1, req_id)
