"""Configured market data (market/provider.py, sources.py, cache.py, etf_daily.py): the real ccxt and
yfinance clients against the project's fakes on 127.0.0.1, the bar cache cold and warm, as-of semantics,
staleness, retries, and what an intent records about the bars it read."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pandas as pd
import pytest

from bus.models import StrategyConfig
from bus.store import MemoryStore
from market.bars import bars_digest, clean_bars
from market.cache import FileBarCache, StoreBarCache, month_path, series_path
from market.config import MarketConfigError, parse_market_config
from market.history import HistoryProvider, MarketDataError, StaleDataError
from market.provider import MarketData
from market.sources import Fetchers
from strategies.runner import compute_intent
from tests.fakes.fake_binance import FakeBinanceUSDM
from tests.fakes.fake_etf_source import FakeYahoo
from tests.fakes.fake_hyperliquid import FakeHyperliquid
from tests.market.today import crypto_rows, etf_rows, last_boundary, session_close, sessions_closed_by

NOW = datetime.now(timezone.utc)


def config(binance=None, yahoo=None, hyperliquid=None, **extra):
    sources, symbols = {}, {}
    if binance:
        sources["usdm"] = {"kind": "ccxt", "exchange": "binanceusdm", "base_url": binance, "retry_wait": 0.01,
                           "symbols": {"BTC-USDT": "BTC/USDT:USDT", "ETH-USDT": "ETH/USDT:USDT"}}
        symbols.update({"BTC-USDT": {"bars": "usdm", "timeframes": ["1d", "4h"]}, "ETH-USDT": "usdm",
                        "BTC-USDT-PERP": {"bars": "usdm", "funding": "usdm", "timeframes": ["4h"]}})
    if yahoo:
        sources["yahoo"] = {"kind": "yfinance", "base_url": yahoo, "retry_wait": 0.01}
        symbols.update({"SPY": "yahoo", "VIXY": "yahoo"})
    if hyperliquid:
        sources["hl"] = {"kind": "ccxt", "exchange": "hyperliquid", "base_url": hyperliquid, "retry_wait": 0.01,
                         "symbols": {"BTC-USDC-PERP": "BTC/USDC:USDC"}}
        symbols["BTC-USDC-PERP"] = "hl"
    return parse_market_config({"sources": sources, "symbols": symbols, **extra})


def market(cfg, cache, clock=lambda: NOW):
    return MarketData(cfg, cache, HistoryProvider(), Fetchers(cfg, clock), clock)


@pytest.fixture(scope="module")
def binance():
    with FakeBinanceUSDM() as fake:
        yield fake
        assert fake.internal_errors == []


@pytest.fixture(scope="module")
def yahoo():
    with FakeYahoo() as fake:
        yield fake
        assert fake.errors == []


@pytest.fixture(autouse=True)
def fresh(binance, yahoo):
    binance.clear_requests()
    binance.clear_failures()
    binance.set_klines("BTCUSDT", "1d", crypto_rows("BTC-USDT", NOW))
    binance.set_klines("ETHUSDT", "1d", crypto_rows("ETH-USDT", NOW))
    yahoo.set_bars("SPY", etf_rows("SPY", NOW))
    yahoo.set_bars("VIXY", etf_rows("VIXY", NOW))


def klines(fake):
    return [r for r in fake.requests("/fapi/v1/klines")]


# ---------------------------------------------------------------------------------------------- config


@pytest.mark.parametrize("raw, message", [
    ({"symbols": {"SPY": "nowhere"}}, "symbols.SPY.bars: no source named 'nowhere'"),
    ({"sources": {"x": {"kind": "ftp"}}}, "sources.x"),
    ({"sources": {"y": {"kind": "yfinance"}}, "symbols": {"SPY": {"bars": "y", "timeframes": ["4h"]}}},
     "serves daily bars only"),
    ({"sources": {"y": {"kind": "yfinance"}}, "symbols": {"SPY": {"bars": "y", "funding": "y"}}}, "no funding"),
    ({"sources": {"c": {"kind": "ccxt", "exchange": "binance", "base_url": "not a url"}}}, "base_url"),
    ({"default": "gone"}, "default: no source named 'gone'"),
])
def test_a_bad_market_config_is_one_line_naming_the_field(raw, message):
    with pytest.raises(MarketConfigError) as err:
        parse_market_config(raw, "config/market.yaml")
    assert message in str(err.value) and "\n" not in str(err.value)
    assert str(err.value).startswith("config/market.yaml: ")


# ---------------------------------------------------------------------------------------------- ccxt


def test_ccxt_source_by_base_url_cold_then_warm_cache(binance, tmp_path):
    forming = (int(last_boundary(NOW, "1d").timestamp() * 1000), 1.0, 1.0, 1.0, 1.0, 1.0)
    binance.set_klines("BTCUSDT", "1d", crypto_rows("BTC-USDT", NOW) + [forming])
    cfg = config(binance=binance.base_url)
    cold = market(cfg, FileBarCache(tmp_path))
    bars = cold.view(NOW).bars("BTC-USDT", "1d")
    assert len(klines(binance)) == 1, "one request on a cold cache"
    assert bars["close_time"].iloc[-1] == pd.Timestamp(last_boundary(NOW, "1d"))
    assert bars["close"].iloc[-1] != 1.0, "the forming bar is never visible"
    cached = pd.read_csv(tmp_path / "usdm" / "BTC-USDT-1d.csv")
    assert list(cached.columns) == ["timestamp", "open", "high", "low", "close", "volume"]
    assert 1.0 not in cached["close"].values, "the forming bar is never cached"
    assert cached["timestamp"].iloc[-1] == (last_boundary(NOW, "1d") - timedelta(days=1)).strftime("%Y-%m-%dT%H:%M:%SZ")
    # Another process, the same cache: no request at all, the same bars.
    warm = market(cfg, FileBarCache(tmp_path))
    again = warm.view(NOW).bars("BTC-USDT", "1d")
    assert len(klines(binance)) == 1 and warm.requests == 0
    assert bars_digest(again) == bars_digest(bars)


def test_bundled_bars_fill_in_before_the_first_cached_bar(binance, tmp_path):
    md = market(config(binance=binance.base_url), FileBarCache(tmp_path))
    bars = md.view(NOW).bars("BTC-USDT", "1d")
    cached = md.cached("BTC-USDT", "1d")
    served = len(crypto_rows("BTC-USDT", NOW))
    assert len(cached) == served and len(bars) > served
    assert bars.index[0] == HistoryProvider().frame("BTC-USDT").index[0]
    assert md.origin("BTC-USDT", "1d", bars) == "bundled+usdm"
    assert md.origin("BTC-USDT", "1d", bars.iloc[-50:]) == "usdm"
    assert md.origin("BTC-USDT", "1d", bars.iloc[:50]) == "bundled"


def test_a_historical_view_never_fetches_and_sees_only_earlier_bars(binance, tmp_path):
    md = market(config(binance=binance.base_url), FileBarCache(tmp_path))
    past = NOW - timedelta(days=30)
    view = md.view(past)
    bars = view.bars("BTC-USDT", "1d")
    assert klines(binance) == [], "a historical as-of reads only the cache and the bundled bars"
    assert bars["close_time"].iloc[-1] <= pd.Timestamp(past)
    assert bars.index[-1] == HistoryProvider().frame("BTC-USDT").index[-1], "nothing cached yet: bundled only"
    md.view(NOW).bars("BTC-USDT", "1d")  # as of now: fetched and cached
    later = md.view(past).bars("BTC-USDT", "1d")
    assert len(klines(binance)) == 1 and later["close_time"].iloc[-1] > pd.Timestamp(past - timedelta(days=1))


def test_stale_source_fails_closed(binance, tmp_path):
    stale_end = last_boundary(NOW, "1d") - timedelta(days=5)
    binance.set_klines("BTCUSDT", "1d", crypto_rows("BTC-USDT", NOW, end_close=stale_end))
    md = market(config(binance=binance.base_url), FileBarCache(tmp_path))
    with pytest.raises(StaleDataError, match="BTC-USDT 1d bars from usdm are stale"):
        md.view(NOW).bars("BTC-USDT", "1d")
    intent = compute_intent(StrategyConfig(strategy_id="crypto_trend", name="t", params={"symbols": ["BTC-USDT"]}),
                            md.view(NOW))
    assert intent.status == "error" and "StaleDataError" in intent.error_message


def test_fetches_are_retried_then_fail_closed_with_the_reason(binance, tmp_path):
    binance.fail_next(2, status=503, path="/fapi/v1/klines")
    md = market(config(binance=binance.base_url), FileBarCache(tmp_path / "a"))
    assert len(md.view(NOW).bars("BTC-USDT", "1d")) > 200
    assert [r.status for r in klines(binance)] == [503, 503, 200]
    binance.fail_next(3, status=503, path="/fapi/v1/klines")
    md = market(config(binance=binance.base_url), FileBarCache(tmp_path / "b"))
    with pytest.raises(MarketDataError, match="after 3 attempts"):
        md.view(NOW).bars("BTC-USDT", "1d")
    assert not (tmp_path / "b" / "usdm" / "BTC-USDT-1d.csv").exists()


def test_only_bars_newer_than_the_cache_are_appended(binance, tmp_path):
    early = NOW - timedelta(days=3)
    md = market(config(binance=binance.base_url), FileBarCache(tmp_path), clock=lambda: early)
    md.view(early).bars("BTC-USDT", "1d")
    n = len(md.cached("BTC-USDT", "1d"))
    assert md.cached("BTC-USDT", "1d")["close"].iloc[-1] == pytest.approx(crypto_rows("BTC-USDT", NOW)[-4][4])
    # The venue now "revises" an old bar; the cache keeps what it had, and appends only the 3 new bars.
    rows = crypto_rows("BTC-USDT", NOW)
    rows[-10] = (rows[-10][0], 1.0, 1.0, 1.0, 1.0, 1.0)
    binance.set_klines("BTCUSDT", "1d", rows)
    md.clock = lambda: NOW
    md.fetchers.clock = md.clock
    md.view(NOW).bars("BTC-USDT", "1d")
    cached = md.cached("BTC-USDT", "1d")
    assert len(cached) == n + 3 and 1.0 not in cached["close"].values
    q = klines(binance)[-1].params
    assert int(q["limit"]) >= 3, "the second request asks for the gap, not the whole lookback"


def test_clean_bars_sorts_deduplicates_and_drops_non_finite():
    idx = pd.to_datetime(["2026-01-03", "2026-01-01", "2026-01-02", "2026-01-02", "2026-01-04"], utc=True)
    raw = pd.DataFrame({"open": [3, 1, 2, 2.5, float("nan")], "high": [3, 1, 2, 2.5, 4], "low": [3, 1, 2, 2.5, 4],
                        "close": [3, 1, 2, 2.5, 4], "volume": [1, 1, 1, 1, float("inf")]}, index=idx)
    df = clean_bars(raw)
    assert list(df.index.strftime("%m-%d")) == ["01-01", "01-02", "01-03"]
    assert df.loc["2026-01-02", "close"] == 2.5  # the last answer for an open time wins


def test_hyperliquid_candles_by_base_url(tmp_path):
    wallet = "0x" + "1" * 40
    with FakeHyperliquid(wallet) as fake:
        rows = crypto_rows("BTC-USDT", NOW, n=60)
        fake.set_candles("BTC", "1d", rows)
        md = market(config(hyperliquid=fake.base_url), FileBarCache(tmp_path))
        bars = md.view(NOW).bars("BTC-USDC-PERP", "1d")
        assert bars["close"].iloc[-1] == pytest.approx(rows[-1][4])
        assert bars.index[-1] == pd.Timestamp(rows[-1][0], unit="ms", tz="UTC")
        assert (tmp_path / "hl" / "BTC-USDC-PERP-1d.csv").exists()


# ---------------------------------------------------------------------------------------------- yfinance


def test_etf_daily_bars_through_yfinance_close_at_the_new_york_close(yahoo, tmp_path):
    # A forming bar exists only while a session is open: the clock sits 3 h before the newest close
    # (every session, half days included, is at least 3.5 h long), whatever time of day the test runs.
    during = session_close(sessions_closed_by(NOW, 1)[0]).to_pydatetime() - timedelta(hours=3)
    rows = etf_rows("SPY", during)
    yahoo.set_bars("SPY", rows, forming=(1.0, 1.0, 1.0, 1.0, 10), forming_at=during)
    md = market(config(yahoo=yahoo.base_url), FileBarCache(tmp_path), clock=lambda: during)
    bars = md.view(during).bars("SPY")
    assert bars.index[-1] == pd.Timestamp(rows[-1][0], tz="UTC")
    assert bars["close"].iloc[-1] == pytest.approx(rows[-1][4])
    assert bars["close_time"].iloc[-1] == session_close(rows[-1][0])
    ny = bars["close_time"].iloc[-1].tz_convert("America/New_York")
    assert (ny.hour, ny.minute) in ((16, 0), (13, 0))
    assert len(yahoo.chart_requests("SPY")) >= 1
    n = len(yahoo.chart_requests())
    warm = market(config(yahoo=yahoo.base_url), FileBarCache(tmp_path), clock=lambda: during)
    assert bars_digest(warm.view(during).bars("SPY")) == bars_digest(bars)
    assert len(yahoo.chart_requests()) == n, "warm cache: no request"


def test_etf_rate_limit_is_retried_and_an_unknown_ticker_fails_closed(yahoo, tmp_path):
    yahoo.fail_next(2, status=429)  # yfinance retries once itself, then raises YFRateLimitError
    md = market(config(yahoo=yahoo.base_url), FileBarCache(tmp_path))
    assert len(md.view(NOW).bars("VIXY")) > 100
    assert [r.status for r in yahoo.chart_requests("VIXY")][:2] == [429, 429]
    cfg = parse_market_config({"sources": {"yahoo": {"kind": "yfinance", "base_url": yahoo.base_url,
                                                     "retry_wait": 0.01}}, "symbols": {"QQQ": "yahoo"}})
    with pytest.raises(MarketDataError, match="Yahoo does not know 'QQQ'"):
        market(cfg, FileBarCache(tmp_path)).view(NOW).bars("QQQ")


# ---------------------------------------------------------------------------------------------- store cache


def test_store_cache_one_document_per_series_month(binance, yahoo):
    store = MemoryStore()
    md = market(config(binance=binance.base_url, yahoo=yahoo.base_url), StoreBarCache(store))
    bars = md.view(NOW).bars("BTC-USDT", "1d")
    meta = store.get(series_path("usdm", "BTC-USDT", "1d"))
    assert meta["symbol"] == "BTC-USDT" and len(meta["months"]) >= 6
    month = store.get(month_path("usdm", "BTC-USDT", "1d", meta["months"][-1]))
    assert set(month) == {"t", "open", "high", "low", "close", "volume"}
    assert month["t"][-1] == int(bars.index[-1].value // 1_000_000)
    warm = market(config(binance=binance.base_url, yahoo=yahoo.base_url), StoreBarCache(store))
    before = len(klines(binance))
    assert bars_digest(warm.view(NOW).bars("BTC-USDT", "1d")) == bars_digest(bars)
    assert len(klines(binance)) == before


def test_store_cache_on_the_emulator_round_trips(store, binance):
    cache = StoreBarCache(store)
    md = market(config(binance=binance.base_url), cache)
    bars = md.view(NOW).bars("BTC-USDT", "1d").iloc[-len(crypto_rows("BTC-USDT", NOW)):]
    again = StoreBarCache(store).read("usdm", "BTC-USDT", "1d")
    assert bars_digest(again) == bars_digest(bars)
    assert StoreBarCache(store).last_open("usdm", "BTC-USDT", "1d") == bars.index[-1]


# ---------------------------------------------------------------------------------------------- intents


def test_the_intent_records_the_bars_it_used(binance, yahoo, tmp_path):
    md = market(config(binance=binance.base_url, yahoo=yahoo.base_url), FileBarCache(tmp_path))
    cfg = StrategyConfig(strategy_id="spy_macd_vixy", name="s", params={"fast": 12, "slow": 26, "signal": 9})
    intent = compute_intent(cfg, md.view(NOW))
    assert intent.status == "success", intent.error_message
    used = {(b.symbol, b.timeframe): b for b in intent.source.bars}
    assert set(used) == {("SPY", "1d"), ("VIXY", "1d")}
    spy = used[("SPY", "1d")]
    last_session = sessions_closed_by(NOW, 1)[-1]
    assert spy.last_close == session_close(last_session).to_pydatetime()
    assert spy.source == "yahoo" and spy.bars == 400  # the widest read: 400 bars, all cached
    view = md.view(NOW)
    assert spy.digest == bars_digest(view.bars("SPY", lookback=400))
    doc = intent.to_store()["source"]["bars"][0]
    assert set(doc) == {"symbol", "timeframe", "source", "bars", "first_open", "last_close", "digest", "flags"}
    # The same as-of on the cache alone (a replay): the same bars, the same decision.
    replay = MarketData(md.config, FileBarCache(tmp_path), HistoryProvider(), None)
    again = compute_intent(cfg, replay.view(NOW))
    assert again.source.bars == intent.source.bars and again.target_positions == intent.target_positions


def test_a_bundled_run_records_bundled_bars(provider, settings):
    as_of = datetime(2020, 3, 16, 21, 30, tzinfo=timezone.utc)
    cfg = next(s for s in settings.strategies if s.strategy_id == "crypto_trend")
    intent = compute_intent(cfg, provider.view(as_of))
    assert {(b.symbol, b.source) for b in intent.source.bars} == {("BTC-USDT", "bundled"), ("ETH-USDT", "bundled")}
    btc = next(b for b in intent.source.bars if b.symbol == "BTC-USDT")
    assert btc.last_close == datetime(2020, 3, 16, tzinfo=timezone.utc)
    assert btc.digest == bars_digest(provider.view(as_of).bars("BTC-USDT", lookback=btc.bars))


# ---------------------------------------------------------------------------------------------- data update


def test_update_refreshes_the_cache_then_the_bundled_files(binance, yahoo, tmp_path):
    import shutil

    from market.update import update

    bundled = tmp_path / "bundled"
    bundled.mkdir()
    shutil.copy(HistoryProvider().key("SPY").path, bundled)
    md = market(config(binance=binance.base_url, yahoo=yahoo.base_url), FileBarCache(tmp_path / "bars"))
    binance.set_klines("BTCUSDT", "4h", crypto_rows("BTC-USDT", NOW, timeframe="4h"))
    done = []
    out = update(md, md.config.fetched(), bundled_dir=bundled, on_done=done.append)
    assert [(u.report.source, u.report.symbol, u.report.timeframe) for u in out] == md.config.fetched()
    assert len(done) == len(out) == 6
    assert [u.error for u in out] == [None] * 6
    assert next(u for u in out if u.report.timeframe == "4h" and u.report.symbol == "BTC-USDT").report.appended > 100
    spy = next(u for u in out if u.report.symbol == "SPY")
    assert spy.report.requested and spy.report.appended > 0 and spy.bundled_appended > 0
    merged = HistoryProvider([bundled]).frame("SPY")
    assert merged.index[-1] == md.cached("SPY", "1d").index[-1]
    assert merged.index.is_monotonic_increasing and not merged.index.duplicated().any()
    btc = next(u for u in out if (u.report.symbol, u.report.timeframe) == ("BTC-USDT", "1d"))
    assert btc.bundled_file == bundled / "binanceusdm_BTC-USDT_1d.csv"  # a new file, named for the exchange
    # Again: nothing is due, nothing requested, nothing appended.
    again = update(market(md.config, FileBarCache(tmp_path / "bars")), [("yahoo", "SPY", "1d")], bundled_dir=bundled)
    assert not again[0].report.requested and again[0].bundled_appended == 0


# ---------------------------------------------------------------------------------------------- funding


def test_funding_from_the_configured_source_is_cached_and_read_as_of(binance, tmp_path):
    from market.funding import FundingHistory
    from market.funding_feed import FundingFeed

    first = int((last_boundary(NOW, "4h") - timedelta(hours=8 * 20)).timestamp() * 1000) // 28_800_000 * 28_800_000
    rows = [(first + i * 28_800_000, f"0.000{i % 9 + 1}") for i in range(21)
            if first + i * 28_800_000 <= NOW.timestamp() * 1000]
    binance.set_funding("BTCUSDT", rows)
    cfg = config(binance=binance.base_url)
    feed = FundingFeed(cfg, FundingHistory(), FileBarCache(tmp_path), Fetchers(cfg, lambda: NOW), lambda: NOW)
    got = feed.between("BTC-USDT-PERP", NOW - timedelta(days=2), NOW)
    assert len(got) == 6 and got.iloc[-1] == pytest.approx(float(rows[-1][1]))
    assert len(binance.requests("/fapi/v1/fundingRate")) == 1
    assert (tmp_path / "usdm" / "BTC-USDT-PERP-funding.csv").exists()
    warm = FundingFeed(cfg, FundingHistory(), FileBarCache(tmp_path), Fetchers(cfg, lambda: NOW), lambda: NOW)
    assert list(warm.between("BTC-USDT", NOW - timedelta(days=2), NOW)) == list(got)
    assert len(binance.requests("/fapi/v1/fundingRate")) == 1, "warm: no request until the next settlement"
    series = warm.series("BTC-USDT")
    assert series.index[0] == FundingHistory().series("BTC-USDT").index[0], "bundled settlements fill in before"


def test_ib_historical_bars_through_the_config(tmp_path):
    from tests.fakes.fake_tws import FakeTWS

    days = sessions_closed_by(NOW, 80)
    rows = [(datetime(d.year, d.month, d.day, tzinfo=timezone.utc), *r[1:])
            for d, r in zip(days, etf_rows("SPY", NOW, 80), strict=True)]
    with FakeTWS(bars={"SPY": rows}) as tws:
        cfg = parse_market_config({"sources": {"ib": {"kind": "ib", "host": tws.host, "port": tws.port, "client_id": 31,
                                                      "timeout": 3, "lookback": 60, "retries": 1}},
                                   "symbols": {"SPY": "ib"}})
        md = market(cfg, FileBarCache(tmp_path))
        try:
            bars = md.view(NOW).bars("SPY")
            assert bars["close"].iloc[-1] == pytest.approx(rows[-1][4])
            assert bars["close_time"].iloc[-1] == session_close(days[-1])
            assert md.origin("SPY", "1d", bars.iloc[-10:]) == "ib"
        finally:
            md.fetchers.close()
