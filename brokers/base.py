"""The Broker interface and its errors. The Commander and reconcile see only this.

Quantities are signed units of the instrument, prices and amounts in the
account's base currency. Every order carries a client order id; placing the
same client order id twice is refused by the venue (:class:`DuplicateOrder`),
so a retried step never doubles an order.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from dataclasses import dataclass
from datetime import datetime
from typing import Literal, Protocol

from bus.constants import QTY_EPS
from bus.models import PROTECTIVE_ORDER_TYPES, InstrumentSpec, OrderType, PortfolioSnapshot


class BrokerError(RuntimeError):
    """Base of the project's broker errors."""


class OrderRejected(BrokerError):
    """The venue refused the order (size rules, state, duplicate id, ...)."""


class DuplicateOrder(OrderRejected):
    """An order with this client order id already exists at the venue."""


class InsufficientFunds(OrderRejected):
    """The account cannot carry the position the order would open."""


class UnknownInstrument(BrokerError):
    """The venue does not know the symbol; the message names it."""


class NotConnected(BrokerError):
    """The broker cannot be reached (connection refused, timeout, no price feed)."""


class AsOfRefused(BrokerError):
    """The account cannot be read or traded as of this time: it already holds fills of a later time
    (a paper account cannot run backwards). The caller's input, not a venue failure: HTTP 409."""


class RateLimited(BrokerError):
    """The venue asked us to slow down (HTTP 429, a 418 ban, IB error 100); it did not take the request.

    ``retry_after``: seconds the venue asked us to wait (its ``Retry-After`` header, or the
    end of a ban), or None when it named no time. The Commander waits that long (bounded)
    before its next order.
    """

    def __init__(self, message: str = "", retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class OrderNotFound(OrderRejected):
    """No order with this client order id at the venue (cancel or status of an unknown order)."""


class BrokerConfigError(BrokerError):
    """The account cannot be built from its configuration (a missing secret, a bad option).

    Raised when the broker is built, never at the first order. The message names
    the environment variable or option, never a secret's value.
    """


@dataclass(frozen=True)
class OrderRequest:
    """An order to place: ``quantity`` > 0 units, ``action`` BUY or SELL.

    ``limit_offset_bps`` turns a market order into a limit order that many basis
    points through the quote (buy above, sell below); ``order_type`` must then be
    ``LMT``. ``limit_price`` (quote currency per unit) sets the limit price
    directly. Brokers round a limit price to the tick, never past the requested
    price (a buy rounds down, a sell up).

    Protective exits (:data:`bus.models.PROTECTIVE_ORDER_TYPES`): ``STP`` is a stop-loss
    and ``MIT`` a take-profit, both market orders once the price touches ``trigger_price``
    (quote currency per unit). ``reduce_only`` orders may only shrink the position (a
    venue clips or cancels the rest); the legs of one exit share ``oca_group``, so the
    first to trigger cancels the other. Only a broker whose ``supports_protective`` is
    true takes them; the others raise :class:`OrderRejected`.
    """

    client_order_id: str
    symbol: str
    action: Literal["BUY", "SELL"]
    quantity: float
    secType: str = "STK"
    exchange: str = "SMART"
    currency: str = "USD"
    order_type: OrderType = "MKT"
    limit_offset_bps: float | None = None
    limit_price: float | None = None
    trigger_price: float | None = None
    reduce_only: bool = False
    oca_group: str | None = None

    def __post_init__(self) -> None:
        if self.order_type == "LMT" and self.limit_price is None and self.limit_offset_bps is None:
            raise ValueError(f"order {self.client_order_id}: a LMT order needs limit_price or limit_offset_bps")
        if self.order_type in PROTECTIVE_ORDER_TYPES and not (self.trigger_price and self.trigger_price > 0):
            raise ValueError(f"order {self.client_order_id}: a {self.order_type} order needs a trigger_price > 0")


@dataclass(frozen=True)
class OrderResult:
    """What the venue said about an order. ``fill_price`` per unit, ``commission`` in base currency.

    ``status`` is in IB's words (``PreSubmitted``, ``Submitted``, ``Filled``, ``Cancelled``,
    ``Expired``, ``Rejected``), which :func:`bus.orders.lifecycle_status` maps to the order
    lifecycle. ``fill_price`` is the average price of ``filled_quantity`` and is None
    whenever the venue has not told it (never 0): such a fill is not booked until a later
    :meth:`Broker.order_status` finds the price.
    """

    orderId: str
    client_order_id: str
    status: str
    filled_quantity: float = 0.0
    fill_price: float | None = None
    commission: float = 0.0
    limit_price: float | None = None


#: Order statuses, IB's words: ``Submitted`` (working), ``Filled``, ``Cancelled``, ``Rejected``.
WORKING, FILLED, CANCELLED = "Submitted", "Filled", "Cancelled"


def limit_price_for(action: str, quote: float, offset_bps: float, tick: float) -> float:
    """Limit price ``offset_bps`` through ``quote``, on the tick grid, never past the offset.

    A buy limit is ``quote × (1 + bps/1e4)`` rounded down to the tick; a sell limit
    ``quote × (1 − bps/1e4)`` rounded up. Units: quote currency per unit.
    """
    raw = quote * (1 + (offset_bps if action == "BUY" else -offset_bps) / 1e4)
    return round_to_tick(raw, tick, "down" if action == "BUY" else "up")


def round_to_tick(price: float, tick: float, direction: Literal["down", "up", "nearest"] = "nearest") -> float:
    """``price`` on the grid of ``tick`` (tolerating float noise of :data:`~bus.constants.QTY_EPS` ticks),
    rounded as told."""
    n = price / tick
    if direction == "down":
        k = math.floor(n + QTY_EPS)
    elif direction == "up":
        k = math.ceil(n - QTY_EPS)
    else:
        k = round(n)
    decimals = max(0, -int(math.floor(math.log10(tick)))) + 2 if tick < 1 else 2
    return round(k * tick, decimals)


class PriceSource(Protocol):
    """Price of ``symbol`` as of a time (base currency per unit); raises LookupError when unknown."""

    def __call__(self, symbol: str, as_of: datetime) -> float: ...


class Broker(ABC):
    """One account at one venue."""

    name: str
    account: str
    mode: Literal["paper", "live"]
    #: How a market order fills, recorded in each execution (``Execution.fill_model``): ``venue`` for a
    #: real venue; the paper broker says ``next_open`` or ``close`` (see :mod:`brokers.sim`).
    fill_model: str = "venue"
    #: Whether :meth:`place_order` takes protective exits (``STP`` / ``MIT``, reduce-only, OCA) that rest at the
    #: venue between runs. Without them the Commander records the exits it could not place.
    supports_protective: bool = False
    #: Whether the venue cannot clip an exit to the position (no reduce-only, as IB for stocks): the Commander then
    #: sizes a symbol's exit on the position before this run while its main order has not filled, and protects
    #: the new units at the next run (see :mod:`commander.exits`).
    exits_need_fill: bool = False

    def catch_up(self, as_of: datetime) -> None:
        """Bring a simulated account up to ``as_of`` (its resting orders fill, its funding settles) before
        reconcile asks about its orders. A real venue's time moves by itself: nothing to do by default.

        Raises:
            BrokerError: the account cannot be brought up to ``as_of``.
        """
        return None

    @abstractmethod
    def portfolio(self, as_of: datetime) -> PortfolioSnapshot:
        """Holdings (with market price and value), open orders, NAV and available funds.

        The returned snapshot has empty ``snapshot_id``; reconcile assigns it.

        Raises:
            NotConnected: when the account cannot be read.
        """

    @abstractmethod
    def instrument_specs(self, symbols: list[str]) -> dict[str, InstrumentSpec]:
        """Lot, tick, minimums, multiplier, leverage cap per symbol.

        Raises:
            UnknownInstrument: naming the first unknown symbol.
        """

    @abstractmethod
    def quotes(self, symbols: list[str], as_of: datetime) -> dict[str, float]:
        """Last price per symbol as of ``as_of``.

        Raises:
            UnknownInstrument / NotConnected.
        """

    @abstractmethod
    def place_order(self, order: OrderRequest, as_of: datetime) -> OrderResult:
        """Place one order; return promptly with the venue's first answer (an order held
        until the open is ``PreSubmitted``, a working one ``Submitted``).

        Raises:
            DuplicateOrder, OrderRejected, InsufficientFunds, UnknownInstrument: the venue
                did not take the order.
            RateLimited: the venue did not take it and asked to wait (``retry_after``).
            NotConnected, BrokerError: the answer was lost (timeout, connection or link
                lost): the venue may have the order; :meth:`order_status` tells later.
                Never an ``OrderRejected`` for an order that may have reached the venue.
        """

    @abstractmethod
    def cancel_order(self, client_order_id: str) -> OrderResult:
        """Cancel a working order by its client order id.

        Raises:
            OrderNotFound: no such order; OrderRejected: it is no longer working (filled, cancelled).
        """

    @abstractmethod
    def order_status(self, client_order_id: str) -> OrderResult:
        """The venue's view of an order by its client order id, from any later session
        (after a reconnect, a restart, on a later day), with the average price of its
        fills when the venue still knows them (else ``fill_price`` None).

        Raises:
            OrderNotFound: the venue has no order with this id.
            NotConnected: the venue cannot be asked now.
        """

    def close(self) -> None:
        """Release connections and threads; the broker may not be used afterwards. Default: nothing to do."""
        return None
