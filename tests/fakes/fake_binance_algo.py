"""Conditional orders of the fake Binance USD-M server: Binance's "Algo Service".

Since 2025-12-09 Binance USD-M futures refuse conditional order types on
``POST /fapi/v1/order`` with code -4120 ("Order type not supported for this
endpoint. Please use the Algo Order API endpoints instead.") and take them only
on the Algo Order API, which ccxt 4.5.90's ``create_order`` uses whenever a
linear swap order carries ``triggerPrice`` / ``stopPrice`` / ``stopLossPrice`` /
``takeProfitPrice``::

    POST   /fapi/v1/algoOrder        new conditional order (algoType=CONDITIONAL,
                                     triggerPrice, clientAlgoId, ...)
    GET    /fapi/v1/algoOrder        one order, by algoId or clientAlgoId
    DELETE /fapi/v1/algoOrder        cancel one
    GET    /fapi/v1/openAlgoOrders   the untriggered ones
    GET    /fapi/v1/allAlgoOrders    all of a symbol
    DELETE /fapi/v1/algoOpenOrders   cancel all of a symbol

What the fake models (Binance's "New Algo Order" / "Query Algo Order" pages and
the ``ALGO_UPDATE`` event, developers.binance.com, 2026):

* Types ``STOP_MARKET`` / ``TAKE_PROFIT_MARKET`` (and the limit variants ``STOP``
  / ``TAKE_PROFIT``, which need ``price``), with ``quantity`` + optional
  ``reduceOnly=true``, or ``closePosition=true`` without quantity/reduceOnly
  (-1106 otherwise).  ``TRAILING_STOP_MARKET`` is not modelled (-1116).
* The order rests with ``algoStatus`` ``NEW``; no margin is checked or reserved
  until it triggers.  A trigger price the market already reached is refused with
  -2021 "Order would immediately trigger.".
* It triggers when :meth:`FakeBinanceUSDM.set_mark_price` moves the price to the
  trigger -- ``STOP*``: BUY when price >= triggerPrice, SELL when price <=
  triggerPrice; ``TAKE_PROFIT*``: the other way round.  The fake has one price
  per symbol, so ``workingType`` ``MARK_PRICE`` and ``CONTRACT_PRICE`` both use it.
* Triggering places a regular order in the book (``MARKET``, or ``LIMIT`` at
  ``price`` for ``STOP``/``TAKE_PROFIT``) with ``clientOrderId`` = the
  ``clientAlgoId``, ``origType`` = the conditional type, ``stopPrice`` = the
  trigger price; it fills like any order (a :meth:`partial_next` rule applies
  to it).  The algo order shows ``algoStatus`` ``TRIGGERED`` while that order is
  open and ``FINISHED`` once it is done, with ``actualOrderId`` (a string) and
  ``actualPrice`` (its average price).  Fills, fees and realised PnL are those
  of the regular order: ``GET /fapi/v1/order?orderId=<actualOrderId>`` and
  ``/fapi/v1/userTrades``.
* At trigger time a reduce-only order that cannot reduce (no position, or the
  position is on the same side) is ``REJECTED`` (Binance's ``ALGO_UPDATE`` reason
  "Reduce Only reject"), a close-position order without a position ``EXPIRED``,
  and an order the margin cannot carry ``REJECTED``; no regular order results.
* ``clientAlgoId`` follows ``client_order_id_scope`` like ``newClientOrderId``
  (Binance: "A unique id among open orders"); duplicates get -4116.
"""

from __future__ import annotations

import itertools
import random
import string
import threading
from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from .fake_binance_base import (
    _CLIENT_ORDER_ID_RE,
    MSG_DUPLICATE_CLIENT_ID,
    MSG_MIN_NOTIONAL,
    MSG_WOULD_TRIGGER,
    OPEN_STATUSES,
    ZERO,
    BinanceAPIError,
    _fixed,
    _missing,
    _not_required,
    _parse_bool,
    _parse_number,
)

ALGO_TYPES = ("STOP_MARKET", "TAKE_PROFIT_MARKET", "STOP", "TAKE_PROFIT")
ALGO_OPEN_STATUSES = ("NEW",)


@dataclass
class _AlgoOrder:
    algo_id: int
    client_algo_id: str
    symbol: str
    side: str
    type: str
    time_in_force: str
    qty: Decimal
    price: Decimal
    trigger_price: Decimal
    working_type: str
    reduce_only: bool
    close_position: bool
    price_protect: bool
    stp_mode: str
    create_time: int
    update_time: int
    status: str = "NEW"
    trigger_time: int = 0
    actual_order_id: int | None = None
    reason: str = ""


class AlgoOrdersMixin:
    """The Algo Service endpoints of :class:`tests.fakes.fake_binance.FakeBinanceUSDM`.

    Relies on the host class's state (``_specs``, ``_marks``, ``_positions``,
    ``_orders``, ``_lock``, ``client_order_id_scope``) and helpers (``_spec``,
    ``_now_ms``, ``_check_quantity``, ``_check_price``, ``_place_order``,
    ``_order_json``).  Endpoint methods run with the lock held."""

    _algo_orders: dict[int, _AlgoOrder]
    _algo_client_ids: dict[str, int]

    # provided by the host class
    _lock: threading.RLock
    _specs: dict[str, Any]
    _marks: dict[str, Decimal]
    _positions: dict[str, Any]
    _orders: dict[int, Any]
    client_order_id_scope: str
    _spec: Callable[[str | None], Any]
    _now_ms: Callable[[], int]
    _check_quantity: Callable[[Any, Decimal, str], None]
    _check_price: Callable[[Any, Decimal, str], None]
    _place_order: Callable[..., tuple[Any, dict]]
    _symbols_param: Callable[[dict], list[str]]
    _limit: Callable[..., int]
    _time_window: Callable[[dict], tuple[int | None, int | None]]

    def _init_algo(self) -> None:
        self._algo_orders = {}
        self._algo_client_ids = {}
        self._algo_ids = itertools.count(1_000_000_001)

    # ------------------------------------------------------------------ inspection

    def algo_orders(self, symbol: str | None = None, *, open_only: bool = False) -> list[dict]:
        """Every conditional order (or every untriggered one) as ``GET /fapi/v1/algoOrder`` shows it."""
        with self._lock:
            return [self._algo_json(a, query=True) for a in self._algo_orders.values()
                    if (symbol is None or a.symbol == symbol)
                    and (not open_only or a.status in ALGO_OPEN_STATUSES)]

    # ------------------------------------------------------------------ triggering (lock held)

    @staticmethod
    def _reached(a: _AlgoOrder, price: Decimal) -> bool:
        stop = a.type in ("STOP", "STOP_MARKET")
        if a.side == "BUY":
            return price >= a.trigger_price if stop else price <= a.trigger_price
        return price <= a.trigger_price if stop else price >= a.trigger_price

    def _check_triggers(self, symbol: str) -> list[dict]:
        price = self._marks[symbol]
        fired = []
        for a in list(self._algo_orders.values()):
            if a.symbol == symbol and a.status in ALGO_OPEN_STATUSES and self._reached(a, price):
                self._trigger(a)
                fired.append(self._algo_json(a, query=True))
        return fired

    def _trigger(self, a: _AlgoOrder) -> None:
        spec = self._specs[a.symbol]
        pos = self._positions[a.symbol]
        now = self._now_ms()
        a.trigger_time = a.update_time = now
        qty = a.qty
        if a.close_position:
            closing = (a.side == "SELL" and pos.amt > 0) or (a.side == "BUY" and pos.amt < 0)
            if not closing:
                a.status, a.reason = "EXPIRED", "Close position reject"
                return
            qty = abs(pos.amt)
        market = a.type.endswith("_MARKET")
        try:
            order, _ = self._place_order(
                spec, a.side, "MARKET" if market else "LIMIT", "GTC" if market else a.time_in_force, qty,
                ZERO if market else a.price, a.reduce_only or a.close_position, a.client_algo_id,
                orig_type=a.type, stop_price=a.trigger_price, working_type=a.working_type,
                close_position=a.close_position)
        except BinanceAPIError as err:
            a.status = "REJECTED"
            a.reason = "Reduce Only reject" if err.code == -2022 else err.msg
            return
        a.status = "TRIGGERED"
        a.actual_order_id = order.order_id

    def _algo_status(self, a: _AlgoOrder) -> str:
        if a.status == "TRIGGERED" and a.actual_order_id is not None:
            if self._orders[a.actual_order_id].status not in OPEN_STATUSES:
                return "FINISHED"
        return a.status

    # ------------------------------------------------------------------ JSON (lock held)

    def _algo_json(self, a: _AlgoOrder, query: bool = False) -> dict:
        spec = self._specs[a.symbol]
        pp, qp = spec.price_precision, spec.quantity_precision
        out: dict[str, Any] = {
            "algoId": a.algo_id,
            "clientAlgoId": a.client_algo_id,
            "algoType": "CONDITIONAL",
            "orderType": a.type,
            "symbol": a.symbol,
            "side": a.side,
            "positionSide": "BOTH",
            "timeInForce": a.time_in_force,
            "quantity": _fixed(a.qty, qp),
            "algoStatus": self._algo_status(a),
        }
        if query:
            actual = self._orders.get(a.actual_order_id) if a.actual_order_id else None
            avg = actual.cum_quote / actual.executed if actual is not None and actual.executed else ZERO
            out["actualOrderId"] = str(a.actual_order_id) if a.actual_order_id else ""
            out["actualPrice"] = _fixed(avg, 5 if not avg else pp + 3)
        out.update({
            "triggerPrice": _fixed(a.trigger_price, pp),
            "price": _fixed(a.price, pp),
            "icebergQuantity": None,
        })
        if query:
            zero = _fixed(ZERO, pp)
            out.update({"tpTriggerPrice": zero, "tpPrice": zero, "slTriggerPrice": zero, "slPrice": zero,
                        "tpOrderType": ""})
        out.update({
            "selfTradePreventionMode": a.stp_mode,
            "workingType": a.working_type,
            "priceMatch": "NONE",
            "closePosition": a.close_position,
            "priceProtect": a.price_protect,
            "reduceOnly": a.reduce_only,
            "createTime": a.create_time,
            "updateTime": a.update_time,
            "triggerTime": a.trigger_time,
            "goodTillDate": 0,
        })
        return out

    # ------------------------------------------------------------------ endpoints (lock held)

    def _ep_new_algo_order(self, params: dict) -> dict:
        if not params.get("algoType"):
            raise _missing("algoType")
        if params["algoType"] != "CONDITIONAL":
            raise BinanceAPIError(-1130, "Data sent for parameter 'algoType' is not valid.")
        for name in ("symbol", "side", "type"):
            if not params.get(name):
                raise _missing(name)
        spec = self._spec(params["symbol"])
        side = params["side"]
        if side not in ("BUY", "SELL"):
            raise BinanceAPIError(-1117, "Invalid side.")
        otype = params["type"]
        if otype not in ALGO_TYPES:  # TRAILING_STOP_MARKET is not modelled by the fake
            raise BinanceAPIError(-1116, "Invalid orderType.")
        if params.get("positionSide", "BOTH") != "BOTH":
            raise BinanceAPIError(-4061, "Order's position side does not match user's setting.")
        market = otype.endswith("_MARKET")
        close_position = _parse_bool(params, "closePosition")
        reduce_only = _parse_bool(params, "reduceOnly")
        qty, trigger, price, tif = self._algo_amounts(spec, params, market, close_position, reduce_only)
        working_type = params.get("workingType", "CONTRACT_PRICE")
        if working_type not in ("MARK_PRICE", "CONTRACT_PRICE"):
            raise BinanceAPIError(-1130, "Data sent for parameter 'workingType' is not valid.")
        client_id = params.get("clientAlgoId")
        if client_id is not None and not _CLIENT_ORDER_ID_RE.match(client_id):
            raise BinanceAPIError(-1100, "Illegal characters found in parameter 'clientAlgoId'; legal range is "
                                         "'^[\\.A-Z\\:/a-z0-9_-]{1,36}$'.")
        if not (reduce_only or close_position) and qty * (price or trigger) < Decimal(spec.min_notional):
            raise BinanceAPIError(-4164, MSG_MIN_NOTIONAL.format(n=spec.min_notional))
        if client_id is not None:
            existing = self._algo_client_ids.get(client_id)
            if existing is not None and (self.client_order_id_scope == "all"
                                         or self._algo_orders[existing].status in ALGO_OPEN_STATUSES):
                raise BinanceAPIError(-4116, MSG_DUPLICATE_CLIENT_ID)
        else:
            client_id = "".join(random.choices(string.ascii_letters + string.digits, k=22))
        now = self._now_ms()
        a = _AlgoOrder(
            algo_id=next(self._algo_ids), client_algo_id=client_id, symbol=spec.symbol, side=side, type=otype,
            time_in_force=tif, qty=qty, price=price, trigger_price=trigger, working_type=working_type,
            reduce_only=reduce_only, close_position=close_position,
            price_protect=params.get("priceProtect", "false").lower() == "true",
            stp_mode=params.get("selfTradePreventionMode", "EXPIRE_MAKER"), create_time=now, update_time=now,
        )
        if self._reached(a, self._marks[spec.symbol]):
            raise BinanceAPIError(-2021, MSG_WOULD_TRIGGER)
        self._algo_orders[a.algo_id] = a
        self._algo_client_ids[client_id] = a.algo_id
        return self._algo_json(a)

    def _algo_amounts(self, spec: Any, params: dict, market: bool, close_position: bool,
                      reduce_only: bool) -> tuple[Decimal, Decimal, Decimal, str]:
        """Quantity, trigger price, limit price and time in force of a new algo order, checked."""
        if close_position:
            if not market:
                raise BinanceAPIError(
                    -4136, f"Target strategy invalid for orderType {params['type']},closePosition true")
            if "quantity" in params:
                raise _not_required("quantity")
            if reduce_only:
                raise _not_required("reduceOnly")
            qty = ZERO
        else:
            qty = _parse_number(params, "quantity")
            self._check_quantity(spec, qty, "MARKET" if market else "LIMIT")
        trigger = _parse_number(params, "triggerPrice")
        assert trigger is not None
        self._check_price(spec, trigger, "triggerPrice")
        price = ZERO
        tif = params.get("timeInForce", "GTC")
        if market:
            if "price" in params:
                raise _not_required("price")
        else:
            price = _parse_number(params, "price")
            self._check_price(spec, price, "price")
            if tif not in ("GTC", "IOC", "FOK", "GTX", "GTD"):
                raise BinanceAPIError(-1115, "Invalid timeInForce.")
        return qty, trigger, price, tif

    def _algo_from_params(self, params: dict, missing_code: int = -2013) -> _AlgoOrder:
        found: _AlgoOrder | None = None
        if params.get("algoId"):
            if not params["algoId"].isdigit():
                raise BinanceAPIError(-1100, "Illegal characters found in parameter 'algoId'; legal range is "
                                             "'^[0-9]{1,20}$'.")
            found = self._algo_orders.get(int(params["algoId"]))
        elif params.get("clientAlgoId"):
            aid = self._algo_client_ids.get(params["clientAlgoId"])
            found = self._algo_orders.get(aid) if aid is not None else None
        else:
            raise BinanceAPIError(-1102, "Param 'algoId' or 'clientAlgoId' must be sent, but both were empty/null!")
        if found is None or (params.get("symbol") and params["symbol"] != found.symbol):
            if missing_code == -2011:
                raise BinanceAPIError(-2011, "Unknown order sent.")
            raise BinanceAPIError(-2013, "Order does not exist.")
        return found

    def _ep_query_algo_order(self, params: dict) -> dict:
        return self._algo_json(self._algo_from_params(params), query=True)

    def _ep_cancel_algo_order(self, params: dict) -> dict:
        a = self._algo_from_params(params, missing_code=-2011)
        if a.status not in ALGO_OPEN_STATUSES:
            raise BinanceAPIError(-2011, "Unknown order sent.")
        a.status = "CANCELED"
        a.update_time = self._now_ms()
        return {"algoId": a.algo_id, "clientAlgoId": a.client_algo_id, "code": "200", "msg": "success"}

    def _ep_open_algo_orders(self, params: dict) -> list:
        symbols = self._symbols_param(params)
        rows = [a for a in self._algo_orders.values() if a.symbol in symbols and a.status in ALGO_OPEN_STATUSES]
        if params.get("algoId", "").isdigit():
            rows = [a for a in rows if a.algo_id == int(params["algoId"])]
        return [self._algo_json(a, query=True) for a in rows]

    def _ep_all_algo_orders(self, params: dict) -> list:
        spec = self._spec(params.get("symbol"))
        rows = [self._algo_json(a, query=True) for a in self._algo_orders.values() if a.symbol == spec.symbol]
        limit = self._limit(params)
        if params.get("algoId", "").isdigit():
            return [r for r in rows if r["algoId"] >= int(params["algoId"])][:limit]
        start, end = self._time_window(params)
        rows = [r for r in rows if r["createTime"] >= start and (end is None or r["createTime"] <= end)]
        return rows[-limit:]

    def _ep_cancel_all_algo_orders(self, params: dict) -> dict:
        spec = self._spec(params.get("symbol"))
        now = self._now_ms()
        for a in self._algo_orders.values():
            if a.symbol == spec.symbol and a.status in ALGO_OPEN_STATUSES:
                a.status = "CANCELED"
                a.update_time = now
        return {"code": 200, "msg": "The operation of cancel all open order is done."}
