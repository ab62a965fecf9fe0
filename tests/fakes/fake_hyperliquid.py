"""A fake Hyperliquid HTTP API (``POST /info`` and ``POST /exchange``) for tests.

Standard library only.  Listens on ``127.0.0.1`` (a free port) and answers what the real
``ccxt.hyperliquid`` (pinned 4.5.90) uses, in the venue's JSON shapes::

    with FakeHyperliquid(wallet, usdc="10000") as fake:
        ex = ccxt.hyperliquid({"walletAddress": wallet, "privateKey": key, "enableRateLimit": False})
        fake.point_ccxt(ex)            # urls['api'] / urls['test'] -> http://127.0.0.1:PORT
        ex.create_order("BTC/USDC:USDC", "market", "buy", 0.01, 60000, {"clientOrderId": "0x" + "ab" * 16})

Shapes come from ccxt's ``hyperliquid.py`` (what it sends and parses), the schemas of the
``@nktkas/hyperliquid`` SDK, which follow the venue's docs (``orderStatus``,
``clearinghouseState``, ``meta``, ``candleSnapshot``, ``userFills``, ``userAbstraction``,
order statuses), and ccxt's error table for the venue's messages.

``/info`` types: ``meta``, ``metaAndAssetCtxs``, ``spotMeta``, ``spotMetaAndAssetCtxs``
(one spot pair, PURR/USDC), ``perpDexs`` (``[null]``: main dex only), ``userAbstraction``
(a JSON string), ``clearinghouseState``, ``spotClearinghouseState``, ``openOrders``,
``frontendOpenOrders``, ``orderStatus`` (``oid`` = integer or ``0x`` + 32-hex cloid;
``{"status": "order", "order": {"order": {...}, "status", "statusTimestamp"}}`` or
``{"status": "unknownOid"}``; like the venue's, the order has ``limitPx``, ``sz`` (remaining)
and ``origSz`` but NO average fill price: that is only in the fills), ``userFills`` (newest
first, at most 2000; ``px``, ``sz``, ``side``, ``time``, ``oid``, ``fee``, ``closedPnl``,
``tid``, ``dir``, ``startPosition``, ``crossed``, ``hash``, ``cloid`` when set),
``userFillsByTime``, ``candleSnapshot`` (``t``, ``T`` = next open - 1 ms, ``s``, ``i``,
prices and ``v`` as strings, ``n``; open time in ``[startTime, endTime]``, at most 5000,
the still-forming candle included as the venue serves it) and ``fundingHistory`` (``coin``,
``fundingRate``, ``premium``, ``time``; at most 500).  Another user than ``wallet_address``
gets an empty account.  Numbers are written as the venue writes them (``"60000.0"``).

``/exchange`` bodies need ``action`` (with ``type``), an integer ``nonce`` and a
``signature`` with ``r``, ``s`` and ``v`` (NOT verified); otherwise, as for any body the
venue cannot read (unknown type, malformed ``cloid``, missing order field), HTTP 422 with
the venue's text ``Failed to deserialize the JSON body into the target type``.  ``order``
answers ``{"status": "ok", "response": {"type": "order", "data": {"statuses": [...]}}}``, one
entry per order: ``{"filled": {"totalSz", "avgPx", "oid"}}``, ``{"resting": {"oid"}}`` or
``{"error": "... asset=N"}``; ``cancel`` / ``cancelByCloid`` answer ``"success"`` or
``{"error": "Order was never placed, already canceled, or filled. asset=N"}`` per entry;
``updateLeverage`` ``{"status": "ok", "response": {"type": "default"}}``.
``approveBuilderFee`` / ``setReferrer`` are accepted likewise, or refused with
``{"status": "err", "response": ...}`` (``refuse_user_actions``); both are recorded.

Trading model: one cross-margined USDC perp account (cash = deposits + realised PnL - fees),
one-way positions with a weighted entry price, a mark per coin (:meth:`set_mark_price`),
leverage per coin; assets numbered in ``universe`` order (BTC=0, ETH=1, SOL=2).  An order
crossing the mark (buy ``p >= mark``, sell ``p <= mark``) fills at once at the mark, taker
fee; ccxt's market orders are such ``Ioc`` orders at ``price * (1 ± slippage)``.
:meth:`partial_next` fills only a fraction: an ``Ioc`` remainder is cancelled (status
``canceled``, assumed), a ``Gtc`` one rests.  A non-crossing ``Ioc`` is refused with ``Order could not
immediately match against any resting orders. asset=N`` (status ``iocCancelRejected``); a
non-crossing ``Gtc`` rests until a mark reaches its limit, then fills there as a maker;
a crossing ``Alo`` is refused.  Checks in the venue's words: size decimals, price (5
significant figures, ``6 - szDecimals`` decimals), $10 minimum, margin, reduce-only.  Refused
orders keep an oid and a ``...Rejected`` status (names from the venue's status list) that
``orderStatus`` reports by cloid (assumed: the venue keeps rejected orders in its history).
Cloids: with ``cloid_scope="open"`` (default) only a cloid of an OPEN order is refused; a
finished order's cloid may be reused (no source showed the venue refusing it; ``orderStatus`` then
answers the newest), ``"all"`` refuses any used cloid.  The fake's own wording (the venue's
could not be confirmed): duplicate cloid, unknown asset, refused leverage, trigger grouping.

Trigger (TP/SL) orders, as ccxt sends them (``t: {"trigger": {"isMarket", "triggerPx", "tpsl"}}``):
only standalone ones (``grouping: "na"``; ``normalTpsl`` / ``positionTpsl`` are refused with the
fake's own words).  Checked like an order (cloid, size, tick of ``p`` and ``triggerPx``, reduce-only
against the position, $10 on the trigger for a non-reduce-only one), plus the limit price ``p`` on the
far side of the trigger (a sell's ``p <= triggerPx``, else ``Invalid TP/SL price``, as SDK users report
it), then resting untriggered: ``{"resting": {"oid"}}`` (assumed for a standalone trigger order).
``frontendOpenOrders`` / ``orderStatus`` show ``isTrigger: true``, ``triggerPx``, ``orderType``
(``Stop Market``, ``Take Profit Market``, ``... Limit``), ``triggerCondition`` (``Price below 57000.0``)
and ``tif: null``.  The trigger follows the mark (:meth:`set_mark_price`): a sell ``sl`` / buy ``tp``
fires at a mark at or below ``triggerPx``, a sell ``tp`` / buy ``sl`` at or above; a trigger already
reached when placed fires at once (assumed).  A fired market trigger keeps its oid and cloid and fills
at the mark as a taker (reduce-only: clipped to the position, the rest ``reduceOnlyCanceled``; nothing
to reduce: ``reduceOnlyCanceled``); a mark past ``p`` cancels it (``iocCancelRejected``, assumed).  The
venue cancels nothing else by itself: the two legs of a stop and take-profit are independent orders
(no OCA for grouping ``na``); a leg whose position is gone rests until it fires and is cancelled then.
Not modelled: TWAP orders, an order book (fills at the mark), funding payments,
liquidation (``liquidationPx`` null), isolated-margin accounting, spot trading,
vaults, nonce windows, rate-limit weights.

Scripted unkindness (matched on path and info/action type ``kind``): :meth:`fail_next`
(429 with the body ``null``, as SDK users report it (not confirmed), 5xx, any status/body;
``process=True`` carries the request out first), :meth:`drop_next` (connection reset without an answer, by default after
carrying it out: "timed out but executed"), :meth:`delay_next`, :meth:`partial_next`,
:meth:`status_without_fill_next` (the order is carried out but its status entry is
``"waitingForFill"`` or any value, or the list is empty: the client must ask
``orderStatus``, which has no average price, and find the price in ``userFills``).

Every request is recorded (:class:`RecordedRequest`: path, kind, body without the
signature, whether a full signature came, HTTP status or 0 if dropped, outcome);
:meth:`wait_for_requests` blocks until enough of them were answered.
"""

from __future__ import annotations

import calendar
import functools
import hashlib
import ipaddress
import itertools
import json
import re
import socket
import sys
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timezone
from decimal import ROUND_DOWN, ROUND_HALF_UP, Decimal, InvalidOperation
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import urlsplit

__all__ = ["FakeHyperliquid", "PerpSpec", "RecordedRequest", "NonLoopbackRequest", "DEFAULT_PERPS",
           "DEFAULT_MARK_PRICES", "MSG_DESERIALIZE"]

ZERO = Decimal(0)
_ADDRESS_RE = re.compile(r"^0x[0-9a-fA-F]{40}$")
_CLOID_RE = re.compile(r"^0x[0-9a-fA-F]{32}$")
_TIFS = ("Gtc", "Ioc", "Alo", "FrontendMarket")
_INTERVAL_MS = {"1m": 60_000, "3m": 180_000, "5m": 300_000, "15m": 900_000, "30m": 1_800_000,
                "1h": 3_600_000, "2h": 7_200_000, "4h": 14_400_000, "8h": 28_800_000, "12h": 43_200_000,
                "1d": 86_400_000, "3d": 259_200_000, "1w": 604_800_000, "1M": 0}

# The venue's words (ccxt's error table quotes them; the " asset=N" suffix is how the venue ends them).
MSG_DESERIALIZE = "Failed to deserialize the JSON body into the target type"
MSG_IOC = "Order could not immediately match against any resting orders. asset={a}"
MSG_MARGIN = "Insufficient margin to place order. asset={a}"
MSG_MIN_VALUE = "Order must have minimum value of $10. asset={a}"
MSG_TICK = "Price must be divisible by tick size. asset={a}"
MSG_SIZE = "Order has invalid size. asset={a}"
MSG_ZERO_SIZE = "Order has zero size. asset={a}"
MSG_REDUCE_ONLY = "Reduce only order would increase position. asset={a}"
MSG_POST_ONLY = "Post only order would have immediately matched, bbo was {bbo}. asset={a}"
MSG_CANCEL_MISSING = "Order was never placed, already canceled, or filled. asset={a}"
# The fake's own wording (not confirmed against the venue).
MSG_DUPLICATE_CLOID = "Order has a duplicate cloid {cloid}. asset={a}"
MSG_TRIGGER = "fake_hyperliquid models trigger orders only with grouping na. asset={a}"
# Reported by SDK users for a stop whose limit price is on the wrong side of its trigger (suffix assumed).
MSG_TPSL_PRICE = "Invalid TP/SL price. asset={a}"
MSG_USER_ACTION_REFUSED = "fake_hyperliquid refuses {kind} (refuse_user_actions is set)"

_DEFAULT_BODIES: dict[int, Any] = {429: None, 500: "Internal Server Error"}  # 429: the JSON "null"
_UNSET = object()
_RESET = object()  # drop the connection without an answer


class NonLoopbackRequest(AssertionError):
    """Raised by the guard :meth:`FakeHyperliquid.point_ccxt` installs when ccxt tries a non-loopback host."""


class _Refusal(Exception):
    """An answer other than 200 JSON: ``status`` with a text ``body`` (422 by default)."""

    def __init__(self, body: str = MSG_DESERIALIZE, status: int = 422):
        super().__init__(body)
        self.status, self.body = status, body


@dataclass(frozen=True)
class PerpSpec:
    """A listed perpetual: coin name, size decimals, maximum leverage."""

    name: str
    sz_decimals: int
    max_leverage: int


DEFAULT_PERPS: tuple[PerpSpec, ...] = (PerpSpec("BTC", 5, 40), PerpSpec("ETH", 4, 25), PerpSpec("SOL", 2, 20))
DEFAULT_MARK_PRICES: dict[str, str] = {"BTC": "60000", "ETH": "3000", "SOL": "150"}


@dataclass
class RecordedRequest:
    """One request: ``path`` (``/info`` / ``/exchange``), ``kind`` (info type or action type),
    ``body`` (parsed JSON without ``signature``; the raw text if it was not JSON), ``signed``
    (a signature with r, s and v was present), ``status`` (0 = answer dropped), ``outcome``."""

    path: str
    kind: str | None
    body: Any
    signed: bool = False
    status: int | None = None
    outcome: str = ""
    time_ms: int = 0

    @property
    def action(self) -> dict:
        """The ``action`` of an ``/exchange`` request (``{}`` otherwise)."""
        return self.body.get("action", {}) if isinstance(self.body, dict) else {}


@dataclass
class _Rule:
    remaining: int
    path: str | None
    kind: str | None
    status: int = 0
    body: Any = None
    process: bool = False
    seconds: float = 0.0
    value: Any = None


@dataclass
class _Order:
    oid: int
    coin: str
    asset: int
    is_buy: bool
    px: Decimal
    orig_sz: Decimal
    tif: str
    reduce_only: bool
    cloid: str | None
    timestamp: int
    sz: Decimal = ZERO
    status: str = "open"
    status_ts: int = 0
    trigger_px: Decimal | None = None  # a trigger (TP/SL) order: its trigger price
    tpsl: str | None = None  # "tp" or "sl"
    is_market: bool = False  # a trigger order that becomes a market order (else a limit at ``px``)
    triggered: bool = False


@dataclass
class _Position:
    szi: Decimal = ZERO
    entry: Decimal = ZERO
    leverage: int = 20
    is_cross: bool = True


def _dec(value: Any) -> Decimal:
    return value if isinstance(value, Decimal) else Decimal(str(value))


def _fmt(d: Decimal, places: int | None = None) -> str:
    """A decimal as the venue writes it: plain, no trailing zeros, at least one decimal ("3000.0")."""
    if places is not None:
        d = d.quantize(Decimal(1).scaleb(-places), rounding=ROUND_HALF_UP)
    text = format(d.normalize(), "f") if d else "0"
    return text if "." in text else text + ".0"


def _decimals(d: Decimal) -> int:
    exp = d.normalize().as_tuple().exponent
    return max(0, -exp) if isinstance(exp, int) else 0


def _sig_figs(d: Decimal) -> int:
    return len(d.normalize().as_tuple().digits)


def _is_loopback(host: str | None) -> bool:
    if not host:
        return False
    try:
        return host.lower() == "localhost" or ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def _interval_end(t: int, interval: str) -> int:
    """The close time the venue reports: the next candle's open time - 1 ms."""
    if interval != "1M":
        return t + _INTERVAL_MS[interval] - 1
    start = datetime.fromtimestamp(t / 1000, timezone.utc)
    days = calendar.monthrange(start.year, start.month)[1]
    return t + days * 86_400_000 - 1


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    fake: FakeHyperliquid

    def handle_error(self, request: Any, client_address: Any) -> None:
        if isinstance(sys.exc_info()[1], (BrokenPipeError, ConnectionResetError)):
            return
        super().handle_error(request, client_address)


class _Handler(BaseHTTPRequestHandler):
    server_version = "FakeHyperliquid/1.0"
    sys_version = ""
    protocol_version = "HTTP/1.0"

    def do_POST(self) -> None:  # http.server's naming
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length).decode("utf-8", "replace") if length else ""
        assert isinstance(self.server, _Server)
        fake = self.server.fake
        result = fake._handle_http(urlsplit(self.path).path, raw)
        if result is _RESET:
            self.close_connection = True
            try:  # RST instead of FIN: the client sees a reset connection, never an answer
                self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
            except OSError:
                pass
            return
        status, payload, is_text = result
        data = (payload if is_text else json.dumps(payload, separators=(",", ":"))).encode()
        try:
            self.send_response(status)
            self.send_header("Content-Type", "text/plain; charset=utf-8" if is_text else "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)
        except (BrokenPipeError, ConnectionResetError):  # the client gave up (e.g. timed out)
            self.close_connection = True

    def log_message(self, format: str, *args: Any) -> None:  # http.server's signature
        return


class FakeHyperliquid:
    """A thread-safe, in-process fake of Hyperliquid's ``/info`` and ``/exchange``.

    Args:
        wallet_address: the account's address (``0x`` + 40 hex); ``None`` makes every
            user the account.
        usdc: the perp account's USDC cash balance.
        spot_usdc: the spot account's USDC (``spotClearinghouseState``).
        perps: listed perpetuals (default :data:`DEFAULT_PERPS`); asset index = position.
        mark_prices: coin -> mark price (default :data:`DEFAULT_MARK_PRICES`).
        taker_fee / maker_fee: fee rates (ccxt's tier-0 figures 0.045% / 0.015%).
        default_leverage: initial cross leverage per coin (capped at the coin's maximum).
        cloid_scope: ``"open"`` (only cloids of open orders are refused) or ``"all"``.
        refuse_user_actions: answer ``approveBuilderFee`` / ``setReferrer`` with an error.
        abstraction: the ``userAbstraction`` answer (``"default"``, ``"unifiedAccount"``, ...).
    """

    def __init__(self, wallet_address: str | None = None, *, usdc: Any = "10000", spot_usdc: Any = "0",
                 perps: Iterable[PerpSpec] | None = None, mark_prices: dict[str, Any] | None = None,
                 taker_fee: Any = "0.00045", maker_fee: Any = "0.00015", default_leverage: int = 20,
                 cloid_scope: str = "open", refuse_user_actions: bool = False, abstraction: str = "default",
                 host: str = "127.0.0.1", port: int = 0):
        if cloid_scope not in ("open", "all"):
            raise ValueError("cloid_scope must be 'open' or 'all'")
        if wallet_address is not None and not _ADDRESS_RE.match(wallet_address):
            raise ValueError("wallet_address must be 0x + 40 hex digits")
        if not _is_loopback(host):
            raise ValueError("the fake only binds loopback addresses")
        self.wallet_address = wallet_address
        self.taker_fee, self.maker_fee = _dec(taker_fee), _dec(maker_fee)
        self.cloid_scope = cloid_scope
        self.refuse_user_actions = refuse_user_actions
        self.abstraction = abstraction
        self._host, self._port = host, port
        self._lock = threading.RLock()
        self._answered = threading.Condition(self._lock)
        self._stopping = threading.Event()
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None
        self._specs = list(perps if perps is not None else DEFAULT_PERPS)
        self._asset = {s.name: i for i, s in enumerate(self._specs)}
        self._marks = {s.name: _dec((mark_prices or {}).get(s.name, DEFAULT_MARK_PRICES.get(s.name, "100")))
                       for s in self._specs}
        self._positions = {s.name: _Position(leverage=min(default_leverage, s.max_leverage)) for s in self._specs}
        self._cash = _dec(usdc)
        self._spot_usdc = _dec(spot_usdc)
        self._orders: dict[int, _Order] = {}
        self._fills: list[dict] = []
        self._candles: dict[tuple[str, str], list[tuple]] = {}
        self._funding: dict[str, list[tuple[int, str, str]]] = {}
        self._oids = itertools.count(50_000_000_001)
        self._tids = itertools.count(800_000_000_000_001)
        self._rules: dict[str, list[_Rule]] = {"fail": [], "drop": [], "delay": [], "partial": [], "nostatus": []}
        self._requests: list[RecordedRequest] = []
        self.unhandled: list[RecordedRequest] = []  # unknown paths (404) and info/action types (422)
        self.foreign_urls: list[str] = []  # non-loopback URLs a guarded ccxt tried (refused)
        self.internal_errors: list[str] = []  # exceptions inside the fake (answered 500): its bugs

    # ------------------------------------------------------------------ lifecycle

    def start(self) -> FakeHyperliquid:
        """Bind the port (a free one unless given) and serve in a daemon thread."""
        with self._lock:
            if self._server is not None:
                return self
            self._stopping.clear()
            server = _Server((self._host, self._port), _Handler)
            server.fake = self
            self._port = server.server_address[1]
            self._server = server
            self._thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05},
                                            name=f"fake-hyperliquid-{self._port}", daemon=True)
            self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving (requests held by :meth:`delay_next` are released at once)."""
        self._stopping.set()
        with self._lock:
            server, thread, self._server, self._thread = self._server, self._thread, None, None
        if server is not None:
            server.shutdown()
            server.server_close()
        if thread is not None:
            thread.join(timeout=5)

    def __enter__(self) -> FakeHyperliquid:
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()

    @property
    def port(self) -> int:
        return self._port

    @property
    def base_url(self) -> str:
        """``http://127.0.0.1:PORT``."""
        if not self._port:
            raise RuntimeError("the fake has not been started")
        return f"http://{self._host}:{self._port}"

    # ------------------------------------------------------------------ scripting: failures

    def _add(self, group: str, count: int, path: str | None, kind: str | None, **kw: Any) -> None:
        with self._lock:
            self._rules[group].append(_Rule(count, path, kind, **kw))

    def fail_next(self, count: int = 1, status: int = 429, body: Any = _UNSET, *, path: str | None = None,
                  kind: str | None = None, process: bool = False) -> None:
        """The next ``count`` matching requests get HTTP ``status``.

        ``body``: a str is sent as text, anything else as JSON; the default is the
        JSON ``null`` for 429 and a text/HTML page otherwise.  ``process=True``
        carries the request out first and only replaces its answer."""
        if body is _UNSET:
            body = _DEFAULT_BODIES.get(status, f"<html><body><h1>{status}</h1></body></html>")
        self._add("fail", count, path, kind, status=status, body=body, process=process)

    def drop_next(self, count: int = 1, *, path: str | None = None, kind: str | None = None,
                  process: bool = True) -> None:
        """Close the connection of the next ``count`` matching requests without answering;
        by default after carrying them out (the order exists, the client never learns it)."""
        self._add("drop", count, path, kind, process=process)

    def delay_next(self, count: int = 1, seconds: float = 1.0, *, path: str | None = None,
                   kind: str | None = None) -> None:
        """Hold the next ``count`` matching requests ``seconds`` before handling them
        (they are still carried out: a client with a shorter timeout does not know)."""
        self._add("delay", count, path, kind, seconds=seconds)

    def partial_next(self, fraction: Any, count: int = 1) -> None:
        """The next ``count`` crossing orders fill only ``fraction`` of their size
        (rounded down to the coin's size decimals); the rest is cancelled (Ioc) or rests (Gtc)."""
        self._add("partial", count, "/exchange", "order", value=_dec(fraction))

    def status_without_fill_next(self, count: int = 1, mode: Any = "waitingForFill") -> None:
        """The next ``count`` ``order`` actions are carried out, but each non-error status
        entry is replaced by ``mode`` (``"waitingForFill"`` by default, or any JSON value);
        ``mode="missing"`` answers an empty ``statuses`` list."""
        self._add("nostatus", count, "/exchange", "order", value=mode)

    def clear_failures(self) -> None:
        """Drop every pending scripted rule."""
        with self._lock:
            for rules in self._rules.values():
                rules.clear()

    # ------------------------------------------------------------------ scripting: market and account

    def set_mark_price(self, coin: str, price: Any) -> list[dict]:
        """Set ``coin``'s mark; untriggered trigger orders it reaches fire (see :meth:`_fire`), resting limit
        orders it reaches fill at their limit as makers. Returns the orders it finished or filled as
        ``orderStatus`` shows them."""
        with self._lock:
            self._spec(coin)
            self._marks[coin] = mark = _dec(price)
            touched = []
            for o in list(self._orders.values()):  # trigger orders first: a triggered limit may fill below
                if o.coin == coin and o.status == "open" and o.trigger_px is not None and not o.triggered \
                        and self._reached(o, mark):
                    self._fire(o, mark)
                    if o.status != "open":
                        touched.append(self._status_entry(o))
            for o in list(self._orders.values()):
                if o.trigger_px is not None and not o.triggered:
                    continue
                if o.coin == coin and o.status == "open" and (o.px >= mark if o.is_buy else o.px <= mark):
                    pos = self._positions[coin]
                    if o.reduce_only and not (pos.szi < 0 if o.is_buy else pos.szi > 0):
                        self._finish(o, "reduceOnlyCanceled")
                    else:
                        qty = min(o.sz, abs(pos.szi)) if o.reduce_only else o.sz
                        self._fill(o, qty, o.px, crossed=False)
                        if o.sz > 0 and o.reduce_only:
                            self._finish(o, "reduceOnlyCanceled")
                    touched.append(self._status_entry(o))
            return touched

    def set_balance(self, usdc: Any) -> None:
        """Set the perp account's USDC cash balance."""
        with self._lock:
            self._cash = _dec(usdc)

    def balance(self) -> Decimal:
        """The USDC cash balance (fees and realised PnL included, unrealised PnL not)."""
        with self._lock:
            return self._cash

    def seed_position(self, coin: str, szi: Any, entry_px: Any | None = None, *, leverage: int | None = None) -> None:
        """Put a position on the book without a trade or fee (``szi`` signed; entry defaults to the mark)."""
        with self._lock:
            pos = self._positions[self._spec(coin).name]
            pos.szi = _dec(szi)
            pos.entry = ZERO if pos.szi == 0 else _dec(entry_px if entry_px is not None else self._marks[coin])
            if leverage is not None:
                pos.leverage = leverage

    def position(self, coin: str) -> dict | None:
        """The ``assetPositions`` entry of ``coin`` (``None`` when flat)."""
        with self._lock:
            return self._position_json(coin) if self._positions[coin].szi else None

    def leverage(self, coin: str) -> tuple[int, bool]:
        """``(leverage, is_cross)`` currently set for ``coin``."""
        with self._lock:
            pos = self._positions[coin]
            return pos.leverage, pos.is_cross

    def set_candles(self, coin: str, interval: str, rows: Iterable[tuple]) -> None:
        """Serve ``rows`` for ``candleSnapshot``: ``(open_ms, o, h, l, c, v[, n])``, oldest first."""
        if interval not in _INTERVAL_MS:
            raise ValueError(f"unknown interval {interval!r}")
        with self._lock:
            self._spec(coin)
            self._candles[(coin, interval)] = [tuple(r) for r in rows]

    def set_funding_history(self, coin: str, rows: Iterable[tuple]) -> None:
        """Serve ``rows`` for ``fundingHistory``: ``(time_ms, funding_rate, premium)``, oldest first."""
        with self._lock:
            self._spec(coin)
            self._funding[coin] = [(int(t), str(r), str(p)) for t, r, p in rows]

    # ------------------------------------------------------------------ inspection

    def orders(self, *, open_only: bool = False) -> list[dict]:
        """Every order (or every open one) as ``orderStatus`` shows its ``order`` part, oldest first."""
        with self._lock:
            return [self._status_entry(o) for o in self._orders.values() if not open_only or o.status == "open"]

    def fills(self) -> list[dict]:
        """Every fill as ``userFills`` shows it, oldest first."""
        with self._lock:
            return [dict(f) for f in self._fills]

    def requests(self, path: str | None = None, kind: str | None = None) -> list[RecordedRequest]:
        """Recorded requests, oldest first, optionally only for ``path`` / ``kind``."""
        with self._lock:
            return [r for r in self._requests if (path is None or r.path == path) and (kind is None or r.kind == kind)]

    def actions(self, kind: str | None = None) -> list[dict]:
        """The ``action`` objects of every ``/exchange`` request (of type ``kind``)."""
        return [r.action for r in self.requests("/exchange", kind)]

    def clear_requests(self) -> None:
        with self._lock:
            self._requests.clear()
            self.unhandled.clear()

    def wait_for_requests(self, path: str | None = None, kind: str | None = None, count: int = 1,
                          timeout: float = 5.0) -> list[RecordedRequest]:
        """Block until ``count`` matching requests have been answered (or dropped); raise
        ``TimeoutError`` after ``timeout`` seconds.  Returns the answered ones."""
        deadline = time.monotonic() + timeout
        with self._answered:
            while True:
                done = [r for r in self.requests(path, kind) if r.status is not None]
                if len(done) >= count:
                    return done
                left = deadline - time.monotonic()
                if left <= 0:
                    raise TimeoutError(f"{len(done)} of {count} {path} {kind} requests answered")
                self._answered.wait(left)

    # ------------------------------------------------------------------ ccxt

    def point_ccxt(self, exchange: Any, *, guard: bool = True) -> Any:
        """Point a ``ccxt.hyperliquid`` at this fake: every URL in ``urls['api']`` and
        ``urls['test']`` becomes :attr:`base_url` (keeping its path), proxies from the
        environment are switched off, and (``guard``) a request to any non-loopback host
        is refused with :class:`NonLoopbackRequest` and listed in :attr:`foreign_urls`."""
        base = self.base_url
        for section in ("api", "test"):
            value = exchange.urls.get(section)
            if isinstance(value, dict):
                exchange.urls[section] = {k: base + urlsplit(v).path.rstrip("/") for k, v in value.items()}
            elif isinstance(value, str):
                exchange.urls[section] = base + urlsplit(value).path.rstrip("/")
        for name in getattr(exchange, "api", {}) or {}:
            url = exchange.urls["api"].get(name)
            if not isinstance(url, str) or not _is_loopback(urlsplit(url).hostname):
                raise NonLoopbackRequest(f"ccxt API section {name!r} is not pointing at loopback: {url!r}")
        session = getattr(exchange, "session", None)
        if session is not None and hasattr(session, "trust_env"):
            session.trust_env = False
        for attr in ("httpProxy", "httpsProxy", "socksProxy", "proxyUrl", "proxies"):
            setattr(exchange, attr, None)
        if guard and not getattr(exchange.fetch, "_fake_hyperliquid_guard", False):
            original = exchange.fetch

            @functools.wraps(original)
            def guarded(url: Any, method: str = "GET", headers: Any = None, body: Any = None) -> Any:
                if not _is_loopback(urlsplit(str(url)).hostname):
                    with self._lock:
                        self.foreign_urls.append(str(url))
                    raise NonLoopbackRequest(f"refused a request to a non-loopback host: {url}")
                return original(url, method, headers, body)

            guarded._fake_hyperliquid_guard = True  # type: ignore[attr-defined]  # a marker on the wrapper function
            exchange.fetch = guarded
        return exchange

    # ------------------------------------------------------------------ HTTP plumbing

    @staticmethod
    def _now_ms() -> int:
        return int(time.time() * 1000)

    def _take(self, group: str, path: str, kind: str | None) -> _Rule | None:
        for rule in self._rules[group]:
            if (rule.path is None or rule.path == path) and (rule.kind is None or rule.kind == kind):
                rule.remaining -= 1
                if rule.remaining <= 0:
                    self._rules[group].remove(rule)
                return rule
        return None

    def _handle_http(self, path: str, raw: str) -> Any:
        try:
            body: Any = json.loads(raw) if raw else None
        except ValueError:
            body = raw
        holder = body if path == "/info" else body.get("action") if isinstance(body, dict) else None
        kind = holder.get("type") if isinstance(holder, dict) else None
        shown = {k: v for k, v in body.items() if k != "signature"} if isinstance(body, dict) else body
        sig = body.get("signature") if isinstance(body, dict) else None
        signed = isinstance(sig, dict) and all(k in sig for k in ("r", "s", "v"))
        record = RecordedRequest(path, kind if isinstance(kind, str) else None, shown, signed, time_ms=self._now_ms())
        with self._lock:
            self._requests.append(record)
            delay = self._take("delay", path, record.kind)
        if delay is not None:
            self._stopping.wait(delay.seconds)
        try:
            return self._answer(path, body, record)
        finally:
            with self._answered:
                self._answered.notify_all()

    def _answer(self, path: str, body: Any, record: RecordedRequest) -> Any:
        with self._lock:
            fail = self._take("fail", path, record.kind)
            drop = self._take("drop", path, record.kind)
            if fail is not None and not fail.process:
                return self._fail_answer(record, fail)
            if drop is not None and not drop.process:
                record.status, record.outcome = 0, "dropped"
                return _RESET
            try:
                if path not in ("/info", "/exchange"):
                    raise _Refusal("Not Found", 404)
                payload = self._info(body) if path == "/info" else self._exchange(body)
                status, is_text = 200, False
            except _Refusal as refusal:
                status, payload, is_text = refusal.status, refusal.body, True
                if refusal.status == 404 or record.kind not in (_INFO_TYPES if path == "/info" else _ACTION_TYPES):
                    self.unhandled.append(record)
            except Exception as exc:  # a bug in the fake: answer 500 and keep it for the test to see
                self.internal_errors.append(f"{path} {record.kind}: {exc!r}")
                status, payload, is_text = 500, f"fake_hyperliquid internal error: {exc!r}", True
            if fail is not None:
                return self._fail_answer(record, fail)
            if drop is not None:
                record.status, record.outcome = 0, "dropped after processing"
                return _RESET
            record.status = status
            record.outcome = self._outcome(payload, is_text)
            return status, payload, is_text

    @staticmethod
    def _outcome(payload: Any, is_text: bool) -> str:
        if is_text:
            return payload
        if isinstance(payload, dict) and payload.get("status") == "err":
            return f"err: {payload.get('response')}"
        inner = payload.get("response") if isinstance(payload, dict) else None
        data = inner.get("data", {}) if isinstance(inner, dict) else {}
        errors = [s["error"] for s in data.get("statuses", []) if isinstance(s, dict) and "error" in s]
        return "; ".join(errors) if errors else "ok"

    @staticmethod
    def _fail_answer(record: RecordedRequest, fail: _Rule) -> Any:
        record.status, record.outcome = fail.status, f"scripted {fail.status}"
        return fail.status, fail.body, isinstance(fail.body, str)

    # ------------------------------------------------------------------ /info

    def _info(self, body: Any) -> Any:
        if not isinstance(body, dict) or body.get("type") not in _INFO_TYPES or body.get("dex") not in (None, ""):
            raise _Refusal()  # unknown type, or a builder dex (only the main dex exists here)
        return getattr(self, _INFO_TYPES[body["type"]])(body)

    def _user(self, body: dict) -> bool:
        """Whether the request's ``user`` is the account (422 if it is no address)."""
        user = body.get("user")
        if not isinstance(user, str) or not _ADDRESS_RE.match(user):
            raise _Refusal()
        return self.wallet_address is None or user.lower() == self.wallet_address.lower()

    def _i_meta(self, body: dict) -> dict:
        return {"universe": [{"szDecimals": s.sz_decimals, "name": s.name, "maxLeverage": s.max_leverage,
                              "marginTableId": s.max_leverage} for s in self._specs],
                "marginTables": [[lev, {"description": "", "marginTiers": [{"lowerBound": "0.0", "maxLeverage": lev}]}]
                                 for lev in sorted({s.max_leverage for s in self._specs})],
                "collateralToken": 0}

    def _i_meta_ctxs(self, body: dict) -> list:
        ctxs = []
        for s in self._specs:
            mark = _fmt(self._marks[s.name])
            ctxs.append({"funding": "0.0000125", "openInterest": "0.0", "prevDayPx": mark,
                         "dayNtlVlm": "0.0", "premium": "0.0", "oraclePx": mark, "markPx": mark, "midPx": mark,
                         "impactPxs": [mark, mark], "dayBaseVlm": "0.0"})
        return [self._i_meta(body), ctxs]

    @staticmethod
    def _i_spot_meta(body: dict) -> dict:
        def token(name: str, index: int, sz: int, wei: int) -> dict:
            return {"name": name, "szDecimals": sz, "weiDecimals": wei, "index": index,
                    "tokenId": "0x" + hashlib.sha256(name.encode()).hexdigest()[:32], "isCanonical": True,
                    "evmContract": None, "fullName": None, "deployerTradingFeeShare": "0.0"}

        return {"tokens": [token("USDC", 0, 8, 8), token("PURR", 1, 0, 5)],
                "universe": [{"tokens": [1, 0], "name": "PURR/USDC", "index": 0, "isCanonical": True}]}

    def _i_spot_ctxs(self, body: dict) -> list:
        ctx = {"prevDayPx": "0.2", "dayNtlVlm": "0.0", "markPx": "0.2", "midPx": "0.2", "circulatingSupply": "0.0",
               "coin": "PURR/USDC", "totalSupply": "0.0", "dayBaseVlm": "0.0"}
        return [self._i_spot_meta(body), [ctx]]

    @staticmethod
    def _i_perp_dexs(body: dict) -> list:
        return [None]

    def _i_abstraction(self, body: dict) -> str:
        self._user(body)
        return self.abstraction

    def _i_clearinghouse(self, body: dict) -> dict:
        mine = self._user(body)
        coins = [s.name for s in self._specs if mine and self._positions[s.name].szi]
        upnl = sum((self._upnl(c) for c in coins), ZERO)
        ntl = sum((abs(self._positions[c].szi) * self._marks[c] for c in coins), ZERO)
        signed_ntl = sum((self._positions[c].szi * self._marks[c] for c in coins), ZERO)
        used = sum((self._margin_used(c) for c in coins), ZERO)
        maint = sum((abs(self._positions[c].szi) * self._marks[c] / (2 * self._spec(c).max_leverage) for c in coins),
                    ZERO)
        value = (self._cash if mine else ZERO) + upnl
        summary = {"accountValue": _fmt(value, 6), "totalNtlPos": _fmt(ntl, 6),
                   "totalRawUsd": _fmt(value - signed_ntl, 6), "totalMarginUsed": _fmt(used, 6)}
        return {"marginSummary": summary, "crossMarginSummary": dict(summary),
                "crossMaintenanceMarginUsed": _fmt(maint, 6),
                "withdrawable": _fmt(max(ZERO, value - used - self._order_margin()) if mine else ZERO, 6),
                "assetPositions": [self._position_json(c) for c in coins], "time": self._now_ms()}

    def _i_spot_clearinghouse(self, body: dict) -> dict:
        if not self._user(body) or not self._spot_usdc:
            return {"balances": []}
        return {"balances": [{"coin": "USDC", "token": 0, "hold": "0.0", "total": _fmt(self._spot_usdc),
                              "entryNtl": "0.0"}]}

    def _i_open_orders(self, body: dict) -> list:
        keep = ("coin", "side", "limitPx", "sz", "oid", "timestamp", "origSz")
        rows = [{k: v for k, v in f.items() if k in keep or (k in ("cloid", "reduceOnly") and v)}
                for f in self._i_frontend_open_orders(body)]
        return rows

    def _i_frontend_open_orders(self, body: dict) -> list:
        mine = self._user(body)
        return [self._frontend(o) for o in reversed(list(self._orders.values())) if mine and o.status == "open"]

    def _i_order_status(self, body: dict) -> dict:
        mine = self._user(body)
        oid = body.get("oid")
        order = None
        if isinstance(oid, bool) or not isinstance(oid, (int, str)):
            raise _Refusal()
        if isinstance(oid, str) and _CLOID_RE.match(oid):
            same = [o for o in self._orders.values() if o.cloid == oid.lower()]
            order = same[-1] if same else None
        elif isinstance(oid, int) or oid.isdigit():
            order = self._orders.get(int(oid))
        else:
            raise _Refusal()
        if order is None or not mine:
            return {"status": "unknownOid"}
        return {"status": "order", "order": self._status_entry(order)}

    def _i_user_fills(self, body: dict) -> list:
        return [dict(f) for f in reversed(self._fills)][:2000] if self._user(body) else []

    def _i_user_fills_by_time(self, body: dict) -> list:
        mine = self._user(body)
        start, end = body.get("startTime"), body.get("endTime")
        if not isinstance(start, int) or (end is not None and not isinstance(end, int)):
            raise _Refusal()
        end = self._now_ms() if end is None else end
        return [dict(f) for f in self._fills if mine and start <= f["time"] <= end][:2000]

    def _i_candles(self, body: dict) -> list:
        req = body.get("req")
        if not isinstance(req, dict) or not isinstance(req.get("coin"), str) \
                or req.get("interval") not in _INTERVAL_MS or not isinstance(req.get("startTime"), int):
            raise _Refusal()
        coin, interval, start = req["coin"], req["interval"], req["startTime"]
        end: int = req["endTime"] if isinstance(req.get("endTime"), int) else self._now_ms()
        rows = [r for r in self._candles.get((coin, interval), []) if start <= int(r[0]) <= end][-5000:]
        return [{"t": int(r[0]), "T": _interval_end(int(r[0]), interval), "s": coin, "i": interval,
                 "o": _fmt(_dec(r[1])), "c": _fmt(_dec(r[4])), "h": _fmt(_dec(r[2])), "l": _fmt(_dec(r[3])),
                 "v": _fmt(_dec(r[5])), "n": int(r[6]) if len(r) > 6 else 1} for r in rows]

    def _i_funding_history(self, body: dict) -> list:
        coin, start, end = body.get("coin"), body.get("startTime"), body.get("endTime")
        if not isinstance(coin, str) or not isinstance(start, int) or (end is not None and not isinstance(end, int)):
            raise _Refusal()
        end = self._now_ms() if end is None else end
        return [{"coin": coin, "fundingRate": r, "premium": p, "time": t}
                for t, r, p in self._funding.get(coin, []) if start <= t <= end][:500]

    # ------------------------------------------------------------------ /exchange

    def _exchange(self, body: Any) -> dict:
        if not isinstance(body, dict) or not isinstance(body.get("action"), dict):
            raise _Refusal()
        sig, nonce, action = body.get("signature"), body.get("nonce"), body["action"]
        if not isinstance(sig, dict) or not all(k in sig for k in ("r", "s", "v")) \
                or not isinstance(nonce, int) or isinstance(nonce, bool):
            raise _Refusal()
        kind = action.get("type")
        if kind not in _ACTION_TYPES:
            raise _Refusal()
        if kind in ("approveBuilderFee", "setReferrer"):
            if self.refuse_user_actions:
                return {"status": "err", "response": MSG_USER_ACTION_REFUSED.format(kind=kind)}
            return {"status": "ok", "response": {"type": "default"}}
        if kind == "updateLeverage":
            return self._update_leverage(action)
        if kind in ("cancel", "cancelByCloid"):
            return self._cancel(action, by_cloid=kind == "cancelByCloid")
        orders = action.get("orders")
        if not isinstance(orders, list) or not isinstance(action.get("grouping"), str):
            raise _Refusal()
        wires = [{**self._parse_order(o), "grouping": action["grouping"]} for o in orders]  # all or nothing
        statuses = [self._place(w) for w in wires]
        nostatus = self._take("nostatus", "/exchange", "order")
        if nostatus is not None:
            if nostatus.value == "missing":
                statuses = []
            else:
                statuses = [s if "error" in s else nostatus.value for s in statuses]
        return {"status": "ok", "response": {"type": "order", "data": {"statuses": statuses}}}

    def _update_leverage(self, action: dict) -> dict:
        asset, lev, cross = action.get("asset"), action.get("leverage"), action.get("isCross")
        if not isinstance(asset, int) or not isinstance(lev, int) or not isinstance(cross, bool):
            raise _Refusal()
        if not 0 <= asset < len(self._specs):
            return {"status": "err", "response": f"Invalid asset {asset}"}
        spec = self._specs[asset]
        if not 1 <= lev <= spec.max_leverage:
            return {"status": "err", "response": f"Invalid leverage value {lev}; the maximum for {spec.name} is "
                                                 f"{spec.max_leverage}"}
        pos = self._positions[spec.name]
        pos.leverage, pos.is_cross = lev, cross
        return {"status": "ok", "response": {"type": "default"}}

    def _cancel(self, action: dict, by_cloid: bool) -> dict:
        cancels = action.get("cancels")
        if not isinstance(cancels, list):
            raise _Refusal()
        statuses: list[Any] = []
        for c in cancels:
            if not isinstance(c, dict):
                raise _Refusal()
            asset, ref = (c.get("asset"), c.get("cloid")) if by_cloid else (c.get("a"), c.get("o"))
            if not isinstance(asset, int) or (by_cloid and not (isinstance(ref, str) and _CLOID_RE.match(ref))) \
                    or (not by_cloid and not isinstance(ref, int)):
                raise _Refusal()
            match = [o for o in self._orders.values() if o.asset == asset and o.status == "open"
                     and (o.cloid == str(ref).lower() if by_cloid else o.oid == ref)]
            if match:
                self._finish(match[0], "canceled")
                statuses.append("success")
            else:
                statuses.append({"error": MSG_CANCEL_MISSING.format(a=asset)})
        return {"status": "ok", "response": {"type": "cancel", "data": {"statuses": statuses}}}

    def _parse_order(self, o: Any) -> dict:
        if not isinstance(o, dict) or not all(k in o for k in ("a", "b", "p", "s", "r", "t")):
            raise _Refusal()
        if not isinstance(o["a"], int) or not isinstance(o["b"], bool) or not isinstance(o["r"], bool) \
                or not isinstance(o["p"], str) or not isinstance(o["s"], str) or not isinstance(o["t"], dict):
            raise _Refusal()
        try:
            px, sz = Decimal(o["p"]), Decimal(o["s"])
        except InvalidOperation:
            raise _Refusal() from None
        cloid = o.get("c")
        if cloid is not None and not (isinstance(cloid, str) and _CLOID_RE.match(cloid)):
            raise _Refusal()
        t, trigger = o["t"], {}
        if "limit" in t:
            tif = (t["limit"] or {}).get("tif") if isinstance(t["limit"], dict) else None
            if tif not in _TIFS:
                raise _Refusal()
        elif "trigger" in t:
            tif = "trigger"
            trig = t["trigger"]
            if not isinstance(trig, dict) or not isinstance(trig.get("isMarket"), bool) \
                    or trig.get("tpsl") not in ("tp", "sl") or not isinstance(trig.get("triggerPx"), str):
                raise _Refusal()
            try:
                trigger = {"trigger_px": Decimal(trig["triggerPx"]), "tpsl": trig["tpsl"],
                           "is_market": trig["isMarket"]}
            except InvalidOperation:
                raise _Refusal() from None
        else:
            raise _Refusal()
        return {"a": o["a"], "b": o["b"], "px": px, "sz": sz, "r": o["r"], "tif": tif,
                "cloid": cloid.lower() if cloid else None, **trigger}

    def _new_order(self, w: dict, spec: PerpSpec, status: str = "open") -> _Order:
        now = self._now_ms()
        order = _Order(next(self._oids), spec.name, w["a"], w["b"], w["px"], w["sz"], w["tif"], w["r"], w["cloid"],
                       now, sz=w["sz"], status=status, status_ts=now, trigger_px=w.get("trigger_px"),
                       tpsl=w.get("tpsl"), is_market=bool(w.get("is_market")))
        self._orders[order.oid] = order
        return order

    def _reject(self, w: dict, spec: PerpSpec, status: str, msg: str) -> dict:
        self._new_order(w, spec, status)
        return {"error": msg}

    def _refusal(self, w: dict, spec: PerpSpec) -> dict | None:
        """The venue's refusal of an order, if any (kept with an oid and a ``...Rejected`` status)."""
        a, px, sz, is_buy = w["a"], w["px"], w["sz"], w["b"]
        if w["cloid"] and any(o.cloid == w["cloid"] and (o.status == "open" or self.cloid_scope == "all")
                              for o in self._orders.values()):
            return {"error": MSG_DUPLICATE_CLOID.format(cloid=w["cloid"], a=a)}
        if sz <= 0:
            return {"error": MSG_ZERO_SIZE.format(a=a)}
        if _decimals(sz) > spec.sz_decimals:
            return {"error": MSG_SIZE.format(a=a)}
        if px <= 0 or _decimals(px) > 6 - spec.sz_decimals or (_sig_figs(px) > 5 and px != px.to_integral_value()):
            return self._reject(w, spec, "tickRejected", MSG_TICK.format(a=a))
        pos, mark = self._positions[spec.name], self._marks[spec.name]
        reducing = pos.szi < 0 if is_buy else pos.szi > 0
        if w["r"] and not reducing:
            return self._reject(w, spec, "reduceOnlyRejected", MSG_REDUCE_ONLY.format(a=a))
        if not w["r"] and sz * px < 10:
            return self._reject(w, spec, "minTradeNtlRejected", MSG_MIN_VALUE.format(a=a))
        crosses = mark <= px if is_buy else mark >= px
        if w["tif"] == "Alo" and crosses:
            return self._reject(w, spec, "badAloPxRejected", MSG_POST_ONLY.format(bbo=_fmt(mark), a=a))
        if w["tif"] in ("Ioc", "FrontendMarket") and not crosses:
            return self._reject(w, spec, "iocCancelRejected", MSG_IOC.format(a=a))
        adding = sz if not reducing else max(ZERO, sz - abs(pos.szi))
        if not w["r"] and adding * (mark if crosses else px) / pos.leverage > self._available():
            return self._reject(w, spec, "perpMarginRejected", MSG_MARGIN.format(a=a))
        return None

    def _place(self, w: dict) -> dict:
        a = w["a"]
        if not 0 <= a < len(self._specs):
            return {"error": f"Asset {a} is out of range."}
        spec = self._specs[a]
        if w["tif"] == "trigger":
            return self._place_trigger(w, spec)
        refusal = self._refusal(w, spec)
        if refusal is not None:
            return refusal
        px, sz, is_buy = w["px"], w["sz"], w["b"]
        pos, mark = self._positions[spec.name], self._marks[spec.name]
        crosses = mark <= px if is_buy else mark >= px
        now = self._now_ms()
        order = _Order(next(self._oids), spec.name, a, is_buy, px, sz, w["tif"], w["r"], w["cloid"], now, sz=sz,
                       status_ts=now)
        self._orders[order.oid] = order
        if not crosses:
            return {"resting": {"oid": order.oid}}
        qty = min(sz, abs(pos.szi)) if w["r"] else sz
        partial = self._take("partial", "/exchange", "order")
        if partial is not None:
            qty = (qty * partial.value).quantize(Decimal(1).scaleb(-spec.sz_decimals), rounding=ROUND_DOWN)
        if qty > 0:
            self._fill(order, qty, mark, crossed=True)
        if order.sz == 0:
            return {"filled": {"totalSz": _fmt(qty), "avgPx": _fmt(mark), "oid": order.oid}}
        if w["tif"] == "Gtc" and not w["r"]:
            return {"resting": {"oid": order.oid}}
        if qty == 0:
            self._finish(order, "iocCancelRejected")
            return {"error": MSG_IOC.format(a=a)}
        self._finish(order, "canceled")
        return {"filled": {"totalSz": _fmt(qty), "avgPx": _fmt(mark), "oid": order.oid}}

    def _place_trigger(self, w: dict, spec: PerpSpec) -> dict:
        """A standalone trigger order (grouping ``na``): checked as the venue checks an order, then resting
        untriggered (``{"resting": {"oid"}}``, assumed); a trigger the mark has already reached fires at once."""
        a, px, sz, trig, is_buy = w["a"], w["px"], w["sz"], w["trigger_px"], w["b"]
        if w["grouping"] != "na":
            return {"error": MSG_TRIGGER.format(a=a)}
        if w["cloid"] and any(o.cloid == w["cloid"] and (o.status == "open" or self.cloid_scope == "all")
                              for o in self._orders.values()):
            return {"error": MSG_DUPLICATE_CLOID.format(cloid=w["cloid"], a=a)}
        if sz <= 0:
            return {"error": MSG_ZERO_SIZE.format(a=a)}
        if _decimals(sz) > spec.sz_decimals:
            return {"error": MSG_SIZE.format(a=a)}
        for p in (px, trig):
            if p <= 0 or _decimals(p) > 6 - spec.sz_decimals or (_sig_figs(p) > 5 and p != p.to_integral_value()):
                return self._reject(w, spec, "tickRejected", MSG_TICK.format(a=a))
        if (px < trig) if is_buy else (px > trig):  # the worst price must lie beyond the trigger
            return self._reject(w, spec, "badTriggerPxRejected", MSG_TPSL_PRICE.format(a=a))
        pos = self._positions[spec.name]
        if w["r"] and not (pos.szi < 0 if is_buy else pos.szi > 0):
            return self._reject(w, spec, "reduceOnlyRejected", MSG_REDUCE_ONLY.format(a=a))
        if not w["r"] and sz * trig < 10:
            return self._reject(w, spec, "minTradeNtlRejected", MSG_MIN_VALUE.format(a=a))
        order = self._new_order(w, spec)
        if self._reached(order, self._marks[spec.name]):
            self._fire(order, self._marks[spec.name])
        return {"resting": {"oid": order.oid}}

    @staticmethod
    def _above(o: _Order) -> bool:
        """Whether the trigger fires on a mark at or above it (a sell take-profit, a buy stop), else at or below."""
        return (o.tpsl == "tp") != o.is_buy

    def _reached(self, o: _Order, mark: Decimal) -> bool:
        assert o.trigger_px is not None
        return mark >= o.trigger_px if self._above(o) else mark <= o.trigger_px

    def _fire(self, o: _Order, mark: Decimal) -> None:
        """The mark reached an untriggered order's trigger. Reduce-only with nothing to reduce: cancelled. A market
        trigger fills at the mark (a taker, clipped to the position when reduce-only; the rest is cancelled) unless
        the mark is past its limit price (its slippage bound; then ``iocCancelRejected``, assumed). A limit trigger
        becomes a resting ``Gtc`` limit at its price."""
        o.triggered = True
        pos = self._positions[o.coin]
        reducing = pos.szi < 0 if o.is_buy else pos.szi > 0
        if o.reduce_only and not reducing:
            self._finish(o, "reduceOnlyCanceled")
            return
        if not o.is_market:
            o.tif = "Gtc"
            return
        if not (mark <= o.px if o.is_buy else mark >= o.px):
            self._finish(o, "iocCancelRejected")
            return
        qty = min(o.sz, abs(pos.szi)) if o.reduce_only else o.sz
        self._fill(o, qty, mark, crossed=True)
        if o.sz > 0:
            self._finish(o, "reduceOnlyCanceled")

    # ------------------------------------------------------------------ state helpers (lock held)

    def _spec(self, coin: str) -> PerpSpec:
        if coin not in self._asset:
            raise KeyError(f"unknown coin {coin!r}")
        return self._specs[self._asset[coin]]

    def _upnl(self, coin: str) -> Decimal:
        pos = self._positions[coin]
        return (self._marks[coin] - pos.entry) * pos.szi

    def _margin_used(self, coin: str) -> Decimal:
        pos = self._positions[coin]
        return abs(pos.szi) * self._marks[coin] / pos.leverage

    def _order_margin(self) -> Decimal:
        return sum((o.sz * o.px / self._positions[o.coin].leverage for o in self._orders.values()
                    if o.status == "open" and not o.reduce_only and (o.trigger_px is None or o.triggered)), ZERO)

    def _available(self) -> Decimal:
        coins = [s.name for s in self._specs]
        value = self._cash + sum((self._upnl(c) for c in coins), ZERO)
        return value - sum((self._margin_used(c) for c in coins), ZERO) - self._order_margin()

    def _position_json(self, coin: str) -> dict:
        pos, spec = self._positions[coin], self._spec(coin)
        used = self._margin_used(coin)
        upnl = self._upnl(coin)
        initial = abs(pos.szi) * pos.entry / pos.leverage
        leverage: dict[str, Any] = {"type": "cross" if pos.is_cross else "isolated", "value": pos.leverage}
        if not pos.is_cross:
            leverage["rawUsd"] = _fmt(-pos.szi * pos.entry + used, 6)
        return {"type": "oneWay", "position": {
            "coin": coin, "szi": _fmt(pos.szi), "leverage": leverage, "entryPx": _fmt(pos.entry, 6),
            "positionValue": _fmt(abs(pos.szi) * self._marks[coin], 6), "unrealizedPnl": _fmt(upnl, 6),
            "returnOnEquity": _fmt(upnl / initial if initial else ZERO, 8), "liquidationPx": None,
            "marginUsed": _fmt(used, 6), "maxLeverage": spec.max_leverage,
            "cumFunding": {"allTime": "0.0", "sinceOpen": "0.0", "sinceChange": "0.0"}}}

    def _frontend(self, o: _Order) -> dict:
        row = {"coin": o.coin, "side": "B" if o.is_buy else "A", "limitPx": _fmt(o.px), "sz": _fmt(o.sz),
               "oid": o.oid, "timestamp": o.timestamp, "triggerCondition": "N/A", "isTrigger": False,
               "triggerPx": "0.0", "children": [], "isPositionTpsl": False, "reduceOnly": o.reduce_only,
               "orderType": "Limit", "origSz": _fmt(o.orig_sz), "tif": o.tif, "cloid": o.cloid}
        if o.trigger_px is not None:
            kind = ("Take Profit" if o.tpsl == "tp" else "Stop") + (" Market" if o.is_market else " Limit")
            row.update(isTrigger=True, triggerPx=_fmt(o.trigger_px), orderType=kind, tif=None if not o.triggered
                       else o.tif, triggerCondition=f"Price {'above' if self._above(o) else 'below'} "
                                                    f"{_fmt(o.trigger_px)}")
        return row

    def _status_entry(self, o: _Order) -> dict:
        return {"order": self._frontend(o), "status": o.status, "statusTimestamp": o.status_ts}

    def _finish(self, o: _Order, status: str) -> None:
        o.status, o.status_ts = status, self._now_ms()

    def _fill(self, o: _Order, qty: Decimal, px: Decimal, crossed: bool) -> None:
        pos = self._positions[o.coin]
        start = pos.szi
        signed = qty if o.is_buy else -qty
        closing = min(qty, abs(start)) if start and (start > 0) != (signed > 0) else ZERO
        closed_pnl = (px - pos.entry) * closing * (1 if start > 0 else -1) if closing else ZERO
        new = start + signed
        if start == 0 or (start > 0) == (signed > 0):
            pos.entry = (abs(start) * pos.entry + qty * px) / abs(new)
        elif new == 0:
            pos.entry = ZERO
        elif (new > 0) != (start > 0):
            pos.entry = px
        pos.szi = new
        fee = (qty * px * (self.taker_fee if crossed else self.maker_fee)).quantize(Decimal("0.000001"),
                                                                                  rounding=ROUND_HALF_UP)
        self._cash += closed_pnl - fee
        o.sz -= qty
        now = self._now_ms()
        if o.sz == 0:
            self._finish(o, "filled")
        if start == 0 or (start > 0) == (signed > 0):
            direction = "Open Long" if signed > 0 else "Open Short"
        elif new == 0 or (new > 0) == (start > 0):
            direction = "Close Short" if signed > 0 else "Close Long"
        else:
            direction = "Short > Long" if signed > 0 else "Long > Short"
        tid = next(self._tids)
        row = {"coin": o.coin, "px": _fmt(px), "sz": _fmt(qty), "side": "B" if o.is_buy else "A", "time": now,
               "startPosition": _fmt(start), "dir": direction, "closedPnl": _fmt(closed_pnl, 6),
               "hash": "0x" + hashlib.sha256(f"{o.oid}:{tid}".encode()).hexdigest(), "oid": o.oid,
               "crossed": crossed, "fee": _fmt(fee), "tid": tid, "feeToken": "USDC", "twapId": None}
        if o.cloid:
            row["cloid"] = o.cloid
        self._fills.append(row)


_INFO_TYPES = {"meta": "_i_meta", "metaAndAssetCtxs": "_i_meta_ctxs", "spotMeta": "_i_spot_meta",
               "spotMetaAndAssetCtxs": "_i_spot_ctxs", "perpDexs": "_i_perp_dexs", "userAbstraction": "_i_abstraction",
               "clearinghouseState": "_i_clearinghouse", "spotClearinghouseState": "_i_spot_clearinghouse",
               "openOrders": "_i_open_orders", "frontendOpenOrders": "_i_frontend_open_orders",
               "orderStatus": "_i_order_status", "userFills": "_i_user_fills",
               "userFillsByTime": "_i_user_fills_by_time", "candleSnapshot": "_i_candles",
               "fundingHistory": "_i_funding_history"}
_ACTION_TYPES = ("order", "cancel", "cancelByCloid", "updateLeverage", "approveBuilderFee", "setReferrer")
