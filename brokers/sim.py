"""``sim``: a paper broker whose account lives in the store.

State: ``sim_accounts/{account}`` holds cash and positions; each order and its
fill is ``sim_accounts/{account}/orders/{client_order_id}``. Market orders fill
at the as-of price (the newest closed bar's close) moved against the trader by
``slippage_bps``; the fee is ``fee_bps`` of the filled notional.

Margin: the initial margin of a position is ``|quantity × price| / max_leverage``
of its instrument; available funds = NAV − total initial margin. An order that
would raise exposure past available funds is refused with
:class:`~brokers.base.InsufficientFunds`.
"""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

from brokers.base import (
    Broker, DuplicateOrder, InsufficientFunds, NotConnected, OrderRejected, OrderRequest, OrderResult,
    PriceSource, UnknownInstrument,
)
from bus import paths
from bus.accounting import apply_fill
from bus.models import Holding, InstrumentSpec, PortfolioSnapshot
from bus.store import Store


class SimBroker(Broker):
    """Paper broker persisted in ``store``.

    Args:
        store: where the account lives.
        account: account id (document id under ``sim_accounts``).
        prices: price source, as of a time (the bundled history in a local run).
        specs: venue rules per symbol; an order for a symbol not listed is refused.
        starting_cash: cash of a new account, base currency.
        fee_bps: commission in basis points of filled notional.
        slippage_bps: fill price moved against the order by this many bps.
    """

    name = "sim"

    def __init__(self, store: Store, account: str, prices: PriceSource, specs: dict[str, InstrumentSpec],
                 starting_cash: float = 100_000.0, fee_bps: float = 1.0, slippage_bps: float = 2.0,
                 mode: str = "paper", base_currency: str = "USD") -> None:
        self.store = store
        self.account = account
        self.prices = prices
        self.specs = specs
        self.starting_cash = starting_cash
        self.fee_bps = fee_bps
        self.slippage_bps = slippage_bps
        self.mode = mode  # type: ignore[assignment]
        self.base_currency = base_currency

    # ------------------------------------------------------------------ state
    def _new_state(self) -> dict[str, Any]:
        return {"account": self.account, "cash": float(self.starting_cash), "starting_cash": float(self.starting_cash),
                "positions": {}, "fees_paid": 0.0, "realized_pnl": 0.0, "order_count": 0,
                "created_at": datetime.now(timezone.utc)}

    def state(self) -> dict[str, Any]:
        """The persisted account, created with ``starting_cash`` on first use."""
        return self.store.get(paths.sim_account(self.account)) or self._new_state()

    def _check_time(self, st: dict[str, Any], as_of: datetime) -> None:
        last = st.get("last_as_of")
        if last is not None and as_of < last:
            raise NotConnected(
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

    def _margin(self, positions: dict[str, Any], marks: dict[str, float]) -> float:
        return sum(abs(p["quantity"]) * marks[s] * self._spec(s).multiplier / self._spec(s).max_leverage
                   for s, p in positions.items() if p["quantity"])

    # ------------------------------------------------------------------ Broker
    def portfolio(self, as_of: datetime) -> PortfolioSnapshot:
        st = self.state()
        self._check_time(st, as_of)
        holdings = []
        value = 0.0
        marks = {}
        for sym, p in sorted(st["positions"].items()):
            if not p["quantity"]:
                continue
            spec = self._spec(sym)
            px = self._price(sym, as_of)
            marks[sym] = px
            mv = p["quantity"] * px * spec.multiplier
            value += mv
            holdings.append(Holding(symbol=sym, secType=spec.secType, exchange=spec.exchange, currency=spec.currency,
                                    quantity=p["quantity"], avg_cost=p["avg_cost"], market_price=px, market_value=mv))
        nav = st["cash"] + value
        now = datetime.now(timezone.utc)
        return PortfolioSnapshot(
            snapshot_id="", updated_at=now, as_of=as_of, broker=self.name, account=self.account, mode=self.mode,
            base_currency=self.base_currency, net_liquidation=nav,
            available_funds=nav - self._margin(st["positions"], marks), cash=st["cash"], holdings=holdings,
            open_orders=[])

    def instrument_specs(self, symbols: list[str]) -> dict[str, InstrumentSpec]:
        return {s: self._spec(s) for s in symbols}

    def quotes(self, symbols: list[str], as_of: datetime) -> dict[str, float]:
        for s in symbols:
            self._spec(s)
        return {s: self._price(s, as_of) for s in symbols}

    def place_order(self, order: OrderRequest, as_of: datetime) -> OrderResult:
        if order.order_type != "MKT":
            raise OrderRejected(f"sim: {order.order_type} orders are not supported yet; use MKT")
        if order.quantity <= 0:
            raise OrderRejected(f"sim: quantity must be positive, got {order.quantity}")
        spec = self._spec(order.symbol)
        order_path = paths.sim_order(self.account, order.client_order_id)
        docs = self.store.get_all([paths.sim_account(self.account), order_path])
        if docs[order_path] is not None:
            raise DuplicateOrder(f"sim: client order id {order.client_order_id} already used; order refused")
        st = docs[paths.sim_account(self.account)] or self._new_state()
        self._check_time(st, as_of)
        lots = order.quantity / spec.lot_size
        if abs(lots - round(lots)) > 1e-9:
            raise OrderRejected(f"sim: {order.symbol} quantity {order.quantity} is not a multiple of lot {spec.lot_size}")
        if order.quantity < spec.min_quantity:
            raise OrderRejected(f"sim: {order.symbol} quantity {order.quantity} below minimum {spec.min_quantity}")
        px = self._price(order.symbol, as_of)
        sign = 1.0 if order.action == "BUY" else -1.0
        fill = px * (1 + sign * self.slippage_bps / 1e4)
        notional = order.quantity * fill * spec.multiplier
        if notional < spec.min_notional:
            raise OrderRejected(f"sim: {order.symbol} notional {notional:.2f} below minimum {spec.min_notional}")
        fee = notional * self.fee_bps / 1e4
        positions = dict(st["positions"])
        before = positions.get(order.symbol) or {"quantity": 0.0, "avg_cost": 0.0}
        q1, avg, realized = apply_fill(before["quantity"], before["avg_cost"], sign * order.quantity, fill)
        new_pos = {"quantity": q1, "avg_cost": avg}
        positions[order.symbol] = new_pos
        cash = st["cash"] - sign * notional - fee
        marks = {s: (px if s == order.symbol else self._price(s, as_of)) for s, p in positions.items() if p["quantity"]}
        nav = cash + sum(positions[s]["quantity"] * marks[s] * self._spec(s).multiplier for s in marks)
        increases = abs(q1) > abs(before["quantity"])
        if increases and self._margin(positions, marks) > nav:
            raise InsufficientFunds(
                f"sim: {order.action} {order.quantity} {order.symbol} needs margin beyond NAV {nav:.2f}")
        st.update(cash=cash, positions=positions, fees_paid=st["fees_paid"] + fee,
                  realized_pnl=st["realized_pnl"] + realized, order_count=st["order_count"] + 1,
                  updated_at=datetime.now(timezone.utc), last_as_of=as_of)
        order_id = f"sim-{st['order_count']}"
        record = {"orderId": order_id, "client_order_id": order.client_order_id, "symbol": order.symbol,
                  "action": order.action, "totalQuantity": order.quantity, "orderType": order.order_type,
                  "status": "Filled", "filled_quantity": order.quantity, "fill_price": fill, "commission": fee,
                  "as_of": as_of, "placed_at": datetime.now(timezone.utc)}
        self.store.write_batch([(paths.sim_account(self.account), st), (order_path, record)])
        return OrderResult(orderId=order_id, client_order_id=order.client_order_id, status="Filled",
                           filled_quantity=order.quantity, fill_price=fill, commission=fee)

    def cancel_order(self, client_order_id: str) -> OrderResult:
        rec = self.order_status(client_order_id)
        if rec.status == "Filled":
            raise OrderRejected(f"sim: order {client_order_id} is already filled")
        return rec

    def order_status(self, client_order_id: str) -> OrderResult:
        rec = self.store.get(paths.sim_order(self.account, client_order_id))
        if rec is None:
            raise OrderRejected(f"sim: no order with client order id {client_order_id}")
        return OrderResult(orderId=rec["orderId"], client_order_id=client_order_id, status=rec["status"],
                           filled_quantity=rec["filled_quantity"], fill_price=rec["fill_price"],
                           commission=rec["commission"])

    def set_position(self, symbol: str, quantity: float, avg_cost: float) -> None:
        """Change a holding directly, as a manual trade at the broker would (tests, demos)."""
        self._spec(symbol)
        st = self.state()
        st["positions"][symbol] = {"quantity": float(quantity), "avg_cost": float(avg_cost)}
        self.store.set(paths.sim_account(self.account), st)
