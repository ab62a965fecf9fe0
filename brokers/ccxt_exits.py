"""Protective exits on Binance USD-M through ccxt 4.5.90: conditional orders of the "Algo Order API".

Mixed into :class:`brokers.ccxt_exchange.CcxtBroker` under :class:`brokers.hyperliquid_exits.HyperliquidExitsMixin`
(Hyperliquid's trigger orders; ``supports_protective`` is true for ``binanceusdm`` and ``hyperliquid``; Binance
spot is not wired). The OCA emulation here (:meth:`BinanceExitsMixin._cancel_siblings`,
:meth:`BinanceExitsMixin._sweep_oca`) serves both venues through the per-venue hooks.

* **Placing.** ``STP`` -> ``STOP_MARKET`` (ccxt ``stopLossPrice``), ``MIT`` ->
  ``TAKE_PROFIT_MARKET`` (ccxt ``takeProfitPrice``), always ``reduceOnly=true`` (a leg can
  only shrink the position: Binance clips a triggered leg to the position and rejects it
  when there is nothing to reduce), ``workingType=MARK_PRICE`` (the trigger follows the mark
  price, not the last trade: one thin print does not fire a stop), client id = our client
  order id. Since 2025-12-09 Binance takes conditional orders only on ``POST
  /fapi/v1/algoOrder`` (``clientAlgoId``); ccxt sends them there. A trigger the price has
  already passed is refused (-2021 "Order would immediately trigger."): an
  :class:`~brokers.base.OrderRejected`.
* **Triggering.** The venue turns a triggered leg into a regular market order with the same
  client id (``actualOrderId`` on the algo order); its fills, average price and fees are those
  of that order. :meth:`order_status` follows it, so a triggered exit reports ``Filled`` with
  the price it really got (usually worse than the trigger).
* **OCA, emulated.** Binance has no OCA. The legs' client order ids carry their exit
  (:mod:`brokers.protective`: ``px{S|T}{key}-{SYMBOL}``). The adapter cancels a sibling
  (1) in :meth:`order_status` of a leg that has fills, and (2) in :meth:`portfolio`, for an open
  leg that is the only open one of its group, when its sibling has triggered. Until one of the
  two runs, the sibling rests; being reduce-only it cannot open a position, only close (part
  of) one the next run holds.
* **Reading back.** :meth:`portfolio` lists the open conditional orders with the regular ones:
  ``orderType`` ``STP`` / ``MIT``, ``auxPrice`` = trigger price, ``reduce_only``, ``ocaGroup``
  from the client id (or, in the process that placed it, from the request).
"""

from __future__ import annotations

import logging
from typing import Any, Callable

from brokers.base import BrokerError, OrderRejected, OrderRequest
from brokers.protective import is_exit_id, oca_group_of, sibling_ids
from bus.models import OrderType

log = logging.getLogger(__name__)

#: Binance's conditional order types -> ours.
ALGO_TYPES: dict[str, OrderType] = {"STOP_MARKET": "STP", "TAKE_PROFIT_MARKET": "MIT", "STOP": "STP",
                                    "TAKE_PROFIT": "MIT"}
#: ``workingType`` of every exit: the trigger follows the mark price.
WORKING_TYPE = "MARK_PRICE"


def is_algo(o: dict) -> bool:
    """The ccxt order is a Binance conditional (algo) order, not a regular one."""
    return "algoId" in (o.get("info") or {})


def algo_kind(o: dict) -> OrderType | None:
    """``STP`` / ``MIT`` for a resting Binance conditional order, else None."""
    info = o.get("info") or {}
    if not is_algo(o):
        return None
    return ALGO_TYPES.get(str(info.get("orderType") or info.get("type") or "").upper())


class BinanceExitsMixin:
    """Binance conditional orders for :class:`~brokers.ccxt_exchange.CcxtBroker` (see the module docstring)."""

    exchange: Any
    name: str
    supports_protective: bool  # true for binanceusdm (set by CcxtBroker)
    _oca: dict[str, str]  # client order id -> OCA group, for legs this process placed
    _exits: set[str]  # client order ids of protective legs this process placed
    _our_ids: dict[str, str]  # the venue's client order id (lowercase) -> ours

    # provided by CcxtBroker
    _ctx: Callable[[str], str]
    _err: Callable[[Exception, str], BrokerError]
    _read: Callable[[str, Callable[[], Any]], Any]
    _venue_id: Callable[[str], str]
    project_symbol: Callable[[str], str]

    def _is_exit_id(self, client_order_id: str) -> bool:
        """Whether ``client_order_id`` names a protective leg (by the id convention, or placed here)."""
        return client_order_id in self._exits or is_exit_id(client_order_id)

    def _exit_params(self, order: OrderRequest) -> dict[str, Any]:
        """ccxt ``create_order`` params of a protective leg (a ``market`` order with a trigger).

        Raises:
            OrderRejected: this venue takes no exits, or the leg is not reduce-only.
        """
        if not self.supports_protective:
            raise OrderRejected(self._ctx(f"order {order.client_order_id}: {self.name} takes no protective exits"))
        if not order.reduce_only:
            raise OrderRejected(self._ctx(f"order {order.client_order_id}: a {order.order_type} exit must be "
                                          f"reduce-only"))
        key = "stopLossPrice" if order.order_type == "STP" else "takeProfitPrice"
        self._exits.add(order.client_order_id)
        if order.oca_group:
            self._oca[order.client_order_id] = order.oca_group
        return {"clientOrderId": self._venue_id(order.client_order_id), key: order.trigger_price,
                "reduceOnly": True, "workingType": WORKING_TYPE}

    def _exit_price(self, order: OrderRequest) -> float | None:
        """The price ccxt gets with a leg: none on Binance (the trigger is in the params)."""
        return None

    def _fired(self, o: dict) -> bool:
        """Whether a leg, as :meth:`_fetch_algo` finds it, has triggered (Binance: ``algoStatus``)."""
        return str((o.get("info") or {}).get("algoStatus")) in ("TRIGGERED", "FINISHED")

    def _with_exits(self, orders: list[dict]) -> list[dict]:
        """The open orders :meth:`portfolio` lists: the regular ones, then the open conditional orders left
        after the OCA sweep (:meth:`_sweep_oca`)."""
        return [*orders, *self._sweep_oca(self._open_algo_orders())]

    def _our_id(self, o: dict) -> str:
        """Our client order id of a venue order (the venue's own when this process does not know it)."""
        cid = str(o.get("clientOrderId") or "")
        return self._our_ids.get(cid.lower(), cid)

    def _fetch_algo(self, sym: str, client_order_id: str) -> dict | None:
        """The conditional order with this client id on ``sym`` (as ccxt parses it), or None."""
        import ccxt

        try:
            found = self.exchange.fetch_order(None, sym, {"clientOrderId": self._venue_id(client_order_id),
                                                          "trigger": True})
        except ccxt.OrderNotFound:
            return None
        except ccxt.BaseError as exc:
            raise self._err(exc, f"look up conditional order {client_order_id}") from exc
        return found if found and found.get("id") else None

    def _follow_algo(self, sym: str, algo: dict) -> dict:
        """A conditional order, or once triggered the regular order it became (its fills and price).

        ccxt calls a triggered algo order ``closed`` without fills; a triggered one whose regular
        order is not yet told is still working."""
        info = algo.get("info") or {}
        actual = str(info.get("actualOrderId") or "")
        if actual and actual != "0":
            return self._read(f"triggered order {actual}", lambda: self.exchange.fetch_order(actual, sym))
        if str(info.get("algoStatus")) in ("TRIGGERED", "FINISHED", "TRIGGERING"):
            return {**algo, "status": "open"}
        return algo

    def _lookup_exit(self, sym: str, client_order_id: str) -> dict | None:
        """The leg with this client id on ``sym``, followed to its regular order once triggered."""
        algo = self._read(f"order {client_order_id}", lambda: self._fetch_algo(sym, client_order_id))
        return self._follow_algo(sym, algo) if algo else None

    def _open_algo_orders(self) -> list[dict]:
        """Every untriggered conditional order of the account (``GET /fapi/v1/openAlgoOrders``)."""
        if not self.supports_protective:
            return []
        return self._read("open conditional orders", lambda: self.exchange.fetch_open_orders(
            None, None, None, {"trigger": True}))

    def _cancel_algo(self, sym: str, o: dict) -> dict:
        """Cancel a conditional order; its state afterwards."""
        import ccxt

        try:
            self.exchange.cancel_order(o["id"], sym, {"trigger": True})
        except ccxt.BaseError as exc:
            raise self._err(exc, f"cancel conditional order {o.get('clientOrderId')}") from exc
        return self._read("conditional order", lambda: self.exchange.fetch_order(o["id"], sym, {"trigger": True}))

    def _group_of(self, client_order_id: str, sym: str) -> str | None:
        """The OCA group of a leg on ccxt symbol ``sym``: as placed here, else from its id."""
        return self._oca.get(client_order_id) or oca_group_of(client_order_id, self.project_symbol(sym))

    def _siblings(self, client_order_id: str, sym: str) -> set[str]:
        """The client ids of the other legs of this leg's group (by the id convention, or placed here)."""
        out = set(sibling_ids(client_order_id, self.project_symbol(sym)))
        group = self._oca.get(client_order_id)
        if group:
            out |= {cid for cid, g in self._oca.items() if g == group and cid != client_order_id}
        return out

    def _cancel_siblings(self, sym: str, client_order_id: str) -> list[str]:
        """OCA: a leg has fills, so cancel the other open legs of its group. Failures are logged (the
        next :meth:`order_status` or :meth:`portfolio` tries again). Returns the ids cancelled."""
        done = []
        for sid in sorted(self._siblings(client_order_id, sym)):
            try:
                algo = self._fetch_algo(sym, sid)
                if algo and algo.get("status") == "open":
                    self._cancel_algo(sym, algo)
                    done.append(sid)
                    log.info("%s: OCA: %s triggered, sibling %s cancelled", self._ctx(sym), client_order_id, sid)
            except BrokerError as exc:
                log.warning("%s: OCA: sibling %s of %s not cancelled: %s", self._ctx(sym), sid, client_order_id, exc)
        return done

    def _sweep_oca(self, algos: list[dict]) -> list[dict]:
        """OCA at read time: an open leg that is the only open one of its group, whose sibling has
        triggered, is cancelled and left out. Returns the open conditional orders that remain."""
        groups: dict[str, int] = {}
        for o in algos:
            g = self._group_of(self._our_id(o), o["symbol"])
            if g:
                groups[g] = groups.get(g, 0) + 1
        keep = []
        for o in algos:
            cid = self._our_id(o)
            g = self._group_of(cid, o["symbol"])
            if g and groups[g] == 1 and self._sibling_triggered(o["symbol"], cid):
                try:
                    self._cancel_algo(o["symbol"], o)
                    log.info("%s: OCA: a sibling of %s triggered; %s cancelled", self._ctx(g), cid, cid)
                    continue
                except BrokerError as exc:
                    log.warning("%s: OCA: %s not cancelled: %s", self._ctx(g), cid, exc)
            keep.append(o)
        return keep

    def _sibling_triggered(self, sym: str, client_order_id: str) -> bool:
        for sid in sorted(self._siblings(client_order_id, sym)):
            try:
                algo = self._fetch_algo(sym, sid)
            except BrokerError as exc:
                log.warning("%s: OCA: sibling %s not read: %s", self._ctx(sym), sid, exc)
                continue
            if algo and self._fired(algo):
                return True
        return False
