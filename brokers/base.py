"""The Broker interface and its errors. The Commander and reconcile see only this.

Quantities are signed units of the instrument, prices and amounts in the
account's base currency. Every order carries a client order id; placing the
same client order id twice is refused by the venue (:class:`DuplicateOrder`),
so a retried step never doubles an order.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from datetime import datetime
from typing import Literal, Protocol

from bus.models import InstrumentSpec, PortfolioSnapshot


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


class RateLimited(BrokerError):
    """The venue asked us to slow down."""


@dataclass(frozen=True)
class OrderRequest:
    """An order to place: ``quantity`` > 0 units, ``action`` BUY or SELL.

    ``limit_offset_bps`` turns a market order into a limit order that many basis
    points through the quote (buy above, sell below).
    """

    client_order_id: str
    symbol: str
    action: Literal["BUY", "SELL"]
    quantity: float
    secType: str = "STK"
    exchange: str = "SMART"
    currency: str = "USD"
    order_type: Literal["MKT", "LMT"] = "MKT"
    limit_offset_bps: float | None = None


@dataclass(frozen=True)
class OrderResult:
    """What the venue said about an order. ``fill_price`` per unit, ``commission`` in base currency."""

    orderId: str
    client_order_id: str
    status: str
    filled_quantity: float = 0.0
    fill_price: float | None = None
    commission: float = 0.0


class PriceSource(Protocol):
    """Price of ``symbol`` as of a time (base currency per unit); raises LookupError when unknown."""

    def __call__(self, symbol: str, as_of: datetime) -> float: ...


class Broker(ABC):
    """One account at one venue."""

    name: str
    account: str
    mode: Literal["paper", "live"]

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
        """Place one order.

        Raises:
            DuplicateOrder, OrderRejected, InsufficientFunds, UnknownInstrument,
            NotConnected, RateLimited.
        """

    @abstractmethod
    def cancel_order(self, client_order_id: str) -> OrderResult:
        """Cancel a working order by its client order id."""

    @abstractmethod
    def order_status(self, client_order_id: str) -> OrderResult:
        """The venue's view of an order by its client order id."""
