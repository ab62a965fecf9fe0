"""Target positions kept as columns (commander/targets.py): the store edge of the array path.

An intent document read into columns must give back exactly the targets the models validate (every
field, instruments and contract details included), and refuse what ``parse_intent`` refuses, the same way.
"""

from __future__ import annotations

from datetime import datetime, timezone

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bus.models import Intent, TargetPosition
from commander.decide import symbols_involved
from commander.state import parse_intent
from commander.targets import TargetColumns, columns, parse_intent_columns, with_columns, with_objects

T = datetime(2024, 6, 3, 21, 30, tzinfo=timezone.utc)
NUMBER = st.one_of(st.none(), st.just(-0.0), st.floats(-1e12, 1e12), st.integers(-10**6, 10**6))


@st.composite
def target_doc(draw) -> dict:
    size = draw(st.sampled_from(["quantity", "weight", "notional"]))
    doc = {"symbol": draw(st.sampled_from(["AAPL", "MSFT", "BTC/USDT", "ES"])),
           size: draw(st.one_of(st.just(-0.0), st.floats(-1e9, 1e9), st.integers(-10**6, 10**6)))}
    for f in ("stop_loss", "take_profit"):
        doc[f] = draw(NUMBER)
    doc["confidence"] = draw(st.one_of(st.none(), st.floats(0, 100)))
    doc["leverage"] = draw(st.one_of(st.none(), st.floats(0.5, 5)))
    if draw(st.booleans()):
        doc.update(secType=draw(st.sampled_from(["STK", "CRYPTO", "FUT"])),
                   exchange=draw(st.sampled_from(["SMART", "binance"])), currency=draw(st.sampled_from(["USD", "EUR"])))
    if draw(st.integers(0, 4)) == 0:
        doc["contract_details"] = {"conId": draw(st.integers(1, 10**6)), "expiry": "202412"}
    return doc


def _doc(targets: list[dict], strategy_id: str = "s") -> dict:
    return {"intent_id": "i1", "strategy_id": strategy_id, "updated_at": T, "as_of": T, "status": "success",
            "target_positions": targets}


@settings(max_examples=200, deadline=None)
@given(st.lists(target_doc(), max_size=12))
def test_columns_give_back_the_validated_targets_to_the_bit(targets):
    expected = parse_intent("s", _doc(targets))
    got = parse_intent_columns("s", _doc(targets))
    assert expected is not None and got is not None
    tp: object = got.target_positions
    assert isinstance(tp, TargetColumns) or not targets
    assert len(got.target_positions) == len(targets)
    assert repr([t.model_dump() for t in got.target_positions]) == \
        repr([t.model_dump() for t in expected.target_positions])
    assert all(type(t) is TargetPosition for t in got.target_positions)
    assert repr(got.model_dump(exclude={"target_positions"})) == \
        repr(expected.model_dump(exclude={"target_positions"}))
    assert [t.model_dump() for t in got.target_positions[1:3]] == \
        [t.model_dump() for t in expected.target_positions[1:3]]
    assert symbols_involved({"s": got}, {}, None) == symbols_involved({"s": expected}, {}, None)
    assert got.target_positions == expected.target_positions
    assert repr(with_objects(got).model_dump()) == repr(expected.model_dump())


def test_a_document_that_does_not_validate_becomes_the_same_error_stand_in():
    bad = _doc([{"symbol": "AAPL", "weight": 0.1, "quantity": 3}])
    assert parse_intent_columns("s", bad) == parse_intent("s", bad)
    assert parse_intent_columns("s", bad).status == "error"  # type: ignore[union-attr]
    other = _doc([{"symbol": "AAPL", "weight": 0.1}], strategy_id="t")
    assert parse_intent_columns("s", other) == parse_intent("s", other)
    assert parse_intent_columns("s", None) is None


def test_plain_targets_keep_one_instrument_and_no_optional_column():
    intent = Intent(intent_id="i", strategy_id="s", updated_at=T, as_of=T, status="success",
                    target_positions=[TargetPosition(symbol=f"S{i}", weight=0.01) for i in range(100)])
    cols = columns(intent)
    assert cols.kinds is None and cols.optional == {} and len(cols.instruments) == 1
    assert np.isnan(cols.quantity).all() and np.isnan(cols.column("confidence")).all()
    again = with_columns(intent)
    assert with_columns(again) is again
    with pytest.raises(IndexError):
        cols[100]
    assert cols[-1].symbol == "S99"


def test_the_most_confident_target_wins_when_read_from_columns():
    """highest_confidence: a wants SPY long (confidence 80), b short (confidence 20): a's side wins on the array
    path reading the confidence column, as on the objects; with the confidences swapped, b's side wins."""
    import copy

    from bus.models import TradingConfig
    from commander.decide import CommanderInputs, decide
    from tests.commander.test_decide_arrays import _same
    from tests.commander.test_steps import PRICES as P
    from tests.commander.test_steps import SPECS as S
    from tests.commander.test_steps import intent, snapshot, strat

    for conf_a, conf_b, sign in ((80.0, 20.0, 1), (20.0, 80.0, -1)):
        intents = {"a": intent("a", [TargetPosition(symbol="SPY", weight=0.5, confidence=conf_a)]),
                   "b": intent("b", [TargetPosition(symbol="SPY", weight=-0.5, confidence=conf_b)])}
        inp = CommanderInputs("x", T, TradingConfig(conflict_policy="highest_confidence"),
                              {"a": strat("a", 0.4), "b": strat("b", 0.4)}, intents, {}, snapshot(), P, S)
        cols = copy.deepcopy(inp)
        cols.intents = {sid: with_columns(i) for sid, i in cols.intents.items() if i is not None}
        plan = decide(cols, arrays=True)
        (line,) = [t for t in plan.decision.aggregated_target if t.symbol == "SPY"]
        assert line.quantity * sign > 0
        _same(decide(copy.deepcopy(inp), arrays=False), plan)
