"""As-of access to the bundled bars: a bar is visible only once it has closed."""

from __future__ import annotations

from datetime import datetime, timezone

import pandas as pd
import pytest

from market.history import MarketDataError, StaleDataError


def utc(*a):
    return datetime(*a, tzinfo=timezone.utc)


def last_open_date(view, symbol):
    return view.bars(symbol, lookback=1).index[-1].date().isoformat()


def test_etf_daily_bar_closes_at_16_new_york_daylight_saving_included(provider):
    # 2020-03-16 is in EDT: 16:00 New York = 20:00 UTC.
    assert last_open_date(provider.view(utc(2020, 3, 16, 19, 59)), "SPY") == "2020-03-13"
    assert last_open_date(provider.view(utc(2020, 3, 16, 20, 0)), "SPY") == "2020-03-16"
    # 2020-01-15 is in EST: 16:00 New York = 21:00 UTC, not midnight UTC.
    assert last_open_date(provider.view(utc(2020, 1, 15, 20, 59)), "SPY") == "2020-01-14"
    assert last_open_date(provider.view(utc(2020, 1, 15, 21, 0)), "SPY") == "2020-01-15"


def test_early_close_day_uses_the_exchange_calendar(provider):
    # The day after Thanksgiving 2019 closed at 13:00 New York = 18:00 UTC.
    assert last_open_date(provider.view(utc(2019, 11, 29, 18, 0)), "SPY") == "2019-11-29"
    assert last_open_date(provider.view(utc(2019, 11, 29, 17, 59)), "SPY") == "2019-11-27"


def test_crypto_daily_bar_closes_at_open_plus_one_day(provider):
    v = provider.view(utc(2020, 3, 16, 21, 30))
    assert last_open_date(v, "BTC-USDT") == "2020-03-15"
    assert v.bars("BTC-USDT", lookback=1)["close_time"].iloc[-1] == pd.Timestamp("2020-03-16", tz="UTC")
    assert last_open_date(provider.view(utc(2020, 3, 17)), "BTC-USDT") == "2020-03-16"
    # Spot check from SOURCES.md: BTC closed 4,800.00 on 2020-03-12.
    assert provider.view(utc(2020, 3, 13)).last_price("BTC-USDT") == 4800.0


def test_gaps_stay_gaps(provider):
    # US markets were closed 2001-09-11 .. 2001-09-14.
    bars = provider.view(utc(2001, 9, 18, 22)).bars("SPY", lookback=3)
    assert [d.date().isoformat() for d in bars.index] == ["2001-09-10", "2001-09-17", "2001-09-18"]
    full = provider.frame("SPY")
    assert not any(full.index.strftime("%Y-%m-%d").isin(["2001-09-11", "2001-09-12", "2001-09-13", "2001-09-14"]))


def test_missing_symbol_is_an_error_naming_it(provider):
    with pytest.raises(MarketDataError, match="'NOPE'"):
        provider.view(utc(2020, 1, 1)).bars("NOPE")


def test_no_bar_before_the_data_starts(provider):
    with pytest.raises(MarketDataError, match="no 1d bar of BTC-USDT has closed"):
        provider.view(utc(2017, 6, 1)).bars("BTC-USDT")


def test_stale_data_is_refused(provider):
    v = provider.view(utc(2026, 8, 1, 21, 30))  # the ETF data ends 2026-06-04
    with pytest.raises(StaleDataError, match="SPY 1d data is stale"):
        v.require_fresh("SPY", pd.Timedelta(days=5))
    assert provider.view(utc(2020, 3, 16, 21, 30)).require_fresh("SPY", pd.Timedelta(days=5))
