"""Live market data (market/live.py): real ccxt against the fake Binance, real ib_async against the
fake TWS; as-of semantics, retries, and stale data failing the strategy closed."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import ccxt
import pandas as pd
import pytest

from bus.models import StrategyConfig
from market.history import HistoryProvider, MarketDataError, StaleDataError
from market.live import CcxtBars, CcxtFunding, IBBars, LiveProvider
from strategies.runner import compute_intent
from tests.fakes.fake_binance import FakeBinanceUSDM
from tests.fakes.fake_tws import FakeTWS

DAY_MS = 86_400_000


def today() -> datetime:
    return datetime.now(timezone.utc).replace(hour=0, minute=0, second=0, microsecond=0)


def daily_rows(end_open: datetime, n: int = 200) -> list[tuple]:
    """The last ``n`` bundled daily BTC-USDT bars, relabelled to end with a bar opening at ``end_open``."""
    df = HistoryProvider().frame("BTC-USDT", "1d").iloc[-n:]
    start = int(end_open.timestamp() * 1000) - (n - 1) * DAY_MS
    return [(start + i * DAY_MS, r.open, r.high, r.low, r.close, r.volume) for i, r in enumerate(df.itertuples())]


@pytest.fixture
def fake():
    with FakeBinanceUSDM("k-live", "s-live") as server:
        yield server
        assert server.foreign_urls == [] and server.internal_errors == []


@pytest.fixture
def exchange(fake):
    ex = ccxt.binanceusdm({"enableRateLimit": False, "timeout": 2000})
    fake.point_ccxt(ex)
    return ex


def strategy() -> StrategyConfig:
    return StrategyConfig(strategy_id="crypto_trend", name="trend", capital_allocation=0.3,
                          params={"symbols": ["BTC-USDT-PERP"], "ema_window": 50, "weight": 0.45})


def test_bars_are_read_as_of_and_the_forming_bar_is_never_seen(fake, exchange):
    rows = daily_rows(today() - timedelta(days=1))
    forming = (int(today().timestamp() * 1000), 1.0, 1.0, 1.0, 1.0, 1.0)  # opened today: not closed yet
    fake.set_klines("BTCUSDT", "1d", rows + [forming])
    provider = LiveProvider(CcxtBars(exchange), lookback=120, retry_wait=0.01)
    now = datetime.now(timezone.utc)
    bars = provider.view(now).bars("BTC-USDT-PERP", "1d")
    assert len(bars) == 120 and bars["close"].iloc[-1] == pytest.approx(rows[-1][4])
    assert bars["close_time"].iloc[-1] == pd.Timestamp(today())
    earlier = provider.view(now - timedelta(days=3)).bars("BTC-USDT-PERP", "1d")
    assert earlier["close_time"].iloc[-1] <= pd.Timestamp(now - timedelta(days=3))
    assert earlier["close"].iloc[-1] == pytest.approx(rows[-4][4])
    intent = compute_intent(strategy(), provider.view(now))
    assert intent.status == "success", intent.error_message
    assert intent.target_positions[0].symbol == "BTC-USDT-PERP"
    assert intent.metadata.indicators["BTC-USDT-PERP_close"] == pytest.approx(rows[-1][4])
    assert len(fake.requests("/fapi/v1/klines")) == 1  # cached for the view's reads


def test_stale_feed_fails_the_strategy_closed(fake, exchange):
    fake.set_klines("BTCUSDT", "1d", daily_rows(today() - timedelta(days=6)))
    provider = LiveProvider(CcxtBars(exchange), lookback=120)
    with pytest.raises(StaleDataError, match="stale"):
        provider.frame("BTC-USDT-PERP", "1d")
    intent = compute_intent(strategy(), provider.view(datetime.now(timezone.utc)))
    assert intent.status == "error" and "StaleDataError" in intent.error_message
    assert intent.target_positions == []


def test_fetches_are_retried_with_backoff_then_fail_closed(fake, exchange):
    fake.set_klines("BTCUSDT", "1d", daily_rows(today() - timedelta(days=1)))
    provider = LiveProvider(CcxtBars(exchange), lookback=60, retries=3, retry_wait=0.01)
    fake.fail_next(2, status=503, path="/fapi/v1/klines")
    assert len(provider.frame("BTC-USDT-PERP", "1d")) >= 60
    assert [r.status for r in fake.requests("/fapi/v1/klines")] == [503, 503, 200]
    provider = LiveProvider(CcxtBars(exchange), lookback=60, retries=3, retry_wait=0.01)
    fake.fail_next(3, status=503, path="/fapi/v1/klines")
    intent = compute_intent(strategy(), provider.view(datetime.now(timezone.utc)))
    assert intent.status == "error" and "after 3 attempts" in intent.error_message
    with pytest.raises(MarketDataError):
        LiveProvider(CcxtBars(exchange)).frame("DOGE-USDT-PERP", "1d")


def test_funding_rates_as_of(fake, exchange):
    base = int(today().timestamp() * 1000) - 10 * 8 * 3_600_000
    fake.set_funding("BTCUSDT", [(base + i * 28_800_000, f"0.000{i + 1}") for i in range(10)])
    funding = CcxtFunding(exchange, retry_wait=0.01)
    as_of = datetime.fromtimestamp((base + 5 * 28_800_000) / 1000, timezone.utc)
    s = funding.as_of("BTC-USDT-PERP", as_of, lookback=3)
    assert list(s.values) == [0.0004, 0.0005, 0.0006] and s.index[-1] == pd.Timestamp(as_of)
    between = funding.between("BTC-USDT", as_of - timedelta(hours=16), as_of)
    assert list(between.values) == [0.0005, 0.0006]


def test_ib_historical_bars_as_of():
    sessions = pd.bdate_range(end=today() - timedelta(days=1), periods=80)
    spy = HistoryProvider().frame("SPY", "1d").iloc[-80:]
    rows = [(d.to_pydatetime().replace(tzinfo=timezone.utc), r.open, r.high, r.low, r.close, r.volume)
            for d, r in zip(sessions, spy.itertuples(), strict=True)]
    with FakeTWS(bars={"SPY": rows}) as tws:
        bars = IBBars(tws.host, tws.port, client_id=31, timeout=3)
        try:
            provider = LiveProvider(bars, lookback=60, max_staleness={"1d": timedelta(days=6)})
            view = provider.view(datetime.now(timezone.utc))
            got = view.bars("SPY", "1d")
            assert got["close"].iloc[-1] == pytest.approx(rows[-1][4])
            assert got.index[-1] == pd.Timestamp(sessions[-1]).tz_convert("UTC")
            last_close = got["close_time"].iloc[-1].tz_convert("America/New_York")
            assert (last_close.hour, last_close.minute) in ((16, 0), (13, 0))  # the session close, New York
            assert 20 in tws.msg_ids()  # reqHistoricalData
            with pytest.raises(MarketDataError, match="after 1 attempts"):
                LiveProvider(bars, retries=1).frame("QQQ", "1d")  # the fake has no QQQ history
        finally:
            bars.close()
