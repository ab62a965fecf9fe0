"""The prompt names where fills come from (issue 14: the trader decided on the perpetual's 4h close, the paper
account filled at its own price of the traded symbol)."""

from __future__ import annotations

from market.history import HistoryProvider
from strategies.llm.trader import render_only
from tests.support.llm import AS_OF, model, trader


def test_the_prompt_names_the_decision_series_the_traded_symbol_and_the_fill_price_source(srv, store, llm_env):
    prompt = render_only(trader([model(srv, "m-p")]), HistoryProvider().view(AS_OF), store)
    assert "(close of the last 4h bar of BTC-USDT-PERP; orders trade BTC-USDT)" in prompt.user
    assert "(close of the last 4h bar of ETH-USDT-PERP; orders trade ETH-USDT)" in prompt.user
    assert "fill at the account's own price of the traded symbol" in prompt.user
    assert "not at current_price" in prompt.user
