"""Pre-trade checks: each decision that breaks a trader's limits is rejected, with the rule and the numbers.

Closes and holds only reduce or keep risk, so they pass (after the symbol
checks). Opens are checked in order of confidence (highest first, ties by
their place in the reply), each against the book as the decisions accepted so
far leave it:

=====================  =====================================================================
rule                   rejects an open when
=====================  =====================================================================
unknown_symbol         the symbol is not in the universe (nor held)
duplicate              the symbol already had a decision earlier in the reply
no_market_data         the symbol has no fresh price this run
min_confidence         confidence < ``min_confidence`` (0..100)
size                   not exactly one of notional / quantity, or it is 0
leverage_cap           leverage > the major-coin or altcoin cap
stop_loss_required     no stop_loss while ``stop_loss_enabled``
take_profit_required   no take_profit while ``take_profit_enabled``
stop_take_profit_side  a long's stop not below / target not above the price (a short: mirrored)
min_risk_reward        reward / risk < ``min_risk_reward``
max_position_size      notional = |size| (quantity x price) > ``max_position_size``
max_positions          the book would hold more than ``max_positions`` positions
equity_unknown         the trader's equity is unknown (no book, no portfolio snapshot)
max_margin_use         Σ notional / leverage of the resulting book > ``max_margin_use`` x equity
=====================  =====================================================================

Risk/reward is the R-multiple of the planned trade (Tharp, "Trade Your Way to
Financial Freedom", 1998): long reward = take_profit − price, risk = price −
stop_loss; a short mirrored. Leverage defaults to 1 when the model gives none.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from bus.journal import Rejection
from strategies.llm.config import TraderRisk, base_asset
from strategies.llm.decisions import TradeDecision


@dataclass
class Accepted:
    """A decision that passed, with its symbol as the universe names it and its size resolved.

    ``notional`` (quote currency) and ``quantity`` (coins) are unsigned; ``leverage`` a multiple.
    """

    index: int
    symbol: str
    decision: TradeDecision
    notional: float = 0.0
    quantity: float | None = None
    leverage: float = 1.0


@dataclass
class CheckResult:
    """Accepted decisions by index, and the rejections with their reasons."""

    accepted: dict[int, Accepted] = field(default_factory=dict)
    rejections: list[Rejection] = field(default_factory=list)


def normalise_symbol(symbol: str, known: list[str]) -> str | None:
    """``symbol`` as ``known`` names it: exact (case-insensitive), or by base asset when unique (``BTC``)."""
    s = symbol.strip().upper()
    for k in known:
        if k.upper() == s:
            return k
    by_base = [k for k in known if base_asset(k) == base_asset(s.replace("/", "-"))]
    return by_base[0] if len(by_base) == 1 else None


def risk_reward(side: str, price: float, stop_loss: float, take_profit: float) -> float | None:
    """Reward / risk of a planned trade; None when the stop is not on the losing side."""
    risk = (price - stop_loss) if side == "long" else (stop_loss - price)
    reward = (take_profit - price) if side == "long" else (price - take_profit)
    if risk <= 0:
        return None
    return reward / risk


def check_decisions(decisions: list[TradeDecision], risk: TraderRisk, universe: list[str],
                    prices: dict[str, float], account: dict[str, Any]) -> CheckResult:
    """Apply the checks of the module docstring.

    Args:
        decisions: the validated reply, in order.
        universe: symbols the trader may open.
        prices: symbol -> fresh price (quote currency per coin); absent = no market data.
        account: :func:`strategies.llm.context.account_view` (``equity``, ``positions``).
    """
    out = CheckResult()
    held = {p["symbol"]: p for p in account.get("positions", [])}
    known = list(dict.fromkeys([*universe, *held]))
    seen: set[str] = set()
    opens: list[Accepted] = []

    def reject(i: int, d: TradeDecision, rule: str, reason: str, sym: str | None = None) -> None:
        out.rejections.append(Rejection(index=i, symbol=sym or d.symbol, action=d.action, rule=rule, reason=reason))

    for i, d in enumerate(decisions):
        sym = normalise_symbol(d.symbol, known)
        if sym is None:
            reject(i, d, "unknown_symbol", f"{d.symbol!r} is not in the universe {universe} nor held")
            continue
        if sym in seen:
            reject(i, d, "duplicate", f"{sym} already has a decision earlier in the reply", sym)
            continue
        seen.add(sym)
        if d.action in ("close", "hold"):
            out.accepted[i] = Accepted(index=i, symbol=sym, decision=d)
        elif sym not in universe:
            reject(i, d, "unknown_symbol", f"{sym} is held but not in the universe {universe}: it can only be closed", sym)
        else:
            opens.append(Accepted(index=i, symbol=sym, decision=d))

    book = {s: {"margin": p["margin"]} for s, p in held.items()}
    for i in [i for i, a in out.accepted.items() if a.decision.action == "close"]:
        book.pop(out.accepted[i].symbol, None)
    equity = account.get("equity")
    for a in sorted(opens, key=lambda a: (-a.decision.confidence, a.index)):
        d, sym, i = a.decision, a.symbol, a.index
        side = "long" if d.action == "open_long" else "short"
        price = prices.get(sym)
        if price is None or price <= 0:
            reject(i, d, "no_market_data", f"no fresh price for {sym} this run", sym)
            continue
        if d.confidence < risk.min_confidence:
            reject(i, d, "min_confidence", f"confidence {d.confidence:g} < minimum {risk.min_confidence:g}", sym)
            continue
        sizes = [x for x in (d.notional, d.quantity) if x is not None]
        if len(sizes) != 1 or sizes[0] <= 0:
            reject(i, d, "size", f"an open needs exactly one positive size (notional or quantity), got "
                                 f"notional={d.notional}, quantity={d.quantity}", sym)
            continue
        notional = d.notional if d.notional is not None else d.quantity * price  # type: ignore[operator]
        lev = d.leverage or 1.0
        cap = risk.leverage_cap(sym)
        if lev > cap + 1e-9:
            reject(i, d, "leverage_cap", f"leverage {lev:g}x > cap {cap:g}x for {sym}", sym)
            continue
        if risk.stop_loss_enabled and d.stop_loss is None:
            reject(i, d, "stop_loss_required", "stop loss is enabled and the decision has none", sym)
            continue
        if risk.take_profit_enabled and d.take_profit is None:
            reject(i, d, "take_profit_required", "take profit is enabled and the decision has none", sym)
            continue
        wrong = []
        if d.stop_loss is not None and ((side == "long") != (d.stop_loss < price)):
            wrong.append(f"stop_loss {d.stop_loss:g} is not {'below' if side == 'long' else 'above'} price {price:g}")
        if d.take_profit is not None and ((side == "long") != (d.take_profit > price)):
            wrong.append(f"take_profit {d.take_profit:g} is not {'above' if side == 'long' else 'below'} price {price:g}")
        if wrong:
            reject(i, d, "stop_take_profit_side", f"{side}: " + "; ".join(wrong), sym)
            continue
        if risk.min_risk_reward > 0:
            rr = risk_reward(side, price, d.stop_loss, d.take_profit)  # type: ignore[arg-type]
            if rr is None or rr < risk.min_risk_reward:
                shown = "undefined" if rr is None else f"{rr:.2f}"
                reject(i, d, "min_risk_reward", f"risk/reward {shown} < minimum {risk.min_risk_reward:g} "
                                                f"(price {price:g}, stop {d.stop_loss:g}, target {d.take_profit:g})", sym)
                continue
        if notional > risk.max_position_size + 1e-9:
            reject(i, d, "max_position_size", f"notional {notional:.2f} > maximum {risk.max_position_size:g}", sym)
            continue
        after = {**book, sym: {"margin": notional / lev}}
        if len(after) > risk.max_positions:
            reject(i, d, "max_positions", f"{len(after)} positions > maximum {risk.max_positions} "
                                          f"(holding {sorted(book)})", sym)
            continue
        if equity is None or equity <= 0:
            reject(i, d, "equity_unknown", "the trader's equity is not known yet (no book, no portfolio snapshot)", sym)
            continue
        margin = sum(p["margin"] for p in after.values())
        if margin > risk.max_margin_use * equity + 1e-9:
            reject(i, d, "max_margin_use", f"margin {margin:.2f} > {risk.max_margin_use:g} x equity {equity:.2f} "
                                           f"= {risk.max_margin_use * equity:.2f}", sym)
            continue
        book = after
        a.notional, a.quantity, a.leverage = notional, d.quantity, lev
        out.accepted[i] = a
    out.rejections.sort(key=lambda r: r.index)
    return out
