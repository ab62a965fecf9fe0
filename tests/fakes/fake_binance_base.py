"""Shared pieces of the fake Binance USD-M server (see :mod:`tests.fakes.fake_binance`).

Split out of ``fake_binance.py`` so the conditional-order service
(:mod:`tests.fakes.fake_binance_algo`) and the scripted unkindness
(:mod:`tests.fakes.fake_binance_unkind`) can use them without a circular import.
Everything public here is re-exported by :mod:`tests.fakes.fake_binance`.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass
from decimal import ROUND_DOWN, ROUND_HALF_UP, Decimal, InvalidOperation
from typing import Any, Literal, overload

ZERO = Decimal("0")
OPEN_STATUSES = ("NEW", "PARTIALLY_FILLED")
_NUMBER_RE = re.compile(r"^([0-9]{1,20})(\.[0-9]{1,20})?$")
_CLIENT_ORDER_ID_RE = re.compile(r"^[\.A-Z\:/a-z0-9_-]{1,36}$")
_LOOPBACK_NAMES = {"localhost"}

# Binance messages, verbatim where known.
MSG_BAD_SIGNATURE = "Signature for this request is not valid."
MSG_BAD_API_KEY = "Invalid API-key, IP, or permissions for action, request ip: {ip}"
MSG_API_KEY_FORMAT = "API-key format invalid."
MSG_DUPLICATE_CLIENT_ID = "ClientOrderId is duplicated."
MSG_PRECISION = "Precision is over the maximum defined for this asset."
MSG_MIN_NOTIONAL = "Order's notional must be no smaller than {n} (unless you choose reduce only)."
MSG_TOO_MANY_REQUESTS = (
    "Too many requests; current limit of IP({ip}) is {limit} requests per minute. "
    "Please use the websocket for live updates to avoid polling the API."
)
MSG_BANNED = ("Way too many requests; IP({ip}) banned until {until}. "
              "Please use the websocket for live updates to avoid bans.")
MSG_INTERNAL = "Internal error; unable to process your request. Please try again."
MSG_UNKNOWN_EXECUTION = "Unknown error, please check your request or try again later."
MSG_WOULD_TRIGGER = "Order would immediately trigger."
MSG_ALGO_ENDPOINT = "Order type not supported for this endpoint. Please use the Algo Order API endpoints instead."


_RESET = object()  # sentinel answer: drop the connection without an answer


@dataclass
class RecordedRequest:
    """One request the fake received.  ``params`` never holds ``signature``;
    the API key and secret are never recorded."""

    method: str
    path: str
    params: dict[str, str]
    signed: bool
    status: int = 0
    code: int | None = None
    time_ms: int = 0
    weight: int = 1
    """What the request counts towards ``X-MBX-USED-WEIGHT-1M`` (Binance's documented weight)."""



class BinanceAPIError(Exception):
    """An error answer of the fake, rendered as Binance's ``{"code": .., "msg": ..}``.

    ``status`` is the HTTP status (400 for most request errors, 401 for API-key
    errors, 429/418 for rate limits, 5xx for server trouble).
    """

    def __init__(self, code: int, msg: str, status: int = 400):
        super().__init__(f"{status} {code} {msg}")
        self.code = code
        self.msg = msg
        self.status = status


def _missing(name: str) -> BinanceAPIError:
    return BinanceAPIError(-1102, f"Mandatory parameter '{name}' was not sent, was empty/null, or malformed.")


def _not_required(name: str) -> BinanceAPIError:
    return BinanceAPIError(-1106, f"Parameter '{name}' sent when not required.")


def _dec(value: Any) -> Decimal:
    if isinstance(value, Decimal):
        return value
    return Decimal(str(value))


def _plain(d: Decimal, places: int = 8) -> str:
    """A Decimal rounded to ``places`` decimals, as a plain string without trailing zeros."""
    d = d.quantize(Decimal(1).scaleb(-places), rounding=ROUND_HALF_UP)
    if d == 0:
        return "0"
    return format(d.normalize(), "f")


def _fixed(d: Decimal, places: int) -> str:
    q = Decimal(1).scaleb(-places) if places > 0 else Decimal(1)
    return format(d.quantize(q, rounding=ROUND_HALF_UP), "f")


def _decimals(d: Decimal) -> int:
    exp = d.normalize().as_tuple().exponent
    return max(0, -exp) if isinstance(exp, int) else 0


def _floor_to_step(qty: Decimal, step: Decimal) -> Decimal:
    """``qty`` rounded down to a whole number of ``step``."""
    return (qty / step).to_integral_value(rounding=ROUND_DOWN) * step


def _is_loopback_host(host: str | None) -> bool:
    if not host:
        return False
    if host.lower() in _LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


@overload
def _parse_number(params: dict, name: str, required: Literal[True] = True) -> Decimal: ...


@overload
def _parse_number(params: dict, name: str, required: bool) -> Decimal | None: ...


def _parse_number(params: dict, name: str, required: bool = True) -> Decimal | None:
    """A decimal parameter; absent or empty: -1102 when ``required``, else None."""
    raw = params.get(name)
    if raw is None or raw == "":
        if required:
            raise _missing(name)
        return None
    if not _NUMBER_RE.match(raw):
        raise BinanceAPIError(-1100, f"Illegal characters found in parameter '{name}'; "
                                     "legal range is '^([0-9]{1,20})(\\.[0-9]{1,20})?$'.")
    try:
        return Decimal(raw)
    except InvalidOperation:  # pragma: no cover - the regex rules this out
        raise _missing(name) from None


def _parse_bool(params: dict, name: str) -> bool:
    """Binance's ``"true"``/``"false"`` string flags (case-insensitive; absent is false)."""
    raw = params.get(name, "false")
    if raw.lower() not in ("true", "false"):
        raise BinanceAPIError(-1100, f"Illegal characters found in parameter '{name}'; legal range is 'true, false'.")
    return raw.lower() == "true"
