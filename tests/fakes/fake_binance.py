"""A fake Binance USD-M futures REST API server for tests.

Standard library only.  The server listens on ``127.0.0.1`` on a free port and
answers the subset of the Binance USD-M futures REST API (``/fapi/...``) that
the pipeline's exchange client (the real ``ccxt.binanceusdm``) uses, in the same
JSON shapes and with the same error codes as the real service::

    import ccxt
    from tests.fakes.fake_binance import FakeBinanceUSDM

    with FakeBinanceUSDM(api_key="k", secret="s", balances={"USDT": "10000"}) as fake:
        fake.seed_position("BTCUSDT", "0.1", entry_price="50000")
        ex = ccxt.binanceusdm({"apiKey": "k", "secret": "s",
                               "enableRateLimit": False, "timeout": 3000})
        fake.point_ccxt(ex)            # every ccxt API URL -> http://127.0.0.1:PORT/...
        ex.create_order("BTC/USDT:USDT", "market", "buy", 0.01,
                        params={"clientOrderId": "intent-1"})
        assert fake.position("BTCUSDT")["positionAmt"] == "0.110"

Authentication
--------------
Signed endpoints (``USER_DATA`` / ``TRADE``) are checked as Binance does: the
``X-MBX-APIKEY`` header must carry the configured key (missing: HTTP 401 code
-2014; unknown: HTTP 401 code -2015), ``timestamp`` and ``signature`` must be
sent (code -1102), the signature must be the hex HMAC-SHA256, keyed with the
secret, of the raw query string concatenated with the raw request body with the
``signature`` parameter taken out (HTTP 400 code -1022 otherwise), and the
timestamp must be no more than 1000 ms ahead of the server clock nor older than
``recvWindow`` (default 5000 ms, at most 60000) (code -1021).

Trading model
-------------
One-way position mode (``positionSide`` ``BOTH``), every symbol margined in
USDT.  Unless scripted otherwise (see "Unkind venue" below), a ``MARKET`` order
fills at once, in full, at the symbol's mark price
(:meth:`FakeBinanceUSDM.set_mark_price`) and pays the taker fee.  A ``LIMIT``
GTC/GTD order rests as ``NEW`` until :meth:`FakeBinanceUSDM.fill_resting` or
:meth:`FakeBinanceUSDM.fill_order` fills it at its limit price with the maker
fee (unless ``fill_marketable_limits`` is set, in which case a limit order that
crosses the mark price fills at once as a taker).  IOC/FOK limit orders fill at
the mark price if they cross it and are ``EXPIRED`` otherwise; GTX (post-only)
orders that would cross are rejected (-5022).  Fees and realised PnL go to the
USDT wallet balance; positions carry a weighted-average entry price.  Every
fill is one row of ``GET /fapi/v1/userTrades`` (``price``, ``qty``,
``commission``, ``realizedPnl``, ``orderId``, ``maker``, ``time``; filtered by
``orderId``, ``startTime``/``endTime`` -- at most 7 days apart, -1127; none sent
means the last 7 days --, ``fromId`` and ``limit`` as Binance does), and
``GET /fapi/v1/order`` / ``allOrders`` show ``executedQty``, ``cumQuote``,
``avgPrice``, ``updateTime`` and the status (``NEW``, ``PARTIALLY_FILLED``,
``FILLED``, ``CANCELED``, ``EXPIRED``).

Order validation answers with Binance's codes: unknown symbol -1121; missing or
malformed parameter -1102 / -1100; quantity with more decimals than the symbol
allows, or price with more decimals than allowed, -1111 ("Precision is over the
maximum defined for this asset."); quantity not a multiple of the step -4023;
price not a multiple of the tick -4014; below min / above max quantity -4004 /
-4005; limit price outside the PERCENT_PRICE band -4016 / -4024; notional below
the MIN_NOTIONAL filter -4164 (unless reduce-only); reduce-only order that would
not reduce -2022; not enough margin -2019; a ``newClientOrderId`` already used
-4116 ("ClientOrderId is duplicated.").

Client order ids: Binance documents ``newClientOrderId`` (and ``clientAlgoId``)
as "A unique id among open orders", i.e. only the id of an order that is still
open is refused; ``client_order_id_scope="open"`` models exactly that (a filled,
cancelled or expired order's id may be used again; a query by that id then
finds the newest order).  The default stays ``"all"`` (an id can never be
reused) because the fake's own duplicate-order tests (``test_fake_binance.py``:
resubmission, lost answer, concurrent submissions, host-name error mapping)
are written against it; code that must be safe on the real venue should be
tested with ``"open"`` too, where a resubmitted *filled* order is NOT refused.

Conditional orders (Algo Service)
---------------------------------
Since 2025-12-09 Binance refuses ``STOP``/``STOP_MARKET``/``TAKE_PROFIT``/
``TAKE_PROFIT_MARKET``/``TRAILING_STOP_MARKET`` on ``POST /fapi/v1/order`` with
-4120 ("Order type not supported for this endpoint. Please use the Algo Order
API endpoints instead."), and so does the fake.  ccxt 4.5.90 sends any linear
order with ``stopPrice``/``triggerPrice``/``stopLossPrice``/``takeProfitPrice``
to ``POST /fapi/v1/algoOrder`` (``algoType=CONDITIONAL``, ``triggerPrice``,
``clientAlgoId``), which the fake serves together with ``GET``/``DELETE
/fapi/v1/algoOrder``, ``GET /fapi/v1/openAlgoOrders``, ``GET
/fapi/v1/allAlgoOrders`` and ``DELETE /fapi/v1/algoOpenOrders``: the order rests
as ``algoStatus`` ``NEW``, triggers when :meth:`FakeBinanceUSDM.set_mark_price`
crosses its trigger, and then becomes a regular (reduce-only) market order with
its own ``orderId`` (``actualOrderId``).  Details in
:mod:`tests.fakes.fake_binance_algo`.

Market data
-----------
``GET /fapi/v1/klines`` and ``GET /fapi/v1/fundingRate`` serve the rows given to
:meth:`FakeBinanceUSDM.set_klines` / :meth:`FakeBinanceUSDM.set_funding` (filtered by
``startTime``/``endTime``, at most ``limit``), in Binance's shapes: a kline's close
time is its open time + interval − 1 ms, and like Binance the fake serves the bar
still forming, so a client must drop it itself (as-of semantics).

Rate limits and headers
-----------------------
Every answer of the API (errors, 404s and 503s included; not the HTML pages of
a failing gateway, 502/504) carries ``X-MBX-USED-WEIGHT-1M``: the weight of the
requests of the last 60 s, with Binance's documented weights (e.g. 1 for most
reads, 5 for ``userTrades``/``allOrders``/``positionRisk``/``account``, 40 for
``openOrders`` without a symbol, 0 for ``POST /fapi/v1/order``).  Accepted
orders also carry ``X-MBX-ORDER-COUNT-10S`` / ``X-MBX-ORDER-COUNT-1M``.
:meth:`FakeBinanceUSDM.limit_weight` enforces the limit: HTTP 429, code -1003
"Too many requests; current limit of IP(<ip>) is <n> requests per minute. Please
use the websocket for live updates to avoid polling the API." with
``Retry-After``; a client that does not back off is banned: HTTP 418, code -1003
"Way too many requests; IP(<ip>) banned until <ms>. Please use the websocket for
live updates to avoid bans." with ``Retry-After``.

Unkind venue (scripted; the default behaviour above is unchanged without it)
--------------------------------------------------------------------------
* :meth:`FakeBinanceUSDM.fail_next` -- the next N matching requests get HTTP 429
  (code -1003 and the message above, ``Retry-After: 1``), 418 (banned until now
  + ``Retry-After``, default 120 s), 5xx, or any status/code/body; with
  ``process=True`` the request is carried out first and only its answer is lost
  (the "timed out but executed" case that idempotent resubmission must survive).
* :meth:`FakeBinanceUSDM.delay_next` -- the next N matching requests are held for
  some seconds before being handled (a client with a short timeout gives up).
* :meth:`FakeBinanceUSDM.partial_next` -- the next order(s) that take liquidity
  fill only a fraction, possibly over several price levels: a ``MARKET``/``IOC``
  order ends ``EXPIRED`` with ``executedQty`` < ``origQty`` (what Binance answers
  when a market order exhausts the book -- expiry reason 9; ``EXPIRED_IN_MATCH``
  is Binance's status for self-trade prevention, not for this), ``FOK`` fills
  nothing, a marketable ``GTC`` limit rests the rest as ``PARTIALLY_FILLED``.
* :meth:`FakeBinanceUSDM.execute_late_next` -- the next order placement is
  parked and carried out later (on :meth:`FakeBinanceUSDM.release_held`, or
  after N seconds), while the client gets no answer until it times out, a reset
  connection, or Binance's 503 "execution status unknown" body.  Wait for it
  with :meth:`FakeBinanceUSDM.wait_held` -- no sleeping.
* :meth:`FakeBinanceUSDM.fill_order` / :meth:`FakeBinanceUSDM.fill_resting` --
  late fills of resting orders, whenever the test says, with their trades and
  times in ``userTrades``.
* :meth:`FakeBinanceUSDM.limit_weight` -- real 429s and 418 bans (above).
* :meth:`FakeBinanceUSDM.down` / :meth:`FakeBinanceUSDM.up` -- every request
  answered 503, every connection dropped without an answer, or the listening
  socket closed (connection refused) until ``up()``.

Not modelled: an order book (fills happen at the mark price or at the prices a
test gives), a separate last price (``workingType`` ``CONTRACT_PRICE`` and
``MARK_PRICE`` both use the mark price), trailing stops, hedge mode, the
user-data WebSocket streams (``ORDER_TRADE_UPDATE``/``ALGO_UPDATE``), per-UID
order-rate limits (the ``X-MBX-ORDER-COUNT-*`` headers are counted, never
enforced), and the 3-day/90-day pruning of old orders from the query endpoints.

Recording
---------
Every request is kept as a :class:`RecordedRequest` (method, path, parameters
without ``signature``, status, Binance error code, weight).  The API key and secret are
never stored.  Requests to paths the fake does not serve are answered 404 (code
-5000) and also listed in :attr:`FakeBinanceUSDM.unhandled`.

Pointing ccxt at the fake
-------------------------
:meth:`FakeBinanceUSDM.point_ccxt` rewrites every URL in the exchange's
``urls['api']`` (and ``urls['test']``, ``urls['demo']``, ``urls['apiBackup']``)
to the fake's base URL, keeping each URL's path (``/fapi/v1``, ``/fapi/v2``,
``/fapi/v3``, ``/futures/data``, ``/sapi/v1``, ``/api/v3``, ...), checks that none
is left pointing anywhere but loopback, turns off proxy settings from the
environment, and by default installs a guard that refuses (and records in
:attr:`FakeBinanceUSDM.foreign_urls`) any request to a non-loopback host.
Because ccxt picks the market-specific error table by the exchange's *host
name* (``fapi.binance.com`` -> "linear"), it also by default makes ccxt map
errors from the fake as it would map the same errors from ``fapi.binance.com``
(without it, e.g. -4116 and -4164 surface as plain ``ExchangeError`` instead of
``InvalidOrder``).
"""

from __future__ import annotations

import functools
import hashlib
import hmac
import inspect
import itertools
import json
import random
import socket
import string
import sys
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl, urlsplit, urlunsplit

from .fake_binance_algo import AlgoOrdersMixin
from .fake_binance_base import (
    _CLIENT_ORDER_ID_RE,
    _RESET,
    MSG_ALGO_ENDPOINT,
    MSG_API_KEY_FORMAT,
    MSG_BAD_API_KEY,
    MSG_BAD_SIGNATURE,
    MSG_BANNED,
    MSG_DUPLICATE_CLIENT_ID,
    MSG_INTERNAL,
    MSG_MIN_NOTIONAL,
    MSG_PRECISION,
    MSG_TOO_MANY_REQUESTS,
    OPEN_STATUSES,
    ZERO,
    BinanceAPIError,
    RecordedRequest,
    _dec,
    _decimals,
    _fixed,
    _is_loopback_host,
    _missing,
    _parse_number,
    _plain,
)
from .fake_binance_unkind import UnkindMixin, _HeldRequest, _LateRule, _PartialRule

__all__ = [
    "BinanceAPIError",
    "FakeBinanceUSDM",
    "NonLoopbackRequest",
    "RecordedRequest",
    "SymbolSpec",
    "DEFAULT_SYMBOLS",
    "DEFAULT_MARK_PRICES",
]


class NonLoopbackRequest(AssertionError):
    """Raised by the guard :meth:`FakeBinanceUSDM.point_ccxt` installs when the
    exchange object tries to reach a host that is not loopback."""


@dataclass(frozen=True)
class SymbolSpec:
    """The static description of one USD-M perpetual contract.

    ``brackets`` are ``(initialLeverage, notionalCap, maintMarginRatio)`` tuples
    from the lowest tier up; floors and ``cum`` (maintenance amount) are derived
    as Binance derives them.  The first tier's leverage is the symbol's maximum.
    """

    symbol: str
    base: str
    quote: str = "USDT"
    price_precision: int = 2
    quantity_precision: int = 3
    tick_size: str = "0.10"
    min_price: str = "556.80"
    max_price: str = "4529764"
    step_size: str = "0.001"
    min_qty: str = "0.001"
    max_qty: str = "1000"
    market_max_qty: str = "120"
    min_notional: str = "100"
    percent_up: str = "1.0500"
    percent_down: str = "0.9500"
    brackets: tuple[tuple[int, int, str], ...] = ((125, 50_000, "0.004"),)
    onboard_date: int = 1569398400000
    underlying_sub_type: tuple[str, ...] = ("PoW",)

    @property
    def max_leverage(self) -> int:
        """The leverage of the first (lowest-notional) bracket."""
        return self.brackets[0][0]

    def bracket_rows(self) -> list[dict]:
        """The brackets as ``/fapi/v1/leverageBracket`` lists them (with floors and ``cum``)."""
        rows: list[dict] = []
        floor = 0
        cum = ZERO
        prev_mmr = ZERO
        for i, (lev, cap, mmr) in enumerate(self.brackets, start=1):
            mmr_d = Decimal(mmr)
            cum += Decimal(floor) * (mmr_d - prev_mmr)
            rows.append(
                {
                    "bracket": i,
                    "initialLeverage": lev,
                    "notionalCap": cap,
                    "notionalFloor": floor,
                    "maintMarginRatio": float(mmr_d),
                    "cum": float(cum),
                }
            )
            floor = cap
            prev_mmr = mmr_d
        return rows


DEFAULT_SYMBOLS: tuple[SymbolSpec, ...] = (
    SymbolSpec(
        symbol="BTCUSDT", base="BTC", price_precision=2, quantity_precision=3,
        tick_size="0.10", min_price="556.80", max_price="4529764",
        step_size="0.001", min_qty="0.001", max_qty="1000", market_max_qty="120",
        min_notional="100", onboard_date=1569398400000, underlying_sub_type=("PoW",),
        brackets=(
            (125, 50_000, "0.004"), (100, 600_000, "0.005"), (75, 3_000_000, "0.0065"),
            (50, 12_000_000, "0.01"), (25, 70_000_000, "0.02"), (20, 100_000_000, "0.025"),
            (10, 230_000_000, "0.05"), (5, 480_000_000, "0.1"), (4, 600_000_000, "0.125"),
            (3, 800_000_000, "0.15"), (2, 1_200_000_000, "0.25"), (1, 1_800_000_000, "0.5"),
        ),
    ),
    SymbolSpec(
        symbol="ETHUSDT", base="ETH", price_precision=2, quantity_precision=3,
        tick_size="0.01", min_price="39.86", max_price="306177",
        step_size="0.001", min_qty="0.001", max_qty="10000", market_max_qty="2000",
        min_notional="20", onboard_date=1569398400000, underlying_sub_type=("Layer-1",),
        brackets=(
            (100, 10_000, "0.005"), (75, 100_000, "0.0065"), (50, 500_000, "0.01"),
            (25, 1_000_000, "0.02"), (10, 5_000_000, "0.05"), (5, 20_000_000, "0.1"),
            (1, 50_000_000, "0.5"),
        ),
    ),
    SymbolSpec(
        symbol="SOLUSDT", base="SOL", price_precision=4, quantity_precision=0,
        tick_size="0.0100", min_price="0.4200", max_price="6857",
        step_size="1", min_qty="1", max_qty="1000000", market_max_qty="5000",
        min_notional="5", onboard_date=1569398400000, underlying_sub_type=("Layer-1",),
        brackets=(
            (75, 5_000, "0.0065"), (50, 50_000, "0.01"), (25, 250_000, "0.02"),
            (10, 1_000_000, "0.05"), (5, 5_000_000, "0.1"), (1, 25_000_000, "0.5"),
        ),
    ),
)

DEFAULT_MARK_PRICES: dict[str, str] = {"BTCUSDT": "60000", "ETHUSDT": "3000", "SOLUSDT": "150"}


@dataclass
class _FailRule:
    remaining: int
    status: int
    body: Any
    headers: dict[str, str]
    path: str | None
    method: str | None
    process: bool
    render: Callable[[str, int], Any] | None = None


@dataclass
class _DelayRule:
    remaining: int
    seconds: float
    path: str | None
    method: str | None


@dataclass
class _Position:
    amt: Decimal = ZERO
    entry: Decimal = ZERO
    leverage: int = 20
    margin_type: str = "CROSSED"  # or "ISOLATED"
    update_time: int = 0


@dataclass
class _Order:
    order_id: int
    symbol: str
    client_order_id: str
    side: str
    type: str
    time_in_force: str
    qty: Decimal
    price: Decimal
    reduce_only: bool
    status: str = "NEW"
    executed: Decimal = ZERO
    cum_quote: Decimal = ZERO
    time: int = 0
    update_time: int = 0
    orig_type: str = ""
    stop_price: Decimal = ZERO
    working_type: str = "CONTRACT_PRICE"
    close_position: bool = False


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    fake: FakeBinanceUSDM

    def handle_error(self, request: Any, client_address: Any) -> None:
        """Stay quiet about clients that hung up; anything else is a bug in the fake."""
        exc = sys.exc_info()[1]
        if isinstance(exc, (BrokenPipeError, ConnectionResetError)):
            return
        super().handle_error(request, client_address)


class _Handler(BaseHTTPRequestHandler):
    server_version = "FakeBinanceUSDM/1.0"
    sys_version = ""
    protocol_version = "HTTP/1.0"

    def do_GET(self) -> None:  # http.server's naming
        self._handle("GET")

    def do_POST(self) -> None:
        self._handle("POST")

    def do_PUT(self) -> None:
        self._handle("PUT")

    def do_DELETE(self) -> None:
        self._handle("DELETE")

    def _handle(self, method: str) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length).decode("utf-8", "replace") if length else ""
        split = urlsplit(self.path)
        assert isinstance(self.server, _Server)
        fake = self.server.fake
        result = fake._handle_http(method, split.path, split.query, body, self.headers, self.client_address[0])
        if result is _RESET:
            self.close_connection = True
            try:
                self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
            except OSError:
                pass
            return
        status, payload, headers = result
        if isinstance(payload, (bytes, str)):
            data = payload.encode() if isinstance(payload, str) else payload
            ctype = "text/html"
        else:
            data = json.dumps(payload, separators=(",", ":")).encode()
            ctype = "application/json"
        try:
            self.send_response(status)
            self.send_header("Content-Type", ctype)
            self.send_header("Content-Length", str(len(data)))
            for key, value in headers.items():
                self.send_header(key, value)
            self.end_headers()
            self.wfile.write(data)
        except (BrokenPipeError, ConnectionResetError):  # the client gave up (e.g. timed out)
            self.close_connection = True

    def log_message(self, format: str, *args: Any) -> None:  # http.server's signature
        return


# (method, path) -> (handler name, security); security: NONE, KEY (API key only), SIGNED.
_ROUTES: dict[tuple[str, str], tuple[str, str]] = {
    ("GET", "/fapi/v1/ping"): ("_ep_ping", "NONE"),
    ("GET", "/fapi/v1/time"): ("_ep_time", "NONE"),
    ("GET", "/fapi/v1/exchangeInfo"): ("_ep_exchange_info", "NONE"),
    ("GET", "/fapi/v1/ticker/price"): ("_ep_ticker_price", "NONE"),
    ("GET", "/fapi/v2/ticker/price"): ("_ep_ticker_price", "NONE"),
    ("GET", "/fapi/v1/ticker/bookTicker"): ("_ep_book_ticker", "NONE"),
    ("GET", "/fapi/v1/ticker/24hr"): ("_ep_ticker_24hr", "NONE"),
    ("GET", "/fapi/v1/premiumIndex"): ("_ep_premium_index", "NONE"),
    ("GET", "/fapi/v1/klines"): ("_ep_klines", "NONE"),
    ("GET", "/fapi/v1/fundingRate"): ("_ep_funding_rate", "NONE"),
    ("GET", "/fapi/v1/leverageBracket"): ("_ep_leverage_bracket", "SIGNED"),
    ("GET", "/fapi/v2/balance"): ("_ep_balance", "SIGNED"),
    ("GET", "/fapi/v3/balance"): ("_ep_balance", "SIGNED"),
    ("GET", "/fapi/v2/account"): ("_ep_account_v2", "SIGNED"),
    ("GET", "/fapi/v3/account"): ("_ep_account_v3", "SIGNED"),
    ("GET", "/fapi/v2/positionRisk"): ("_ep_position_risk_v2", "SIGNED"),
    ("GET", "/fapi/v3/positionRisk"): ("_ep_position_risk_v3", "SIGNED"),
    ("GET", "/fapi/v1/positionSide/dual"): ("_ep_position_side_dual", "SIGNED"),
    ("POST", "/fapi/v1/leverage"): ("_ep_set_leverage", "SIGNED"),
    ("POST", "/fapi/v1/marginType"): ("_ep_set_margin_type", "SIGNED"),
    ("POST", "/fapi/v1/order"): ("_ep_new_order", "SIGNED"),
    ("GET", "/fapi/v1/order"): ("_ep_query_order", "SIGNED"),
    ("DELETE", "/fapi/v1/order"): ("_ep_cancel_order", "SIGNED"),
    ("GET", "/fapi/v1/openOrders"): ("_ep_open_orders", "SIGNED"),
    ("GET", "/fapi/v1/openOrder"): ("_ep_query_open_order", "SIGNED"),
    ("GET", "/fapi/v1/allOrders"): ("_ep_all_orders", "SIGNED"),
    ("DELETE", "/fapi/v1/allOpenOrders"): ("_ep_cancel_all", "SIGNED"),
    ("GET", "/fapi/v1/userTrades"): ("_ep_user_trades", "SIGNED"),
    # the Algo Service (conditional orders), see fake_binance_algo.py
    ("POST", "/fapi/v1/algoOrder"): ("_ep_new_algo_order", "SIGNED"),
    ("GET", "/fapi/v1/algoOrder"): ("_ep_query_algo_order", "SIGNED"),
    ("DELETE", "/fapi/v1/algoOrder"): ("_ep_cancel_algo_order", "SIGNED"),
    ("GET", "/fapi/v1/openAlgoOrders"): ("_ep_open_algo_orders", "SIGNED"),
    ("GET", "/fapi/v1/allAlgoOrders"): ("_ep_all_algo_orders", "SIGNED"),
    ("DELETE", "/fapi/v1/algoOpenOrders"): ("_ep_cancel_all_algo_orders", "SIGNED"),
    ("GET", "/sapi/v1/capital/config/getall"): ("_ep_capital_config", "SIGNED"),
    ("GET", "/sapi/v1/margin/allPairs"): ("_ep_margin_all_pairs", "SIGNED"),
}

# Request weights as Binance documents them for each endpoint: (with symbol, without symbol).
_WEIGHTS: dict[tuple[str, str], tuple[int, int]] = {
    ("GET", "/fapi/v1/ticker/price"): (1, 2),
    ("GET", "/fapi/v2/ticker/price"): (1, 2),
    ("GET", "/fapi/v1/ticker/bookTicker"): (2, 5),
    ("GET", "/fapi/v1/ticker/24hr"): (1, 40),
    ("GET", "/fapi/v1/premiumIndex"): (1, 10),
    ("GET", "/fapi/v2/balance"): (5, 5),
    ("GET", "/fapi/v3/balance"): (5, 5),
    ("GET", "/fapi/v2/account"): (5, 5),
    ("GET", "/fapi/v3/account"): (5, 5),
    ("GET", "/fapi/v2/positionRisk"): (5, 5),
    ("GET", "/fapi/v3/positionRisk"): (5, 5),
    ("GET", "/fapi/v1/positionSide/dual"): (30, 30),
    ("POST", "/fapi/v1/order"): (0, 0),  # counts on the order-rate limits instead
    ("POST", "/fapi/v1/algoOrder"): (0, 0),
    ("GET", "/fapi/v1/openOrders"): (1, 40),
    ("GET", "/fapi/v1/openAlgoOrders"): (1, 40),
    ("GET", "/fapi/v1/allOrders"): (5, 5),
    ("GET", "/fapi/v1/allAlgoOrders"): (5, 5),
    ("GET", "/fapi/v1/userTrades"): (5, 5),
}


def _not_digits(name: str) -> BinanceAPIError:
    """Binance's answer to an integer parameter with other characters than digits."""
    return BinanceAPIError(-1100, f"Illegal characters found in parameter '{name}'; legal range is '^[0-9]{{1,20}}$'.")


def _request_weight(method: str, path: str, params: dict[str, str]) -> int:
    """The weight Binance counts for a request towards ``X-MBX-USED-WEIGHT-1M`` (1 if not listed)."""
    if (method, path) == ("GET", "/fapi/v1/klines"):
        limit = int(params["limit"]) if params.get("limit", "").isdigit() else 500
        return 1 if limit < 100 else 2 if limit < 500 else 5 if limit <= 1000 else 10
    with_symbol, without = _WEIGHTS.get((method, path), (1, 1))
    return with_symbol if params.get("symbol") else without


_DEFAULT_FAIL_BODIES: dict[int, Any] = {
    # 418/429 bodies are rendered at answer time (client IP, ban end): see fail_next
    418: {"code": -1003, "msg": MSG_BANNED.format(ip="127.0.0.1", until=0)},
    429: {"code": -1003, "msg": MSG_TOO_MANY_REQUESTS.format(ip="127.0.0.1", limit=2400)},
    500: {"code": -1001, "msg": MSG_INTERNAL},
    502: "<html><head><title>502 Bad Gateway</title></head><body>502 Bad Gateway</body></html>",
    503: {"code": -1001, "msg": MSG_INTERNAL},
    504: "<html><head><title>504 Gateway Time-out</title></head><body>504 Gateway Time-out</body></html>",
}


class FakeBinanceUSDM(UnkindMixin, AlgoOrdersMixin):
    """A thread-safe, in-process fake of the Binance USD-M futures REST API.

    Use it as a context manager (or call :meth:`start` / :meth:`stop`); while
    running, :attr:`base_url` is ``http://127.0.0.1:PORT``.

    Args:
        api_key / secret: the only credentials the fake accepts.
        balances: wallet balances per asset, e.g. ``{"USDT": "10000"}``.
        mark_prices: mark price per symbol id; defaults to :data:`DEFAULT_MARK_PRICES`.
        symbols: the listed contracts; defaults to :data:`DEFAULT_SYMBOLS`
            (BTCUSDT, ETHUSDT, SOLUSDT).
        taker_fee / maker_fee: fee rates (Binance's VIP0 0.05% / 0.02% by default).
        default_leverage: initial leverage of every symbol (Binance's default 20).
        client_order_id_scope: ``"all"`` (an id can never be reused; the default,
            which the existing duplicate-order tests rely on) or ``"open"`` (only ids
            of open orders are refused: what Binance documents for
            ``newClientOrderId`` / ``clientAlgoId``, "A unique id among open orders").
        fill_marketable_limits: fill a GTC/GTD limit order that crosses the mark
            price at once (as a taker) instead of letting it rest.
        clock_offset_ms: added to the local clock to give the server time.
    """

    def __init__(
        self,
        api_key: str = "test-api-key",
        secret: str = "test-api-secret",
        *,
        balances: dict[str, Any] | None = None,
        mark_prices: dict[str, Any] | None = None,
        symbols: Iterable[SymbolSpec] | None = None,
        taker_fee: Any = "0.0005",
        maker_fee: Any = "0.0002",
        default_leverage: int = 20,
        client_order_id_scope: str = "all",
        fill_marketable_limits: bool = False,
        clock_offset_ms: int = 0,
        host: str = "127.0.0.1",
        port: int = 0,
    ):
        if client_order_id_scope not in ("all", "open"):
            raise ValueError("client_order_id_scope must be 'all' or 'open'")
        if not _is_loopback_host(host):
            raise ValueError("the fake only binds loopback addresses")
        self._api_key = api_key
        self._secret = secret.encode()
        self._host = host
        self._port = port
        self._lock = threading.RLock()
        self._stopping = threading.Event()
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None
        self._down_mode: str | None = None
        self.taker_fee = _dec(taker_fee)
        self.maker_fee = _dec(maker_fee)
        self.default_leverage = default_leverage
        self.client_order_id_scope = client_order_id_scope
        self.fill_marketable_limits = fill_marketable_limits
        self.clock_offset_ms = clock_offset_ms
        self._specs: dict[str, SymbolSpec] = {}
        self._marks: dict[str, Decimal] = {}
        self._positions: dict[str, _Position] = {}
        for spec in symbols if symbols is not None else DEFAULT_SYMBOLS:
            self.add_symbol(spec, (mark_prices or {}).get(spec.symbol, DEFAULT_MARK_PRICES.get(spec.symbol, "100")))
        for sym, price in (mark_prices or {}).items():
            if sym not in self._specs:
                raise ValueError(f"mark price for unknown symbol {sym}")
            self._marks[sym] = _dec(price)
        self._wallet: dict[str, Decimal] = {}
        self._wallet_time: dict[str, int] = {}
        for asset, amount in (balances if balances is not None else {"USDT": "10000"}).items():
            self.set_balance(asset, amount)
        self._orders: dict[int, _Order] = {}
        self._client_ids: dict[tuple[str, str], int] = {}
        self._trades: list[dict] = []
        self._order_ids = itertools.count(4_000_000_001)
        self._trade_ids = itertools.count(300_000_001)
        self._klines: dict[tuple[str, str], list[tuple]] = {}
        self._funding: dict[str, list[tuple[int, str]]] = {}
        self._fail_rules: list[_FailRule] = []
        self._delay_rules: list[_DelayRule] = []
        self._partial_rules: list[_PartialRule] = []
        self._late_rules: list[_LateRule] = []
        self._held: list[_HeldRequest] = []
        self._held_cond = threading.Condition()
        self._weight_limit: int | None = None
        self._ban_after: int | None = None
        self._ban_seconds = 120
        self._over_limit_answers = 0
        self._banned_until_ms = 0
        self._init_algo()
        self._requests: list[RecordedRequest] = []
        self.unhandled: list[RecordedRequest] = []
        """Requests to paths the fake does not serve (answered 404, code -5000)."""
        self.foreign_urls: list[str] = []
        """URLs a guarded ccxt exchange tried to reach outside loopback (refused)."""
        self.internal_errors: list[str] = []
        """Unexpected exceptions inside the fake (answered 500, code -1000): bugs of the fake."""

    # ------------------------------------------------------------------ lifecycle

    def start(self) -> FakeBinanceUSDM:
        """Bind ``127.0.0.1`` (a free port unless one was given) and serve in a daemon thread."""
        with self._lock:
            if self._server is not None:
                return self
            self._stopping.clear()
            server = _Server((self._host, self._port), _Handler)
            server.fake = self
            self._port = server.server_address[1]
            thread = threading.Thread(
                target=server.serve_forever, kwargs={"poll_interval": 0.05},
                name=f"fake-binance-{self._port}", daemon=True,
            )
            self._server, self._thread = server, thread
        thread.start()
        return self

    def stop(self) -> None:
        """Stop serving and close the listening socket (safe to call twice).

        Requests being held by :meth:`delay_next` are released at once; requests
        parked by :meth:`execute_late_next` are answered 503 without being carried out."""
        self._stopping.set()
        with self._held_cond:
            for held in self._held:
                held.done.set()
            self._held_cond.notify_all()
        self._close_server()

    def _close_server(self) -> None:
        with self._lock:
            server, thread = self._server, self._thread
            self._server = self._thread = None
        if server is not None:
            server.shutdown()
            server.server_close()
        if thread is not None:
            thread.join(timeout=5)

    def __enter__(self) -> FakeBinanceUSDM:
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()

    @property
    def running(self) -> bool:
        """Whether the listening socket is open."""
        with self._lock:
            return self._server is not None

    @property
    def port(self) -> int:
        """The bound port (0 before the first :meth:`start`)."""
        return self._port

    @property
    def base_url(self) -> str:
        """``http://127.0.0.1:PORT`` -- the scheme and authority every ccxt URL is rewritten to."""
        if not self._port:
            raise RuntimeError("the fake has not been started")
        return f"http://{self._host}:{self._port}"

    # ------------------------------------------------------------------ scripting: failures

    def fail_next(
        self,
        count: int = 1,
        status: int = 429,
        code: int | None = None,
        msg: str | None = None,
        *,
        body: Any = None,
        path: str | None = None,
        method: str | None = None,
        process: bool = False,
        retry_after: int | None = None,
    ) -> None:
        """Make the next ``count`` requests (matching ``path`` prefix / ``method`` if
        given) fail with HTTP ``status``.

        The body is Binance's ``{"code", "msg"}`` (defaults: 429 -> -1003 "Too many
        requests; current limit of IP(<ip>) is 2400 requests per minute. ...",
        418 -> -1003 "Way too many requests; IP(<ip>) banned until <ms>. ...",
        500/503 -> -1001; 502/504 -> an HTML gateway page), or ``body`` verbatim
        (a dict is sent as JSON, a string as text).  429 and 418 carry
        ``Retry-After`` (``retry_after`` seconds; default 1 for 429 and 120 -- the
        shortest ban Binance documents -- for 418, whose "banned until" time is
        the moment of the answer plus that many seconds).  With ``process=True``
        the request is carried out (orders placed, leverage changed, ...) and only
        its answer is replaced by the failure.  Rules queue up in call order.
        """
        if status == 418 and retry_after is None:
            retry_after = 120
        render: Callable[[str, int], Any] | None = None
        if body is None:
            if status in (418, 429) and msg is None:
                wait = 1 if retry_after is None else retry_after
                the_code = -1003 if code is None else code

                def render(ip: str, now: int, _status: int = status, _wait: int = wait, _code: int = the_code) -> Any:
                    if _status == 418:
                        return {"code": _code, "msg": MSG_BANNED.format(ip=ip, until=now + _wait * 1000)}
                    return {"code": _code, "msg": MSG_TOO_MANY_REQUESTS.format(ip=ip, limit=2400)}
                body = render("127.0.0.1", self._now_ms())
            else:
                default = _DEFAULT_FAIL_BODIES.get(
                    status, {"code": -1000, "msg": "An unknown error occured while processing the request."})
                if isinstance(default, dict):
                    body = {"code": default["code"] if code is None else code,
                            "msg": default["msg"] if msg is None else msg}
                elif code is not None or msg is not None:
                    body = {"code": -1000 if code is None else code, "msg": msg or ""}
                else:
                    body = default
        headers: dict[str, str] = {}
        if status in (418, 429) or retry_after is not None:
            headers["Retry-After"] = str(1 if retry_after is None else retry_after)
        with self._lock:
            self._fail_rules.append(_FailRule(count, status, body, headers, path, method and method.upper(), process,
                                              render))

    def delay_next(self, count: int = 1, seconds: float = 1.0, *, path: str | None = None,
                   method: str | None = None) -> None:
        """Hold the next ``count`` matching requests for ``seconds`` before handling them.

        The request is still carried out afterwards, so a client that timed out
        meanwhile does not know whether, e.g., its order was placed."""
        with self._lock:
            self._delay_rules.append(_DelayRule(count, seconds, path, method and method.upper()))

    def clear_failures(self) -> None:
        """Drop every pending :meth:`fail_next` / :meth:`delay_next` /
        :meth:`partial_next` / :meth:`execute_late_next` rule (parked requests stay
        parked until :meth:`release_held`)."""
        with self._lock:
            self._fail_rules.clear()
            self._delay_rules.clear()
            self._partial_rules.clear()
            self._late_rules.clear()

    def down(self, mode: str = "503") -> None:
        """Take the API down until :meth:`up`.

        ``mode``: ``"503"`` answers every request 503 (code -1001); ``"reset"``
        drops every connection without an answer; ``"refuse"`` closes the
        listening socket, so connections are refused (``up()`` binds the same
        port again)."""
        if mode not in ("503", "reset", "refuse"):
            raise ValueError("mode must be '503', 'reset' or 'refuse'")
        with self._lock:
            self._down_mode = mode
        if mode == "refuse":
            self._close_server()

    def up(self) -> None:
        """Bring the API back after :meth:`down` (re-binding the same port if needed)."""
        with self._lock:
            mode, self._down_mode = self._down_mode, None
        if mode == "refuse" and not self._stopping.is_set():
            self.start()

    @property
    def is_down(self) -> bool:
        """Whether :meth:`down` is in force."""
        with self._lock:
            return self._down_mode is not None

    # ------------------------------------------------------------------ scripting: market and account

    def add_symbol(self, spec: SymbolSpec, mark_price: Any = "100") -> None:
        """List another contract (or replace a listed one's spec)."""
        with self._lock:
            self._specs[spec.symbol] = spec
            self._marks.setdefault(spec.symbol, _dec(mark_price))
            self._positions.setdefault(spec.symbol, _Position(leverage=self.default_leverage))

    def set_mark_price(self, symbol: str, price: Any) -> list[dict]:
        """Set the mark price market orders fill at and PnL is marked to.

        Conditional orders of ``symbol`` (``POST /fapi/v1/algoOrder``) whose trigger
        the new price reaches are triggered at once, oldest first (see
        :mod:`tests.fakes.fake_binance_algo`).  Returns them, as ``GET
        /fapi/v1/algoOrder`` shows them after triggering."""
        with self._lock:
            self._spec(symbol)
            self._marks[symbol] = _dec(price)
            return self._check_triggers(symbol)

    def mark_price(self, symbol: str) -> Decimal:
        """The current mark price of ``symbol``."""
        with self._lock:
            return self._marks[symbol]

    def set_balance(self, asset: str, amount: Any) -> None:
        """Set the wallet balance of ``asset`` (e.g. ``"USDT"``)."""
        with self._lock:
            self._wallet[asset] = _dec(amount)
            self._wallet_time[asset] = self._now_ms()

    def balance(self, asset: str = "USDT") -> Decimal:
        """The wallet balance of ``asset`` (fees and realised PnL included, unrealised PnL not)."""
        with self._lock:
            return self._wallet.get(asset, ZERO)

    def seed_position(
        self,
        symbol: str,
        amount: Any,
        entry_price: Any | None = None,
        *,
        leverage: int | None = None,
        margin_type: str | None = None,
    ) -> None:
        """Put an existing position on the book without a trade or a fee.

        ``amount`` is signed (negative for a short); ``entry_price`` defaults to
        the mark price; ``margin_type`` is ``"CROSSED"``/``"cross"`` or ``"ISOLATED"``."""
        with self._lock:
            spec = self._spec(symbol)
            pos = self._positions[symbol]
            pos.amt = _dec(amount)
            pos.entry = _dec(entry_price) if entry_price is not None else self._marks[symbol]
            if pos.amt == 0:
                pos.entry = ZERO
            if leverage is not None:
                if not 1 <= leverage <= spec.max_leverage:
                    raise ValueError(f"leverage {leverage} outside 1..{spec.max_leverage}")
                pos.leverage = leverage
            if margin_type is not None:
                pos.margin_type = self._norm_margin_type(margin_type)
            pos.update_time = self._now_ms()

    def position(self, symbol: str) -> dict:
        """The position of ``symbol`` as ``GET /fapi/v2/positionRisk`` shows it."""
        with self._lock:
            return self._position_v2_json(symbol)

    def leverage(self, symbol: str) -> int:
        """The leverage currently set for ``symbol``."""
        with self._lock:
            return self._positions[symbol].leverage

    def margin_type(self, symbol: str) -> str:
        """``"CROSSED"`` or ``"ISOLATED"``."""
        with self._lock:
            return self._positions[symbol].margin_type

    def orders(self, symbol: str | None = None, *, open_only: bool = False) -> list[dict]:
        """Every order (or every open one) as ``GET /fapi/v1/order`` shows it, oldest first."""
        with self._lock:
            return [
                self._order_json(o, with_time=True)
                for o in self._orders.values()
                if (symbol is None or o.symbol == symbol) and (not open_only or o.status in ("NEW", "PARTIALLY_FILLED"))
            ]

    def trades(self, symbol: str | None = None) -> list[dict]:
        """Every fill as ``GET /fapi/v1/userTrades`` shows it, oldest first."""
        with self._lock:
            return [dict(t) for t in self._trades if symbol is None or t["symbol"] == symbol]

    def fill_resting(self, symbol: str, price: Any | None = None) -> list[dict]:
        """Let the market trade at ``price`` (default: the mark price).

        Every open limit order of ``symbol`` that the price reaches (buys at or
        above it, sells at or below) fills in full at its own limit price as a
        maker.  A reduce-only order that would no longer reduce expires.
        Returns the orders touched, as ``GET /fapi/v1/order`` shows them."""
        with self._lock:
            px = self._marks[symbol] if price is None else _dec(price)
            touched: list[dict] = []
            for order in list(self._orders.values()):
                if order.symbol != symbol or order.status not in ("NEW", "PARTIALLY_FILLED"):
                    continue
                if (order.side == "BUY" and order.price >= px) or (order.side == "SELL" and order.price <= px):
                    self._fill(order, order.qty - order.executed, order.price, maker=True)
                    touched.append(self._order_json(order, with_time=True))
            return touched

    def fill_order(self, order_ref: int | str, qty: Any | None = None, price: Any | None = None) -> dict:
        """Fill one open order, by ``orderId`` or client order id, wholly or partly
        (``qty``), at ``price`` (default: its limit price) as a maker.

        This is a *late* fill: it happens whenever the test calls it, long after
        the order was answered.  Each call is one trade in ``GET /fapi/v1/userTrades``
        (its ``time`` is the server clock now, ``clock_offset_ms`` included); the
        order's ``executedQty``/``cumQuote``/``avgPrice``/``updateTime`` and status
        (``PARTIALLY_FILLED`` / ``FILLED``) change with it."""
        with self._lock:
            order = self._find_order_any(order_ref)
            if order is None or order.status not in ("NEW", "PARTIALLY_FILLED"):
                raise KeyError(f"no open order {order_ref!r}")
            remaining = order.qty - order.executed
            fill_qty = remaining if qty is None else min(_dec(qty), remaining)
            self._fill(order, fill_qty, order.price if price is None else _dec(price), maker=True)
            return self._order_json(order, with_time=True)

    # ------------------------------------------------------------------ inspection

    def set_klines(self, symbol: str, interval: str, rows: Iterable[tuple]) -> None:
        """Serve ``rows`` for ``GET /fapi/v1/klines`` of ``symbol``/``interval`` (``1h``, ``4h``, ``1d``, ...).

        Each row is ``(open_time_ms, open, high, low, close, volume)``, oldest first; the
        close time Binance reports is ``open_time + interval − 1 ms``.
        """
        with self._lock:
            self._spec(symbol)
            self._klines[(symbol, interval)] = [tuple(r) for r in rows]

    def set_funding(self, symbol: str, rows: Iterable[tuple[int, Any]]) -> None:
        """Serve ``rows`` (``(funding_time_ms, rate)``, oldest first) for ``GET /fapi/v1/fundingRate``."""
        with self._lock:
            self._spec(symbol)
            self._funding[symbol] = [(int(t), str(r)) for t, r in rows]

    def requests(self, path: str | None = None, method: str | None = None) -> list[RecordedRequest]:
        """The recorded requests, oldest first, optionally only those for ``path`` / ``method``."""
        with self._lock:
            return [
                r for r in self._requests
                if (path is None or r.path == path) and (method is None or r.method == method.upper())
            ]

    def clear_requests(self) -> None:
        """Forget the recorded requests (and :attr:`unhandled`)."""
        with self._lock:
            self._requests.clear()
            self.unhandled.clear()

    # ------------------------------------------------------------------ ccxt

    def point_ccxt(self, exchange: Any, *, faithful_errors: bool = True, guard: bool = True) -> Any:
        """Point a ``ccxt.binanceusdm`` (sync or async) instance at this fake.

        Rewrites every URL in ``exchange.urls['api']`` -- and in ``'test'``,
        ``'demo'`` and ``'apiBackup'`` so sandbox/demo mode cannot escape either --
        to :attr:`base_url` plus the URL's original path, then raises
        :class:`NonLoopbackRequest` if any of them, or any API section the
        exchange defines, is left without a loopback URL.  Proxy settings from
        the environment are switched off for the exchange's HTTP session.

        ``faithful_errors``: make ccxt choose its error table for the fake's URLs
        as it would for the original hosts (so -4116 is ``InvalidOrder`` as from
        ``fapi.binance.com``, not a bare ``ExchangeError``).
        ``guard``: wrap ``exchange.fetch`` so a request to any non-loopback host is
        refused with :class:`NonLoopbackRequest` and listed in :attr:`foreign_urls`.

        Returns the exchange.
        """
        base = self.base_url
        reverse: dict[str, str] = {}
        for section in ("api", "test", "demo", "apiBackup"):
            value = exchange.urls.get(section)
            if isinstance(value, (dict, str)):
                exchange.urls[section] = self._rewrite_urls(value, base, reverse)
        self._require_loopback_urls(exchange)
        self._switch_off_proxies(exchange)
        if faithful_errors and hasattr(exchange, "get_exceptions_by_url"):
            self._errors_as_from_original_hosts(exchange, reverse)
        if guard:
            self._install_guard(exchange)
        return exchange

    @classmethod
    def _require_loopback_urls(cls, exchange: Any) -> None:
        """Raise :class:`NonLoopbackRequest` naming every URL (or API section) not on loopback."""
        bad = [(where, url) for where, url in cls._walk_urls(exchange.urls, ("api", "test", "demo", "apiBackup"))
               if not _is_loopback_host(urlsplit(url).hostname)]
        api_urls = exchange.urls.get("api") or {}
        for name in (getattr(exchange, "api", None) or {}):
            url = api_urls.get(name) if isinstance(api_urls, dict) else None
            if isinstance(url, str) and not _is_loopback_host(urlsplit(url).hostname):
                bad.append((f"api.{name}", url))
        if bad:
            raise NonLoopbackRequest(f"ccxt URLs not pointing at loopback after rewrite: {bad}")

    @staticmethod
    def _switch_off_proxies(exchange: Any) -> None:
        """No proxy from the environment or the exchange's settings for the exchange's HTTP session."""
        session = getattr(exchange, "session", None)
        if session is not None and hasattr(session, "trust_env"):
            session.trust_env = False
        if hasattr(exchange, "aiohttp_trust_env"):
            exchange.aiohttp_trust_env = False
        for attr in ("httpProxy", "httpsProxy", "socksProxy", "proxyUrl", "http_proxy", "https_proxy",
                     "socks_proxy", "proxy_url", "proxies"):
            if getattr(exchange, attr, None):
                setattr(exchange, attr, None)

    @staticmethod
    def _errors_as_from_original_hosts(exchange: Any, reverse: dict[str, str]) -> None:
        """ccxt picks its error table for a fake URL as for the original URL it replaced (``reverse``)."""
        original_lookup = exchange.get_exceptions_by_url
        ordered = sorted(reverse.items(), key=lambda kv: len(kv[0]), reverse=True)

        def get_exceptions_by_url(url: Any, exact_or_broad: str) -> dict:
            if isinstance(url, str):
                for new, orig in ordered:
                    if url.startswith(new):
                        url = orig + url[len(new):]
                        break
            return original_lookup(url, exact_or_broad)

        exchange.get_exceptions_by_url = get_exceptions_by_url

    def _install_guard(self, exchange: Any) -> None:
        original_fetch = exchange.fetch
        if getattr(original_fetch, "_fake_binance_guard", False):
            return

        def check(url: Any) -> None:
            host = urlsplit(str(url)).hostname
            if not _is_loopback_host(host):
                with self._lock:
                    self.foreign_urls.append(str(url))
                raise NonLoopbackRequest(f"refused a request to non-loopback host {host!r}: {url}")

        if inspect.iscoroutinefunction(original_fetch):
            @functools.wraps(original_fetch)
            async def guarded_async(url: Any, method: str = "GET", headers: Any = None, body: Any = None) -> Any:
                check(url)
                return await original_fetch(url, method, headers, body)
            guarded: Callable = guarded_async
        else:
            @functools.wraps(original_fetch)
            def guarded_sync(url: Any, method: str = "GET", headers: Any = None, body: Any = None) -> Any:
                check(url)
                return original_fetch(url, method, headers, body)
            guarded = guarded_sync
        guarded._fake_binance_guard = True  # type: ignore[attr-defined]  # a marker on the wrapper function
        exchange.fetch = guarded

    @staticmethod
    def _rewrite_urls(value: Any, base: str, reverse: dict[str, str]) -> Any:
        if isinstance(value, str):
            parts = urlsplit(value)
            if not parts.scheme:
                return value
            new = base + parts.path.rstrip("/")
            # /futures/data is shared by fapiData and dapiData: the USD-M (fapi) host wins.
            if new not in reverse or (parts.hostname or "").startswith("fapi."):
                reverse[new] = urlunsplit((parts.scheme, parts.netloc, parts.path.rstrip("/"), "", ""))
            return new
        if isinstance(value, dict):
            return {k: FakeBinanceUSDM._rewrite_urls(v, base, reverse) for k, v in value.items()}
        return value

    @staticmethod
    def _walk_urls(urls: dict, sections: Iterable[str]) -> list[tuple[str, str]]:
        found: list[tuple[str, str]] = []

        def walk(prefix: str, value: Any) -> None:
            if isinstance(value, str) and "://" in value:
                found.append((prefix, value))
            elif isinstance(value, dict):
                for k, v in value.items():
                    walk(f"{prefix}.{k}", v)

        for section in sections:
            if section in urls:
                walk(section, urls[section])
        return found

    # ------------------------------------------------------------------ HTTP plumbing

    def _now_ms(self) -> int:
        return int(time.time() * 1000) + self.clock_offset_ms

    @staticmethod
    def _matches(rule: Any, method: str, path: str) -> bool:
        return (rule.path is None or path.startswith(rule.path)) and (rule.method is None or rule.method == method)

    def _take_rule(self, rules: list, method: str, path: str) -> Any:
        for rule in rules:
            if self._matches(rule, method, path):
                rule.remaining -= 1
                if rule.remaining <= 0:
                    rules.remove(rule)
                return rule
        return None

    def _handle_http(self, method: str, path: str, raw_query: str, raw_body: str, headers: Any, client_ip: str) -> Any:
        try:
            shown = {k: v for k, v in parse_qsl(raw_query + ("&" if raw_query and raw_body else "") + raw_body,
                                                keep_blank_values=True) if k != "signature"}
        except ValueError:
            shown = {}
        record = RecordedRequest(method=method, path=path, params=shown, signed=False, time_ms=self._now_ms(),
                                 weight=_request_weight(method, path, shown))
        with self._lock:
            self._requests.append(record)
            down = self._down_mode
            delay = self._take_rule(self._delay_rules, method, path)
        if down == "reset":
            record.status = 0
            return _RESET
        if down == "503":
            return self._answer(record, 503, {"code": -1001, "msg": MSG_INTERNAL})
        if delay is not None:
            self._stopping.wait(delay.seconds)
        limited = self._rate_limited(record, client_ip)
        if limited is not None:
            return limited
        route = _ROUTES.get((method, path))
        if route is None:
            with self._lock:
                self.unhandled.append(record)
            return self._answer(record, 404, {"code": -5000, "msg": f"Path {path}, Method {method} is invalid"})
        with self._lock:
            fail = self._take_rule(self._fail_rules, method, path)
        if fail is not None and not fail.process:
            return self._fail_answer(record, fail, client_ip)
        try:
            params = self._authenticate(route[1], raw_query, raw_body, headers, client_ip, record)
            late = None
            if fail is None:
                with self._lock:
                    late = self._take_rule(self._late_rules, method, path)
            if late is not None:
                return self._park(record, route[0], params, late)
            with self._lock:
                status, payload = 200, getattr(self, route[0])(params)
        except BinanceAPIError as err:
            status, payload = err.status, {"code": err.code, "msg": err.msg}
        except Exception as exc:  # a bug in the fake: answer 500 and keep it for the test to see
            with self._lock:
                self.internal_errors.append(f"{method} {path}: {exc!r}")
            status, payload = 500, {"code": -1000, "msg": f"fake_binance internal error: {exc!r}"}
        if fail is not None:
            return self._fail_answer(record, fail, client_ip)
        return self._answer(record, status, payload)

    def _answer(self, record: RecordedRequest, status: int, payload: Any,
                extra: dict[str, str] | None = None) -> tuple[int, Any, dict[str, str]]:
        """Record the outcome and add the headers Binance puts on every answer."""
        record.status = status
        record.code = payload.get("code") if isinstance(payload, dict) and status != 200 else None
        headers = {"X-MBX-USED-WEIGHT-1M": str(self._used_weight())}
        if status == 200 and record.method == "POST" and record.path == "/fapi/v1/order":
            headers.update(self._order_count_headers())
        headers.update(extra or {})
        return status, payload, headers

    def _used_weight(self) -> int:
        """The weight of the requests received in the last minute (Binance's weights, see ``_request_weight``)."""
        cutoff = self._now_ms() - 60_000
        with self._lock:
            total = 0
            for rec in reversed(self._requests):
                if rec.time_ms < cutoff:
                    break
                total += rec.weight
            return total

    def _order_count_headers(self) -> dict[str, str]:
        """``X-MBX-ORDER-COUNT-10S`` / ``-1M``: orders accepted in the last 10 s / minute."""
        now = self._now_ms()
        counts = {10_000: 0, 60_000: 0}
        with self._lock:
            for rec in reversed(self._requests):
                if rec.time_ms < now - 60_000:
                    break
                if rec.method == "POST" and rec.path == "/fapi/v1/order" and rec.status == 200:
                    for window in counts:
                        if rec.time_ms >= now - window:
                            counts[window] += 1
        return {"X-MBX-ORDER-COUNT-10S": str(counts[10_000]), "X-MBX-ORDER-COUNT-1M": str(counts[60_000])}

    def _fail_answer(self, record: RecordedRequest, fail: _FailRule, client_ip: str) -> Any:
        body = fail.render(client_ip, self._now_ms()) if fail.render is not None else fail.body
        if isinstance(body, str):  # a gateway's HTML page: no Binance headers
            record.status, record.code = fail.status, None
            return fail.status, body, dict(fail.headers)
        return self._answer(record, fail.status, body, dict(fail.headers))

    def _authenticate(self, security: str, raw_query: str, raw_body: str,
                      headers: Any, client_ip: str, record: RecordedRequest) -> dict[str, str]:
        """Parse the parameters and check the API key and signature as Binance does."""
        pairs = parse_qsl(raw_query, keep_blank_values=True) + parse_qsl(raw_body, keep_blank_values=True)
        params: dict[str, str] = {}
        for key, value in pairs:
            if key in params:
                raise BinanceAPIError(-1101, "Duplicate values for a parameter detected.")
            params[key] = value
        if security != "NONE":
            record.signed = security == "SIGNED"
            key = headers.get("X-MBX-APIKEY")
            if not key:
                raise BinanceAPIError(-2014, MSG_API_KEY_FORMAT, 401)
            if not hmac.compare_digest(key.encode(), self._api_key.encode()):
                raise BinanceAPIError(-2015, MSG_BAD_API_KEY.format(ip=client_ip), 401)
        if security == "SIGNED":
            self._check_signature(params, raw_query, raw_body)
        params.pop("signature", None)
        return params

    def _check_signature(self, params: dict[str, str], raw_query: str, raw_body: str) -> None:
        signature = params.get("signature")
        if not signature:
            raise _missing("signature")
        if "timestamp" not in params:
            raise _missing("timestamp")
        if not params["timestamp"].isdigit():
            raise _not_digits("timestamp")

        def strip(raw: str) -> str:
            return "&".join(p for p in raw.split("&") if not p.startswith("signature=")) if raw else ""

        total = strip(raw_query) + strip(raw_body)
        expected = hmac.new(self._secret, total.encode(), hashlib.sha256).hexdigest()
        if not hmac.compare_digest(expected, signature.lower()):
            raise BinanceAPIError(-1022, MSG_BAD_SIGNATURE, 400)
        recv_window = 5000
        if "recvWindow" in params:
            if not params["recvWindow"].isdigit():
                raise _not_digits("recvWindow")
            recv_window = int(params["recvWindow"])
            if recv_window > 60000:
                raise BinanceAPIError(-1131, "recvWindow must be less than 60000")
        timestamp = int(params["timestamp"])
        now = self._now_ms()
        if timestamp >= now + 1000:
            raise BinanceAPIError(-1021, "Timestamp for this request was 1000ms ahead of the server's time.")
        if now - timestamp > recv_window:
            raise BinanceAPIError(-1021, "Timestamp for this request is outside of the recvWindow.")

    # ------------------------------------------------------------------ state helpers (call with the lock held)

    def _spec(self, symbol: str | None) -> SymbolSpec:
        if symbol is None or symbol not in self._specs:
            raise BinanceAPIError(-1121, "Invalid symbol.")
        return self._specs[symbol]

    @staticmethod
    def _norm_margin_type(value: str) -> str:
        upper = value.upper()
        if upper in ("CROSS", "CROSSED"):
            return "CROSSED"
        if upper == "ISOLATED":
            return "ISOLATED"
        raise BinanceAPIError(-1102, "Mandatory parameter 'marginType' was not sent, was empty/null, or malformed.")

    def _bracket_for(self, symbol: str, notional: Decimal) -> tuple[Decimal, Decimal]:
        rows = self._specs[symbol].bracket_rows()
        chosen = rows[0]
        for row in rows:
            if abs(notional) >= row["notionalFloor"]:
                chosen = row
        return Decimal(str(chosen["maintMarginRatio"])), Decimal(str(chosen["cum"]))

    def _max_notional(self, symbol: str, leverage: int) -> int:
        caps = [cap for lev, cap, _ in self._specs[symbol].brackets if lev >= leverage]
        return max(caps) if caps else 0

    def _pos_numbers(self, symbol: str) -> dict[str, Decimal]:
        pos = self._positions[symbol]
        mark = self._marks[symbol]
        notional = pos.amt * mark
        upnl = (mark - pos.entry) * pos.amt if pos.amt else ZERO
        pim = abs(notional) / pos.leverage
        mmr, cum = self._bracket_for(symbol, notional)
        maint = max(ZERO, abs(notional) * mmr - cum) if pos.amt else ZERO
        iso_wallet = abs(pos.amt) * pos.entry / pos.leverage if pos.margin_type == "ISOLATED" and pos.amt else ZERO
        oim = ZERO
        bid_notional = ask_notional = ZERO
        for o in self._orders.values():
            if o.symbol == symbol and o.status in ("NEW", "PARTIALLY_FILLED") and not o.reduce_only:
                rest = (o.qty - o.executed) * o.price
                oim += rest / pos.leverage
                if o.side == "BUY":
                    bid_notional += rest
                else:
                    ask_notional += rest
        return {"notional": notional, "upnl": upnl, "pim": pim, "maint": maint, "mmr": mmr, "cum": cum,
                "iso_wallet": iso_wallet, "oim": oim, "bid": bid_notional, "ask": ask_notional}

    def _account_numbers(self) -> dict[str, Decimal]:
        wallet = self._wallet.get("USDT", ZERO)
        total = {k: ZERO for k in ("upnl", "pim", "maint", "oim", "iso_wallet", "cross_upnl", "cross_pim")}
        for sym, pos in self._positions.items():
            n = self._pos_numbers(sym)
            for k in ("upnl", "pim", "maint", "oim", "iso_wallet"):
                total[k] += n[k]
            if pos.margin_type == "CROSSED":
                total["cross_upnl"] += n["upnl"]
                total["cross_pim"] += n["pim"]
        cross_wallet = wallet - total["iso_wallet"]
        available = cross_wallet + total["cross_upnl"] - total["cross_pim"] - total["oim"]
        return {
            "wallet": wallet,
            "upnl": total["upnl"],
            "margin_balance": wallet + total["upnl"],
            "initial": total["pim"] + total["oim"],
            "pim": total["pim"],
            "oim": total["oim"],
            "maint": total["maint"],
            "cross_wallet": cross_wallet,
            "cross_upnl": total["cross_upnl"],
            "available": max(ZERO, available),
            "max_withdraw": max(ZERO, min(available, cross_wallet)),
        }

    def _liquidation_price(self, symbol: str) -> Decimal:
        pos = self._positions[symbol]
        if pos.amt == 0:
            return ZERO
        n = self._pos_numbers(symbol)
        side = Decimal(1) if pos.amt > 0 else Decimal(-1)
        size = abs(pos.amt)
        if pos.margin_type == "ISOLATED":
            wallet, others = n["iso_wallet"], ZERO
        else:
            acct = self._account_numbers()
            others = ZERO
            for sym, other in self._positions.items():
                if sym != symbol and other.margin_type == "CROSSED":
                    o = self._pos_numbers(sym)
                    others += o["upnl"] - o["maint"]
            wallet = acct["cross_wallet"]
        denominator = size * n["mmr"] - side * size
        if denominator == 0:
            return ZERO
        lp = (wallet + others + n["cum"] - side * size * pos.entry) / denominator
        return lp if lp > 0 else ZERO

    def _find_order(self, symbol: str, order_id: str | None, client_id: str | None) -> _Order | None:
        if order_id is not None:
            if not order_id.isdigit():
                raise _not_digits("orderId")
            order = self._orders.get(int(order_id))
            return order if order is not None and order.symbol == symbol else None
        if client_id is not None:
            oid = self._client_ids.get((symbol, client_id))
            return self._orders.get(oid) if oid is not None else None
        raise BinanceAPIError(-1102, "Param 'origClientOrderId' or 'orderId' must be sent, but both were empty/null!")

    def _find_order_any(self, ref: int | str) -> _Order | None:
        if isinstance(ref, int) or (isinstance(ref, str) and ref.isdigit() and int(ref) in self._orders):
            return self._orders.get(int(ref))
        for (_, cid), oid in self._client_ids.items():
            if cid == ref:
                return self._orders[oid]
        return None

    def _fill(self, order: _Order, qty: Decimal, price: Decimal, maker: bool) -> None:
        """Execute ``qty`` of ``order`` at ``price`` (lock held)."""
        pos = self._positions[order.symbol]
        now = self._now_ms()
        if order.reduce_only:
            reducing = (order.side == "SELL" and pos.amt > 0) or (order.side == "BUY" and pos.amt < 0)
            if not reducing:
                order.status = "EXPIRED"
                order.update_time = now
                return
            qty = min(qty, abs(pos.amt))
        if qty <= 0:
            return
        signed = qty if order.side == "BUY" else -qty
        realized = ZERO
        old = pos.amt
        if old == 0 or (old > 0) == (signed > 0):
            new_amt = old + signed
            pos.entry = (abs(old) * pos.entry + qty * price) / abs(new_amt)
            pos.amt = new_amt
        else:
            closing = min(qty, abs(old))
            realized = (price - pos.entry) * closing * (1 if old > 0 else -1)
            pos.amt = old + signed
            if pos.amt == 0:
                pos.entry = ZERO
            elif qty > closing:  # flipped through zero: the rest opens at the fill price
                pos.entry = price
        pos.update_time = now
        rate = self.maker_fee if maker else self.taker_fee
        fee = (qty * price * rate).quantize(Decimal("0.00000001"), rounding=ROUND_HALF_UP)
        self._wallet["USDT"] = self._wallet.get("USDT", ZERO) + realized - fee
        self._wallet_time["USDT"] = now
        order.executed += qty
        order.cum_quote += qty * price
        order.status = "FILLED" if order.executed >= order.qty else "PARTIALLY_FILLED"
        if order.reduce_only and order.status == "PARTIALLY_FILLED" and pos.amt == 0:
            order.status = "EXPIRED"
        order.update_time = now
        spec = self._specs[order.symbol]
        self._trades.append({
            "buyer": order.side == "BUY",
            "commission": _fixed(fee, 8),
            "commissionAsset": "USDT",
            "id": next(self._trade_ids),
            "maker": maker,
            "orderId": order.order_id,
            "price": _fixed(price, spec.price_precision),
            "qty": _fixed(qty, spec.quantity_precision),
            "quoteQty": _fixed(qty * price, 8),
            "realizedPnl": _fixed(realized, 8),
            "side": order.side,
            "positionSide": "BOTH",
            "symbol": order.symbol,
            "time": now,
        })

    # ------------------------------------------------------------------ JSON renderers (lock held)

    def _order_json(self, o: _Order, with_time: bool = False) -> dict:
        spec = self._specs[o.symbol]
        avg = o.cum_quote / o.executed if o.executed else ZERO
        out = {
            "orderId": o.order_id,
            "symbol": o.symbol,
            "status": o.status,
            "clientOrderId": o.client_order_id,
            "price": _fixed(o.price, spec.price_precision),
            "avgPrice": _fixed(avg, spec.price_precision + 3) if o.executed else "0.00",
            "origQty": _fixed(o.qty, spec.quantity_precision),
            "executedQty": _fixed(o.executed, spec.quantity_precision),
            "cumQty": _fixed(o.executed, spec.quantity_precision),
            "cumQuote": _fixed(o.cum_quote, 5),
            "timeInForce": o.time_in_force,
            "type": o.type,
            "reduceOnly": o.reduce_only,
            "closePosition": o.close_position,
            "side": o.side,
            "positionSide": "BOTH",
            "stopPrice": _fixed(o.stop_price, spec.price_precision),
            "workingType": o.working_type,
            "priceProtect": False,
            "origType": o.orig_type or o.type,
            "priceMatch": "NONE",
            "selfTradePreventionMode": "EXPIRE_MAKER",
            "goodTillDate": 0,
            "updateTime": o.update_time,
        }
        if with_time:
            out["time"] = o.time
        return out

    def _position_common(self, symbol: str) -> tuple[_Position, SymbolSpec, dict[str, Decimal]]:
        return self._positions[symbol], self._specs[symbol], self._pos_numbers(symbol)

    def _position_v2_json(self, symbol: str) -> dict:
        pos, spec, n = self._position_common(symbol)
        iso_margin = n["iso_wallet"] + n["upnl"] if pos.margin_type == "ISOLATED" and pos.amt else ZERO
        return {
            "symbol": symbol,
            "positionAmt": _fixed(pos.amt, spec.quantity_precision),
            "entryPrice": _plain(pos.entry) if pos.amt else "0.0",
            "breakEvenPrice": _plain(self._break_even(pos)) if pos.amt else "0.0",
            "markPrice": _fixed(self._marks[symbol], 8),
            "unRealizedProfit": _fixed(n["upnl"], 8),
            "liquidationPrice": _plain(self._liquidation_price(symbol)),
            "leverage": str(pos.leverage),
            "maxNotionalValue": str(self._max_notional(symbol, pos.leverage)),
            "marginType": "isolated" if pos.margin_type == "ISOLATED" else "cross",
            "isolatedMargin": _fixed(iso_margin, 8),
            "isAutoAddMargin": "false",
            "positionSide": "BOTH",
            "notional": _plain(n["notional"]),
            "isolatedWallet": _plain(n["iso_wallet"]),
            "updateTime": pos.update_time,
            "isolated": pos.margin_type == "ISOLATED",
            "adlQuantile": 0,
        }

    def _position_v3_json(self, symbol: str) -> dict:
        pos, spec, n = self._position_common(symbol)
        iso_margin = n["iso_wallet"] + n["upnl"] if pos.margin_type == "ISOLATED" and pos.amt else ZERO
        return {
            "symbol": symbol,
            "positionSide": "BOTH",
            "positionAmt": _fixed(pos.amt, spec.quantity_precision),
            "entryPrice": _plain(pos.entry) if pos.amt else "0.0",
            "breakEvenPrice": _plain(self._break_even(pos)) if pos.amt else "0.0",
            "markPrice": _fixed(self._marks[symbol], 8),
            "unRealizedProfit": _fixed(n["upnl"], 8),
            "liquidationPrice": _plain(self._liquidation_price(symbol)),
            "isolatedMargin": _fixed(iso_margin, 8),
            "notional": _plain(n["notional"]),
            "marginAsset": "USDT",
            "isolatedWallet": _plain(n["iso_wallet"]),
            "initialMargin": _fixed(n["pim"] + n["oim"], 8),
            "maintMargin": _fixed(n["maint"], 8),
            "positionInitialMargin": _fixed(n["pim"], 8),
            "openOrderInitialMargin": _fixed(n["oim"], 8),
            "adl": 0,
            "bidNotional": _plain(n["bid"]),
            "askNotional": _plain(n["ask"]),
            "updateTime": pos.update_time,
        }

    def _break_even(self, pos: _Position) -> Decimal:
        factor = (1 + self.taker_fee) if pos.amt > 0 else (1 - self.taker_fee)
        return (pos.entry * factor).quantize(Decimal("0.00000001"), rounding=ROUND_HALF_UP)

    def _has_position_or_orders(self, symbol: str) -> bool:
        if self._positions[symbol].amt != 0:
            return True
        return any(o.symbol == symbol and o.status in ("NEW", "PARTIALLY_FILLED") for o in self._orders.values())

    def _asset_rows(self, v3: bool) -> list[dict]:
        acct = self._account_numbers()
        rows = []
        assets = list(dict.fromkeys(["USDT", *self._wallet.keys(), "BNB", "USDC"]))
        for asset in assets:
            wallet = self._wallet.get(asset, ZERO)
            updated = self._wallet_time.get(asset, 0)
            if asset == "USDT":
                upnl, margin_balance, initial = acct["upnl"], acct["margin_balance"], acct["initial"]
                maint, pim, oim = acct["maint"], acct["pim"], acct["oim"]
                cross_wallet, cross_upnl = acct["cross_wallet"], acct["cross_upnl"]
                available, max_withdraw = acct["available"], acct["max_withdraw"]
            else:
                upnl = initial = maint = pim = oim = cross_upnl = ZERO
                margin_balance = cross_wallet = available = max_withdraw = wallet
            row = {
                "asset": asset,
                "walletBalance": _fixed(wallet, 8),
                "unrealizedProfit": _fixed(upnl, 8),
                "marginBalance": _fixed(margin_balance, 8),
                "maintMargin": _fixed(maint, 8),
                "initialMargin": _fixed(initial, 8),
                "positionInitialMargin": _fixed(pim, 8),
                "openOrderInitialMargin": _fixed(oim, 8),
                "crossWalletBalance": _fixed(cross_wallet, 8),
                "crossUnPnl": _fixed(cross_upnl, 8),
                "availableBalance": _fixed(available, 8),
                "maxWithdrawAmount": _fixed(max_withdraw, 8),
                "updateTime": updated,
            }
            if not v3:
                row["marginAvailable"] = True
            rows.append(row)
        return rows

    def _account_totals(self) -> dict:
        acct = self._account_numbers()
        return {
            "totalInitialMargin": _fixed(acct["initial"], 8),
            "totalMaintMargin": _fixed(acct["maint"], 8),
            "totalWalletBalance": _fixed(acct["wallet"], 8),
            "totalUnrealizedProfit": _fixed(acct["upnl"], 8),
            "totalMarginBalance": _fixed(acct["margin_balance"], 8),
            "totalPositionInitialMargin": _fixed(acct["pim"], 8),
            "totalOpenOrderInitialMargin": _fixed(acct["oim"], 8),
            "totalCrossWalletBalance": _fixed(acct["cross_wallet"], 8),
            "totalCrossUnPnl": _fixed(acct["cross_upnl"], 8),
            "availableBalance": _fixed(acct["available"], 8),
            "maxWithdrawAmount": _fixed(acct["max_withdraw"], 8),
        }

    # ------------------------------------------------------------------ endpoints (lock held)

    def _ep_ping(self, params: dict) -> dict:
        return {}

    def _ep_time(self, params: dict) -> dict:
        return {"serverTime": self._now_ms()}

    def _symbol_info(self, spec: SymbolSpec) -> dict:
        return {
            "symbol": spec.symbol,
            "pair": spec.symbol,
            "contractType": "PERPETUAL",
            "deliveryDate": 4133404800000,
            "onboardDate": spec.onboard_date,
            "status": "TRADING",
            "maintMarginPercent": "2.5000",
            "requiredMarginPercent": "5.0000",
            "baseAsset": spec.base,
            "quoteAsset": spec.quote,
            "marginAsset": "USDT",
            "pricePrecision": spec.price_precision,
            "quantityPrecision": spec.quantity_precision,
            "baseAssetPrecision": 8,
            "quotePrecision": 8,
            "underlyingType": "COIN",
            "underlyingSubType": list(spec.underlying_sub_type),
            "triggerProtect": "0.0500",
            "liquidationFee": "0.012500",
            "marketTakeBound": "0.05",
            "maxMoveOrderLimit": 10000,
            "filters": [
                {"filterType": "PRICE_FILTER", "minPrice": spec.min_price, "maxPrice": spec.max_price,
                 "tickSize": spec.tick_size},
                {"filterType": "LOT_SIZE", "minQty": spec.min_qty, "maxQty": spec.max_qty, "stepSize": spec.step_size},
                {"filterType": "MARKET_LOT_SIZE", "minQty": spec.min_qty, "maxQty": spec.market_max_qty,
                 "stepSize": spec.step_size},
                {"filterType": "MAX_NUM_ORDERS", "limit": 200},
                {"filterType": "MAX_NUM_ALGO_ORDERS", "limit": 10},
                {"filterType": "MIN_NOTIONAL", "notional": spec.min_notional},
                {"filterType": "PERCENT_PRICE", "multiplierUp": spec.percent_up, "multiplierDown": spec.percent_down,
                 "multiplierDecimal": "4"},
            ],
            "orderTypes": ["LIMIT", "MARKET", "STOP", "STOP_MARKET", "TAKE_PROFIT", "TAKE_PROFIT_MARKET",
                           "TRAILING_STOP_MARKET"],
            "timeInForce": ["GTC", "IOC", "FOK", "GTX", "GTD"],
            "permissionSets": ["GRID", "COPY"],
        }

    def _ep_exchange_info(self, params: dict) -> dict:
        return {
            "timezone": "UTC",
            "serverTime": self._now_ms(),
            "futuresType": "U_MARGINED",
            "rateLimits": [
                {"rateLimitType": "REQUEST_WEIGHT", "interval": "MINUTE", "intervalNum": 1, "limit": 2400},
                {"rateLimitType": "ORDERS", "interval": "MINUTE", "intervalNum": 1, "limit": 1200},
                {"rateLimitType": "ORDERS", "interval": "SECOND", "intervalNum": 10, "limit": 300},
            ],
            "exchangeFilters": [],
            "assets": [
                {"asset": "USDT", "marginAvailable": True, "autoAssetExchange": "-10000"},
                {"asset": "BTC", "marginAvailable": True, "autoAssetExchange": "-0.10000000"},
                {"asset": "USDC", "marginAvailable": True, "autoAssetExchange": "-10000"},
            ],
            "symbols": [self._symbol_info(spec) for spec in self._specs.values()],
        }

    def _symbols_param(self, params: dict) -> list[str]:
        if "symbol" in params:
            self._spec(params["symbol"])
            return [params["symbol"]]
        return list(self._specs)

    def _ep_ticker_price(self, params: dict) -> Any:
        rows = [{"symbol": s, "price": _plain(self._marks[s]), "time": self._now_ms()}
                for s in self._symbols_param(params)]
        return rows[0] if "symbol" in params else rows

    def _ep_book_ticker(self, params: dict) -> Any:
        rows = []
        for s in self._symbols_param(params):
            spec, mark = self._specs[s], self._marks[s]
            tick = Decimal(spec.tick_size)
            rows.append({"symbol": s, "bidPrice": _fixed(mark - tick, spec.price_precision), "bidQty": "1.000",
                         "askPrice": _fixed(mark, spec.price_precision), "askQty": "1.000",
                         "time": self._now_ms(), "lastUpdateId": self._now_ms()})
        return rows[0] if "symbol" in params else rows

    def _ep_ticker_24hr(self, params: dict) -> Any:
        rows = []
        now = self._now_ms()
        for s in self._symbols_param(params):
            spec, mark = self._specs[s], self._marks[s]
            pp = spec.price_precision
            rows.append({
                "symbol": s, "priceChange": _fixed(ZERO, pp), "priceChangePercent": "0.000",
                "weightedAvgPrice": _fixed(mark, pp), "lastPrice": _fixed(mark, pp), "lastQty": "0.001",
                "openPrice": _fixed(mark, pp), "highPrice": _fixed(mark, pp), "lowPrice": _fixed(mark, pp),
                "volume": "0", "quoteVolume": "0", "openTime": now - 86_400_000, "closeTime": now,
                "firstId": 1, "lastId": 1, "count": 1,
            })
        return rows[0] if "symbol" in params else rows

    _INTERVAL_MS = {"1m": 60_000, "5m": 300_000, "15m": 900_000, "1h": 3_600_000, "4h": 14_400_000,
                    "8h": 28_800_000, "1d": 86_400_000, "1w": 604_800_000}

    def _ep_klines(self, params: dict) -> list:
        spec = self._spec(params.get("symbol"))
        interval = params.get("interval") or ""
        if interval not in self._INTERVAL_MS:
            raise BinanceAPIError(-1120, "Invalid interval.")
        step = self._INTERVAL_MS[interval]
        limit = min(int(params.get("limit") or 500), 1500)
        start = int(params["startTime"]) if params.get("startTime") else None
        end = int(params["endTime"]) if params.get("endTime") else None
        rows = [r for r in self._klines.get((spec.symbol, interval), [])
                if (start is None or r[0] >= start) and (end is None or r[0] <= end)]
        rows = rows[:limit] if start is not None else rows[-limit:]
        pp = spec.price_precision
        return [[t, _fixed(_dec(o), pp), _fixed(_dec(h), pp), _fixed(_dec(lo), pp), _fixed(_dec(c), pp),
                 _plain(_dec(v), 3), t + step - 1, _plain(_dec(v) * _dec(c), 4), 1, "0", "0", "0"]
                for t, o, h, lo, c, v in rows]

    def _ep_funding_rate(self, params: dict) -> list:
        spec = self._spec(params.get("symbol"))
        limit = min(int(params.get("limit") or 100), 1000)
        start = int(params["startTime"]) if params.get("startTime") else None
        end = int(params["endTime"]) if params.get("endTime") else None
        rows = [r for r in self._funding.get(spec.symbol, [])
                if (start is None or r[0] >= start) and (end is None or r[0] <= end)]
        rows = rows[:limit] if start is not None else rows[-limit:]
        mark = _fixed(self._marks[spec.symbol], 8)
        return [{"symbol": spec.symbol, "fundingTime": t, "fundingRate": r, "markPrice": mark} for t, r in rows]

    def _ep_premium_index(self, params: dict) -> Any:
        now = self._now_ms()
        next_funding = (now // 28_800_000 + 1) * 28_800_000
        rows = [{
            "symbol": s, "markPrice": _fixed(self._marks[s], 8), "indexPrice": _fixed(self._marks[s], 8),
            "estimatedSettlePrice": _fixed(self._marks[s], 8), "lastFundingRate": "0.00010000",
            "interestRate": "0.00010000", "nextFundingTime": next_funding, "time": now,
        } for s in self._symbols_param(params)]
        return rows[0] if "symbol" in params else rows

    def _ep_leverage_bracket(self, params: dict) -> Any:
        rows = [{"symbol": s, "brackets": self._specs[s].bracket_rows()} for s in self._symbols_param(params)]
        return rows[0] if "symbol" in params else rows

    def _ep_balance(self, params: dict) -> list:
        out = []
        for row in self._asset_rows(v3=True):
            out.append({
                "accountAlias": "FzSgFzuX", "asset": row["asset"], "balance": row["walletBalance"],
                "crossWalletBalance": row["crossWalletBalance"], "crossUnPnl": row["crossUnPnl"],
                "availableBalance": row["availableBalance"], "maxWithdrawAmount": row["maxWithdrawAmount"],
                "marginAvailable": True, "updateTime": row["updateTime"],
            })
        return out

    def _ep_account_v3(self, params: dict) -> dict:
        positions = []
        for s in self._specs:
            if not self._has_position_or_orders(s):
                continue
            p = self._position_v3_json(s)
            positions.append({k: p[k] for k in ("symbol", "positionSide", "positionAmt", "unRealizedProfit",
                                                "isolatedMargin", "notional", "isolatedWallet", "initialMargin",
                                                "maintMargin", "updateTime")})
            positions[-1]["unrealizedProfit"] = positions[-1].pop("unRealizedProfit")
        return {**self._account_totals(), "assets": self._asset_rows(v3=True), "positions": positions}

    def _ep_account_v2(self, params: dict) -> dict:
        positions = []
        for s in self._specs:
            v2, v3 = self._position_v2_json(s), self._position_v3_json(s)
            positions.append({
                "symbol": s, "initialMargin": v3["initialMargin"], "maintMargin": v3["maintMargin"],
                "unrealizedProfit": v3["unRealizedProfit"], "positionInitialMargin": v3["positionInitialMargin"],
                "openOrderInitialMargin": v3["openOrderInitialMargin"], "leverage": v2["leverage"],
                "isolated": v2["isolated"], "entryPrice": v2["entryPrice"], "breakEvenPrice": v2["breakEvenPrice"],
                "maxNotional": v2["maxNotionalValue"], "bidNotional": v3["bidNotional"],
                "askNotional": v3["askNotional"], "positionSide": "BOTH", "positionAmt": v2["positionAmt"],
                "updateTime": v2["updateTime"],
            })
        return {
            "feeTier": 0, "feeBurn": False, "canTrade": True, "canDeposit": True, "canWithdraw": True,
            "updateTime": 0, "multiAssetsMargin": False, "tradeGroupId": -1,
            **self._account_totals(), "assets": self._asset_rows(v3=False), "positions": positions,
        }

    def _ep_position_risk_v2(self, params: dict) -> list:
        return [self._position_v2_json(s) for s in self._symbols_param(params)]

    def _ep_position_risk_v3(self, params: dict) -> list:
        return [self._position_v3_json(s) for s in self._symbols_param(params) if self._has_position_or_orders(s)]

    def _ep_position_side_dual(self, params: dict) -> dict:
        return {"dualSidePosition": False}

    def _ep_set_leverage(self, params: dict) -> dict:
        spec = self._spec(params.get("symbol"))
        raw = params.get("leverage")
        if raw is None or raw == "":
            raise _missing("leverage")
        if not raw.isdigit():
            raise _not_digits("leverage")
        leverage = int(raw)
        if not 1 <= leverage <= spec.max_leverage:
            raise BinanceAPIError(-4028, f"Leverage {leverage} is not valid")
        pos = self._positions[spec.symbol]
        if pos.amt and abs(pos.amt * self._marks[spec.symbol]) > self._max_notional(spec.symbol, leverage):
            raise BinanceAPIError(-2027, "Exceeded the maximum allowable position at current leverage.")
        pos.leverage = leverage
        return {"leverage": leverage, "maxNotionalValue": str(self._max_notional(spec.symbol, leverage)),
                "symbol": spec.symbol}

    def _ep_set_margin_type(self, params: dict) -> dict:
        spec = self._spec(params.get("symbol"))
        if not params.get("marginType"):
            raise _missing("marginType")
        wanted = self._norm_margin_type(params["marginType"])
        pos = self._positions[spec.symbol]
        if pos.margin_type == wanted:
            raise BinanceAPIError(-4046, "No need to change margin type.")
        if pos.amt != 0:
            raise BinanceAPIError(-4048, "Margin type cannot be changed if there exists position.")
        if any(o.symbol == spec.symbol and o.status in ("NEW", "PARTIALLY_FILLED") for o in self._orders.values()):
            raise BinanceAPIError(-4047, "Margin type cannot be changed if there exists open orders.")
        pos.margin_type = wanted
        return {"code": 200, "msg": "success"}

    _parse_number = staticmethod(_parse_number)

    def _ep_new_order(self, params: dict) -> dict:
        for name in ("symbol", "side", "type"):
            if not params.get(name):
                raise _missing(name)
        spec = self._spec(params["symbol"])
        side, otype = params["side"], params["type"]
        self._check_order_kind(params)
        reduce_only = params.get("reduceOnly", "false").lower() == "true"
        client_id = params.get("newClientOrderId")
        if client_id is not None and not _CLIENT_ORDER_ID_RE.match(client_id):
            raise BinanceAPIError(-1100, "Illegal characters found in parameter 'newClientOrderId'; legal range is "
                                         "'^[\\.A-Z\\:/a-z0-9_-]{1,36}$'.")
        qty = self._parse_number(params, "quantity")
        price, tif = self._limit_terms(params, otype)
        self._check_quantity(spec, qty, otype)
        mark = self._marks[spec.symbol]
        if otype == "LIMIT":
            self._check_price(spec, price, "price")
            self._check_percent_price(spec, side, price, mark)
        ref_price = price if otype == "LIMIT" else mark
        if not reduce_only and qty * ref_price < Decimal(spec.min_notional):
            raise BinanceAPIError(-4164, MSG_MIN_NOTIONAL.format(n=spec.min_notional))
        order, accepted = self._place_order(spec, side, otype, tif, qty, price, reduce_only, client_id)
        if params.get("newOrderRespType", "ACK") == "ACK":
            return accepted
        return self._order_json(order)

    @staticmethod
    def _check_order_kind(params: dict) -> None:
        """The side, the order type and the one-way position mode of a new (non-algo) order."""
        if params["side"] not in ("BUY", "SELL"):
            raise BinanceAPIError(-1117, "Invalid side.")
        otype = params["type"]
        if otype in ("STOP", "STOP_MARKET", "TAKE_PROFIT", "TAKE_PROFIT_MARKET", "TRAILING_STOP_MARKET"):
            # since 2025-12-09 conditional orders go to POST /fapi/v1/algoOrder only
            raise BinanceAPIError(-4120, MSG_ALGO_ENDPOINT)
        if otype not in ("MARKET", "LIMIT"):
            raise BinanceAPIError(-1116, "Invalid orderType.")
        if params.get("positionSide", "BOTH") != "BOTH":
            raise BinanceAPIError(-4061, "Order's position side does not match user's setting.")
        if params.get("closePosition", "false") == "true":
            raise BinanceAPIError(-4136, "Target strategy invalid for orderType MARKET,closePosition true")

    @staticmethod
    def _limit_terms(params: dict, otype: str) -> tuple[Decimal, str]:
        """``(price, timeInForce)`` of a new order: a LIMIT order's, checked; a MARKET order's ``(0, "GTC")``."""
        tif = params.get("timeInForce", "GTC")
        if otype != "LIMIT":
            if "price" in params:
                raise BinanceAPIError(-1106, "Parameter 'price' sent when not required.")
            return ZERO, tif
        price = _parse_number(params, "price")
        if "timeInForce" not in params:
            raise _missing("timeInForce")
        if tif not in ("GTC", "IOC", "FOK", "GTX", "GTD"):
            raise BinanceAPIError(-1115, "Invalid timeInForce.")
        return price, tif

    def _check_quantity(self, spec: SymbolSpec, qty: Decimal, otype: str) -> None:
        """Binance's LOT_SIZE / MARKET_LOT_SIZE checks."""
        if qty <= 0:
            raise BinanceAPIError(-4003, "Quantity less than or equal to zero.")
        if _decimals(qty) > spec.quantity_precision:
            raise BinanceAPIError(-1111, MSG_PRECISION)
        step = Decimal(spec.step_size)
        if (qty - Decimal(spec.min_qty)) % step != 0:
            raise BinanceAPIError(-4023, "Qty not increased by step size.")
        if qty < Decimal(spec.min_qty):
            raise BinanceAPIError(-4004, "Quantity less than min qty.")
        if qty > Decimal(spec.market_max_qty if otype == "MARKET" else spec.max_qty):
            raise BinanceAPIError(-4005, "Quantity greater than max qty.")

    def _check_price(self, spec: SymbolSpec, price: Decimal, name: str) -> None:
        """Binance's PRICE_FILTER checks (``name``: the parameter, for the messages)."""
        if price <= 0:
            raise BinanceAPIError(-4001, "Price less than 0.")
        if _decimals(price) > spec.price_precision:
            raise BinanceAPIError(-1111, MSG_PRECISION)
        if (price - Decimal(spec.min_price)) % Decimal(spec.tick_size) != 0:
            raise BinanceAPIError(-4014, "Price not increased by tick size.")
        if price < Decimal(spec.min_price):
            raise BinanceAPIError(-4013, "Price less than min price.")
        if price > Decimal(spec.max_price):
            raise BinanceAPIError(-4002, "Price greater than max price.")

    @staticmethod
    def _check_percent_price(spec: SymbolSpec, side: str, price: Decimal, mark: Decimal) -> None:
        """Binance's PERCENT_PRICE band around the mark price for limit orders."""
        up = (mark * Decimal(spec.percent_up)).quantize(Decimal(spec.tick_size))
        down = (mark * Decimal(spec.percent_down)).quantize(Decimal(spec.tick_size))
        if side == "BUY" and price > up:
            raise BinanceAPIError(-4016, f"Limit price can't be higher than {_plain(up)}.")
        if side == "SELL" and price < down:
            raise BinanceAPIError(-4024, f"Limit price can't be lower than {_plain(down)}.")

    def _place_order(self, spec: SymbolSpec, side: str, otype: str, tif: str, qty: Decimal, price: Decimal,
                     reduce_only: bool, client_id: str | None, *, orig_type: str = "", stop_price: Decimal = ZERO,
                     working_type: str = "CONTRACT_PRICE", close_position: bool = False) -> tuple[_Order, dict]:
        """Put a validated order in the book and let it take what liquidity it may (lock held).

        Raises -2022 (reduce-only that cannot reduce), -4116 (client order id in use),
        -2019 (margin) or -5022 (post-only that would take).  Returns the order and
        the ``ACK`` answer (the order as it was accepted, before any fill)."""
        mark = self._marks[spec.symbol]
        ref_price = price if otype == "LIMIT" else mark
        pos = self._positions[spec.symbol]
        if reduce_only:
            reducing = (side == "SELL" and pos.amt > 0) or (side == "BUY" and pos.amt < 0)
            if not reducing:
                raise BinanceAPIError(-2022, "ReduceOnly Order is rejected.")
        if client_id is not None:
            existing = self._client_ids.get((spec.symbol, client_id))
            if existing is not None and (self.client_order_id_scope == "all"
                                         or self._orders[existing].status in OPEN_STATUSES):
                raise BinanceAPIError(-4116, MSG_DUPLICATE_CLIENT_ID)
        else:
            client_id = "".join(random.choices(string.ascii_letters + string.digits, k=22))
        # margin: only the part of the order that adds exposure needs initial margin
        if not reduce_only:
            same_direction = pos.amt == 0 or (pos.amt > 0) == (side == "BUY")
            adding = qty if same_direction else max(ZERO, qty - abs(pos.amt))
            required = adding * ref_price / pos.leverage
            if required > 0 and required > self._account_numbers()["available"]:
                raise BinanceAPIError(-2019, "Margin is insufficient.")
        crosses = (side == "BUY" and price >= mark) or (side == "SELL" and price <= mark)
        if otype == "LIMIT" and tif == "GTX" and crosses:
            raise BinanceAPIError(-5022, "Due to the order could not be executed as maker, the Post Only order will "
                                         "be rejected. The order will not be recorded in the order history")
        now = self._now_ms()
        order = _Order(
            order_id=next(self._order_ids), symbol=spec.symbol, client_order_id=client_id, side=side, type=otype,
            time_in_force=tif, qty=qty, price=price, reduce_only=reduce_only, time=now, update_time=now,
            orig_type=orig_type or otype, stop_price=stop_price, working_type=working_type,
            close_position=close_position,
        )
        self._orders[order.order_id] = order
        self._client_ids[(spec.symbol, client_id)] = order.order_id
        accepted = self._order_json(order)
        if otype == "MARKET":
            self._take_liquidity(order, qty, mark, self._take_partial_rule(spec.symbol))
            self._expire_rest(order)  # a market order never rests
        elif tif in ("IOC", "FOK"):
            if crosses:
                rule = self._take_partial_rule(spec.symbol)
                if not (rule is not None and tif == "FOK"):  # FOK: all or nothing
                    self._take_liquidity(order, qty, mark, rule)
            self._expire_rest(order)
        elif crosses and (self.fill_marketable_limits or self._has_partial_rule(spec.symbol)):
            self._take_liquidity(order, qty, mark, self._take_partial_rule(spec.symbol))
        return order, accepted

    def _expire_rest(self, order: _Order) -> None:
        if order.status in OPEN_STATUSES:
            order.status = "EXPIRED"
            order.update_time = self._now_ms()

    def _order_from_params(self, params: dict, missing_code: int = -2013) -> _Order:
        spec = self._spec(params.get("symbol"))
        order = self._find_order(spec.symbol, params.get("orderId"), params.get("origClientOrderId"))
        if order is None:
            if missing_code == -2011:
                raise BinanceAPIError(-2011, "Unknown order sent.")
            raise BinanceAPIError(-2013, "Order does not exist.")
        return order

    def _ep_query_order(self, params: dict) -> dict:
        return self._order_json(self._order_from_params(params), with_time=True)

    def _ep_query_open_order(self, params: dict) -> dict:
        order = self._order_from_params(params)
        if order.status not in ("NEW", "PARTIALLY_FILLED"):
            raise BinanceAPIError(-2013, "Order does not exist.")
        return self._order_json(order, with_time=True)

    def _ep_cancel_order(self, params: dict) -> dict:
        order = self._order_from_params(params, missing_code=-2011)
        if order.status not in ("NEW", "PARTIALLY_FILLED"):
            raise BinanceAPIError(-2011, "Unknown order sent.")
        order.status = "CANCELED"
        order.update_time = self._now_ms()
        return self._order_json(order)

    def _ep_cancel_all(self, params: dict) -> dict:
        spec = self._spec(params.get("symbol"))
        now = self._now_ms()
        for order in self._orders.values():
            if order.symbol == spec.symbol and order.status in ("NEW", "PARTIALLY_FILLED"):
                order.status = "CANCELED"
                order.update_time = now
        return {"code": 200, "msg": "The operation of cancel all open order is done."}

    def _ep_open_orders(self, params: dict) -> list:
        symbols = self._symbols_param(params)
        return [self._order_json(o, with_time=True) for o in self._orders.values()
                if o.symbol in symbols and o.status in ("NEW", "PARTIALLY_FILLED")]

    _WEEK_MS = 7 * 86_400_000

    def _time_window(self, params: dict) -> tuple[int | None, int | None]:
        """``startTime``/``endTime`` as Binance reads them: at most 7 days apart (-1127);
        neither sent means the last 7 days."""
        start = int(params["startTime"]) if params.get("startTime", "").isdigit() else None
        end = int(params["endTime"]) if params.get("endTime", "").isdigit() else None
        if start is not None and end is not None and end - start > self._WEEK_MS:
            raise BinanceAPIError(-1127, "More than 168 hours between startTime and endTime.")
        if start is None and end is None:
            return self._now_ms() - self._WEEK_MS, None
        if start is None and end is not None:
            start = end - self._WEEK_MS
        elif end is None and start is not None:
            end = start + self._WEEK_MS
        return start, end

    @staticmethod
    def _limit(params: dict, default: int = 500, most: int = 1000) -> int:
        return min(int(params["limit"]), most) if params.get("limit", "").isdigit() else default

    def _ep_all_orders(self, params: dict) -> list:
        spec = self._spec(params.get("symbol"))
        rows = [self._order_json(o, with_time=True) for o in self._orders.values() if o.symbol == spec.symbol]
        limit = self._limit(params)
        if params.get("orderId", "").isdigit():  # orders >= orderId, oldest first
            rows = [r for r in rows if r["orderId"] >= int(params["orderId"])]
            if "startTime" in params or "endTime" in params:
                start, end = self._time_window(params)
                rows = [r for r in rows if r["time"] >= start and (end is None or r["time"] <= end)]
            return rows[:limit]
        start, end = self._time_window(params)
        rows = [r for r in rows if r["time"] >= start and (end is None or r["time"] <= end)]
        return rows[-limit:]

    def _ep_user_trades(self, params: dict) -> list:
        spec = self._spec(params.get("symbol"))
        rows = [dict(t) for t in self._trades if t["symbol"] == spec.symbol]
        limit = self._limit(params)
        if params.get("orderId", "").isdigit():
            rows = [t for t in rows if t["orderId"] == int(params["orderId"])]
        if params.get("fromId", "").isdigit():
            if "startTime" in params or "endTime" in params:
                raise BinanceAPIError(-1128, "Combination of optional parameters invalid.")
            return [t for t in rows if t["id"] >= int(params["fromId"])][:limit]
        if "orderId" in params and "startTime" not in params and "endTime" not in params:
            return rows[-limit:]
        start, end = self._time_window(params)
        rows = [t for t in rows if t["time"] >= start and (end is None or t["time"] <= end)]
        if "startTime" in params:
            return rows[:limit]
        return rows[-limit:]

    def _ep_capital_config(self, params: dict) -> list:
        names = {"USDT": "TetherUS", "BTC": "Bitcoin", "ETH": "Ethereum", "SOL": "Solana", "BNB": "BNB",
                 "USDC": "USD Coin"}
        coins = list(dict.fromkeys(["USDT", *(s.base for s in self._specs.values()), "BNB", "USDC"]))
        out = []
        for coin in coins:
            free = self._wallet.get(coin, ZERO) if coin != "USDT" else ZERO
            out.append({
                "coin": coin, "name": names.get(coin, coin), "depositAllEnable": True, "withdrawAllEnable": True,
                "free": _plain(free), "locked": "0", "freeze": "0", "withdrawing": "0", "ipoing": "0",
                "ipoable": "0", "storage": "0", "isLegalMoney": False, "trading": True,
                "networkList": [{
                    "network": coin if coin in ("BTC", "ETH", "SOL", "BNB") else "ETH",
                    "coin": coin, "withdrawIntegerMultiple": "0.00000001", "isDefault": True,
                    "depositEnable": True, "withdrawEnable": True, "depositDesc": "", "withdrawDesc": "",
                    "name": names.get(coin, coin), "resetAddressStatus": False, "withdrawFee": "0.0001",
                    "withdrawMin": "0.001", "withdrawMax": "9999999", "minConfirm": 1, "unLockConfirm": 0,
                    "sameAddress": False, "depositDust": "0.00000001",
                }],
            })
        return out

    def _ep_margin_all_pairs(self, params: dict) -> list:
        return [
            {"id": 351637150141315861 + i, "symbol": spec.symbol, "base": spec.base, "quote": spec.quote,
             "isMarginTrade": True, "isBuyAllowed": True, "isSellAllowed": True}
            for i, spec in enumerate(self._specs.values())
        ]
