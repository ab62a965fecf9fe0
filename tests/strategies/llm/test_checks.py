"""Pre-trade checks: each rule rejects with its reason; what passes becomes the whole target book."""

from __future__ import annotations

from datetime import datetime, timezone

import pytest

from bus.journal import PositionPlan
from strategies.llm.checks import check_decisions, normalise_symbol, risk_reward
from strategies.llm.config import InstrumentTemplate, TraderRisk
from strategies.llm.decisions import MalformedReply, TradeDecision, parse_reply
from strategies.llm.targets import build_targets
from tests.support.llm import decision

RISK = TraderRisk(max_positions=2, max_position_size=3000, max_margin_use=0.5, major_coin_leverage=3,
                  altcoin_leverage=2, min_risk_reward=2.0, min_confidence=70)
UNIVERSE = ["BTC-USDT", "ETH-USDT", "SOL-USDT", "DOGE-USDT"]
PRICES = {"BTC-USDT": 100.0, "ETH-USDT": 10.0, "SOL-USDT": 5.0, "DOGE-USDT": 1.0}
FLAT = {"equity": 10_000.0, "positions": []}
T0 = datetime(2024, 3, 15, 21, 30, tzinfo=timezone.utc)


def d(**kw) -> TradeDecision:
    base = decision(symbol="BTC-USDT", notional=1000, leverage=2, stop_loss=95, take_profit=112, confidence=80)
    base.update(kw)
    return TradeDecision.model_validate(base)


def check(*decisions, account=FLAT, risk=RISK, prices=PRICES):
    return check_decisions(list(decisions), risk, UNIVERSE, prices, account)


@pytest.mark.parametrize("dec, rule, words", [
    (d(symbol="ADA-USDT"), "unknown_symbol", "'ADA-USDT' is not in the universe"),
    (d(confidence=69.5), "min_confidence", "confidence 69.5 < minimum 70"),
    (d(notional=None), "size", "exactly one positive size"),
    (d(notional=1000, quantity=10), "size", "exactly one positive size"),
    (d(notional=0), "size", "exactly one positive size"),
    (d(leverage=4), "leverage_cap", "leverage 4x > cap 3x for BTC-USDT"),
    (d(symbol="SOL-USDT", stop_loss=4.5, take_profit=7, leverage=2.5), "leverage_cap",
     "leverage 2.5x > cap 2x for SOL-USDT"),
    (d(stop_loss=None), "stop_loss_required", "stop loss is enabled"),
    (d(take_profit=None), "take_profit_required", "take profit is enabled"),
    (d(stop_loss=105), "stop_take_profit_side", "stop_loss 105 is not below price 100"),
    (d(action="open_short", stop_loss=105, take_profit=112), "stop_take_profit_side",
     "take_profit 112 is not below price 100"),
    (d(take_profit=108), "min_risk_reward", "risk/reward 1.60 < minimum 2 (price 100, stop 95, target 108)"),
    (d(notional=3500, leverage=3), "max_position_size", "notional 3500.00 > maximum 3000"),
    (d(quantity=31, notional=None, leverage=3), "max_position_size", "notional 3100.00 > maximum 3000"),
])
def test_each_rule_rejects_an_open_with_its_reason(dec, rule, words):
    res = check(dec)
    assert res.accepted == {}
    [r] = res.rejections
    assert (r.index, r.rule, r.action) == (0, rule, dec.action)
    assert words in r.reason


def test_a_valid_open_passes_with_its_size_resolved():
    res = check(d(quantity=20, notional=None, leverage=3))
    a = res.accepted[0]
    assert res.rejections == [] and (a.symbol, a.notional, a.quantity, a.leverage) == ("BTC-USDT", 2000, 20, 3)


def test_no_market_data_and_unknown_equity_reject_opens():
    res = check(d(), prices={"ETH-USDT": 10.0})
    assert [r.rule for r in res.rejections] == ["no_market_data"]
    res = check(d(), account={"equity": None, "positions": []})
    assert [r.rule for r in res.rejections] == ["equity_unknown"]


def test_max_positions_keeps_the_most_confident_opens():
    res = check(d(symbol="ETH-USDT", stop_loss=9, take_profit=13, confidence=75),
                d(symbol="SOL-USDT", stop_loss=4.5, take_profit=6.5, confidence=90),
                d(symbol="DOGE-USDT", stop_loss=0.9, take_profit=1.3, confidence=80))
    assert sorted(a.symbol for a in res.accepted.values()) == ["DOGE-USDT", "SOL-USDT"]
    [r] = res.rejections
    assert (r.index, r.rule) == (0, "max_positions") and "3 positions > maximum 2" in r.reason


def test_a_close_frees_a_slot_and_closes_pass_whatever_their_confidence():
    held = {"equity": 10_000.0, "positions": [
        {"symbol": "ETH-USDT", "margin": 500.0}, {"symbol": "SOL-USDT", "margin": 500.0}]}
    res = check(d(symbol="ETH-USDT", action="close", confidence=5), d(), account=held)
    assert sorted(res.accepted) == [0, 1] and res.rejections == []
    res = check(d(), account=held)
    assert [r.rule for r in res.rejections] == ["max_positions"]


def test_margin_counts_the_positions_kept():
    held = {"equity": 10_000.0, "positions": [{"symbol": "ETH-USDT", "margin": 4500.0}]}
    res = check(d(notional=1200, leverage=2), account=held)
    assert [r.rule for r in res.rejections] == ["max_margin_use"] and "margin 5100.00 > 0.5" in res.rejections[0].reason


def test_duplicates_and_symbol_names():
    res = check(d(symbol="btc"), d())
    assert res.accepted[0].symbol == "BTC-USDT"
    assert [(r.index, r.rule) for r in res.rejections] == [(1, "duplicate")]
    assert normalise_symbol("ETH", UNIVERSE) == "ETH-USDT" and normalise_symbol("ADA", UNIVERSE) is None


def test_risk_reward_formula():
    assert risk_reward("long", 100, 95, 112) == pytest.approx(12 / 5)
    assert risk_reward("short", 100, 104, 90) == pytest.approx(10 / 4)
    assert risk_reward("long", 100, 101, 112) is None


def test_targets_are_the_whole_book():
    accepted = check(d(symbol="ETH-USDT", action="open_short", notional=800, stop_loss=11, take_profit=7),
                     d(symbol="SOL-USDT", action="close"),
                     d(symbol="DOGE-USDT", action="hold"),
                     d(symbol="BTC-USDT", confidence=10),  # rejected: BTC is kept as held
                     account={"equity": 10_000.0, "positions": [
                         {"symbol": s, "margin": 100.0} for s in ("BTC-USDT", "SOL-USDT", "DOGE-USDT")]},
                     risk=RISK.model_copy(update={"max_positions": 3})).accepted
    held = {"BTC-USDT": 3.0, "SOL-USDT": 40.0, "DOGE-USDT": -500.0}
    plans = {"DOGE-USDT": PositionPlan(side="short", leverage=2, stop_loss=1.2, take_profit=0.7)}
    targets, new_plans = build_targets(accepted, held, plans, InstrumentTemplate(), T0, "dec-1")
    by = {t.symbol: t for t in targets}
    assert set(by) == {"BTC-USDT", "ETH-USDT", "SOL-USDT", "DOGE-USDT"}
    assert by["ETH-USDT"].notional == -800 and by["ETH-USDT"].stop_loss == 11 and by["ETH-USDT"].leverage == 2
    assert by["SOL-USDT"].quantity == 0
    assert by["DOGE-USDT"].quantity == -500 and by["DOGE-USDT"].stop_loss == 1.2
    assert by["BTC-USDT"].quantity == 3.0
    assert set(new_plans) == {"ETH-USDT", "DOGE-USDT"} and new_plans["ETH-USDT"].side == "short"
    assert all((t.secType, t.exchange, t.currency) == ("CRYPTO", "BINANCE", "USDT") for t in targets)


@pytest.mark.parametrize("text, words", [
    ("", "empty reply"),
    ('{"decisions": [', "not JSON"),
    ('{"decisions": [{"symbol": "BTC-USDT", "action": "buy", "confidence": 50}]}', "decisions.0.action"),
    ('{"decisions": [{"symbol": "BTC-USDT", "action": "hold", "confidence": 150}]}', "decisions.0.confidence"),
    ('{"decision": []}', "decisions"),
])
def test_malformed_replies_are_refused(text, words):
    with pytest.raises(MalformedReply) as exc:
        parse_reply(text)
    assert words in str(exc.value)


def test_the_rule_tables_follow_the_documented_order():
    """The module docstring's table lists the rules in the order the two tables apply them."""
    import re

    from strategies.llm import checks

    documented = re.findall(r"^([a-z_]+) {2,}\S", checks.__doc__, re.M)
    applied = [r.name for r in (*checks.REPLY_RULES, *checks.OPEN_RULES)]
    assert documented[0] == "rule"  # the header
    assert documented[1:] == list(dict.fromkeys(applied))


def test_a_held_symbol_outside_the_universe_can_only_be_closed():
    held = {"equity": 10_000.0, "positions": [{"symbol": "XRP-USDT", "margin": 100.0}]}
    res = check(d(symbol="XRP-USDT", stop_loss=0.9, take_profit=1.5), account=held, prices={**PRICES, "XRP-USDT": 1.0})
    [r] = res.rejections
    assert (r.rule, r.symbol) == ("unknown_symbol", "XRP-USDT") and "can only be closed" in r.reason
    res = check(d(symbol="xrp-usdt", action="close"), account=held)
    assert res.rejections == [] and res.accepted[0].symbol == "XRP-USDT"


def test_each_rule_is_a_small_function_of_decision_and_context():
    """A rule can be called alone: a reason when it rejects, None when it passes."""
    from strategies.llm.checks import OPEN_RULES, OpenContext

    rules = {r.name: r.check for r in OPEN_RULES}
    ctx = OpenContext("BTC-USDT", UNIVERSE, RISK, 100.0, {"ETH-USDT": 2000.0}, 10_000.0)
    assert [name for name, rule in rules.items() if rule(d(), ctx) is not None] == []
    assert rules["max_margin_use"](d(notional=3000, leverage=1), ctx) is None  # 2000 + 3000 = 5000: at the limit
    assert rules["max_margin_use"](d(notional=3000, leverage=1), OpenContext(
        "BTC-USDT", UNIVERSE, RISK, 100.0, {"ETH-USDT": 2100.0}, 10_000.0)) == \
        "margin 5100.00 > 0.5 x equity 10000.00 = 5000.00"
    assert rules["leverage_cap"](d(leverage=4), ctx) == "leverage 4x > cap 3x for BTC-USDT"
    assert rules["no_market_data"](d(), OpenContext("BTC-USDT", UNIVERSE, RISK, None, {}, 10_000.0)) == \
        "no fresh price for BTC-USDT this run"
