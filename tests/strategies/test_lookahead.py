"""No bar that closes after the as-of time reaches any strategy."""

from __future__ import annotations

from datetime import datetime, timezone

import pandas as pd

from market.history import MarketView
from strategies.runner import compute_intent


class RecordingView(MarketView):
    """A MarketView that remembers the newest close time of every frame it hands out."""

    def __init__(self, provider, as_of):
        super().__init__(provider, as_of)
        self.seen: list[pd.Timestamp] = []

    def bars(self, symbol, timeframe="1d", lookback=None):
        df = super().bars(symbol, timeframe, lookback)
        self.seen.append(df["close_time"].max())
        return df


def test_no_strategy_sees_a_bar_closing_after_the_as_of_time(provider, settings):
    as_of = datetime(2020, 3, 16, 21, 30, tzinfo=timezone.utc)  # the configured run time on that day
    # LLM prompts are checked in tests/strategies/llm/test_context.py.
    for cfg in [s for s in settings.strategies if s.kind == "classic"]:
        view = RecordingView(provider, as_of)
        intent = compute_intent(cfg, view)
        assert intent.status == "success", intent.error_message
        assert view.seen, f"{cfg.strategy_id} read no bars"
        assert max(view.seen) <= pd.Timestamp(as_of)
    # The next bars exist in the data, so the filter did real work.
    assert provider.frame("SPY")["close_time"].max() > pd.Timestamp(as_of)


def test_a_strategy_that_peeks_cannot_get_the_next_bar(provider):
    as_of = datetime(2020, 3, 16, 21, 30, tzinfo=timezone.utc)
    view = provider.view(as_of)
    spy = view.bars("SPY")
    assert spy.index[-1] == pd.Timestamp("2020-03-16", tz="UTC")
    btc = view.bars("BTC-USDT")
    assert btc.index[-1] == pd.Timestamp("2020-03-15", tz="UTC")  # 2020-03-16's bar closes at midnight
    assert (spy["close_time"] <= view.as_of).all() and (btc["close_time"] <= view.as_of).all()


def test_intent_is_the_same_whatever_data_follows(provider, settings):
    """The decision at T uses only bars up to T: truncating the future changes nothing."""
    as_of = datetime(2020, 3, 16, 21, 30, tzinfo=timezone.utc)
    cfg = next(s for s in settings.strategies if s.strategy_id == "spy_macd_vixy")
    full = compute_intent(cfg, provider.view(as_of))

    class Truncated:
        def __init__(self, inner):
            self.inner = inner

        def frame(self, symbol, timeframe="1d"):
            df = self.inner.frame(symbol, timeframe)
            return df[df["close_time"] <= pd.Timestamp(as_of)]

    cut = compute_intent(cfg, MarketView(Truncated(provider), as_of))
    assert full.target_positions == cut.target_positions
    assert full.metadata == cut.metadata
