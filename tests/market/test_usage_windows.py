"""What a strategy read is recorded the same way whether the view reads windows of the provider's series
(the fast path: :meth:`market.history.MarketView.window`, digests from packed rows) or hands out frames."""

from __future__ import annotations

import gc
from datetime import datetime, timezone

import numpy as np
import pandas as pd
import pytest

from backtest.horizon import HorizonHistory
from market import bars as bars_mod
from market.bars import bars_digest, derived, window_digest
from market.history import BUNDLED_DIR, MarketView
from market.usage import RecordingView

AS_OF = datetime(2021, 6, 15, 21, 30, tzinfo=timezone.utc)


class FrameView(MarketView):
    """A view that overrides ``bars``: the recording view must read through it (no window fast path)."""

    def bars(self, symbol, timeframe="1d", lookback=None):
        return super().bars(symbol, timeframe, lookback)


def reads(view: MarketView) -> None:
    """A strategy's reads: overlapping lookbacks of one series, a freshness check and a last price of others."""
    view.bars("SPY", lookback=30)
    view.bars("SPY", lookback=400)
    view.bars("SPY", lookback=5)
    view.require_fresh("VIXY", pd.Timedelta(days=5))
    view.last_price("VIXY")
    view.last_price("GLD")
    view.bars("GLD", lookback=3)
    view.bars("BTC-USDT", lookback=60)


def test_window_digest_is_the_digest_of_the_slice():
    rng = np.random.default_rng(7)
    idx = pd.date_range("2020-01-01", periods=64, freq="D", tz="UTC")
    df = pd.DataFrame({c: rng.random(64) for c in bars_mod.COLUMNS}, index=idx)
    for start in range(0, 64, 9):
        for stop in range(start, 65, 7):
            assert window_digest(df, start, stop) == bars_digest(df.iloc[start:stop])
    with pytest.raises(ValueError):
        window_digest(df, 10, 65)


@pytest.mark.parametrize("provider_kind", ["history", "horizon"])
def test_windowed_and_frame_reads_record_the_same_bars(provider, provider_kind):
    prov = provider if provider_kind == "history" else HorizonHistory([BUNDLED_DIR], AS_OF)
    fast = RecordingView(prov.view(AS_OF))
    slow = RecordingView(FrameView(prov, AS_OF))
    assert fast._windowed and not slow._windowed
    reads(fast)
    reads(slow)
    got, want = fast.used(), slow.used()
    assert [u.model_dump() for u in got] == [u.model_dump() for u in want]
    spy = next(u for u in got if u.symbol == "SPY")
    frame = prov.view(AS_OF).bars("SPY", lookback=400)
    assert spy.bars == 400 and spy.digest == bars_digest(frame)  # the union of the three reads
    vixy = next(u for u in got if u.symbol == "VIXY")
    assert vixy.bars == 1 and vixy.last_close == frame["close_time"].iloc[-1].to_pydatetime()


def test_a_stale_series_is_recorded_before_the_view_refuses_it(provider):
    view = RecordingView(provider.view(AS_OF))
    with pytest.raises(Exception, match="stale"):
        view.require_fresh("SPY", pd.Timedelta(minutes=1))
    assert [u.symbol for u in view.used()] == ["SPY"]


def test_derived_values_go_with_their_frame():
    df = pd.DataFrame({c: [1.0, 2.0] for c in bars_mod.COLUMNS},
                      index=pd.date_range("2020-01-01", periods=2, tz="UTC"))
    calls = []
    assert derived(df, "n", lambda f: calls.append(1) or len(f)) == 2
    assert derived(df, "n", lambda f: calls.append(1) or len(f)) == 2
    assert calls == [1]
    key = id(df)
    assert key in bars_mod._DERIVED
    del df
    gc.collect()
    assert key not in bars_mod._DERIVED
