"""``ccxt``: crypto perpetuals on Binance USD-M futures and Hyperliquid, through ``ccxt`` (pinned 4.5.90).

* **Keys** come from environment variables named in ``brokers.yaml``, read when the
  broker is built (:func:`make_exchange`); a missing one is an error then.
* **Markets** are loaded once per broker and cached by ccxt on the exchange object.
* **Symbols**: the project's ``BASE-QUOTE-PERP`` is ccxt's ``BASE/QUOTE:QUOTE`` (a
  linear perpetual settled in the quote currency) unless ``symbols`` maps it.
  Quantities are in contracts (``multiplier`` = ccxt's ``contractSize``).
* **Rounding**: amounts and prices go through ``amount_to_precision`` /
  ``price_to_precision``; an amount the venue's step would change is refused rather
  than silently changed (the Commander already rounds to the lot).
* **Leverage and margin mode** are set per symbol before its first order (once per
  broker). Binance in hedge (dual-side) position mode is refused: orders are one-way.
* **Client order ids** are passed as ``clientOrderId`` (Hyperliquid needs a 128-bit
  hex ``cloid``: the first 32 hex digits of the SHA-256 of the id; the broker maps a
  cloid it has seen back to our id, so open orders in :meth:`CcxtBroker.portfolio`
  carry our client order id). Before placing, the broker asks the venue for that id
  and refuses a duplicate itself; the venue's own refusal (Binance -4116) maps to
  :class:`~brokers.base.DuplicateOrder` too.
* **Lost answers.** An order whose answer is lost (timeout, reset connection, 5xx,
  Binance -1006/-1007 "execution status unknown", an unreadable answer) is looked up
  once by its client order id: found, its state is returned; not found, the broker
  raises :class:`~brokers.base.NotConnected` (or a plain ``BrokerError``), never an
  ``OrderRejected``: the order may still execute, so the Commander records it
  ``unknown`` and the next run asks the venue. A 429/418 raises
  :class:`~brokers.base.RateLimited` with the ``Retry-After`` seconds (the venue did not
  take the order). Once the venue has taken an order, a failure while reading its
  details never turns into a rejection: the answer is returned without a price.
* **Order status** (:meth:`CcxtBroker.order_status`) works from any later process:
  ``fetch_order`` by client order id (Binance ``origClientOrderId``, on the symbol the
  id was derived from (:func:`bus.ids.client_order_id`), else the open orders',
  configured and held symbols; Hyperliquid ``orderStatus`` by cloid, no symbol
  needed). The average fill price comes from the order, else from its trades
  (``fetch_my_trades``: Binance ``userTrades?orderId``, Hyperliquid ``userFills``,
  whose ``orderStatus`` has no average price); a fill whose price no answer tells has
  ``fill_price`` None, never 0.
* **Hyperliquid**: ccxt by default signs an ``approveBuilderFee`` action and a
  ``setReferrer`` action for its own builder and referral code, and attaches the
  builder to every order. Both are switched off explicitly (options ``builderFee``
  False, ``approvedBuilderFee`` False, ``refSet`` True, and the approval step
  replaced by a no-op in :class:`_Hyperliquid`). A market order is sent as an
  aggressive IOC limit at ``quote × (1 ± market_slippage)``: the broker supplies the
  quote (ccxt refuses a market order without a price) and the slippage.
* **Reads** are retried on network errors and 5xx answers with exponential backoff
  (``tenacity``), never on a rate limit; orders are never blindly retried.
* **Endpoints**: ``sandbox: true`` switches ccxt to the venue's testnet
  (``set_sandbox_mode``); ``base_url`` sends every API request to another host (a
  proxy, a testnet gateway, a fake venue) with each endpoint's path kept, and ccxt
  still maps the venue's errors as it would from the original host.
* **Protective exits** (``STP`` / ``MIT``, reduce-only, OCA emulated) on Binance USD-M, see
  :mod:`brokers.ccxt_exits` (conditional orders of Binance's Algo Order API), and on Hyperliquid, see
  :mod:`brokers.hyperliquid_exits` (standalone trigger orders).
"""

from __future__ import annotations

import hashlib
import logging
from datetime import datetime, timezone
from functools import partial
from typing import Any, Callable, TypeVar
from urllib.parse import urlsplit

from tenacity import Retrying, retry_if_exception, stop_after_attempt, wait_exponential

from brokers.base import (
    CANCELLED,
    FILLED,
    WORKING,
    Broker,
    BrokerConfigError,
    BrokerError,
    DuplicateOrder,
    NotConnected,
    OrderNotFound,
    OrderRejected,
    OrderRequest,
    OrderResult,
    UnknownInstrument,
    limit_price_for,
)
from brokers.ccxt_exits import is_algo
from brokers.config import CcxtAccount, Mode
from brokers.errors import from_ccxt
from brokers.hyperliquid_exits import HyperliquidExitsMixin, exit_kind
from brokers.protective import oca_group_of
from brokers.secrets import read_secret
from brokers.wallclock import require_current
from bus.constants import NOISE_EPS, QTY_EPS
from bus.ids import client_order_id as derive_client_order_id
from bus.models import PROTECTIVE_ORDER_TYPES, Holding, InstrumentSpec, OpenOrder, PortfolioSnapshot

log = logging.getLogger(__name__)
T = TypeVar("T")
SEC_TYPE = "PERP"
_STATUS = {"open": WORKING, "closed": FILLED, "canceled": CANCELLED, "cancelled": CANCELLED, "expired": "Expired",
           "rejected": "Rejected"}
#: ccxt options that switch off Hyperliquid's builder fee and referral (see the module docstring).
HYPERLIQUID_OPTIONS = {"builderFee": False, "approvedBuilderFee": False, "refSet": True}


def _hyperliquid_class() -> type:
    import ccxt

    class _Hyperliquid(ccxt.hyperliquid):
        """ccxt's Hyperliquid that never signs ``approveBuilderFee`` nor ``setReferrer``."""

        def handle_builder_fee_approval(self) -> bool:  # ccxt's hook
            return True

        def set_ref(self) -> bool:
            return True

    return _Hyperliquid


def make_exchange(cfg: CcxtAccount, name: str) -> Any:
    """A configured ccxt exchange for account ``name``, its secrets read from the environment.

    Raises:
        BrokerConfigError: a secret's environment variable is unset, or sandbox mode is unavailable.
    """
    import ccxt

    common: dict[str, Any] = {"enableRateLimit": cfg.enable_rate_limit, "timeout": cfg.timeout_ms}
    if cfg.exchange == "binanceusdm":
        ex = ccxt.binanceusdm({**common, "apiKey": read_secret(cfg.api_key_env, "API key", name),
                               "secret": read_secret(cfg.secret_env, "API secret", name),
                               "options": {"warnOnFetchOpenOrdersWithoutSymbol": False}})
    else:
        ex = _hyperliquid_class()({**common,
                                   "walletAddress": read_secret(cfg.wallet_address_env, "wallet address", name),
                                   "privateKey": read_secret(cfg.private_key_env, "private key", name),
                                   "options": {**HYPERLIQUID_OPTIONS, "defaultSlippage": cfg.market_slippage}})
    if cfg.sandbox:
        try:
            ex.set_sandbox_mode(True)
        except ccxt.NotSupported as exc:
            raise BrokerConfigError(f"account {name}: {cfg.exchange} has no sandbox in ccxt: {exc}") from exc
    if cfg.base_url:
        rebase(ex, cfg.base_url)
    return ex


def rebase(exchange: Any, base_url: str) -> Any:
    """Send every API request of ``exchange`` to ``base_url`` (scheme, host, optional path prefix),
    keeping each endpoint's own path: ``https://fapi.binance.com/fapi/v1`` becomes
    ``{base_url}/fapi/v1``. ccxt chooses some error tables by the request's host (Binance: the
    ``fapi`` host means "linear" errors), so the exchange keeps looking them up by the original
    URL. Applied after sandbox mode, it rebases the testnet URLs. Returns the exchange."""
    base = base_url.rstrip("/")
    reverse: dict[str, str] = {}

    def rewrite(value: Any) -> Any:
        if isinstance(value, str) and "://" in value:
            orig = exchange.implode_hostname(value).rstrip("/")
            parts = urlsplit(orig)
            new = base + parts.path
            # a path two hosts share (Binance /futures/data: fapi and dapi) keeps the USD-M (fapi) host
            if new not in reverse or (parts.hostname or "").startswith("fapi."):
                reverse[new] = orig
            return new
        if isinstance(value, dict):
            return {k: rewrite(v) for k, v in value.items()}
        return value

    exchange.urls["api"] = rewrite(exchange.urls["api"])
    lookup = getattr(exchange, "get_exceptions_by_url", None)
    if lookup is not None:
        ordered = sorted(reverse.items(), key=lambda kv: len(kv[0]), reverse=True)

        def get_exceptions_by_url(url: Any, exact_or_broad: str) -> dict:
            if isinstance(url, str):
                for new, orig in ordered:
                    if url.startswith(new):
                        url = orig + url[len(new):]
                        break
            return lookup(url, exact_or_broad)

        exchange.get_exceptions_by_url = get_exceptions_by_url
    return exchange


def venue_client_id(exchange_id: str, client_order_id: str) -> str:
    """The id the venue gets: the same for Binance, a ``0x`` + 32-hex ``cloid`` for Hyperliquid."""
    if exchange_id != "hyperliquid" or (client_order_id.startswith("0x") and len(client_order_id) == 34):
        return client_order_id
    return "0x" + hashlib.sha256(client_order_id.encode()).hexdigest()[:32]


class CcxtBroker(HyperliquidExitsMixin, Broker):
    """One account at a ccxt exchange (perpetuals, one-way positions). ``supports_protective``: exits as
    Binance USD-M conditional orders (:mod:`brokers.ccxt_exits`) or Hyperliquid trigger orders
    (:mod:`brokers.hyperliquid_exits`).

    Args:
        exchange: a ccxt exchange object (from :func:`make_exchange`).
        account: the account's name.
        leverage: per project symbol; ``default_leverage`` for the others.
        margin_mode: ``cross`` or ``isolated``, set per symbol.
        symbols: project symbol -> ccxt symbol, where the default rule does not fit.
        market_slippage: fraction a Hyperliquid market order may trade through the quote.
        retries: extra attempts of a read after a network error.
        as_of_tolerance_seconds: an as-of further than this from the wall clock is refused.
    """

    def __init__(self, exchange: Any, account: str, mode: Mode = "paper", *, leverage: dict[str, int] | None = None,
                 default_leverage: int = 1, margin_mode: str = "cross", symbols: dict[str, str] | None = None,
                 market_slippage: float = 0.01, retries: int = 2, retry_wait: float = 0.2,
                 as_of_tolerance_seconds: float = 900.0) -> None:
        self.exchange = exchange
        self.name = exchange.id
        self.account = account
        self.mode = mode
        self.leverage = dict(leverage or {})
        self.default_leverage = default_leverage
        self.margin_mode = margin_mode
        self.symbol_map = dict(symbols or {})
        self.market_slippage = market_slippage
        self.retries, self.retry_wait = retries, retry_wait
        self.as_of_tolerance_seconds = as_of_tolerance_seconds
        self._prepared: set[str] = set()
        self._order_symbols: dict[str, str] = {}
        self._our_ids: dict[str, str] = {}  # the venue's client order id (a Hyperliquid cloid) -> ours
        self._oca: dict[str, str] = {}
        self._exits: set[str] = set()
        self.supports_protective = self.name in ("binanceusdm", "hyperliquid")

    def __repr__(self) -> str:
        return f"CcxtBroker({self.name}, account {self.account}, {self.mode})"

    # ------------------------------------------------------------------ plumbing
    def _ctx(self, what: str) -> str:
        return f"{self.name} {self.account}: {what}"

    def _err(self, exc: Exception, what: str) -> BrokerError:
        """A ccxt error as the project's own, with the rate limit's Retry-After from the answer's headers."""
        return from_ccxt(exc, self._ctx(what), getattr(self.exchange, "last_response_headers", None))

    def _venue_id(self, client_order_id: str) -> str:
        """The id the venue knows this order by; remembered, so the venue's id maps back to ours."""
        vid = venue_client_id(self.name, client_order_id)
        self._our_ids[vid.lower()] = client_order_id
        return vid

    def _read(self, what: str, fn: Callable[[], T]) -> T:
        """A read, retried on network errors and 5xx answers (not on rate limits or refusals), errors mapped."""
        import ccxt

        def retriable(exc: BaseException) -> bool:
            return isinstance(exc, ccxt.OperationFailed) and not isinstance(exc, ccxt.DDoSProtection)

        try:
            for attempt in Retrying(stop=stop_after_attempt(self.retries + 1),
                                    wait=wait_exponential(multiplier=self.retry_wait, max=5),
                                    retry=retry_if_exception(retriable), reraise=True):
                with attempt:
                    return fn()
        except ccxt.BaseError as exc:
            raise self._err(exc, what) from exc
        raise AssertionError("unreachable")  # pragma: no cover

    def _markets(self) -> dict[str, Any]:
        if not self.exchange.markets:
            self._read("load markets", self.exchange.load_markets)
        return self.exchange.markets

    def ccxt_symbol(self, symbol: str) -> str:
        """``BTC-USDT-PERP`` -> ``BTC/USDT:USDT`` (or the configured mapping).

        Raises:
            UnknownInstrument: the symbol does not follow the rule, or the venue does not list it.
        """
        sym = self.symbol_map.get(symbol)
        if sym is None:
            parts = symbol.split("-")
            if len(parts) != 3 or parts[2] != "PERP":
                raise UnknownInstrument(self._ctx(f"unknown instrument {symbol!r} (expected BASE-QUOTE-PERP)"))
            sym = f"{parts[0]}/{parts[1]}:{parts[1]}"
        if sym not in self._markets():
            raise UnknownInstrument(self._ctx(f"unknown instrument {symbol!r} ({sym} is not listed)"))
        return sym

    def project_symbol(self, ccxt_symbol: str) -> str:
        """The inverse of :meth:`ccxt_symbol`."""
        for ours, theirs in self.symbol_map.items():
            if theirs == ccxt_symbol:
                return ours
        m = self._markets().get(ccxt_symbol)
        if m is None:
            return ccxt_symbol
        return f"{m['base']}-{m['quote']}-PERP" if m.get("swap") else ccxt_symbol

    def _settle_currency(self) -> str:
        return "USDC" if self.name == "hyperliquid" else "USDT"

    def leverage_for(self, symbol: str) -> int:
        """The leverage this account trades ``symbol`` at."""
        return int(self.leverage.get(symbol, self.default_leverage))

    def _prepare(self, symbol: str, sym: str) -> None:
        """Set margin mode and leverage on the venue, once per symbol."""
        import ccxt

        if sym in self._prepared:
            return
        lev = self.leverage_for(symbol)
        try:
            if self.name == "hyperliquid":
                self.exchange.set_leverage(lev, sym, {"marginMode": self.margin_mode})
            else:
                mode = self.exchange.fetch_position_mode(sym)
                if mode.get("hedged"):
                    raise OrderRejected(self._ctx("the account is in hedge (dual-side) position mode; only one-way "
                                                  "positions are supported"))
                try:
                    self.exchange.set_margin_mode(self.margin_mode, sym)
                except ccxt.MarginModeAlreadySet:
                    pass
                self.exchange.set_leverage(lev, sym)
        except ccxt.BaseError as exc:
            raise self._err(exc, f"set {self.margin_mode} margin and {lev}x leverage on {symbol}") from exc
        self._prepared.add(sym)

    # ------------------------------------------------------------------ Broker
    def instrument_specs(self, symbols: list[str]) -> dict[str, InstrumentSpec]:
        """Specs from the cached markets; ``max_leverage`` is this account's leverage for the symbol."""
        out = {}
        for s in symbols:
            m = self._markets()[self.ccxt_symbol(s)]
            prec, lim = m["precision"], m["limits"]
            lot = float(prec["amount"])
            out[s] = InstrumentSpec(symbol=s, secType=SEC_TYPE, exchange=self.name.upper(), currency=m["settle"],
                                    lot_size=lot, tick_size=float(prec["price"]),
                                    min_quantity=float(lim["amount"]["min"] or lot),
                                    min_notional=float(lim["cost"]["min"] or 0.0),
                                    multiplier=float(m.get("contractSize") or 1.0),
                                    max_leverage=float(self.leverage_for(s)),
                                    contract_details={"ccxt_symbol": m["symbol"], "id": m["id"]})
        return out

    def quotes(self, symbols: list[str], as_of: datetime) -> dict[str, float]:
        """Last trade price per symbol (``fetch_ticker``)."""
        require_current(as_of, self.as_of_tolerance_seconds, self._ctx("quotes"))
        out = {}
        for s in symbols:
            sym = self.ccxt_symbol(s)
            t = self._read(f"ticker {s}", partial(self.exchange.fetch_ticker, sym))
            px = t.get("last") or t.get("close") or (t.get("info") or {}).get("markPx")
            if not px:
                raise NotConnected(self._ctx(f"no price for {s}"))
            out[s] = float(px)
        return out

    def portfolio(self, as_of: datetime) -> PortfolioSnapshot:
        """Balance (NAV = total margin balance, available = free), positions and all open orders."""
        require_current(as_of, self.as_of_tolerance_seconds, self._ctx("portfolio"))
        self._markets()
        ccy = self._settle_currency()
        bal = self._read("balance", self.exchange.fetch_balance)
        positions = self._read("positions", self.exchange.fetch_positions)
        orders = self._read("open orders", self.exchange.fetch_open_orders)
        acct = bal.get(ccy) or {}
        if acct.get("total") is None:
            raise NotConnected(self._ctx(f"balance has no {ccy} total"))
        holdings, upnl = [], 0.0
        for p in positions:
            contracts = float(p.get("contracts") or 0.0)
            if not contracts:
                continue
            qty = -contracts if p.get("side") == "short" else contracts
            mult = float(p.get("contractSize") or 1.0)
            mark = float(p.get("markPrice") or 0.0) or abs(float(p["notional"])) / (contracts * mult)
            upnl += float(p.get("unrealizedPnl") or 0.0)
            holdings.append(Holding(symbol=self.project_symbol(p["symbol"]), secType=SEC_TYPE,
                                    exchange=self.name.upper(), currency=ccy, quantity=qty,
                                    avg_cost=float(p.get("entryPrice") or 0.0), market_price=mark,
                                    market_value=qty * mark * mult,
                                    contract_details={"ccxt_symbol": p["symbol"], "marginMode": p.get("marginMode"),
                                                      "leverage": p.get("leverage")}))
        orders = self._with_exits(orders)
        open_orders = [_open_order(o, self.project_symbol(o["symbol"]), self._our_ids, self._oca) for o in orders]
        total = float(acct["total"])
        return PortfolioSnapshot(
            snapshot_id="", updated_at=datetime.now(timezone.utc), as_of=as_of, broker=self.name,
            account=self.account, mode=self.mode, base_currency=ccy, net_liquidation=total,
            available_funds=float(acct.get("free") or 0.0), cash=total - upnl,
            holdings=sorted(holdings, key=lambda h: h.symbol), open_orders=open_orders)

    def _fetch_by_client_id(self, sym: str | None, client_order_id: str) -> dict | None:
        """The order with this client order id on ``sym`` (Hyperliquid: any symbol), or None."""
        import ccxt

        cid = self._venue_id(client_order_id)
        try:
            found = self.exchange.fetch_order(None, sym, {"clientOrderId": cid})
        except ccxt.OrderNotFound:
            return None
        except ccxt.BaseError as exc:
            raise self._err(exc, f"look up order {client_order_id}") from exc
        return found if found and found.get("id") else None

    def _symbols_from_id(self, client_order_id: str) -> list[str]:
        """The listed symbols whose orders :func:`bus.ids.client_order_id` would name ``client_order_id``
        (it is ``{execution id}-{symbol}``, shortened with a digest past 36 characters): a later process
        finds the symbol of an order from its id alone."""
        cuts = [k for k, ch in enumerate(client_order_id[:28]) if ch == "-" and k > 0]
        out = []
        for sym, m in self._markets().items():
            if not m.get("swap"):
                continue
            ours = self.project_symbol(sym)
            if any(derive_client_order_id(client_order_id[:k], ours) == client_order_id for k in cuts):
                out.append(sym)
        return out

    def _locate(self, client_order_id: str) -> tuple[str, dict] | None:
        """(ccxt symbol, order) of a client order id, from any process.

        Hyperliquid answers ``orderStatus`` by cloid alone. Binance needs the symbol: this broker's
        own orders, the symbol the id was derived from, the open orders, then the configured and
        held symbols."""
        cid = self._venue_id(client_order_id)
        if self.name == "hyperliquid":
            found = self._read(f"order {client_order_id}", lambda: self._fetch_by_client_id(None, client_order_id))
            return (found["symbol"], found) if found else None
        tried: set[str] = set()
        exit_leg = self._is_exit_id(client_order_id)

        def look(sym: str) -> tuple[str, dict] | None:
            if sym in tried:
                return None
            tried.add(sym)
            if exit_leg:  # a protective leg: its conditional order, followed to the order it became
                found = self._lookup_exit(sym, client_order_id)
            else:
                found = self._read(f"order {client_order_id}", lambda: self._fetch_by_client_id(sym, client_order_id))
            return (sym, found) if found else None

        first = [s for s in (self._order_symbols.get(client_order_id),) if s] + self._symbols_from_id(client_order_id)
        for sym in first:
            hit = look(sym)
            if hit:
                return hit
        opened = self._open_algo_orders() if exit_leg else self._read("open orders", self.exchange.fetch_open_orders)
        for o in opened:
            if o.get("clientOrderId") == cid:
                return o["symbol"], o
        candidates = {self.ccxt_symbol(s) for s in [*self.leverage, *self.symbol_map] if self._known(s)}
        candidates |= {p["symbol"] for p in self._read("positions", self.exchange.fetch_positions)}
        for sym in sorted(candidates):
            hit = look(sym)
            if hit:
                return hit
        return None

    def _known(self, symbol: str) -> bool:
        try:
            self.ccxt_symbol(symbol)
            return True
        except UnknownInstrument:
            return False

    def _order_trades(self, sym: str, o: dict) -> list[dict]:
        """The fills of order ``o``: Binance ``userTrades`` by order id; Hyperliquid ``userFills`` (by time
        from the order's placement when known), filtered by the order's id."""
        if self.name == "hyperliquid":
            since = o.get("timestamp")
            trades = self._read(f"fills of order {o['id']}",
                                lambda: self.exchange.fetch_my_trades(sym, since) if since else
                                self.exchange.fetch_my_trades(sym))
        else:
            trades = self._read(f"fills of order {o['id']}",
                                lambda: self.exchange.fetch_my_trades(sym, params={"orderId": o["id"]}))
        return [t for t in trades if str(t.get("order")) == str(o["id"])]

    def _result(self, client_order_id: str, o: dict, sym: str, hint: dict | None = None) -> OrderResult:
        """The venue's order ``o`` as an OrderResult. ``hint``: the create-order answer, whose filled
        units, average and fee stand in where ``o`` (a later look-up) has none. A fill without an
        average price takes it from the order's trades; if none tells it, ``fill_price`` is None."""
        hint = hint or {}
        filled = float(o.get("filled") or hint.get("filled") or 0.0)
        avg = _positive(o.get("average")) or _positive(hint.get("average"))
        fee_of = o.get("fee") if o.get("fee") and o["fee"].get("cost") is not None else hint.get("fee")
        fee = float(fee_of["cost"]) if fee_of and fee_of.get("cost") is not None else None
        if filled > NOISE_EPS and (avg is None or fee is None):
            try:
                trades = self._order_trades(sym, o)
            except BrokerError as exc:  # the order stands; only its price or fee is unknown for now
                log.warning("%s: fills of order %s not read: %s", self._ctx(client_order_id), o.get("id"), exc)
                trades = []
            units = sum(float(t.get("amount") or 0.0) for t in trades)
            if avg is None and units > NOISE_EPS and units >= filled * (1 - QTY_EPS):
                avg = _positive(sum(float(t["amount"]) * float(t["price"]) for t in trades) / units)
            if fee is None and trades:
                fee = sum(float((t.get("fee") or {}).get("cost") or 0.0) for t in trades)
        return OrderResult(orderId=str(o["id"]), client_order_id=client_order_id,
                           status=_STATUS.get(o.get("status") or "", str(o.get("status"))), filled_quantity=filled,
                           fill_price=avg if filled > NOISE_EPS else None, commission=fee or 0.0,
                           limit_price=float(o["price"]) if o.get("price") and o.get("type") == "limit" else None)

    def place_order(self, order: OrderRequest, as_of: datetime) -> OrderResult:
        """Place with the client order id, after asking the venue for it; see the module docstring.

        Raises:
            DuplicateOrder: the id is already at the venue; OrderRejected, InsufficientFunds,
                UnknownInstrument: the venue refused it; RateLimited: not taken, wait ``retry_after``;
                NotConnected / BrokerError: the answer was lost and the order is not (yet) found:
                it may execute; the next run asks again.
        """
        import ccxt

        require_current(as_of, self.as_of_tolerance_seconds, self._ctx("place order"))
        ctx = self._ctx(f"order {order.client_order_id}")
        sym = self.ccxt_symbol(order.symbol)
        spec = self.instrument_specs([order.symbol])[order.symbol]
        protective = order.order_type in PROTECTIVE_ORDER_TYPES
        exit_params = self._exit_params(order) if protective else {}
        fetch = self._fetch_algo if protective else self._fetch_by_client_id
        if self._read(f"look up {order.client_order_id}", lambda: fetch(sym, order.client_order_id)):
            raise DuplicateOrder(f"{ctx}: client order id already used at {self.name}; order refused")
        amount = float(self.exchange.amount_to_precision(sym, order.quantity))
        if order.quantity <= 0 or abs(amount - order.quantity) > QTY_EPS * max(1.0, order.quantity):
            raise OrderRejected(f"{ctx}: quantity {order.quantity} is not a multiple of the step {spec.lot_size}")
        price = None
        if order.order_type == "LMT" or self.name == "hyperliquid":
            quote = self.quotes([order.symbol], as_of)[order.symbol] if order.limit_price is None else None
            if order.order_type == "LMT":
                raw = order.limit_price if quote is None else limit_price_for(
                    order.action, quote, float(order.limit_offset_bps or 0.0), spec.tick_size)
                price = float(self.exchange.price_to_precision(sym, raw))
            else:
                price = quote
        self._prepare(order.symbol, sym)
        params: dict[str, Any] = {"clientOrderId": self._venue_id(order.client_order_id), **exit_params}
        if self.name == "hyperliquid" and order.order_type == "MKT":
            params["slippage"] = str(self.market_slippage)
        kind = "limit" if order.order_type == "LMT" else "market"
        if protective:
            price = self._exit_price(order)
        self._order_symbols[order.client_order_id] = sym
        try:
            placed = self.exchange.create_order(sym, kind, order.action.lower(), amount, price, params)
        except (ccxt.DDoSProtection, ccxt.RateLimitExceeded) as exc:
            raise self._err(exc, f"order {order.client_order_id}") from exc  # not taken: RateLimited
        except (ccxt.NetworkError, ccxt.OperationFailed) as exc:
            return self._answer_lost(order.client_order_id, sym, self._err(exc, f"order {order.client_order_id}"),
                                     exc, protective)
        except ccxt.BaseError as exc:
            raise self._err(exc, f"order {order.client_order_id}") from exc
        except Exception as exc:  # an answer ccxt could not read: the order may stand
            return self._answer_lost(order.client_order_id, sym, BrokerError(
                f"{ctx}: unreadable answer ({type(exc).__name__}: {exc})"), exc, protective)
        if protective and placed and placed.get("id"):
            return self._result(order.client_order_id, {**placed, "status": placed.get("status") or "open"}, sym)
        return self._placed(order.client_order_id, sym, placed)

    def _answer_lost(self, client_order_id: str, sym: str, err: Exception, cause: BaseException,
                     protective: bool = False) -> OrderResult:
        """The answer to an order was lost: one look-up by its client order id (a protective leg among
        the conditional orders); found, its state, else ``err`` (never an ``OrderRejected``: the venue
        may still carry the order out)."""
        if isinstance(err, OrderRejected):
            err = NotConnected(str(err))
        try:
            found = (self._lookup_exit if protective else self._fetch_by_client_id)(sym, client_order_id)
        except BrokerError as exc:
            log.warning("%s: answer lost, and the look-up failed too: %s", self._ctx(client_order_id), exc)
            found = None
        if found is None:
            raise err from cause
        log.warning("%s: the answer was lost but the order exists at the venue (%s)", self._ctx(client_order_id),
                    found.get("status"))
        return self._result(client_order_id, found, sym)

    def _placed(self, client_order_id: str, sym: str, placed: dict | None) -> OrderResult:
        """The result of an order the venue took. An answer without a status or fills (Hyperliquid's
        ``waitingForFill``, an empty ``statuses`` list, a ``filled`` entry without a status) is
        completed by a look-up (by id, else by client order id); the create answer's average and fee
        stay as hints."""
        placed = placed or {}
        if placed.get("id") and placed.get("status") is not None and placed.get("filled") is not None:
            return self._result(client_order_id, placed, sym)
        try:
            if placed.get("id"):
                found = self._read(f"status of {client_order_id}",
                                   lambda: self.exchange.fetch_order(placed["id"], sym))
            else:
                found = self._fetch_by_client_id(sym, client_order_id)
        except BrokerError as exc:
            if not placed.get("id"):
                raise BrokerError(f"{self._ctx(client_order_id)}: the venue took the order but its answer names no "
                                  f"order and the look-up failed ({exc}): its state is unknown") from exc
            log.warning("%s: status not read after placing: %s", self._ctx(client_order_id), exc)
            found = None
        if not found or not found.get("id"):
            if not placed.get("id"):
                raise BrokerError(f"{self._ctx(client_order_id)}: the venue took the request but names no order "
                                  f"and has none with this client order id yet: its state is unknown")
            found = {**placed, "status": placed.get("status") or "open"}
        return self._result(client_order_id, found, sym, hint=placed)

    def cancel_order(self, client_order_id: str) -> OrderResult:
        """Cancel the working order with this client order id (located across symbols)."""
        import ccxt

        ctx = self._ctx(f"cancel {client_order_id}")
        found = self._locate(client_order_id)
        if found is None:
            raise OrderNotFound(f"{ctx}: no order with this client order id")
        sym, o = found
        if o.get("status") != "open":
            raise OrderRejected(f"{ctx}: the order is {o.get('status')}, not working")
        if is_algo(o):
            return self._result(client_order_id, self._cancel_algo(sym, o), sym)
        try:
            self.exchange.cancel_order(o["id"], sym)
        except ccxt.BaseError as exc:
            raise self._err(exc, f"cancel {client_order_id}") from exc
        return self._result(client_order_id, self._read(ctx, lambda: self.exchange.fetch_order(o["id"], sym)), sym)

    def order_status(self, client_order_id: str) -> OrderResult:
        """The venue's view of the order with this client order id, from any process (see the module
        docstring); ``fill_price`` from the order or its trades, None when neither tells it."""
        found = self._locate(client_order_id)
        if found is None:
            raise OrderNotFound(self._ctx(f"status {client_order_id}: no order with this client order id"))
        sym, o = found
        result = self._result(client_order_id, o, sym)
        if result.filled_quantity > NOISE_EPS and self._is_exit_id(client_order_id):
            self._cancel_siblings(sym, client_order_id)  # OCA, emulated (see brokers.ccxt_exits)
        return result


def _positive(x: Any) -> float | None:
    """``x`` as a positive float, else None (a missing or zero price is no price)."""
    try:
        v = float(x)
    except (TypeError, ValueError):
        return None
    return v if v > 0 else None


def _open_order(o: dict, symbol: str, our_ids: dict[str, str] | None = None,
                oca: dict[str, str] | None = None) -> OpenOrder:
    """An open order; its client order id is ours when the broker knows the venue's (a Hyperliquid cloid).
    A resting conditional order (Binance algo) is a protective ``STP`` / ``MIT`` with its trigger as
    ``auxPrice`` and its OCA group from the client id (:mod:`brokers.protective`) or ``oca``."""
    ts = o.get("timestamp")
    cid = o.get("clientOrderId")
    cid = (our_ids or {}).get(cid.lower(), cid) if cid else f"venue-{o['id']}"
    kind = exit_kind(o)
    info = o.get("info") or {}
    details = {"timeInForce": o.get("timeInForce"), "reduceOnly": o.get("reduceOnly")}
    if kind:
        details.update(type=info.get("orderType"), workingType=info.get("workingType"), algoId=info.get("algoId"))
    return OpenOrder(orderId=str(o["id"]), client_order_id=cid, symbol=symbol,
                     secType=SEC_TYPE, action="BUY" if o["side"] == "buy" else "SELL",
                     totalQuantity=float(o.get("remaining") or o["amount"]),
                     orderType=kind or ("LMT" if o.get("type") == "limit" else "MKT"),
                     lmtPrice=float(o["price"]) if o.get("price") and o.get("type") == "limit" else None,
                     auxPrice=_positive(o.get("triggerPrice")) if kind else None,
                     ocaGroup=((oca or {}).get(cid) or oca_group_of(cid, symbol)) if kind else None,
                     reduce_only=bool(o.get("reduceOnly")),
                     status=WORKING,
                     created_at=datetime.fromtimestamp(ts / 1000, timezone.utc) if ts else datetime.now(timezone.utc),
                     order_details=details)
