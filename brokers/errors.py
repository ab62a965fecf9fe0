"""Venue errors mapped to the project's own (:mod:`brokers.base`), with secrets redacted.

The Commander and reconcile only see these: ``OrderRejected`` (and its
``DuplicateOrder`` / ``InsufficientFunds``), ``UnknownInstrument``,
``NotConnected``, ``RateLimited`` and ``OrderNotFound``; anything else is a plain
``BrokerError``.
"""

from __future__ import annotations

import asyncio

from brokers.base import (
    BrokerError, DuplicateOrder, InsufficientFunds, NotConnected, OrderNotFound, OrderRejected, RateLimited,
    UnknownInstrument,
)
from brokers.secrets import redact

#: IB error codes (https://interactivebrokers.github.io/tws-api/message_codes.html) by what they mean here.
IB_UNKNOWN_INSTRUMENT = {200}
IB_NOT_CONNECTED = {326, 502, 504, 1100, 1300, 2110}
IB_RATE_LIMITED = {100}
IB_NOT_FOUND = {135}
_IB_FUNDS_WORDS = ("EQUITY WITH LOAN", "MARGIN", "INSUFFICIENT", "BUYING POWER")


def from_ib(code: int, text: str, context: str) -> BrokerError:
    """The exception for IB error ``code`` with message ``text`` (``context`` names account and order)."""
    msg = redact(f"{context}: IB error {code}: {text}")
    if code in IB_UNKNOWN_INSTRUMENT:
        return UnknownInstrument(msg)
    if code in IB_NOT_CONNECTED:
        return NotConnected(msg)
    if code in IB_RATE_LIMITED:
        return RateLimited(msg)
    if code in IB_NOT_FOUND:
        return OrderNotFound(msg)
    if code == 201 and any(w in text.upper() for w in _IB_FUNDS_WORDS):
        return InsufficientFunds(msg)
    return OrderRejected(msg)


def from_ccxt(exc: Exception, context: str) -> BrokerError:
    """The exception for a ``ccxt`` error (classes of ccxt 4.5; the order of the checks matters).

    * ``DDoSProtection`` / ``RateLimitExceeded`` (HTTP 429/418) -> :class:`RateLimited`
    * other ``NetworkError`` (refused, timeout, 5xx without JSON), ``OperationFailed``
      (a 5xx with the venue's JSON), ``ExchangeNotAvailable`` -> :class:`NotConnected`
    * ``InsufficientFunds`` -> :class:`InsufficientFunds`; ``DuplicateOrderId`` or Binance
      code -4116 -> :class:`DuplicateOrder`; ``OrderNotFound`` -> :class:`OrderNotFound`
    * ``BadSymbol`` -> :class:`UnknownInstrument`
    * ``InvalidOrder``, ``BadRequest``, ``OperationRejected`` -> :class:`OrderRejected`
    * anything else (authentication included) -> :class:`BrokerError`
    """
    import ccxt

    text = str(exc)
    msg = redact(f"{context}: {type(exc).__name__}: {text}"[:2000])
    if isinstance(exc, (ccxt.DDoSProtection, ccxt.RateLimitExceeded)):
        return RateLimited(msg)
    if isinstance(exc, (ccxt.NetworkError, ccxt.OperationFailed, ccxt.ExchangeNotAvailable)):
        return NotConnected(msg)
    if isinstance(exc, ccxt.InsufficientFunds):
        return InsufficientFunds(msg)
    if isinstance(exc, ccxt.DuplicateOrderId) or '"code":-4116' in text.replace(" ", ""):
        return DuplicateOrder(msg)
    if isinstance(exc, ccxt.OrderNotFound):
        return OrderNotFound(msg)
    if isinstance(exc, ccxt.BadSymbol):
        return UnknownInstrument(msg)
    if isinstance(exc, (ccxt.InvalidOrder, ccxt.BadRequest, ccxt.OperationRejected)):
        return OrderRejected(msg)
    return BrokerError(msg)


def from_connection(exc: BaseException, context: str) -> NotConnected:
    """Connection refused, reset or timed out -> :class:`NotConnected`."""
    kind = "timed out" if isinstance(exc, (asyncio.TimeoutError, TimeoutError)) else type(exc).__name__
    detail = str(exc)
    return NotConnected(redact(f"{context}: {kind}" + (f": {detail}" if detail else "")))
