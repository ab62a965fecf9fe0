"""Step 7: the diff. Order quantity = final target − (holding + pending open orders).

Rounded to the instrument's lot size (to nearest lot; a full close is exact).
Dropped, with the reason recorded: orders under the instrument's minimum
quantity, under the larger of its minimum notional and ``min_order_notional``,
and (unless the order closes the position) orders smaller than
``rebalance_band`` × the target's notional, which only chase rounding and fee
drift. Symbols held but managed by no strategy are left alone (``unmanaged``).
Open orders on managed symbols older than ``open_order_ttl_seconds`` are
cancelled first and stop counting as pending.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from operator import itemgetter

from pydantic import TypeAdapter

from bus.constants import QTY_EPS
from bus.models import DEFAULT_SPEC, DiffLine, InstrumentSpec, OpenOrder, PortfolioSnapshot, TargetLine, TradingConfig

_FIRST = itemgetter(0)
_DIFF_LINES = TypeAdapter(list[DiffLine])


def round_to_lot(quantity: float, lot: float) -> float:
    """Nearest multiple of ``lot`` (units), cleaned of float noise."""
    return round(round(quantity / lot) * lot, 10)


def pending_by_symbol(open_orders: list[OpenOrder]) -> dict[str, float]:
    """Signed units still working per symbol (BUY positive). A resting protective exit (stop-loss or
    take-profit, :attr:`OpenOrder.protective`) is conditional: it is not pending until it triggers."""
    out: dict[str, float] = {}
    for o in open_orders:
        if not o.protective:
            out[o.symbol] = out.get(o.symbol, 0.0) + o.signed_quantity
    return out


def expired_orders(open_orders: list[OpenOrder], managed: set[str], as_of: datetime,
                   ttl_seconds: int) -> list[OpenOrder]:
    """Open orders on managed symbols placed more than ``ttl_seconds`` before ``as_of``: to cancel.
    Protective exits rest until the position closes (their own step amends or cancels them)."""
    limit = timedelta(seconds=ttl_seconds)
    return [o for o in open_orders
            if o.symbol in managed and not o.protective and as_of - o.created_at > limit]


def diff(final: list[TargetLine], snapshot: PortfolioSnapshot, specs: dict[str, InstrumentSpec],
         prices: dict[str, float], config: TradingConfig, cancelled: frozenset[str] = frozenset()
         ) -> tuple[list[DiffLine], list[str]]:
    """Diff the final target against holdings plus open orders.

    Open orders whose client order id is in ``cancelled`` no longer count as pending.

    Returns:
        (one :class:`DiffLine` per managed symbol, sorted unmanaged held symbols).
    """
    return diff_quantities([(t.symbol, t.quantity) for t in final], snapshot, specs, prices, config, cancelled)


def diff_quantities(final: list[tuple[str, float]], snapshot: PortfolioSnapshot, specs: dict[str, InstrumentSpec],
                    prices: dict[str, float], config: TradingConfig, cancelled: frozenset[str] = frozenset()
                    ) -> tuple[list[DiffLine], list[str]]:
    """:func:`diff` of the final target given as (symbol, units) pairs. The lines are validated in one call (the
    same documents as ``DiffLine(**fields)`` each)."""
    holdings = {h.symbol: h.quantity for h in snapshot.holdings}
    pending = pending_by_symbol([o for o in snapshot.open_orders if o.client_order_id not in cancelled])
    managed = {sym for sym, _ in final}
    band, floor = config.rebalance_band, config.min_order_notional
    fields = []
    for sym, target in sorted(final, key=_FIRST):
        held, pend = holdings.get(sym, 0.0), pending.get(sym, 0.0)
        raw = target - held - pend
        spec = specs.get(sym) or DEFAULT_SPEC
        price = prices.get(sym)
        closing = abs(target) < QTY_EPS
        qty = round(raw, 10) if closing else round_to_lot(raw, spec.lot_size)
        reason = None
        notional = abs(qty) * price * spec.multiplier if price else 0.0
        min_notional = max(spec.min_notional, floor)
        if abs(qty) < QTY_EPS:
            reason = "below one lot" if abs(raw) > QTY_EPS else None
        elif price is None:
            reason = "no price"
        elif abs(qty) < spec.min_quantity:
            reason = f"below minimum quantity {spec.min_quantity:g}"
        elif notional < min_notional and not closing:
            reason = f"notional {notional:.2f} below minimum {min_notional:.2f}"
        elif (not closing and abs(held + pend) > QTY_EPS
              and notional < band * abs(target) * price * spec.multiplier):
            reason = f"within rebalance band {band:g}"
        fields.append(dict(symbol=sym, target=target, holding=held, pending=pend, raw_quantity=raw,
                           quantity=0.0 if reason else qty, price=price, notional=0.0 if reason else notional,
                           reason=reason))
    unmanaged = sorted(s for s, q in holdings.items() if s not in managed and abs(q) > QTY_EPS)
    return _DIFF_LINES.validate_python(fields), unmanaged
