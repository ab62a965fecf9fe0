"""The paper broker's cost and margin arithmetic (pure functions, no state).

Units: prices in quote currency per unit, quantities in units (shares, coins,
contracts), amounts in base currency, costs in basis points (1 bp = 0.01 %).

* **Fees**: ``fee = filled notional × fee_bps / 1e4``, the taker rate for orders
  that take liquidity (market orders, limit orders marketable on arrival) and the
  maker rate for limit orders that rested on the book.
* **Slippage**: a market order pays the half-spread plus a size impact:
  ``slippage_bps = half_spread_bps + impact_bps × sqrt(notional / impact_ref_notional)``,
  the square-root impact law (Tóth et al., "Anomalous price impact and the critical
  nature of liquidity in financial markets", Phys. Rev. X 1, 2011; Almgren et al.,
  "Direct estimation of equity market impact", Risk, 2005), with ``impact_bps`` the
  impact of an order of ``impact_ref_notional``. The fill is moved against the order
  and rounded to the tick against it too (a buy up, a sell down), as a book on a tick
  grid would fill it.
* **Funding** (perpetuals, as Binance USD-M settles it every 8 h):
  ``payment = quantity × multiplier × mark price × funding rate``; a positive
  payment is paid by the holder (longs pay when the rate is positive, shorts receive).
* **Margin**: initial margin of a position or an order is
  ``|quantity| × price × multiplier / leverage``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from brokers.base import round_to_tick

#: Instrument types settled as margin contracts: the position's value is not paid in
#: cash; cash (the wallet) moves only by realized PnL, fees and funding.
MARGINED_SEC_TYPES = frozenset({"PERP", "FUT", "CRYPTO_PERP"})


@dataclass(frozen=True)
class CostModel:
    """Costs of one instrument at the venue the paper broker imitates (all bps)."""

    taker_fee_bps: float = 1.0
    maker_fee_bps: float = 1.0
    half_spread_bps: float = 2.0
    impact_bps: float = 0.0
    impact_ref_notional: float = 1_000_000.0

    def slippage_bps(self, notional: float) -> float:
        """Half-spread plus square-root impact for an order of ``notional`` (base currency), in bps."""
        impact = self.impact_bps * math.sqrt(abs(notional) / self.impact_ref_notional) if self.impact_bps else 0.0
        return self.half_spread_bps + impact

    def market_fill(self, action: str, price: float, quantity: float, multiplier: float, tick: float) -> float:
        """Fill price of a market order of ``quantity`` units against a last price ``price``."""
        bps = self.slippage_bps(quantity * price * multiplier)
        raw = price * (1 + (bps if action == "BUY" else -bps) / 1e4)
        return round_to_tick(raw, tick, "up" if action == "BUY" else "down")

    def fee(self, notional: float, maker: bool) -> float:
        """Commission on a filled ``notional`` (base currency)."""
        return abs(notional) * (self.maker_fee_bps if maker else self.taker_fee_bps) / 1e4


def funding_payment(quantity: float, multiplier: float, mark: float, rate: float) -> float:
    """What the holder of ``quantity`` pays at one settlement (negative: receives), base currency."""
    return quantity * multiplier * mark * rate


def initial_margin(quantity: float, price: float, multiplier: float, leverage: float) -> float:
    """``|quantity × price × multiplier| / leverage``, base currency."""
    return abs(quantity * price * multiplier) / leverage


def limit_crossed(action: str, limit: float, low: float, high: float) -> bool:
    """Did a bar with this ``low``/``high`` trade through a resting ``limit``? (a buy needs low ≤ limit)."""
    return low <= limit if action == "BUY" else high >= limit


def resting_fill_price(action: str, limit: float, bar_open: float) -> float:
    """Fill of a resting limit order in a bar that crossed it: the limit, or the open if the bar opened through it."""
    return min(limit, bar_open) if action == "BUY" else max(limit, bar_open)


def exit_triggers_below(order_type: str, action: str) -> bool:
    """Whether a protective exit triggers when the price falls to its trigger: a sell stop (a long's
    stop-loss) and a buy take-profit (a short's); a buy stop and a sell take-profit trigger on a rise."""
    return (order_type == "STP") == (action == "SELL")


def exit_triggered(order_type: str, action: str, trigger: float, low: float, high: float) -> bool:
    """Did a bar with this ``low``/``high`` touch the exit's ``trigger``? (a sell stop needs low ≤ trigger)."""
    return low <= trigger if exit_triggers_below(order_type, action) else high >= trigger


def exit_gapped(order_type: str, action: str, trigger: float, bar_open: float) -> bool:
    """Did the bar open beyond the trigger (the price gapped through it)?"""
    return bar_open <= trigger if exit_triggers_below(order_type, action) else bar_open >= trigger


def exit_fill_base(order_type: str, action: str, trigger: float, bar_open: float) -> float:
    """The gap rule: the price a triggered exit fills at before slippage. A bar that opened beyond the
    trigger fills it at the open (worse than the trigger for a stop, better for a take-profit); otherwise
    at the trigger."""
    if exit_triggers_below(order_type, action):
        return min(trigger, bar_open)
    return max(trigger, bar_open)
