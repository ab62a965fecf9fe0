"""Venue errors mapped to the project's own (:mod:`brokers.base`), with secrets redacted.

The Commander and reconcile only see these: ``OrderRejected`` (and its
``DuplicateOrder`` / ``InsufficientFunds``), ``UnknownInstrument``,
``NotConnected``, ``RateLimited`` and ``OrderNotFound``; anything else is a plain
``BrokerError``.
"""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import Mapping
from email.utils import parsedate_to_datetime

from brokers.base import (
    BrokerError,
    DuplicateOrder,
    InsufficientFunds,
    NotConnected,
    OrderNotFound,
    OrderRejected,
    RateLimited,
    UnknownInstrument,
)
from brokers.secrets import redact

#: IB error codes (https://interactivebrokers.github.io/tws-api/message_codes.html) by what they mean here.
IB_UNKNOWN_INSTRUMENT = {200}
IB_NOT_CONNECTED = {326, 502, 504, 1100, 1300, 2110}
IB_RATE_LIMITED = {100}
IB_NOT_FOUND = {135}
#: TWS loses its link to IB's servers (1100 "Connectivity between IB and Trader Workstation has been
#: lost.") and regains it (1101 "... restored - data lost.", 1102 "... restored - data maintained.").
IB_LINK_LOST = {1100}
IB_LINK_RESTORED = {1101, 1102}
#: Notices TWS sends about an order that still goes on: 399 (held until the open, "Warning: Your
#: order will not be placed at the exchange until ..."), 404 (held while shares are located),
#: 10349 ("Order TIF was set to DAY based on order preset."). ``ib_async`` 2.1.0 marks the trade
#: ``ValidationError`` (399, 404) or even ``Cancelled`` (10349) until the next orderStatus; none
#: of them is a rejection, and a status they set is not the order's.
IB_ORDER_GOES_ON = {399, 404, 10349}
#: Order messages that are not a rejection: the above, and 202 "Order Canceled" (a cancel, ours or
#: the system's, whose status IB reports itself).
IB_ORDER_INFO = IB_ORDER_GOES_ON | {202}
_IB_FUNDS_WORDS = ("EQUITY WITH LOAN", "MARGIN", "INSUFFICIENT", "BUYING POWER")


def ib_informational(code: int) -> bool:
    """True for an IB message code that is not an error: order notices (:data:`IB_ORDER_INFO`),
    the 2100-2199 farm and system notices, and the 1101/1102 "connectivity restored"."""
    return code in IB_ORDER_INFO or code in IB_LINK_RESTORED or (2100 <= code < 2200 and code not in IB_LINK_LOST)


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


def retry_after_seconds(headers: Mapping[str, str] | None, text: str = "",
                        now: float | None = None) -> float | None:
    """Seconds a rate-limited venue asked us to wait: the ``Retry-After`` header (seconds or an
    HTTP date), else Binance's "banned until <epoch ms>" in the message; None when neither says."""
    now = time.time() if now is None else now
    raw = None
    if headers:
        raw = next((v for k, v in headers.items() if str(k).lower() == "retry-after"), None)
    if raw is not None:
        raw = str(raw).strip()
        try:
            return max(0.0, float(raw))
        except ValueError:
            try:
                return max(0.0, parsedate_to_datetime(raw).timestamp() - now)
            except (TypeError, ValueError, IndexError):
                pass
    m = re.search(r"banned until (\d{13})", text or "")
    if m:
        return max(0.0, int(m.group(1)) / 1000 - now)
    return None


def from_ccxt(exc: Exception, context: str, headers: Mapping[str, str] | None = None) -> BrokerError:
    """The exception for a ``ccxt`` error (classes of ccxt 4.5; the order of the checks matters).

    ``headers``: the failed answer's headers (``exchange.last_response_headers``), for the
    ``Retry-After`` of a rate limit.

    * ``DDoSProtection`` / ``RateLimitExceeded`` (HTTP 429/418) -> :class:`RateLimited` with
      ``retry_after`` (:func:`retry_after_seconds`)
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
        return RateLimited(msg, retry_after_seconds(headers, text))
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
