"""Position accounting shared by the paper broker and the strategy books."""

from __future__ import annotations

from bus.constants import NOISE_EPS


def apply_fill(quantity: float, avg_price: float, fill_qty: float, fill_price: float) -> tuple[float, float, float]:
    """Apply a signed fill of ``fill_qty`` units at ``fill_price`` to a position.

    Average-cost method: an increase re-weights the average price; a reduction
    keeps it and realizes ``(fill_price − avg_price) × closed units × side``;
    a flip through zero opens the remainder at ``fill_price``.

    Returns:
        (new quantity, new average price, realized PnL in base currency).
    """
    q0, a0 = float(quantity), float(avg_price)
    q1 = q0 + fill_qty
    realized = 0.0
    if abs(q0) < NOISE_EPS or (q0 > 0) == (fill_qty > 0):
        avg = (abs(q0) * a0 + abs(fill_qty) * fill_price) / abs(q1) if abs(q1) > NOISE_EPS else 0.0
    else:
        closed = min(abs(fill_qty), abs(q0))
        realized = (fill_price - a0) * closed * (1.0 if q0 > 0 else -1.0)
        avg = fill_price if abs(fill_qty) > abs(q0) else a0
    if abs(q1) < NOISE_EPS:
        q1, avg = 0.0, 0.0
    return q1, avg, realized
