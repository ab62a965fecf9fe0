"""Protective exits on Hyperliquid through ccxt 4.5.90: standalone trigger orders.

Mixed into :class:`brokers.ccxt_exchange.CcxtBroker` over :class:`brokers.ccxt_exits.BinanceExitsMixin`:
each method here handles Hyperliquid and hands every other venue to the Binance one.

* **Placing.** ``STP`` -> ccxt ``stopLossPrice``, ``MIT`` -> ``takeProfitPrice``: the ``order`` action
  carries ``t: {"trigger": {"isMarket": true, "triggerPx", "tpsl": "sl" | "tp"}}``, ``r: true``
  (reduce-only: a triggered leg only shrinks the position, clipped to it) and ``grouping: "na"`` (a
  standalone order; Hyperliquid's ``normalTpsl`` needs the parent order in the same action and
  ``positionTpsl`` covers the whole position, so neither fits several strategies' exits on one coin).
  Hyperliquid needs a worst price ``p`` even for a market trigger, on the far side of the trigger (a sell's
  ``p <= triggerPx``): ccxt makes it ``trigger × (1 ∓ market_slippage)`` from the trigger passed as the
  price. The cloid is the one the broker gives every order (:func:`brokers.ccxt_exchange.venue_client_id`).
  The venue triggers on its mark price.
* **Triggering.** A triggered leg keeps its oid and cloid: ``orderStatus`` by cloid tells its fills
  (``filled``), and ``userFills`` its price, as for any order.
* **OCA, emulated** as on Binance (:mod:`brokers.ccxt_exits`): Hyperliquid cancels no sibling of a
  standalone trigger order. The adapter cancels the other leg in :meth:`order_status` of a leg with fills
  and, in :meth:`portfolio`, an open leg that is the only open one of its group whose sibling has fired.
  The cloid is a digest of our id, so a process knows a leg's group once it has asked for one of the
  group's ids (reconcile asks for every open order before it reads the account).
* **Reading back.** The trigger orders come with the regular ones in ``frontendOpenOrders`` (``isTrigger``,
  ``triggerPx``, ``orderType`` ``Stop Market`` / ``Take Profit Market``): listed as ``STP`` / ``MIT`` with
  the trigger as ``auxPrice``, ``reduce_only`` and the OCA group.
"""

from __future__ import annotations

from typing import Any, Callable

from brokers.base import OrderRequest
from brokers.ccxt_exits import BinanceExitsMixin, algo_kind
from bus.models import OrderType

HYPERLIQUID = "hyperliquid"
#: Hyperliquid's trigger order types (``orderType`` of a ``frontendOpenOrders`` row) -> ours.
TRIGGER_TYPES: dict[str, OrderType] = {"stop market": "STP", "stop limit": "STP", "take profit market": "MIT",
                                       "take profit limit": "MIT"}
#: ``orderStatus`` statuses of a trigger order that has fired.
FIRED = ("triggered", "filled")


def exit_kind(o: dict) -> OrderType | None:
    """``STP`` / ``MIT`` for a resting exit leg of either venue (a Binance algo order, a Hyperliquid trigger
    order), else None."""
    return algo_kind(o) or trigger_kind(o)


def trigger_kind(o: dict) -> OrderType | None:
    """``STP`` / ``MIT`` for a ccxt order parsed from a Hyperliquid trigger order, else None."""
    info = o.get("info") or {}
    entry: dict = info["order"] if isinstance(info.get("order"), dict) else info
    if not entry.get("isTrigger") or str(entry.get("isTrigger")).lower() == "false":
        return None
    return TRIGGER_TYPES.get(str(entry.get("orderType") or "").lower())


class HyperliquidExitsMixin(BinanceExitsMixin):
    """Hyperliquid trigger orders for :class:`~brokers.ccxt_exchange.CcxtBroker` (see the module docstring)."""

    market_slippage: float  # set by CcxtBroker
    _fetch_by_client_id: Callable[[str | None, str], dict | None]  # provided by CcxtBroker

    def _hl(self) -> bool:
        return self.name == HYPERLIQUID

    def _exit_params(self, order: OrderRequest) -> dict[str, Any]:
        """ccxt ``create_order`` params of a leg: a ``market`` order with ``stopLossPrice`` /
        ``takeProfitPrice``, reduce-only, the broker's slippage.

        Raises:
            OrderRejected: this venue takes no exits, or the leg is not reduce-only.
        """
        params = super()._exit_params(order)
        if not self._hl():
            return params
        params.pop("workingType", None)  # Hyperliquid triggers on the mark price; there is no choice to make
        return {**params, "slippage": str(self.market_slippage)}

    def _exit_price(self, order: OrderRequest) -> float | None:
        """The price ccxt gets with a leg: Hyperliquid, the trigger (ccxt derives the worst price ``p`` from it)."""
        return order.trigger_price if self._hl() else super()._exit_price(order)

    def _fetch_algo(self, sym: str, client_order_id: str) -> dict | None:
        """Hyperliquid: the leg by cloid (``orderStatus``), triggered or not; it is an ordinary order."""
        if not self._hl():
            return super()._fetch_algo(sym, client_order_id)
        return self._fetch_by_client_id(sym, client_order_id)

    def _open_algo_orders(self) -> list[dict]:
        """Hyperliquid lists its trigger orders with the regular ones: nothing more to ask for."""
        return [] if self._hl() else super()._open_algo_orders()

    def _cancel_algo(self, sym: str, o: dict) -> dict:
        """Hyperliquid: cancel by oid as any order; its state afterwards."""
        import ccxt

        if not self._hl():
            return super()._cancel_algo(sym, o)
        try:
            self.exchange.cancel_order(o["id"], sym)
        except ccxt.BaseError as exc:
            raise self._err(exc, f"cancel trigger order {o.get('clientOrderId')}") from exc
        return self._read("trigger order", lambda: self.exchange.fetch_order(o["id"], sym))

    def _fired(self, o: dict) -> bool:
        """Hyperliquid: the leg's ``orderStatus`` says it has triggered or filled, or it has fills."""
        if not self._hl():
            return super()._fired(o)
        status = str((o.get("info") or {}).get("status") or "")
        return status in FIRED or float(o.get("filled") or 0.0) > 0.0

    def _with_exits(self, orders: list[dict]) -> list[dict]:
        """Hyperliquid: the open orders with its trigger orders swept for OCA (:meth:`_sweep_oca`)."""
        if not self._hl():
            return super()._with_exits(orders)
        triggers = [o for o in orders if trigger_kind(o)]
        return [o for o in orders if not trigger_kind(o)] + self._sweep_oca(triggers)
