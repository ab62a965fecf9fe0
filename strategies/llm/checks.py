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
equity_unknown         the trader's equity is unknown or not positive (no book and a zero allocation)
max_margin_use         Σ notional / leverage of the resulting book > ``max_margin_use`` x equity
=====================  =====================================================================

The rules are small functions ``(decision, context) -> reason or None``, in
two ordered tables: :data:`REPLY_RULES` for every decision in the order of the
reply (context :class:`ReplyContext`), then :data:`OPEN_RULES` for the opens
in order of confidence (context :class:`OpenContext`). A decision is rejected
by the first rule that gives a reason; an open that passes every rule joins
the book the next opens are checked against.

Risk/reward is the R-multiple of the planned trade (Tharp, "Trade Your Way to
Financial Freedom", 1998): long reward = take_profit − price, risk = price −
stop_loss; a short mirrored. Leverage defaults to 1 when the model gives none.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, NamedTuple

from bus.constants import LIMIT_EPS
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


class Rule(NamedTuple):
    """A named check: ``check(decision, context)`` returns why the decision is rejected, or None when it passes."""

    name: str
    check: Callable[[TradeDecision, Any], str | None]


@dataclass
class ReplyContext:
    """What every decision is checked against, in reply order.

    ``symbol`` is the decision's symbol as the universe or the book names it (None
    when unknown); ``seen`` the symbols earlier decisions of the reply named.
    """

    symbol: str | None
    universe: list[str]
    seen: set[str]


@dataclass
class OpenContext:
    """What an open is checked against: its (normalised) symbol, the universe, the trader's limits,
    this run's fresh price for the symbol (None without one), the margin per symbol of the book the
    closes and the opens accepted so far leave, and the trader's equity (None when unknown)."""

    symbol: str
    universe: list[str]
    risk: TraderRisk
    price: float | None
    book: dict[str, float]
    equity: float | None


class RuleOrderError(RuntimeError):
    """A rule used a value before the rule that guarantees it ran (:data:`OPEN_RULES` out of order): a bug."""


def _side(d: TradeDecision) -> str:
    return "long" if d.action == "open_long" else "short"


def _price(c: OpenContext) -> float:
    """The open's fresh price: ``no_market_data`` has rejected an open without one."""
    if c.price is None:
        raise RuleOrderError(f"{c.symbol}: a rule used the price before no_market_data checked it")
    return c.price


def _equity(c: OpenContext) -> float:
    """The trader's equity: ``equity_unknown`` has rejected the open when it is not known."""
    if c.equity is None:
        raise RuleOrderError(f"{c.symbol}: a rule used the equity before equity_unknown checked it")
    return c.equity


def _stops(d: TradeDecision) -> tuple[float, float]:
    """The open's stop loss and take profit: ``min_risk_reward`` > 0 requires both enabled, and
    ``stop_loss_required`` / ``take_profit_required`` have rejected an open without them."""
    if d.stop_loss is None or d.take_profit is None:
        raise RuleOrderError(f"{d.symbol}: a rule used the stops before stop_loss_required / "
                             "take_profit_required checked them")
    return d.stop_loss, d.take_profit


def _leverage(d: TradeDecision) -> float:
    """The open's leverage: 1 when the model gave none."""
    return d.leverage or 1.0


def _notional(d: TradeDecision, c: OpenContext) -> float:
    """The open's unsigned notional: its own, else quantity x price (``size`` has checked there is one)."""
    if d.notional is not None:
        return d.notional
    if d.quantity is None:
        raise RuleOrderError(f"{d.symbol}: a rule used the size before the size rule checked it")
    return d.quantity * _price(c)


def _book_after(d: TradeDecision, c: OpenContext) -> dict[str, float]:
    """Margin per symbol of the book once this open is accepted."""
    return {**c.book, c.symbol: _notional(d, c) / _leverage(d)}


def _resolved(a: Accepted, c: OpenContext) -> Accepted:
    """An open that passed every rule, its notional, quantity and leverage filled in."""
    d = a.decision
    a.notional, a.quantity, a.leverage = _notional(d, c), d.quantity, _leverage(d)
    return a


# --- rules for every decision, in reply order ---------------------------------------------------

def _unknown_symbol(d: TradeDecision, c: ReplyContext) -> str | None:
    if c.symbol is None:
        return f"{d.symbol!r} is not in the universe {c.universe} nor held"
    return None


def _duplicate(d: TradeDecision, c: ReplyContext) -> str | None:
    if c.symbol in c.seen:
        return f"{c.symbol} already has a decision earlier in the reply"
    return None


# --- rules for opens, in order of confidence; each may rely on the rules before it having passed --

def _held_outside_universe(d: TradeDecision, c: OpenContext) -> str | None:
    if c.symbol not in c.universe:
        return f"{c.symbol} is held but not in the universe {c.universe}: it can only be closed"
    return None


def _no_market_data(d: TradeDecision, c: OpenContext) -> str | None:
    if c.price is None or c.price <= 0:
        return f"no fresh price for {c.symbol} this run"
    return None


def _min_confidence(d: TradeDecision, c: OpenContext) -> str | None:
    if d.confidence < c.risk.min_confidence:
        return f"confidence {d.confidence:g} < minimum {c.risk.min_confidence:g}"
    return None


def _size(d: TradeDecision, c: OpenContext) -> str | None:
    sizes = [x for x in (d.notional, d.quantity) if x is not None]
    if len(sizes) != 1 or sizes[0] <= 0:
        return (f"an open needs exactly one positive size (notional or quantity), got "
                f"notional={d.notional}, quantity={d.quantity}")
    return None


def _leverage_cap(d: TradeDecision, c: OpenContext) -> str | None:
    lev, cap = _leverage(d), c.risk.leverage_cap(c.symbol)
    if lev > cap + LIMIT_EPS:
        return f"leverage {lev:g}x > cap {cap:g}x for {c.symbol}"
    return None


def _stop_loss_required(d: TradeDecision, c: OpenContext) -> str | None:
    if c.risk.stop_loss_enabled and d.stop_loss is None:
        return "stop loss is enabled and the decision has none"
    return None


def _take_profit_required(d: TradeDecision, c: OpenContext) -> str | None:
    if c.risk.take_profit_enabled and d.take_profit is None:
        return "take profit is enabled and the decision has none"
    return None


def _stop_take_profit_side(d: TradeDecision, c: OpenContext) -> str | None:
    if d.stop_loss is None and d.take_profit is None:
        return None
    side, price = _side(d), _price(c)
    wrong = []
    if d.stop_loss is not None and ((side == "long") != (d.stop_loss < price)):
        wrong.append(f"stop_loss {d.stop_loss:g} is not {'below' if side == 'long' else 'above'} price {price:g}")
    if d.take_profit is not None and ((side == "long") != (d.take_profit > price)):
        wrong.append(f"take_profit {d.take_profit:g} is not {'above' if side == 'long' else 'below'} price {price:g}")
    if wrong:
        return f"{side}: " + "; ".join(wrong)
    return None


def _min_risk_reward(d: TradeDecision, c: OpenContext) -> str | None:
    minimum = c.risk.min_risk_reward
    if minimum > 0:
        price, (stop_loss, take_profit) = _price(c), _stops(d)
        rr = risk_reward(_side(d), price, stop_loss, take_profit)
        if rr is None or rr < minimum:
            shown = "undefined" if rr is None else f"{rr:.2f}"
            return (f"risk/reward {shown} < minimum {minimum:g} "
                    f"(price {price:g}, stop {stop_loss:g}, target {take_profit:g})")
    return None


def _max_position_size(d: TradeDecision, c: OpenContext) -> str | None:
    notional = _notional(d, c)
    if notional > c.risk.max_position_size + LIMIT_EPS:
        return f"notional {notional:.2f} > maximum {c.risk.max_position_size:g}"
    return None


def _max_positions(d: TradeDecision, c: OpenContext) -> str | None:
    after = _book_after(d, c)
    if len(after) > c.risk.max_positions:
        return f"{len(after)} positions > maximum {c.risk.max_positions} (holding {sorted(c.book)})"
    return None


def _equity_unknown(d: TradeDecision, c: OpenContext) -> str | None:
    if c.equity is None or c.equity <= 0:
        return f"the trader's equity is not known or not positive ({c.equity}): no book and no allocated capital"
    return None


def _max_margin_use(d: TradeDecision, c: OpenContext) -> str | None:
    margin = sum(_book_after(d, c).values())
    limit = c.risk.max_margin_use * _equity(c)
    if margin > limit + LIMIT_EPS:
        return f"margin {margin:.2f} > {c.risk.max_margin_use:g} x equity {c.equity:.2f} = {limit:.2f}"
    return None


#: Checked on every decision (closes and holds included), in the order of the reply.
REPLY_RULES: tuple[Rule, ...] = (
    Rule("unknown_symbol", _unknown_symbol),
    Rule("duplicate", _duplicate),
)

#: Checked on each open, highest confidence first, in this order: the first reason rejects it.
OPEN_RULES: tuple[Rule, ...] = (
    Rule("unknown_symbol", _held_outside_universe),
    Rule("no_market_data", _no_market_data),
    Rule("min_confidence", _min_confidence),
    Rule("size", _size),
    Rule("leverage_cap", _leverage_cap),
    Rule("stop_loss_required", _stop_loss_required),
    Rule("take_profit_required", _take_profit_required),
    Rule("stop_take_profit_side", _stop_take_profit_side),
    Rule("min_risk_reward", _min_risk_reward),
    Rule("max_position_size", _max_position_size),
    Rule("max_positions", _max_positions),
    Rule("equity_unknown", _equity_unknown),
    Rule("max_margin_use", _max_margin_use),
)


def _first_rejection(rules: tuple[Rule, ...], i: int, d: TradeDecision, c: ReplyContext | OpenContext
                     ) -> Rejection | None:
    """The rejection by the first of ``rules`` that gives a reason; None when ``d`` passes them all."""
    for rule in rules:
        reason = rule.check(d, c)
        if reason is not None:
            return Rejection(index=i, symbol=c.symbol or d.symbol, action=d.action, rule=rule.name, reason=reason)
    return None


def check_decisions(decisions: list[TradeDecision], risk: TraderRisk, universe: list[str],
                    prices: dict[str, float], account: dict[str, Any]) -> CheckResult:
    """Apply the checks of the module docstring: :data:`REPLY_RULES`, then :data:`OPEN_RULES`.

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
    for i, d in enumerate(decisions):
        rc = ReplyContext(normalise_symbol(d.symbol, known), universe, seen)
        if rejection := _first_rejection(REPLY_RULES, i, d, rc):
            out.rejections.append(rejection)
            continue
        assert rc.symbol is not None
        seen.add(rc.symbol)
        a = Accepted(index=i, symbol=rc.symbol, decision=d)
        if d.action in ("close", "hold"):
            out.accepted[i] = a
        else:
            opens.append(a)

    closed = {a.symbol for a in out.accepted.values() if a.decision.action == "close"}
    book = {s: p["margin"] for s, p in held.items() if s not in closed}
    for a in sorted(opens, key=lambda a: (-a.decision.confidence, a.index)):
        oc = OpenContext(a.symbol, universe, risk, prices.get(a.symbol), book, account.get("equity"))
        if rejection := _first_rejection(OPEN_RULES, a.index, a.decision, oc):
            out.rejections.append(rejection)
            continue
        book = _book_after(a.decision, oc)
        out.accepted[a.index] = _resolved(a, oc)
    out.rejections.sort(key=lambda r: r.index)
    return out
