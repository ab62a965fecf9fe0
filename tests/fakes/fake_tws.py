"""A fake TWS / IB Gateway for tests: the real ``ib_async`` client connects to it over loopback.

Standard library only. The server listens on ``127.0.0.1`` on a free port and speaks
the TWS API socket protocol as ``ib_async`` 2.1 (client versions 157..178) expects it
from a server of version :data:`SERVER_VERSION` (176): every message is a 4-byte
big-endian length followed by NUL-terminated text fields. Orders, fills and the trading
session live in :mod:`tests.fakes.fake_tws_orders` (a mixin of :class:`FakeTWS`).

What ``IB.connect()`` synchronises, and what the fake answers (without all of it
connect() stalls until its timeout)::

    handshake  "API\\0" + "v157..178"      -> "176", connection time
    71 startApi                           -> 15 managedAccounts, 9 nextValidId, 2104/2106/2158 farm notices
    61 reqPositions                       -> 61 position ..., 62 positionEnd (and 61 pushes on every change)
    5  reqOpenOrders / 16 reqAllOpenOrders -> 5 openOrder + 3 orderStatus ... (held and working), 53 openOrderEnd
    99 reqCompletedOrders                 -> 101 completedOrder ... (filled / cancelled), 102 completedOrdersEnd
    6  reqAccountUpdates                  -> 6 accountValue ..., 7 portfolio ..., 8 time, 54 accountDownloadEnd
    76 reqAccountUpdatesMulti             -> 73 accountUpdateMulti ..., 74 end
    7  reqExecutions                      -> 11 execDetails + 59 commissionReport ..., 55 execDetailsEnd
                                             (filter: client id, symbol, side)

and besides: 62 reqAccountSummary (63 rows, 64 end; rows pushed again on every change),
9 reqContractDetails (10 + 52, or error 200 for an unknown symbol), 3 placeOrder,
4 cancelOrder, 1 reqMktData snapshots (tick prices + 57), 59 reqMarketDataType,
20 reqHistoricalData (17), 49 reqCurrentTime, 8 reqIds, 17 reqManagedAccts.

Trading model: one account (``DU...``: a paper account), cash in USD, stocks only.
By default the session is open and a market order, or a marketable limit order, fills
at once, in full, at the symbol's price (:meth:`FakeTWS.set_price`), with IBKR Pro fixed
commissions (USD 0.005 a share, at least USD 1 per order, at most 1 % of the trade
value; a partly filled order is charged the difference as it fills). A limit order that
does not cross rests ``Submitted`` until :meth:`FakeTWS.set_price` crosses it (then it
fills at its limit price) or it is cancelled. Margin is Reg T-like: initial margin is
50 % of gross position value; an order that would raise the initial margin past the
equity is rejected with error 201. ``AvailableFunds`` = ``NetLiquidation`` −
``InitMarginReq``. IB does not refuse a reused ``orderRef``; a reused order id of one
client is refused with error 103. reqCompletedOrders lists the filled and cancelled
orders with ``completedTime`` ("20240603 09:30:00 US/Eastern") and ``completedStatus``
("Filled Size: 10", "Cancelled by Trader", "Cancelled by System:\\n" for a DAY order
expired at the close); as in TWS it carries no order id or client id.

Protective orders (:mod:`tests.fakes.fake_tws_exits`): ``STP`` / ``MIT`` with ``auxPrice`` rest
``PreSubmitted`` (IB simulates them) until :meth:`FakeTWS.set_price` (or a gap at the open) touches the
trigger; they then fill as market orders at that price (:meth:`~FakeTWS.trigger_slippage` worse), and an
``ocaGroup`` with ``ocaType`` 1 cancels the group's other working orders (:meth:`~FakeTWS.late_oca_cancels`
holds those cancels back for some requests).

Failure scripting: :meth:`FakeTWS.drop_connections` closes every client socket (the
nightly reset); :meth:`FakeTWS.down` refuses connections (``"refuse"``) or accepts
them and never answers (``"silent"``); :meth:`FakeTWS.stall` keeps connections open
but stops answering requests (a timeout mid-run); :meth:`FakeTWS.reject_next` makes
the next order fail with any error code.

Unkind scripting (what the real TWS / IB Gateway does to a client; texts and codes as
TWS sends them, from IB's message-code list and live captures):

* **Clock and session.** :meth:`~FakeTWS.set_clock` fixes the fake's time (execution and
  completion times, reqCurrentTime, the next open). :meth:`~FakeTWS.set_session`
  ``("closed")`` ends the regular session: working DAY orders expire (``Cancelled``);
  an order placed while closed is accepted but held: openOrder + orderStatus
  ``PreSubmitted``, then informational error **399** for its order id: ``"Order
  Message:\\nBUY 10 SPY ARCA\\nWarning: Your order will not be placed at the exchange
  until 2024-06-03 09:30:00 US/Eastern."`` (the next weekday 09:30 US/Eastern, or the
  ``reopen`` given). ``ib_async`` 2.1.0 files 399 as a warning and shows the trade as
  ``ValidationError`` until the next status. :meth:`~FakeTWS.open_session` ``(price)``
  opens it: held orders fill at the open price, with execDetails + commissionReport +
  orderStatus ``Filled`` pushed to the connected clients; with none connected the fill
  is only booked and served later by reqExecutions and reqCompletedOrders.
* **Partial fills.** :meth:`~FakeTWS.partial_next` ``(fraction_or_qty)``: the next order
  fills only partly (orderStatus ``Submitted`` with filled / remaining);
  :meth:`~FakeTWS.fill_rest` ``(order_id)`` fills the rest, else it stays working.
* **Order preset.** :meth:`~FakeTWS.tif_preset`: orders whose TIF is not DAY (or every
  order) get informational error **10349** ``"Order TIF was set to DAY based on order
  preset."`` before their openOrder, then fill as usual. ``ib_async`` 2.1.0 does not know
  10349 is informational: it marks the trade ``Cancelled`` until the next orderStatus.
* **Connectivity.** :meth:`~FakeTWS.lose_connectivity` pushes **1100** ``"Connectivity
  between IB and Trader Workstation has been lost."`` (plus farm notices 2103 / 2105) to
  every client; with ``hold_fills`` the fills that happen until
  :meth:`~FakeTWS.restore_connectivity` are booked but neither pushed nor listed by
  reqExecutions / reqCompletedOrders. Restoring pushes **1102** ``"... has been restored
  - data maintained."`` or, with ``data_lost``, **1101** ``"... has been restored - data
  lost."`` (plus 2104 / 2106), then the held order reports. ``ib_async`` answers 1102
  with a reqAccountSummary.
* **Market-data permissions.** :meth:`~FakeTWS.deny_market_data` ``(symbol, code)``:
  reqMktData answers error **10089** ``"Requested market data requires additional
  subscription for API. See link in 'Market Data Connections' dialog for more
  details.Delayed market data is available.SPY ARCA/TOP/ALL"`` (or **354** ``"Requested
  market data is not subscribed.Delayed market data is available.Error&ARCA/STK/Top&..."``,
  or **10168** ``"Requested market data is not subscribed. Delayed market data is not
  enabled."``); after reqMarketDataType(3 or 4) it sends warning **10167** ``"Requested
  market data is not subscribed. Displaying delayed market data."``, marketDataType 58
  and delayed ticks 66/67/68 instead (not for 10168). reqHistoricalData answers **162**
  ``"Historical Market Data Service error message:No market data permissions for ARCA
  STK"``. :meth:`~FakeTWS.allow_market_data` lifts it.
* **Restart.** :meth:`~FakeTWS.restart` drops every connection and re-listens on the same
  port (``stay_down=True``: refuses until :meth:`~FakeTWS.up`); orders (held ones too),
  executions, positions, cash, session and clock survive, so a held order still fills at
  the next :meth:`~FakeTWS.open_session` and a client connecting afterwards finds it.

Inspection: ``orders``, ``executions``, ``placed``, :meth:`~FakeTWS.open_orders`, :meth:`~FakeTWS.client_ids`,
:meth:`~FakeTWS.completed_orders`, :meth:`~FakeTWS.position`, :meth:`~FakeTWS.msg_ids`,
``errors`` (exceptions in the fake), ``unhandled`` (message ids it has no answer for).
"""

from __future__ import annotations

import socket
import struct
import threading
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any

from tests.fakes.fake_tws_exits import ExitDesk
from tests.fakes.fake_tws_orders import UNSET_DOUBLE, FakeExecution, FakeOrder, OrderDesk, contract_fields

SERVER_VERSION = 176
ACCOUNT = "DU1234567"

MSG_LOST = "Connectivity between IB and Trader Workstation has been lost."
MSG_RESTORED = "Connectivity between IB and Trader Workstation has been restored - data {}."
FARMS_BROKEN = ((2103, "Market data farm connection is broken:usfarm"),
                (2105, "HMDS data farm connection is broken:ushmds"))
FARMS_OK = ((2104, "Market data farm connection is OK:usfarm"),
            (2106, "HMDS data farm connection is OK:ushmds"))
DELAYED_TICKS = {1: 66, 2: 67, 4: 68, 9: 75}  # bid, ask, last, close -> their delayed tick types


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
class _Conn:
    sock: socket.socket
    clientId: int = -1
    send_lock: threading.Lock = field(default_factory=threading.Lock)
    positions_sub: bool = False
    summary_reqs: set = field(default_factory=set)
    account_updates: bool = False
    market_data_type: int = 1
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


class FakeTWS(OrderDesk, ExitDesk):
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
        self.requests: list[tuple[int, int]] = []  # (clientId, msgId)
        self.unhandled: list[int] = []
        self.errors: list[str] = []  # server-side exceptions (bugs in the fake)
        self.connect_count = 0
        self._lock = threading.RLock()
        self._conns: list[_Conn] = []
        self._denied: dict[str, int] = {}  # symbol -> market-data error code
        self._mode = "up"
        self._stalled = False
        self._listener: socket.socket | None = None
        self._port = 0
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()
        self._init_orders()
        self._init_exits()

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

    def restart(self, stay_down: bool = False) -> None:
        """TWS / IB Gateway restarts: every connection drops and the listener closes; it listens
        again on the same port at once, or, with ``stay_down``, only after :meth:`up`. Orders (held
        and working), executions, positions, cash, session and clock survive; connectivity is back
        (order reports held by :meth:`lose_connectivity` are dropped, their fills are listed)."""
        with self._lock:
            self._held = None
            self._hidden_execs.clear()
            self._stalled = False
        self._close_listener()
        self.drop_connections()
        self._mode = "refuse" if stay_down else "up"
        if not stay_down and not self._stop.is_set():
            self._listen()

    def lose_connectivity(self, hold_fills: bool = True) -> None:
        """TWS loses its link to IB's servers: error 1100 (and farm notices 2103 / 2105) to every
        client. With ``hold_fills``, order reports (fills, status changes) and account pushes from now
        until :meth:`restore_connectivity` are held back, and the fills are missing from reqExecutions
        and reqCompletedOrders; positions and cash are booked at once."""
        with self._lock:
            for conn in list(self._conns):
                self._error(conn, -1, 1100, MSG_LOST)
                for code, text in FARMS_BROKEN:
                    self._error(conn, -1, code, text)
            if hold_fills and self._held is None:
                self._held = []

    def restore_connectivity(self, data_lost: bool = False) -> None:
        """The link is back: error 1102 "... data maintained" (``data_lost``: 1101 "... data lost")
        and farm notices 2104 / 2106 to every client, then the held order reports and an account push
        to the clients connected now."""
        with self._lock:
            held, self._held = self._held or [], None
            self._hidden_execs.clear()
            code, text = (1101, MSG_RESTORED.format("lost")) if data_lost else (1102, MSG_RESTORED.format("maintained"))
            for conn in list(self._conns):
                self._error(conn, -1, code, text)
                for farm_code, farm_text in FARMS_OK:
                    self._error(conn, -1, farm_code, farm_text)
            for report in held:
                report()
            self._push_account()

    def deny_market_data(self, symbol: str, code: int = 10089) -> None:
        """The account has no market-data subscription for ``symbol``: reqMktData answers ``code``
        (10089, 354 or 10168; delayed data after reqMarketDataType(3/4) unless 10168) and
        reqHistoricalData answers 162 "No market data permissions"."""
        if code not in (354, 10089, 10168):
            raise ValueError(f"market-data denial code {code}: 354, 10089 or 10168")
        with self._lock:
            self._denied[symbol] = code

    def allow_market_data(self, symbol: str) -> None:
        """Lift :meth:`deny_market_data`."""
        with self._lock:
            self._denied.pop(symbol, None)

    def set_price(self, symbol: str, price: float) -> None:
        """Move the price; while the session is open, resting limit orders it crosses fill at their
        limit price."""
        with self._lock:
            self.prices[symbol] = float(price)
            if self._session == "open":
                for o in self.orders:
                    if o.status == "Submitted" and o.contract.symbol == symbol and self._crosses(o, price):
                        self._fill(o, o.lmtPrice if o.lmtPrice is not None else price)
                self._check_exit_triggers(symbol, float(price))  # STP / MIT (fake_tws_exits.py)
            self._push_account()

    def seed_position(self, symbol: str, quantity: float, avg_cost: float) -> None:
        """Hold a position opened before the session (cash unchanged, as a transfer in)."""
        with self._lock:
            self.positions[symbol] = [float(quantity), float(avg_cost)]

    def position(self, symbol: str) -> float:
        """Quantity held."""
        with self._lock:
            return self.positions.get(symbol, [0.0, 0.0])[0]

    def msg_ids(self) -> list[int]:
        """Message ids received, in order."""
        with self._lock:
            return [m for _, m in self.requests]

    def client_ids(self) -> list[int]:
        """The API client ids connected now (after their startApi)."""
        with self._lock:
            return [c.clientId for c in self._conns if c.clientId >= 0 and not c.closed]

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
            conn.send(SERVER_VERSION, self.now().strftime("%Y%m%d %H:%M:%S UTC"))
            while not conn.closed:
                n = struct.unpack(">I", _recv_exact(conn.sock, 4))[0]
                fields = _recv_exact(conn.sock, n).decode().split("\0")[:-1]
                if self._stalled or self._mode != "up":
                    continue
                self._dispatch(conn, fields)
        except (ConnectionError, OSError):
            pass
        except Exception as exc:  # a bug in the fake: recorded for the test to fail on
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
            self._after_request()  # OCA cancels held by late_oca_cancels (fake_tws_exits.py)

    # ------------------------------------------------------------------ encoders
    _contract_fields = staticmethod(contract_fields)

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
        conn.send(8, 1, self.now().strftime("%H:%M"))

    def _push_account(self) -> None:
        if self._held is not None:  # connectivity lost: TWS has nothing new to say
            return
        for conn in list(self._conns):
            for req_id in conn.summary_reqs:
                self._send_summary(conn, req_id)
            if conn.account_updates:
                self._send_account_updates(conn)

    def _market_data_denial(self, code: int, c: FakeContract) -> str:
        if code == 354:
            where = f"{c.primaryExchange}/{c.secType}/Top"
            return f"Requested market data is not subscribed.Delayed market data is available.Error&{where}&{where}"
        if code == 10168:
            return "Requested market data is not subscribed. Delayed market data is not enabled."
        return ("Requested market data requires additional subscription for API. See link in 'Market Data "
                f"Connections' dialog for more details.Delayed market data is available.{c.symbol} "
                f"{c.primaryExchange}/TOP/ALL")

    # ------------------------------------------------------------------ handlers (lock held)
    def _m71(self, conn: _Conn, f: list[str]) -> None:  # startApi: 71, 2, clientId, optCapab
        client_id = int(f[2])
        if any(c is not conn and c.clientId == client_id for c in self._conns):
            self._error(conn, -1, 326, "Unable to connect as the client id is already in use. Retry with a unique "
                                       "client id.")
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
        c = self.contracts[symbol]
        ticks = {1: px - c.minTick, 2: px + c.minTick, 4: px, 9: px}
        denied = self._denied.get(symbol)
        if denied is not None:
            if denied == 10168 or conn.market_data_type not in (3, 4):
                self._error(conn, req_id, denied, self._market_data_denial(denied, c))
                return
            self._error(conn, req_id, 10167, "Requested market data is not subscribed. Displaying delayed market "
                                             "data.")
            conn.send(58, 1, req_id, conn.market_data_type)
            ticks = {DELAYED_TICKS[t]: p for t, p in ticks.items()}
        for tick_type, price in ticks.items():
            conn.send(1, 6, req_id, tick_type, round(price, 6), 100, 0)
        if f[17] == "1":  # snapshot
            conn.send(57, 1, req_id)

    def _m2(self, conn: _Conn, f: list[str]) -> None:  # cancelMktData
        pass

    def _m59(self, conn: _Conn, f: list[str]) -> None:  # reqMarketDataType: 59, 1, type
        conn.market_data_type = int(f[2]) if len(f) > 2 and f[2] else 1

    def _m49(self, conn: _Conn, f: list[str]) -> None:  # reqCurrentTime
        conn.send(49, 1, int(self.now().timestamp()))

    def _m8(self, conn: _Conn, f: list[str]) -> None:  # reqIds
        conn.send(9, 1, 1 + max([o.orderId for o in self.orders if o.clientId == conn.clientId] or [0]))

    def _m17(self, conn: _Conn, f: list[str]) -> None:  # reqManagedAccts
        conn.send(15, 1, self.account)

    def _m20(self, conn: _Conn, f: list[str]) -> None:  # reqHistoricalData
        req_id, symbol = int(f[1]), f[3]
        end_s, bar_size, duration = f[15], f[16], f[17]
        c = self.contracts.get(symbol)
        if c is not None and symbol in self._denied:
            self._error(conn, req_id, 162, "Historical Market Data Service error message:No market data permissions "
                                           f"for {c.primaryExchange} {c.secType}")
            return
        rows = self.bars.get(symbol)
        if not rows:
            self._error(conn, req_id, 162, "Historical Market Data Service error message:HMDS query returned no data")
            return
        end = self.now()
        if end_s:
            end = datetime.strptime(end_s[:17], "%Y%m%d %H:%M:%S").replace(tzinfo=timezone.utc)
        n, unit = duration.split()
        days = {"S": 1 / 86400, "D": 1, "W": 7, "M": 31, "Y": 366}[unit] * int(n)
        start = end - timedelta(days=days)
        daily = "day" in bar_size
        out = [r for r in rows if start <= r[0] < end]
        fields: list[Any] = [17, req_id, start.strftime("%Y%m%d %H:%M:%S"), end.strftime("%Y%m%d %H:%M:%S"), len(out)]
        for t, o, h, lo, c_, v in out:
            stamp = t.strftime("%Y%m%d") if daily else str(int(t.timestamp()))
            fields += [stamp, o, h, lo, c_, v, round((o + h + lo + c_) / 4, 6), 1]
        conn.send(*fields)


def bars_from_frame(df: Any) -> list[tuple]:
    """``(open_time, open, high, low, close, volume)`` rows from a bar DataFrame indexed by open time (UTC)."""
    return [(t.to_pydatetime(), float(r.open), float(r.high), float(r.low), float(r.close), float(r.volume))
            for t, r in df.iterrows()]


__all__ = ["ACCOUNT", "DEFAULT_CONTRACTS", "DEFAULT_PRICES", "FakeContract", "FakeExecution", "FakeOrder", "FakeTWS",
           "SERVER_VERSION", "bars_from_frame"]
