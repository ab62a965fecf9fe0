"""The one timeframe table (market/timeframes.py) and every place that names timeframes."""

from __future__ import annotations

import typing
from datetime import timedelta

import pandas as pd
import pytest

from market import calendar, live
from market.timeframes import TIMEFRAMES, UnknownTimeframeError, timeframe


def test_the_table():
    assert {n: tf.duration for n, tf in TIMEFRAMES.items()} == {
        "1h": timedelta(hours=1), "4h": timedelta(hours=4), "1d": timedelta(days=1)}
    assert {n: tf.ib_bar_size for n, tf in TIMEFRAMES.items()} == {"1h": "1 hour", "4h": "4 hours", "1d": "1 day"}
    assert all(tf.ccxt == n and tf.name == n for n, tf in TIMEFRAMES.items())
    assert timeframe("4h") is TIMEFRAMES["4h"]
    with pytest.raises(UnknownTimeframeError, match="unknown timeframe '2h'; known: \\['1d', '1h', '4h'\\]"):
        timeframe("2h")


def test_crypto_bars_close_one_bar_length_after_they_open():
    opens = pd.DatetimeIndex(["2024-03-15 12:00", "2024-03-15 16:00"], tz="UTC")
    for name, tf in TIMEFRAMES.items():
        assert list(calendar.crypto_close_times(opens, name)) == list(opens + pd.Timedelta(tf.duration))
    with pytest.raises(ValueError, match="unknown timeframe"):
        calendar.crypto_close_times(opens, "15m")


def test_live_data_reads_the_table():
    provider = live.LiveProvider(fetcher=type("F", (), {"equity": False})())
    assert provider.staleness("4h") == timedelta(hours=8) and provider.staleness("1d") == timedelta(days=2)
    with pytest.raises(live.MarketDataError, match="unknown timeframe '2h'"):
        provider.frame("BTC-USDT-PERP", "2h")
    for copy in ("TIMEFRAME", "TIMEFRAMES"):
        assert not isinstance(getattr(calendar, copy, None), dict)
    assert not hasattr(live, "TIMEFRAME") and not hasattr(live.IBBars, "_BAR")


def test_the_sim_accounts_price_timeframes_are_the_tables():
    # brokers/ may not import market/ (DESIGN.md), so brokers/config.py spells the names out; keep them equal.
    from brokers.config import SimAccount

    [item] = typing.get_args(SimAccount.model_fields["price_timeframes"].annotation)
    assert set(typing.get_args(item)) == set(TIMEFRAMES)
