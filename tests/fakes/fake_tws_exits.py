"""Protective orders of the fake TWS (:mod:`tests.fakes.fake_tws`): ``STP`` and ``MIT`` with an
``auxPrice`` trigger, in OCA groups.

A mixin of :class:`~tests.fakes.fake_tws.FakeTWS` (next to :class:`~tests.fakes.fake_tws_orders.OrderDesk`,
whose state and senders it uses; every method runs with the server's lock held). What it models, as
TWS does for a stock on SMART:

* **Resting.** IB simulates stop and if-touched orders for US stocks: a placed ``STP`` / ``MIT`` rests
  ``PreSubmitted`` (not ``Submitted``) until it triggers; its ``auxPrice`` is the trigger. Only the
  regular session triggers it (``outsideRth`` is not modelled): a price set while the session is closed
  does nothing, and :meth:`~tests.fakes.fake_tws_orders.OrderDesk.open_session` at a price through the
  trigger (a gap) fires it at the open price.
* **Triggering.** ``STP``: a BUY when the price >= auxPrice, a SELL when <= auxPrice; ``MIT`` the other way
  round. :meth:`~tests.fakes.fake_tws.FakeTWS.set_price` (or the open) fires it: it becomes a market order,
  status ``Submitted``, and fills at the price the test set -- worse than the trigger when the move gapped
  through it -- minus :meth:`trigger_slippage` per share (a SELL gets less, a BUY pays more). A
  :meth:`~tests.fakes.fake_tws_orders.OrderDesk.partial_next` set before the order was placed makes the
  triggered fill partial (the rest works ``Submitted`` until ``fill_rest``).
* **OCA.** Orders of one account with the same non-empty ``ocaGroup``: when one fills (in part too) and
  its ``ocaType`` is 1 ("cancel all remaining orders with block"), the others still working are cancelled:
  orderStatus ``Cancelled`` pushed to their client, completed as ``"Cancelled by System:\\n"`` (reqCompletedOrders).
  ``ocaType`` 2 / 3 (reduce) shrink the others by the filled quantity instead. With :meth:`late_oca_cancels`
  the cancels are held until that many more requests (from any client) have been answered: a client that
  looks right after the fill still sees the sibling working.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Callable

if TYPE_CHECKING:
    from tests.fakes.fake_tws_orders import FakeExecution, FakeOrder

PROTECTIVE = ("STP", "MIT")
MSG_OCA_CANCELLED = "Cancelled by System:\n"


class ExitDesk:
    """Mixin of :class:`~tests.fakes.fake_tws.FakeTWS`: STP / MIT triggers and OCA groups."""

    # Provided by FakeTWS / OrderDesk.
    orders: list
    prices: dict[str, float]
    _session: str
    _fill: Callable[..., FakeExecution]
    _push_order: Callable[[FakeOrder], None]
    _push_account: Callable[[], None]
    _complete: Callable[[FakeOrder, str], None]

    def _init_exits(self) -> None:
        self._slippage = 0.0
        self._oca_delay = 0
        self._oca_pending: list[tuple[int, FakeOrder]] = []  # (requests still to answer, order to cancel)
        self.oca_cancelled: list[FakeOrder] = []  # orders an OCA fill cancelled, in order

    # ------------------------------------------------------------------ scripting
    def trigger_slippage(self, per_share: float) -> None:
        """A triggered STP / MIT fills ``per_share`` USD worse than the price that triggered it."""
        self._slippage = float(per_share)

    def late_oca_cancels(self, requests: int = 1) -> None:
        """OCA cancels wait until ``requests`` more client requests have been answered (0: at once)."""
        self._oca_delay = int(requests)

    # ------------------------------------------------------------------ triggers (lock held)
    @staticmethod
    def _touched(o: FakeOrder, price: float) -> bool:
        if o.orderType not in PROTECTIVE or o.auxPrice is None:
            return False
        stop = o.orderType == "STP"
        if o.action == "BUY":
            return price >= o.auxPrice if stop else price <= o.auxPrice
        return price <= o.auxPrice if stop else price >= o.auxPrice

    def _fire(self, o: FakeOrder, price: float) -> None:
        """A touched STP / MIT becomes a market order and fills (worse by the slippage)."""
        o.status = "Submitted"
        o.triggered = True
        px = price - self._slippage if o.action == "SELL" else price + self._slippage
        self._fill(o, round(px, 4))

    def _check_exit_triggers(self, symbol: str, price: float) -> None:
        """Fire every untriggered STP / MIT of ``symbol`` that ``price`` touches, oldest first."""
        if self._session != "open":
            return
        for o in list(self.orders):
            if (o.contract.symbol == symbol and o.status == "PreSubmitted" and o.orderType in PROTECTIVE
                    and not o.triggered and self._touched(o, price)):
                self._fire(o, price)

    # ------------------------------------------------------------------ OCA (lock held)
    def _after_fill(self, o: FakeOrder, qty: float) -> None:
        """OCA: ``o`` filled ``qty``; its group's other working orders are cancelled (ocaType 1) or
        reduced (2, 3)."""
        if not o.ocaGroup:
            return
        for other in self.orders:
            if other is o or other.ocaGroup != o.ocaGroup or other.account != o.account:
                continue
            if other.status not in ("PreSubmitted", "Submitted") or other in [x for _, x in self._oca_pending]:
                continue
            if o.ocaType == 1:
                if self._oca_delay > 0:
                    self._oca_pending.append((self._oca_delay, other))
                else:
                    self._oca_cancel(other)
            elif o.ocaType in (2, 3):
                other.totalQuantity = max(other.filled, other.totalQuantity - qty)
                if other.totalQuantity - other.filled <= 1e-9:
                    self._oca_cancel(other)
                else:
                    self._push_order(other)

    def _oca_cancel(self, o: FakeOrder) -> None:
        if o.status not in ("PreSubmitted", "Submitted"):
            return
        o.status = "Cancelled"
        self._complete(o, MSG_OCA_CANCELLED)
        self.oca_cancelled.append(o)
        self._push_order(o)
        self._push_account()

    def _after_request(self) -> None:
        """A request was answered: OCA cancels held by :meth:`late_oca_cancels` count down."""
        if not self._oca_pending:
            return
        keep = []
        for left, o in self._oca_pending:
            if left <= 1:
                self._oca_cancel(o)
            else:
                keep.append((left - 1, o))
        self._oca_pending = keep

    @staticmethod
    def _exit_fields(o: Any) -> tuple[float | None, str, int]:
        """(auxPrice, ocaGroup, ocaType) of an order, for the encoders."""
        return o.auxPrice, o.ocaGroup, o.ocaType
