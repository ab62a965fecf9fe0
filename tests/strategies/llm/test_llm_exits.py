"""An LLM trader's stop-loss and take-profit become protective exits resting at the paper broker, end to end:
fake OpenAI server, real emulator, the whole pipeline on bundled bars (commander/protect.py)."""

from __future__ import annotations

from datetime import datetime, timezone

import pytest

from bus import paths
from bus.models import Book
from bus.orders import OrderLifecycle
from bus.store import read
from pipeline.run import run_pipeline
from pipeline.settings import Settings, apply_settings
from pipeline.wiring import make_broker
from tests.fakes.fake_openai import Behaviour
from tests.support.llm import decision, model, reply, trader

DAY1 = datetime(2024, 3, 14, 21, 30, tzinfo=timezone.utc)
DAY2 = datetime(2024, 3, 15, 21, 30, tzinfo=timezone.utc)
BTC_LONG = decision("BTC-USDT", "open_long", notional=3000, leverage=2, stop_loss=66000, take_profit=76000)


def test_an_llm_traders_stop_and_take_profit_rest_at_the_paper_broker(srv, store, settings, provider, llm_env):
    srv.script("m-exit", [Behaviour.ok(reply()), Behaviour.ok(reply(BTC_LONG))])
    s = Settings(settings.trading, [trader([model(srv, "m-exit")], strategy_id="llm_exit")],
                 settings.account.model_copy(update={"fill_at": "close"}), settings.instruments)
    apply_settings(store, s)
    broker = make_broker(store, s, provider)
    run_pipeline(store, provider, broker, s.strategies, DAY1)  # the book opens with its capital
    res = run_pipeline(store, provider, broker, s.strategies, DAY2)
    ex = res.execution
    assert ex.status == "completed", ex.summary
    [target] = res.intents["llm_exit"].target_positions
    assert (target.stop_loss, target.take_profit) == (66000, 76000)
    held = read(store, paths.book("llm_exit"), Book).positions["BTC-USDT"].quantity
    assert held > 0
    placed = {r.leg: r for r in ex.protective_exits if r.action == "place"}
    assert set(placed) == {"stop", "take_profit"}, ex.protective_exits
    lot = ex.context.specs["BTC-USDT"].lot_size
    for leg, trigger in (("stop", 66000.0), ("take_profit", 76000.0)):
        r = placed[leg]
        assert (r.strategy_id, r.side, r.trigger, r.status) == ("llm_exit", "SELL", trigger, "Submitted")
        assert r.quantity == pytest.approx(lot * int(held / lot + 1e-9)) and r.quantity <= held
        doc = read(store, paths.order(r.client_order_id), OrderLifecycle)
        assert (doc.status, doc.reduce_only, doc.shares) == ("submitted", True, {"llm_exit": -r.quantity})
    resting = {o.orderType: o for o in broker.portfolio(DAY2).open_orders}
    assert (resting["STP"].auxPrice, resting["MIT"].auxPrice) == (66000.0, 76000.0)
    assert resting["STP"].ocaGroup == resting["MIT"].ocaGroup and resting["STP"].reduce_only
