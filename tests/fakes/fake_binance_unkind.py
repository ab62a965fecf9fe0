"""The scripted unkindness of the fake Binance USD-M server (see :mod:`tests.fakes.fake_binance`).

Partial fills (:meth:`UnkindMixin.partial_next`), requests carried out after the
client gave up (:meth:`UnkindMixin.execute_late_next`, :meth:`UnkindMixin.wait_held`,
:meth:`UnkindMixin.release_held`) and the IP request-weight limit with its 429s
and 418 bans (:meth:`UnkindMixin.limit_weight`).  Split out of ``fake_binance.py``
to keep that file at a readable size; :class:`tests.fakes.fake_binance.FakeBinanceUSDM`
inherits these methods, and its module docstring gives the overview.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from .fake_binance_base import (
    _RESET,
    MSG_BANNED,
    MSG_TOO_MANY_REQUESTS,
    MSG_UNKNOWN_EXECUTION,
    OPEN_STATUSES,
    ZERO,
    BinanceAPIError,
    RecordedRequest,
    _dec,
    _floor_to_step,
)


@dataclass
class _PartialRule:
    remaining: int
    fraction: Decimal
    prices: tuple[Decimal, ...]
    symbol: str | None


@dataclass
class _LateRule:
    remaining: int
    after: float | None
    answer: str
    path: str | None
    method: str | None


@dataclass
class _HeldRequest:
    """A request :meth:`FakeBinanceUSDM.execute_late_next` took: carried out later."""

    record: RecordedRequest
    handler: str
    params: dict[str, str]
    answer: str
    done: threading.Event = field(default_factory=threading.Event)
    carried_out: bool = False
    result: tuple[int, Any] | None = None


class UnkindMixin:
    """Scripting of partial fills, late execution and rate limits for
    :class:`tests.fakes.fake_binance.FakeBinanceUSDM`.

    Relies on the host class's state (``_lock``, ``_stopping``, ``_requests``,
    ``_specs``, the rule lists, ``_held``/``_held_cond``, the weight-limit fields)
    and helpers (``_spec``, ``_now_ms``, ``_answer``, ``_used_weight``, ``_fill``)."""

    # provided by the host class
    _lock: threading.RLock
    _stopping: threading.Event
    _requests: list[RecordedRequest]
    _specs: dict[str, Any]
    _held: list[_HeldRequest]
    _held_cond: threading.Condition
    _partial_rules: list[_PartialRule]
    _late_rules: list[_LateRule]
    _weight_limit: int | None
    _ban_after: int | None
    _ban_seconds: int
    _over_limit_answers: int
    _banned_until_ms: int
    internal_errors: list[str]
    _spec: Callable[[str | None], Any]
    _now_ms: Callable[[], int]
    _used_weight: Callable[[], int]
    _answer: Callable[..., tuple[int, Any, dict[str, str]]]
    _fill: Callable[..., None]

    # ------------------------------------------------------------------ scripting

    def partial_next(self, fraction: Any = "0.5", count: int = 1, *, prices: Iterable[Any] | None = None,
                     symbol: str | None = None) -> None:
        """Let the next ``count`` orders that take liquidity (on ``symbol``, if given)
        fill only ``fraction`` of their quantity (rounded down to the step size).

        Orders that take liquidity: ``MARKET`` orders, ``IOC``/``FOK`` limit orders
        that cross the mark price, and -- while this rule is pending -- ``GTC``/``GTD``
        limit orders that cross it (even without ``fill_marketable_limits``).
        Outcomes, as on Binance:

        * ``MARKET`` and ``IOC``: the rest is cancelled -- status ``EXPIRED`` with
          ``executedQty`` < ``origQty`` (Binance's expiry reason 9 "Market order could
          not be filled completely" / 2 "IOC order could not be filled completely").
        * ``FOK``: all or nothing -- ``EXPIRED`` with nothing filled.
        * ``GTC``/``GTD``: the filled part is taken at once, the rest rests as
          ``PARTIALLY_FILLED`` until :meth:`fill_order` / :meth:`fill_resting` / a cancel.

        The filled quantity is split as evenly as the step allows into one taker
        trade per entry of ``prices`` (default: one trade at the mark price), as an
        order walking the book would; a limit order's trades are never worse than
        its limit.  Each trade shows in ``GET /fapi/v1/userTrades``; the order's
        ``avgPrice``/``cumQuote`` are the weighted result.  A conditional order's
        triggered market order (see :meth:`set_mark_price`) counts too.
        ``fraction`` may be 0 (nothing fills); it must be below 1."""
        frac = _dec(fraction)
        if not ZERO <= frac < 1:
            raise ValueError("fraction must be in [0, 1)")
        levels = tuple(_dec(p) for p in prices) if prices is not None else ()
        if prices is not None and (not levels or any(p <= 0 for p in levels)):
            raise ValueError("prices must be positive and not empty")
        with self._lock:
            if symbol is not None:
                self._spec(symbol)
            self._partial_rules.append(_PartialRule(count, frac, levels, symbol))

    def execute_late_next(self, count: int = 1, *, after: float | None = None, answer: str = "hold",
                          path: str | None = "/fapi/v1/order", method: str | None = "POST") -> None:
        """Make the next ``count`` matching requests (by default: order placements)
        reach the venue but be *carried out late* -- the "timed out, yet executed"
        case, where a later ``GET /fapi/v1/order?origClientOrderId=...`` shows the
        order ``FILLED`` although the client never got an answer.

        The request is authenticated on arrival (a bad signature is answered at
        once, as usual) and then parked.  It is carried out -- validated, placed,
        filled, exactly as it would have been -- when the test calls
        :meth:`release_held`, or by itself ``after`` seconds if given.  What the
        client sees meanwhile, ``answer``:

        * ``"hold"``: nothing; the connection stays open until the request is
          carried out and the (by then useless) answer is written, so a client
          with a shorter timeout gets a timeout.
        * ``"drop"``: the connection is reset at once, without an answer.
        * ``"503"``: HTTP 503 at once with Binance's "execution status unknown"
          body ``{"timestamp": .., "path": .., "msg": "Unknown error, please check
          your request or try again later."}`` (no ``code``).

        Use :meth:`wait_held` to know the request has arrived (no sleeping), then
        query the venue, resubmit, ... and finally :meth:`release_held`.  If the
        same client order id was placed meanwhile (e.g. by a retry), the late
        request is refused when carried out (-4116 under ``client_order_id_scope
        ="all"``) -- it is never doubled."""
        if answer not in ("hold", "drop", "503"):
            raise ValueError("answer must be 'hold', 'drop' or '503'")
        with self._lock:
            self._late_rules.append(_LateRule(count, after, answer, path, method and method.upper()))

    def wait_held(self, count: int = 1, timeout: float = 5.0) -> bool:
        """Wait until at least ``count`` requests taken by :meth:`execute_late_next`
        are parked (arrived, not yet carried out); False if ``timeout`` passed first."""
        deadline = time.monotonic() + timeout
        with self._held_cond:
            while sum(1 for h in self._held if not h.carried_out) < count:
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._held_cond.wait(left)
            return True

    def held(self) -> list[RecordedRequest]:
        """The parked requests (arrived, not yet carried out), oldest first."""
        with self._held_cond:
            return [h.record for h in self._held if not h.carried_out]

    def release_held(self, count: int | None = None) -> list[Any]:
        """Carry out the parked requests now (the oldest ``count``, default all), in
        the calling thread, and return what each would have answered: the order as
        ``POST /fapi/v1/order`` answers it, or Binance's ``{"code", "msg"}`` if it is
        refused now (e.g. -4116 because a retry placed the same client order id)."""
        with self._held_cond:
            pending = [h for h in self._held if not h.carried_out]
        if count is not None:
            pending = pending[:count]
        return [self._carry_out(h)[1] for h in pending]

    def limit_weight(self, per_minute: int | None = 2400, *, ban_after: int | None = None,
                     ban_seconds: int = 120) -> None:
        """Enforce Binance's IP request-weight limit (off by default).

        While the weight used in the last 60 s (see ``X-MBX-USED-WEIGHT-1M``)
        exceeds ``per_minute``, requests are answered HTTP 429, code -1003 "Too many
        requests; current limit of IP(<ip>) is <per_minute> requests per minute.
        ...", with ``Retry-After`` = the seconds until enough weight leaves the
        window.  With ``ban_after``, once more than that many 429s were answered in
        a row the IP is banned: HTTP 418, code -1003 "Way too many requests;
        IP(<ip>) banned until <ms>. ...", ``Retry-After`` = the seconds left, for
        ``ban_seconds``.  ``per_minute=None`` turns the limit (and any ban) off."""
        with self._lock:
            self._weight_limit = per_minute
            self._ban_after = ban_after
            self._ban_seconds = ban_seconds
            self._over_limit_answers = 0
            if per_minute is None:
                self._banned_until_ms = 0

    # ------------------------------------------------------------------ internals (lock held unless noted)

    def _rate_limited(self, record: RecordedRequest, client_ip: str) -> Any:
        """The 429/418 answer :meth:`limit_weight` calls for, or None."""
        with self._lock:
            if self._weight_limit is None:
                return None
            now = self._now_ms()
            if now < self._banned_until_ms:
                wait = math.ceil((self._banned_until_ms - now) / 1000)
                return self._answer(record, 418, {"code": -1003, "msg": MSG_BANNED.format(
                    ip=client_ip, until=self._banned_until_ms)}, {"Retry-After": str(wait)})
            used = self._used_weight()
            if used <= self._weight_limit:
                self._over_limit_answers = 0
                return None
            self._over_limit_answers += 1
            if self._ban_after is not None and self._over_limit_answers > self._ban_after:
                self._banned_until_ms = now + self._ban_seconds * 1000
                return self._answer(record, 418, {"code": -1003, "msg": MSG_BANNED.format(
                    ip=client_ip, until=self._banned_until_ms)}, {"Retry-After": str(self._ban_seconds)})
            # the time at which enough of the window's weight has aged out
            excess, free_at = used - self._weight_limit, now
            for rec in self._requests:
                if rec.time_ms < now - 60_000:
                    continue
                excess -= rec.weight
                if excess <= 0:
                    free_at = rec.time_ms + 60_000
                    break
            wait = max(1, math.ceil((free_at - now) / 1000))
            return self._answer(record, 429, {"code": -1003, "msg": MSG_TOO_MANY_REQUESTS.format(
                ip=client_ip, limit=self._weight_limit)}, {"Retry-After": str(wait)})

    def _park(self, record: RecordedRequest, handler: str, params: dict[str, str], rule: _LateRule) -> Any:
        held = _HeldRequest(record=record, handler=handler, params=params, answer=rule.answer)
        with self._held_cond:
            self._held.append(held)
            self._held_cond.notify_all()
        if rule.after is not None:
            timer = threading.Timer(rule.after, self._carry_out_unless_stopping, (held,))
            timer.daemon = True
            timer.start()
        if rule.answer == "drop":
            record.status = 0
            return _RESET
        if rule.answer == "503":
            return self._answer(record, 503, {"timestamp": self._now_ms(), "path": record.path,
                                              "msg": MSG_UNKNOWN_EXECUTION})
        while not held.done.wait(0.05):
            if self._stopping.is_set():
                break
        if held.result is None:  # the fake stopped before the request was carried out
            return self._answer(record, 503, {"timestamp": self._now_ms(), "path": record.path,
                                              "msg": MSG_UNKNOWN_EXECUTION})
        status, payload = held.result
        return self._answer(record, status, payload)

    def _carry_out_unless_stopping(self, held: _HeldRequest) -> None:
        if not self._stopping.is_set():
            self._carry_out(held)

    def _carry_out(self, held: _HeldRequest) -> tuple[int, Any]:
        with self._held_cond:
            if held.carried_out:  # by another thread: its answer, once it has one
                self._held_cond.wait_for(lambda: held.result is not None)
                return self._result_of(held)
            held.carried_out = True
        try:
            with self._lock:
                result: tuple[int, Any] = (200, getattr(self, held.handler)(held.params))
        except BinanceAPIError as err:
            result = (err.status, {"code": err.code, "msg": err.msg})
        except Exception as exc:  # a bug in the fake
            with self._lock:
                self.internal_errors.append(f"late {held.record.method} {held.record.path}: {exc!r}")
            result = (500, {"code": -1000, "msg": f"fake_binance internal error: {exc!r}"})
        with self._held_cond:
            held.result = result
            held.done.set()
            self._held_cond.notify_all()
        return result

    @staticmethod
    def _result_of(held: _HeldRequest) -> tuple[int, Any]:
        if held.result is None:
            raise AssertionError("the held request has no result yet")
        return held.result

    def _has_partial_rule(self, symbol: str) -> bool:
        return any(r.symbol is None or r.symbol == symbol for r in self._partial_rules)

    def _take_partial_rule(self, symbol: str) -> _PartialRule | None:
        for rule in self._partial_rules:
            if rule.symbol is None or rule.symbol == symbol:
                rule.remaining -= 1
                if rule.remaining <= 0:
                    self._partial_rules.remove(rule)
                return rule
        return None

    def _take_liquidity(self, order: Any, qty: Decimal, ref_price: Decimal, rule: _PartialRule | None) -> None:
        """Fill ``qty`` of ``order`` as a taker at ``ref_price`` -- or, under a
        :meth:`partial_next` rule, only its fraction, spread over its price levels."""
        if rule is None:
            self._fill(order, qty, ref_price, maker=False)
            return
        spec = self._specs[order.symbol]
        step = Decimal(spec.step_size)
        filled = _floor_to_step(qty * rule.fraction, step)
        prices = list(rule.prices) or [ref_price]
        if order.type == "LIMIT":  # never worse than the limit
            prices = [min(p, order.price) if order.side == "BUY" else max(p, order.price) for p in prices]
        steps = int(filled / step)
        base, extra = divmod(steps, len(prices))
        for i, px in enumerate(prices):
            chunk = (base + (1 if i < extra else 0)) * step
            if chunk > 0 and order.status in OPEN_STATUSES:
                self._fill(order, chunk, px, maker=False)
