"""Step 9 (books): split each symbol's fill among the strategies whose targets moved.

For a symbol filled by F units, each strategy s wanted Δs = desired_s − book_s.
With S = Σ Δs ≠ 0, s is booked F × Δs / S (pro rata to its wanted change,
netting included). A fill nobody wanted (S = 0) goes to ``external``. After
that, whatever the broker holds beyond the sum of the strategy books (a manual
trade, say) is the ``external`` book, so the books always add up to the account.
"""

from __future__ import annotations

from datetime import datetime

from bus.accounting import apply_fill
from bus.models import Book, BookPosition

EXTERNAL = "external"
EPS = 1e-9


def attribute_fills(books: dict[str, Book], desired: dict[str, dict[str, float]], fills: dict[str, tuple[float, float]],
                    holdings_after: dict[str, float], prices: dict[str, float], as_of: datetime,
                    execution_id: str) -> tuple[dict[str, Book], dict[str, float]]:
    """New books after this run's fills.

    Args:
        books: strategy id -> current book (strategies without one start empty).
        desired: strategy id -> symbol -> wanted units (only strategies whose intent was used).
        fills: symbol -> (signed filled units, average fill price).
        holdings_after: symbol -> units the broker holds after the fills.
        prices: symbol -> mark price, for unrealized PnL.

    Returns:
        (strategy id -> new book, including ``external``; symbol -> external units).
    """
    new: dict[str, Book] = {}
    for sid in sorted(set(books) | set(desired)):
        if sid == EXTERNAL:
            continue
        b = books.get(sid) or Book(strategy_id=sid, updated_at=as_of)
        new[sid] = b.model_copy(deep=True, update={"updated_at": as_of, "execution_id": execution_id})
    for sym, (filled, px) in sorted(fills.items()):
        if abs(filled) < EPS:
            continue
        wanted = {sid: want.get(sym, 0.0) - (new[sid].positions.get(sym).quantity if sym in new[sid].positions else 0.0)
                  for sid, want in desired.items() if sym in want or sym in new[sid].positions}
        total = sum(wanted.values())
        if abs(total) < EPS:
            continue
        for sid, w in wanted.items():
            share = filled * w / total
            if abs(share) < EPS:
                continue
            pos = new[sid].positions.get(sym) or BookPosition(quantity=0.0)
            q, avg, realized = apply_fill(pos.quantity, pos.avg_price, share, px)
            new[sid].positions[sym] = BookPosition(quantity=q, avg_price=avg)
            new[sid].realized_pnl += realized
    for b in new.values():
        b.positions = {s: p for s, p in b.positions.items() if abs(p.quantity) > EPS}
        b.unrealized_pnl = sum((prices.get(s, p.avg_price) - p.avg_price) * p.quantity for s, p in b.positions.items())
    booked: dict[str, float] = {}
    for b in new.values():
        for s, p in b.positions.items():
            booked[s] = booked.get(s, 0.0) + p.quantity
    external = {s: round(holdings_after.get(s, 0.0) - booked.get(s, 0.0), 9)
                for s in sorted(set(holdings_after) | set(booked))}
    external = {s: q for s, q in external.items() if abs(q) > 1e-7}
    ext_prev = books.get(EXTERNAL)
    ext_pos = {}
    for s, q in external.items():
        prev = ext_prev.positions.get(s) if ext_prev else None
        ext_pos[s] = BookPosition(quantity=q, avg_price=prev.avg_price if prev else prices.get(s, 0.0))
    new[EXTERNAL] = Book(strategy_id=EXTERNAL, updated_at=as_of, execution_id=execution_id, positions=ext_pos)
    return new, external
