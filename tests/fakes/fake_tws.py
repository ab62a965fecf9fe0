"""A fake TWS / IB Gateway for tests: the real ``ib_async`` client connects to it over loopback.

Standard library only. The server listens on ``127.0.0.1`` on a free port and speaks
the TWS API socket protocol as ``ib_async`` 2.1 (client versions 157..178) expects it
from a server of version :data:`SERVER_VERSION` (176): every message is a 4-byte
big-endian length followed by NUL-terminated text fields.

What ``IB.connect()`` synchronises, and what the fake answers (without all of it
connect() stalls until its timeout)::

    handshake  "API\\0" + "v157..178"      -> "176", connection time
    71 startApi                           -> 15 managedAccounts, 9 nextValidId, 2104/2106/2158 farm notices
    61 reqPositions                       -> 61 position ..., 62 positionEnd (and 61 pushes on every change)
    5  reqOpenOrders / 16 reqAllOpenOrders -> 5 openOrder + 3 orderStatus ..., 53 openOrderEnd
    99 reqCompletedOrders                 -> 102 completedOrdersEnd (no completed orders are listed)
    6  reqAccountUpdates                  -> 6 accountValue ..., 7 portfolio ..., 8 time, 54 accountDownloadEnd
    76 reqAccountUpdatesMulti             -> 73 accountUpdateMulti ..., 74 end
    7  reqExecutions                      -> 11 execDetails + 59 commissionReport ..., 55 execDetailsEnd

and besides: 62 reqAccountSummary (63 rows, 64 end; rows pushed again on every change),
9 reqContractDetails (10 + 52, or error 200 for an unknown symbol), 3 placeOrder,
4 cancelOrder, 1 reqMktData snapshots (tick prices + 57), 20 reqHistoricalData (17),
49 reqCurrentTime, 8 reqIds, 17 reqManagedAccts.

Trading model: one account (``DU...``: a paper account), cash in USD, stocks only.
A market order, or a marketable limit order, fills at once, in full, at the symbol's
price (:meth:`FakeTWS.set_price`), with IBKR Pro fixed commissions (USD 0.005 a share,
at least USD 1, at most 1 % of the trade value). A limit order that does not cross
rests ``Submitted`` until :meth:`FakeTWS.set_price` crosses it (then it fills at its
limit price) or it is cancelled. Margin is Reg T-like: initial margin is 50 % of
gross position value; an order that would raise the initial margin past the
equity is rejected with error 201. ``AvailableFunds`` = ``NetLiquidation`` −
``InitMarginReq``. IB does not refuse a reused ``orderRef``; a reused order id of
one client is refused with error 103.

Failure scripting: :meth:`FakeTWS.drop_connections` closes every client socket (the
nightly reset); :meth:`FakeTWS.down` refuses connections (``"refuse"``) or accepts
them and never answers (``"silent"``); :meth:`FakeTWS.stall` keeps connections open
but stops answering requests (a timeout mid-run); :meth:`FakeTWS.reject_next` makes
the next order fail with any error code.
"""

from __future__ import annotations

import itertools
import socket
import struct
import threading
import time
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any

SERVER_VERSION = 176
ACCOUNT = "DU1234567"
UNSET_DOUBLE = 1.7976931348623157e308


@dataclass(frozen=True)
class FakeContract:
    """A stock the fake knows: what contract details answer with."""

    symbol: str
    conId: int
    primaryExchange: str = "ARCA"
    secType: str = "STK"
    currency: str = "USD"
    minTick: float = 0.01
    minSize: float = 1.0
    sizeIncrement: float = 1.0
    longName: str = ""
    multiplier: str = ""


DEFAULT_CONTRACTS = (
    FakeContract("SPY", 756733, "ARCA", longName="SPDR S&P 500 ETF TRUST"),
    FakeContract("VIXY", 300930893, "BATS", longName="PROSHARES VIX SHORT-TERM FUTURES"),
    FakeContract("QQQ", 320227571, "NASDAQ", longName="INVESCO QQQ TRUST SERIES 1"),
)
DEFAULT_PRICES = {"SPY": 500.0, "VIXY": 15.0, "QQQ": 430.0}


@dataclass
class FakeOrder:
    """An order the fake holds. ``status``: Submitted, Filled, Cancelled, Inactive."""

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


@dataclass
class FakeExecution:
    """One fill."""

    execId: str
    order: FakeOrder
    shares: float
    price: float
    time: datetime
    commission: float
    realizedPNL: float


@dataclass
class _Conn:
    sock: socket.socket
    clientId: int = -1
    send_lock: threading.Lock = field(default_factory=threading.Lock)
    positions_sub: bool = False
    summary_reqs: set = field(default_factory=set)
    account_updates: bool = False
    closed: bool = False

    def send(self, *fields: Any) -> None:
        """Frame and send one message (fields NUL-terminated, a 4-byte big-endian length first)."""
        text = "".join(_fmt(f) + "\0" for f in fields).encode()
        with self.send_lock:
            if self.closed:
                return
            try:
                self.sock.sendall(struct.pack(">I", len(text)) + text)
            except OSError:
                self.closed = True


def _fmt(v: Any) -> str:
    if v is None:
        return ""
    if isinstance(v, bool):
        return "1" if v else "0"
    if isinstance(v, float):
        if v == UNSET_DOUBLE:
            return ""
        return repr(v) if not v.is_integer() else str(int(v)) if abs(v) < 1e15 else repr(v)
    return str(v)


def _recv_exact(sock: socket.socket, n: int) -> bytes:
    buf = b""
    while len(buf) < n:
        chunk = sock.recv(n - len(buf))
        if not chunk:
            raise ConnectionError("peer closed")
        buf += chunk
    return buf


class FakeTWS:
    """The fake server. Use as a context manager; ``host``/``port`` to connect.

    Args:
        account: the one managed account (``DU`` prefix: paper).
        cash: starting cash, USD.
        contracts: the stocks it knows; prices: their prices, USD.
        bars: optional historical bars per symbol for ``reqHistoricalData``: a list of
            ``(open_time_utc, open, high, low, close, volume)`` tuples, oldest first.
    """

    def __init__(self, account: str = ACCOUNT, cash: float = 100_000.0,
                 contracts: tuple[FakeContract, ...] = DEFAULT_CONTRACTS, prices: dict[str, float] | None = None,
                 bars: dict[str, list[tuple]] | None = None) -> None:
        self.account = account
        self.cash = float(cash)
        self.contracts = {c.symbol: c for c in contracts}
        self.prices = dict(DEFAULT_PRICES if prices is None else prices)
        self.bars = dict(bars or {})
        self.positions: dict[str, list[float]] = {}  # symbol -> [quantity, avg cost]
        self.orders: list[FakeOrder] = []
        self.executions: list[FakeExecution] = []
        self.requests: list[tuple[int, int]] = []  # (clientId, msgId)
        self.placed: list[dict] = []  # orderId, orderRef, action, quantity, type as the client sent them
        self.unhandled: list[int] = []
        self.errors: list[str] = []  # server-side exceptions (bugs in the fake)
        self.connect_count = 0
        self._lock = threading.RLock()
        self._conns: list[_Conn] = []
        self._perm = itertools.count(1_900_000_001)
        self._exec = itertools.count(1)
        self._reject: list[tuple[int, str]] = []
        self._mode = "up"
        self._stalled = False
        self._listener: socket.socket | None = None
        self._port = 0
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()

    # ------------------------------------------------------------------ lifecycle
    def start(self) -> "FakeTWS":
        """Listen on 127.0.0.1 (a free port, kept across :meth:`down`/:meth:`up`)."""
        self._stop.clear()
        self._listen()
        return self

    def _listen(self) -> None:
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind(("127.0.0.1", self._port))
        s.listen(16)
        s.settimeout(0.1)
        self._port = s.getsockname()[1]
        self._listener = s
        self._thread = threading.Thread(target=self._accept_loop, args=(s,), daemon=True, name="fake-tws-accept")
        self._thread.start()

    def stop(self) -> None:
        """Close every connection and the listening socket."""
        self._stop.set()
        self._close_listener()
        self.drop_connections()

    def _close_listener(self) -> None:
        s, self._listener = self._listener, None
        if s is not None:
            s.close()
        if self._thread is not None:
            self._thread.join(timeout=2)
            self._thread = None

    def __enter__(self) -> "FakeTWS":
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()

    @property
    def host(self) -> str:
        """Where to connect: always loopback."""
        return "127.0.0.1"

    @property
    def port(self) -> int:
        """The listening port (the same across down/up)."""
        return self._port

    # ------------------------------------------------------------------ scripting
    def drop_connections(self) -> None:
        """Close every client socket, as TWS does at its nightly reset."""
        with self._lock:
            conns, self._conns = self._conns, []
        for c in conns:
            with c.send_lock:
                c.closed = True
            try:
                c.sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            c.sock.close()

    def down(self, mode: str = "refuse") -> None:
        """``refuse``: close the listener (connection refused); ``silent``: accept, never answer."""
        self.drop_connections()
        self._mode = mode
        if mode == "refuse":
            self._close_listener()

    def up(self) -> None:
        """Serve again on the same port."""
        was = self._mode
        self._mode = "up"
        if was == "refuse" and not self._stop.is_set():
            self._listen()

    def stall(self, on: bool = True) -> None:
        """Keep connections open but answer nothing (a request times out mid-run)."""
        self._stalled = on

    def reject_next(self, code: int = 201, message: str = "Order rejected - reason:scripted rejection") -> None:
        """The next order placed is refused with this error code and text."""
        self._reject.append((code, message))

    def set_price(self, symbol: str, price: float) -> None:
        """Move the price; resting limit orders it crosses fill at their limit price."""
        with self._lock:
            self.prices[symbol] = float(price)
            for o in self.orders:
                if o.status == "Submitted" and o.contract.symbol == symbol and self._crosses(o, price):
                    self._fill(o, o.lmtPrice)
            self._push_account()

    def seed_position(self, symbol: str, quantity: float, avg_cost: float) -> None:
        """Hold a position opened before the session (cash unchanged, as a transfer in)."""
        with self._lock:
            self.positions[symbol] = [float(quantity), float(avg_cost)]

    def open_orders(self) -> list[FakeOrder]:
        """Working orders."""
        with self._lock:
            return [o for o in self.orders if o.status == "Submitted"]

    def position(self, symbol: str) -> float:
        """Quantity held."""
        with self._lock:
            return self.positions.get(symbol, [0.0, 0.0])[0]

    def msg_ids(self) -> list[int]:
        """Message ids received, in order."""
        with self._lock:
            return [m for _, m in self.requests]

    # ------------------------------------------------------------------ account maths
    def values(self) -> dict[str, float]:
        """Account values in USD: NetLiquidation, TotalCashValue, GrossPositionValue, InitMarginReq,
        MaintMarginReq, AvailableFunds, ExcessLiquidity, BuyingPower, EquityWithLoanValue."""
        with self._lock:
            gross = sum(abs(q) * self.prices[s] for s, (q, _) in self.positions.items())
            value = sum(q * self.prices[s] for s, (q, _) in self.positions.items())
            nav = self.cash + value
            init, maint = 0.5 * gross, 0.25 * gross
            return {"NetLiquidation": nav, "TotalCashValue": self.cash, "GrossPositionValue": gross,
                    "EquityWithLoanValue": nav, "InitMarginReq": init, "MaintMarginReq": maint,
                    "AvailableFunds": nav - init, "ExcessLiquidity": nav - maint, "BuyingPower": 2 * (nav - init)}

    # ------------------------------------------------------------------ server loop
    def _accept_loop(self, listener: socket.socket) -> None:
        while not self._stop.is_set() and self._listener is listener:
            try:
                sock, _ = listener.accept()
            except socket.timeout:
                continue
            except OSError:
                return
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            conn = _Conn(sock)
            with self._lock:
                self._conns.append(conn)
            threading.Thread(target=self._serve, args=(conn,), daemon=True, name="fake-tws-conn").start()

    def _serve(self, conn: _Conn) -> None:
        try:
            if self._mode == "silent":
                while not conn.closed and conn.sock.recv(4096):
                    pass
                return
            if _recv_exact(conn.sock, 4) != b"API\0":
                return
            n = struct.unpack(">I", _recv_exact(conn.sock, 4))[0]
            _recv_exact(conn.sock, n)  # "v157..178"
            conn.send(SERVER_VERSION, datetime.now(timezone.utc).strftime("%Y%m%d %H:%M:%S UTC"))
            while not conn.closed:
                n = struct.unpack(">I", _recv_exact(conn.sock, 4))[0]
                fields = _recv_exact(conn.sock, n).decode().split("\0")[:-1]
                if self._stalled or self._mode != "up":
                    continue
                self._dispatch(conn, fields)
        except (ConnectionError, OSError):
            pass
        except Exception as exc:  # noqa: BLE001 - a bug in the fake: recorded for the test to fail on
            self.errors.append(f"{type(exc).__name__}: {exc}")
        finally:
            with conn.send_lock:
                conn.closed = True
            conn.sock.close()
            with self._lock:
                if conn in self._conns:
                    self._conns.remove(conn)

    def _dispatch(self, conn: _Conn, f: list[str]) -> None:
        msg = int(f[0])
        with self._lock:
            self.requests.append((conn.clientId, msg))
            handler = getattr(self, f"_m{msg}", None)
            if handler is None:
                self.unhandled.append(msg)
                return
            handler(conn, f)

    # ------------------------------------------------------------------ encoders
    @staticmethod
    def _contract_fields(c: FakeContract, exchange: str = "SMART") -> list:
        # conId, symbol, secType, lastTradeDate, strike, right, multiplier, exchange, currency, localSymbol,
        # tradingClass
        return [c.conId, c.symbol, c.secType, "", 0.0, "", c.multiplier, exchange, c.currency, c.symbol, c.symbol]

    def _error(self, conn: _Conn, req_id: int, code: int, text: str) -> None:
        conn.send(4, 2, req_id, code, text, "")

    def _send_position(self, conn: _Conn, symbol: str) -> None:
        c = self.contracts[symbol]
        q, avg = self.positions.get(symbol, [0.0, 0.0])
        conn.send(61, 3, self.account, *self._contract_fields(c, c.primaryExchange), q, avg)

    def _summary_rows(self) -> list[tuple[str, str, str]]:
        v = self.values()
        rows = [("AccountType", "INDIVIDUAL", "")]
        rows += [(k, f"{x:.2f}", "USD") for k, x in v.items()]
        return rows

    def _send_summary(self, conn: _Conn, req_id: int) -> None:
        for tag, value, ccy in self._summary_rows():
            conn.send(63, 1, req_id, self.account, tag, value, ccy)
        conn.send(64, 1, req_id)

    def _send_account_updates(self, conn: _Conn) -> None:
        for tag, value, ccy in self._summary_rows():
            conn.send(6, 2, tag, value, ccy, self.account)
        for sym, (q, avg) in self.positions.items():
            c = self.contracts[sym]
            px = self.prices[sym]
            conn.send(7, 8, c.conId, c.symbol, c.secType, "", 0.0, "", c.multiplier, c.primaryExchange, c.currency,
                      c.symbol, c.symbol, q, px, q * px, avg, q * (px - avg), 0.0, self.account)
        conn.send(8, 1, datetime.now(timezone.utc).strftime("%H:%M"))

    def _push_account(self) -> None:
        for conn in list(self._conns):
            for req_id in conn.summary_reqs:
                self._send_summary(conn, req_id)
            if conn.account_updates:
                self._send_account_updates(conn)

    def _send_open_order(self, conn: _Conn, o: FakeOrder) -> None:
        c = o.contract
        lmt = o.lmtPrice if o.lmtPrice is not None else UNSET_DOUBLE
        fields: list[Any] = [5, o.orderId, *self._contract_fields(c),
                             o.action, o.totalQuantity, o.orderType, lmt, 0.0, o.tif, "", o.account, "O", 0,
                             o.orderRef, o.clientId, o.permId, 0, 0, 0.0, "", "", "", "", ""]  # ..faPercentage
        fields += [""]  # faProfile (server < 177)
        fields += ["", "", "", "", "", -1, "", "", 0, "", "", "", "", "", 0, 0, 0, 0, "", 3, 0, 0, "",
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
        conn.send(*fields)

    def _send_status(self, conn: _Conn, o: FakeOrder) -> None:
        conn.send(3, o.orderId, o.status, o.filled, o.totalQuantity - o.filled, o.avgFillPrice, o.permId, 0,
                  o.lastFillPrice, o.clientId, "", 0.0)

    def _send_exec(self, conn: _Conn, req_id: int, e: FakeExecution) -> None:
        o = e.order
        conn.send(11, req_id, o.orderId, *self._contract_fields(o.contract, o.contract.primaryExchange), e.execId,
                  e.time.strftime("%Y%m%d %H:%M:%S UTC"), o.account, o.contract.primaryExchange,
                  "BOT" if o.action == "BUY" else "SLD", e.shares, e.price, o.permId, o.clientId, 0, o.filled,
                  o.avgFillPrice, o.orderRef, "", "", "", 1)
        conn.send(59, 1, e.execId, e.commission, "USD", e.realizedPNL, "", "")

    # ------------------------------------------------------------------ trading
    def _crosses(self, o: FakeOrder, price: float) -> bool:
        return price <= o.lmtPrice if o.action == "BUY" else price >= o.lmtPrice

    def _fill(self, o: FakeOrder, price: float) -> None:
        qty = o.totalQuantity - o.filled
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
        commission = round(min(max(0.005 * qty, 1.0), 0.01 * qty * price), 2)
        self.cash -= sign * qty * price + commission
        if q1 == 0:
            self.positions.pop(o.contract.symbol, None)
        else:
            self.positions[o.contract.symbol] = [q1, avg1]
        o.filled += qty
        o.avgFillPrice = price
        o.lastFillPrice = price
        o.status = "Filled"
        e = FakeExecution(f"0000e0d5.{next(self._exec):08x}.01.01", o, qty, price, datetime.now(timezone.utc),
                          commission, realized - commission if realized else 0.0)
        self.executions.append(e)
        for conn in list(self._conns):
            if conn.clientId == o.clientId or conn.clientId == 0:
                self._send_exec(conn, -1, e)
                self._send_status(conn, o)
                self._send_open_order(conn, o)
            if conn.positions_sub:
                self._send_position(conn, o.contract.symbol)

    def _margin_ok(self, symbol: str, signed_qty: float, price: float) -> tuple[bool, float, float]:
        q0 = self.positions.get(symbol, [0.0, 0.0])[0]
        if abs(q0 + signed_qty) <= abs(q0):
            return True, 0.0, 0.0
        v = self.values()
        init_after = v["InitMarginReq"] + 0.5 * (abs(q0 + signed_qty) - abs(q0)) * price
        return init_after <= v["EquityWithLoanValue"], v["EquityWithLoanValue"], init_after

    # ------------------------------------------------------------------ handlers (lock held)
    def _m71(self, conn: _Conn, f: list[str]) -> None:  # startApi: 71, 2, clientId, optCapab
        client_id = int(f[2])
        if any(c is not conn and c.clientId == client_id for c in self._conns):
            self._error(conn, -1, 326, f"Unable to connect as the client id is already in use. Retry with a unique "
                                       f"client id.")
            conn.closed = True
            conn.sock.shutdown(socket.SHUT_RDWR)
            return
        conn.clientId = client_id
        self.connect_count += 1
        conn.send(15, 1, self.account)
        next_id = 1 + max([o.orderId for o in self.orders if o.clientId == client_id] or [0])
        conn.send(9, 1, next_id)
        for code, text in ((2104, "Market data farm connection is OK:usfarm"),
                           (2106, "HMDS data farm connection is OK:ushmds"),
                           (2158, "Sec-def data farm connection is OK:secdefnj")):
            self._error(conn, -1, code, text)

    def _m61(self, conn: _Conn, f: list[str]) -> None:  # reqPositions
        conn.positions_sub = True
        for sym in self.positions:
            self._send_position(conn, sym)
        conn.send(62, 1)

    def _m64(self, conn: _Conn, f: list[str]) -> None:  # cancelPositions
        conn.positions_sub = False

    def _open_orders_for(self, conn: _Conn, all_clients: bool) -> None:
        for o in self.orders:
            if o.status == "Submitted" and (all_clients or o.clientId == conn.clientId or conn.clientId == 0):
                self._send_open_order(conn, o)
                self._send_status(conn, o)
        conn.send(53, 1)

    def _m5(self, conn: _Conn, f: list[str]) -> None:  # reqOpenOrders
        self._open_orders_for(conn, all_clients=False)

    def _m16(self, conn: _Conn, f: list[str]) -> None:  # reqAllOpenOrders
        self._open_orders_for(conn, all_clients=True)

    def _m99(self, conn: _Conn, f: list[str]) -> None:  # reqCompletedOrders
        conn.send(102)

    def _m6(self, conn: _Conn, f: list[str]) -> None:  # reqAccountUpdates: 6, 2, subscribe, acct
        conn.account_updates = f[2] == "1"
        if conn.account_updates:
            self._send_account_updates(conn)
            conn.send(54, 1, self.account)

    def _m76(self, conn: _Conn, f: list[str]) -> None:  # reqAccountUpdatesMulti: 76, 1, reqId, acct, model, nlv
        req_id = int(f[2])
        for tag, value, ccy in self._summary_rows():
            conn.send(73, 1, req_id, self.account, "", tag, value, ccy)
        conn.send(74, 1, req_id)

    def _m77(self, conn: _Conn, f: list[str]) -> None:  # cancelAccountUpdatesMulti
        pass

    def _m7(self, conn: _Conn, f: list[str]) -> None:  # reqExecutions: 7, 3, reqId, filter...
        req_id = int(f[2])
        for e in self.executions:
            self._send_exec(conn, req_id, e)
        conn.send(55, 1, req_id)

    def _m62(self, conn: _Conn, f: list[str]) -> None:  # reqAccountSummary: 62, 1, reqId, group, tags
        req_id = int(f[2])
        conn.summary_reqs.add(req_id)
        self._send_summary(conn, req_id)

    def _m63(self, conn: _Conn, f: list[str]) -> None:  # cancelAccountSummary
        conn.summary_reqs.discard(int(f[2]))

    def _m9(self, conn: _Conn, f: list[str]) -> None:  # reqContractDetails: 9, 8, reqId, contract(12), ...
        req_id = int(f[2])
        con_id, symbol, sec_type, currency = f[3], f[4], f[5], f[12]
        c = self.contracts.get(symbol)
        if c is None and con_id not in ("", "0"):
            c = next((x for x in self.contracts.values() if str(x.conId) == con_id), None)
        if c is None or (sec_type and sec_type != c.secType) or (currency and currency != c.currency):
            self._error(conn, req_id, 200, "No security definition has been found for the request")
            return
        conn.send(10, req_id, c.symbol, c.secType, "", 0.0, "", "SMART", c.currency, c.symbol, c.symbol, c.symbol,
                  c.conId, c.minTick, c.multiplier, "ACTIVETIM,LMT,MKT,STP", f"SMART,{c.primaryExchange}", 1, 0,
                  c.longName, c.primaryExchange, "", "", "", "", "US/Eastern", "", "", "", "", 0,
                  1, "", "", "26,26", "", "ETF", c.minSize, c.sizeIncrement, c.sizeIncrement)
        conn.send(52, 1, req_id)

    def _m1(self, conn: _Conn, f: list[str]) -> None:  # reqMktData: 1, 11, reqId, contract(12), dnc, ticks, snap..
        req_id, symbol = int(f[2]), f[4]
        px = self.prices.get(symbol)
        if px is None:
            self._error(conn, req_id, 200, "No security definition has been found for the request")
            return
        tick = self.contracts[symbol].minTick
        for tick_type, price in ((1, px - tick), (2, px + tick), (4, px), (9, px)):
            conn.send(1, 6, req_id, tick_type, round(price, 6), 100, 0)
        if f[17] == "1":  # snapshot
            conn.send(57, 1, req_id)

    def _m2(self, conn: _Conn, f: list[str]) -> None:  # cancelMktData
        pass

    def _m59(self, conn: _Conn, f: list[str]) -> None:  # reqMarketDataType
        pass

    def _m49(self, conn: _Conn, f: list[str]) -> None:  # reqCurrentTime
        conn.send(49, 1, int(time.time()))

    def _m8(self, conn: _Conn, f: list[str]) -> None:  # reqIds
        conn.send(9, 1, 1 + max([o.orderId for o in self.orders if o.clientId == conn.clientId] or [0]))

    def _m17(self, conn: _Conn, f: list[str]) -> None:  # reqManagedAccts
        conn.send(15, 1, self.account)

    def _m20(self, conn: _Conn, f: list[str]) -> None:  # reqHistoricalData
        req_id, symbol = int(f[1]), f[3]
        end_s, bar_size, duration = f[15], f[16], f[17]
        rows = self.bars.get(symbol)
        if not rows:
            self._error(conn, req_id, 162, "Historical Market Data Service error message:HMDS query returned no data")
            return
        end = datetime.now(timezone.utc)
        if end_s:
            end = datetime.strptime(end_s[:17], "%Y%m%d %H:%M:%S").replace(tzinfo=timezone.utc)
        n, unit = duration.split()
        days = {"S": 1 / 86400, "D": 1, "W": 7, "M": 31, "Y": 366}[unit] * int(n)
        start = end - timedelta(days=days)
        daily = "day" in bar_size
        out = [r for r in rows if start <= r[0] < end]
        fields: list[Any] = [17, req_id, start.strftime("%Y%m%d %H:%M:%S"), end.strftime("%Y%m%d %H:%M:%S"), len(out)]
        for t, o, h, lo, c, v in out:
            stamp = t.strftime("%Y%m%d") if daily else str(int(t.timestamp()))
            fields += [stamp, o, h, lo, c, v, round((o + h + lo + c) / 4, 6), 1]
        conn.send(*fields)

    def _m3(self, conn: _Conn, f: list[str]) -> None:  # placeOrder
        order_id, symbol = int(f[1]), f[3]
        action, qty, otype = f[16], float(f[17] or 0), f[18]
        lmt = float(f[19]) if f[19] else None
        tif, account, order_ref = f[21], f[23] or self.account, f[26]
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
        px = self.prices[symbol]
        sign = 1.0 if action == "BUY" else -1.0
        ok, ewl, init = self._margin_ok(symbol, sign * qty, px)
        if not ok:
            self._error(conn, order_id, 201, "Order rejected - reason:YOUR ORDER IS NOT ACCEPTED. IN ORDER TO OBTAIN "
                                             f"THE DESIRED POSITION YOUR EQUITY WITH LOAN VALUE [{ewl:.2f} USD] MUST "
                                             f"EXCEED THE INITIAL MARGIN [{init:.2f} USD]")
            return
        o = FakeOrder(order_id, conn.clientId, next(self._perm), c, action, qty, otype, lmt, tif or "DAY", account,
                      order_ref)
        self.orders.append(o)
        self._send_open_order(conn, o)
        self._send_status(conn, o)
        if otype == "MKT":
            self._fill(o, px)
        elif self._crosses(o, px):
            self._fill(o, px)
        self._push_account()

    def _m4(self, conn: _Conn, f: list[str]) -> None:  # cancelOrder: 4, 1, orderId, manualCancelOrderTime
        order_id = int(f[2])
        o = next((x for x in self.orders if x.orderId == order_id and x.clientId == conn.clientId), None)
        if o is None:
            self._error(conn, order_id, 135, f"Can't find order with id ={order_id}")
            return
        if o.status != "Submitted":
            self._error(conn, order_id, 10148, f"OrderId {order_id} that needs to be cancelled cannot be cancelled, "
                                               f"state: {o.status}.")
            return
        o.status = "Cancelled"
        self._send_status(conn, o)
        self._error(conn, order_id, 202, "Order Canceled - reason:")
        self._push_account()


def bars_from_frame(df: Any) -> list[tuple]:
    """``(open_time, open, high, low, close, volume)`` rows from a bar DataFrame indexed by open time (UTC)."""
    return [(t.to_pydatetime(), float(r.open), float(r.high), float(r.low), float(r.close), float(r.volume))
            for t, r in df.iterrows()]


__all__ = ["ACCOUNT", "DEFAULT_CONTRACTS", "DEFAULT_PRICES", "FakeContract", "FakeTWS", "SERVER_VERSION",
           "bars_from_frame"]
