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
  hex ``cloid``: the first 32 hex digits of the SHA-256 of the id). Before placing,
  the broker asks the venue for that id and refuses a duplicate itself; the venue's
  own refusal (Binance -4116) maps to :class:`~brokers.base.DuplicateOrder` too. An
  order whose answer is lost (timeout, 5xx) is looked up by its id before the error
  is reported, so "timed out but executed" is recorded as placed.
* **Hyperliquid**: ccxt by default signs an ``approveBuilderFee`` action and a
  ``setReferrer`` action for its own builder and referral code, and attaches the
  builder to every order. Both are switched off explicitly (options ``builderFee``
  False, ``approvedBuilderFee`` False, ``refSet`` True, and the approval step
  replaced by a no-op in :class:`_Hyperliquid`). A market order is sent as an
  aggressive IOC limit at ``quote × (1 ± market_slippage)``: the broker supplies the
  quote (ccxt refuses a market order without a price) and the slippage.
* **Reads** are retried on network errors and 5xx answers with exponential backoff
  (``tenacity``), never on a rate limit; orders are never blindly retried.
"""

from __future__ import annotations

import hashlib
import logging
from datetime import datetime, timezone
from typing import Any, Callable, TypeVar

from tenacity import Retrying, retry_if_exception, stop_after_attempt, wait_exponential

from brokers.base import (
    CANCELLED, FILLED, WORKING, Broker, BrokerConfigError, DuplicateOrder, NotConnected, OrderNotFound,
    OrderRejected, OrderRequest, OrderResult, UnknownInstrument, limit_price_for,
)
from brokers.config import CcxtAccount
from brokers.errors import from_ccxt
from brokers.wallclock import require_current
from brokers.secrets import read_secret
from bus.models import Holding, InstrumentSpec, OpenOrder, PortfolioSnapshot

log = logging.getLogger(__name__)
T = TypeVar("T")
SEC_TYPE = "PERP"
_STATUS = {"open": WORKING, "closed": FILLED, "canceled": CANCELLED, "cancelled": CANCELLED, "expired": CANCELLED,
           "rejected": "Rejected"}
#: ccxt options that switch off Hyperliquid's builder fee and referral (see the module docstring).
HYPERLIQUID_OPTIONS = {"builderFee": False, "approvedBuilderFee": False, "refSet": True}


def _hyperliquid_class() -> type:
    import ccxt

    class _Hyperliquid(ccxt.hyperliquid):
        """ccxt's Hyperliquid that never signs ``approveBuilderFee`` nor ``setReferrer``."""

        def handle_builder_fee_approval(self) -> bool:  # noqa: D401 - ccxt's hook
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
    return ex


def venue_client_id(exchange_id: str, client_order_id: str) -> str:
    """The id the venue gets: the same for Binance, a ``0x`` + 32-hex ``cloid`` for Hyperliquid."""
    if exchange_id != "hyperliquid" or (client_order_id.startswith("0x") and len(client_order_id) == 34):
        return client_order_id
    return "0x" + hashlib.sha256(client_order_id.encode()).hexdigest()[:32]


class CcxtBroker(Broker):
    """One account at a ccxt exchange (perpetuals, one-way positions).

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

    def __init__(self, exchange: Any, account: str, mode: str = "paper", *, leverage: dict[str, int] | None = None,
                 default_leverage: int = 1, margin_mode: str = "cross", symbols: dict[str, str] | None = None,
                 market_slippage: float = 0.01, retries: int = 2, retry_wait: float = 0.2,
                 as_of_tolerance_seconds: float = 900.0) -> None:
        self.exchange = exchange
        self.name = exchange.id
        self.account = account
        self.mode = mode  # type: ignore[assignment]
        self.leverage = dict(leverage or {})
        self.default_leverage = default_leverage
        self.margin_mode = margin_mode
        self.symbol_map = dict(symbols or {})
        self.market_slippage = market_slippage
        self.retries, self.retry_wait = retries, retry_wait
        self.as_of_tolerance_seconds = as_of_tolerance_seconds
        self._prepared: set[str] = set()
        self._order_symbols: dict[str, str] = {}

    def __repr__(self) -> str:
        return f"CcxtBroker({self.name}, account {self.account}, {self.mode})"

    # ------------------------------------------------------------------ plumbing
    def _ctx(self, what: str) -> str:
        return f"{self.name} {self.account}: {what}"

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
            raise from_ccxt(exc, self._ctx(what)) from exc
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
            raise from_ccxt(exc, self._ctx(f"set {self.margin_mode} margin and {lev}x leverage on {symbol}")) from exc
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
            t = self._read(f"ticker {s}", lambda sym=sym: self.exchange.fetch_ticker(sym))
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
        open_orders = [_open_order(o, self.project_symbol(o["symbol"])) for o in orders]
        total = float(acct["total"])
        return PortfolioSnapshot(
            snapshot_id="", updated_at=datetime.now(timezone.utc), as_of=as_of, broker=self.name,
            account=self.account, mode=self.mode, base_currency=ccy, net_liquidation=total,
            available_funds=float(acct.get("free") or 0.0), cash=total - upnl,
            holdings=sorted(holdings, key=lambda h: h.symbol), open_orders=open_orders)

    def _fetch_by_client_id(self, sym: str, client_order_id: str) -> dict | None:
        import ccxt

        cid = venue_client_id(self.name, client_order_id)
        try:
            return self.exchange.fetch_order(None, sym, {"clientOrderId": cid})
        except ccxt.OrderNotFound:
            return None
        except ccxt.BaseError as exc:
            raise from_ccxt(exc, self._ctx(f"look up order {client_order_id}")) from exc

    def _locate(self, client_order_id: str) -> tuple[str, dict] | None:
        """(ccxt symbol, order) of a client order id: this broker's orders, then open orders, then known symbols."""
        cid = venue_client_id(self.name, client_order_id)
        sym = self._order_symbols.get(client_order_id)
        if sym is not None:
            found = self._read(f"order {client_order_id}", lambda: self._fetch_by_client_id(sym, client_order_id))
            return (sym, found) if found else None
        for o in self._read("open orders", self.exchange.fetch_open_orders):
            if o.get("clientOrderId") == cid:
                return o["symbol"], o
        candidates = {self.ccxt_symbol(s) for s in self.leverage if self._known(s)}
        candidates |= {p["symbol"] for p in self._read("positions", self.exchange.fetch_positions)}
        for sym in sorted(candidates):
            found = self._read(f"order {client_order_id}",
                               lambda sym=sym: self._fetch_by_client_id(sym, client_order_id))
            if found:
                return sym, found
        return None

    def _known(self, symbol: str) -> bool:
        try:
            self.ccxt_symbol(symbol)
            return True
        except UnknownInstrument:
            return False

    def _result(self, client_order_id: str, o: dict, sym: str) -> OrderResult:
        filled = float(o.get("filled") or 0.0)
        fee = 0.0
        if o.get("fee") and o["fee"].get("cost") is not None:
            fee = float(o["fee"]["cost"])
        elif filled:
            trades = self._read(f"fills of {client_order_id}",
                                lambda: self.exchange.fetch_my_trades(sym, params={"orderId": o["id"]}))
            fee = sum(float((t.get("fee") or {}).get("cost") or 0.0)
                      for t in trades if str(t.get("order")) == str(o["id"]))
        return OrderResult(orderId=str(o["id"]), client_order_id=client_order_id,
                           status=_STATUS.get(o.get("status") or "", str(o.get("status"))), filled_quantity=filled,
                           fill_price=float(o["average"]) if o.get("average") else None, commission=fee,
                           limit_price=float(o["price"]) if o.get("price") and o.get("type") == "limit" else None)

    def place_order(self, order: OrderRequest, as_of: datetime) -> OrderResult:
        """Place with the client order id, after asking the venue for it; see the module docstring."""
        import ccxt

        require_current(as_of, self.as_of_tolerance_seconds, self._ctx("place order"))
        ctx = self._ctx(f"order {order.client_order_id}")
        sym = self.ccxt_symbol(order.symbol)
        spec = self.instrument_specs([order.symbol])[order.symbol]
        if self._read(f"look up {order.client_order_id}", lambda: self._fetch_by_client_id(sym, order.client_order_id)):
            raise DuplicateOrder(f"{ctx}: client order id already used at {self.name}; order refused")
        amount = float(self.exchange.amount_to_precision(sym, order.quantity))
        if order.quantity <= 0 or abs(amount - order.quantity) > 1e-9 * max(1.0, order.quantity):
            raise OrderRejected(f"{ctx}: quantity {order.quantity} is not a multiple of the step {spec.lot_size}")
        price = None
        if order.order_type == "LMT" or self.name == "hyperliquid":
            quote = None
            if order.limit_price is None:
                quote = self.quotes([order.symbol], as_of)[order.symbol]
            if order.order_type == "LMT":
                raw = order.limit_price if order.limit_price is not None else limit_price_for(
                    order.action, quote, float(order.limit_offset_bps or 0.0), spec.tick_size)
                price = float(self.exchange.price_to_precision(sym, raw))
            else:
                price = quote
        self._prepare(order.symbol, sym)
        params: dict[str, Any] = {"clientOrderId": venue_client_id(self.name, order.client_order_id)}
        if self.name == "hyperliquid" and order.order_type == "MKT":
            params["slippage"] = str(self.market_slippage)
        kind = "limit" if order.order_type == "LMT" else "market"
        self._order_symbols[order.client_order_id] = sym
        try:
            placed = self.exchange.create_order(sym, kind, order.action.lower(), amount, price, params)
        except (ccxt.NetworkError, ccxt.OperationFailed) as exc:
            if isinstance(exc, ccxt.DDoSProtection):
                raise from_ccxt(exc, ctx) from exc
            try:
                found = self._fetch_by_client_id(sym, order.client_order_id)
            except NotConnected:
                found = None
            if found is None:
                raise from_ccxt(exc, ctx) from exc
            log.warning("%s: the answer was lost but the order exists at the venue (%s)", ctx, found.get("status"))
            placed = found
        except ccxt.BaseError as exc:
            raise from_ccxt(exc, ctx) from exc
        if placed.get("status") is None or (placed.get("filled") is None and placed.get("id")):
            placed = self._read(f"status of {order.client_order_id}",
                                lambda: self.exchange.fetch_order(placed["id"], sym)) or placed
        return self._result(order.client_order_id, placed, sym)

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
        try:
            self.exchange.cancel_order(o["id"], sym)
        except ccxt.BaseError as exc:
            raise from_ccxt(exc, ctx) from exc
        return self._result(client_order_id, self._read(ctx, lambda: self.exchange.fetch_order(o["id"], sym)), sym)

    def order_status(self, client_order_id: str) -> OrderResult:
        """The venue's view of the order with this client order id."""
        found = self._locate(client_order_id)
        if found is None:
            raise OrderNotFound(self._ctx(f"status {client_order_id}: no order with this client order id"))
        sym, o = found
        return self._result(client_order_id, o, sym)


def _open_order(o: dict, symbol: str) -> OpenOrder:
    ts = o.get("timestamp")
    return OpenOrder(orderId=str(o["id"]), client_order_id=o.get("clientOrderId") or f"venue-{o['id']}", symbol=symbol,
                     secType=SEC_TYPE, action="BUY" if o["side"] == "buy" else "SELL",
                     totalQuantity=float(o.get("remaining") or o["amount"]),
                     orderType="LMT" if o.get("type") == "limit" else "MKT",
                     lmtPrice=float(o["price"]) if o.get("price") and o.get("type") == "limit" else None,
                     status=WORKING,
                     created_at=datetime.fromtimestamp(ts / 1000, timezone.utc) if ts else datetime.now(timezone.utc),
                     order_details={"timeInForce": o.get("timeInForce"), "reduceOnly": o.get("reduceOnly")})
