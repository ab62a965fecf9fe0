"""Forward paper trading as of now: the pipeline on fake ccxt and ETF sources whose bars end at the
current time, the paper broker priced from the same market data, the bar cache, historical as-of runs
on cached bars only, live brokers refusing a historical as-of, and the cloud's as-of-now mode."""

from __future__ import annotations

import shutil
from dataclasses import replace
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
import yaml

from brokers.config import IBAccount
from bus import paths
from bus.models import Intent
from bus.orders import OrderLifecycle
from bus.store import MemoryStore
from market.config import parse_market_config
from pipeline.run import run_pipeline
from pipeline.settings import apply_settings, load_settings
from pipeline.wiring import RunInputError, file_cache, make_broker, market_data, resolve_as_of
from tests.market.today import crypto_rows, etf_rows, session_close, sessions_closed_by
from tests.support.venues import fake_market_venues, hourly_rows, market_yaml

ROOT = Path(__file__).resolve().parents[2]
CLASSIC = ["spy_macd_vixy", "crypto_trend", "test_signal_generator"]


@pytest.fixture(scope="module")
def venues():
    with fake_market_venues() as v:
        yield v


def live_settings(venues, **market):
    _, binance, yahoo = venues
    s = load_settings()
    cfg = parse_market_config(market_yaml(binance.base_url, yahoo.base_url, **market))
    return replace(s, market=cfg, strategies=[c for c in s.strategies if c.strategy_id in CLASSIC])


def requests(venues) -> int:
    _, binance, yahoo = venues
    return len(binance.requests("/fapi/v1/klines")) + len(yahoo.chart_requests())


def configured(settings) -> MemoryStore:
    st = MemoryStore()
    apply_settings(st, settings)
    return st


def run_at(store, settings, cache_dir, when, **kw):
    md = market_data(settings, file_cache(cache_dir), clock=lambda: when)
    as_of = resolve_as_of(None, settings, md, now=True, clock=lambda: when)
    return run_pipeline(store, md, make_broker(store, settings, md), settings.strategies, as_of, **kw), md


def test_forward_paper_as_of_now_then_an_hour_later_places_nothing(store, venues, tmp_path):
    now = venues[0]
    settings = live_settings(venues)
    apply_settings(store, settings)
    res, md = run_at(store, settings, tmp_path, now)
    ex = res.execution
    assert res.as_of == now and ex.status == "completed", ex.reason
    # Filled at once (fill_at: close) or resting for the next open (next_open): placed, not refused.
    assert ex.orders_placed and all(o.status in ("Filled", "Submitted") for o in ex.orders_placed), ex.orders_placed
    assert {o.symbol for o in ex.orders_placed} >= {"SPY", "BTC-USDT"}
    # Every intent says which bars it used: source, timeframe, last close, digest.
    for sid in CLASSIC:
        intent = res.intents[sid]
        assert intent.status == "success", intent.error_message
    spy = next(b for b in res.intents["spy_macd_vixy"].source.bars if b.symbol == "SPY")
    assert spy.source == "yahoo" and spy.timeframe == "1d"
    assert spy.last_close == session_close(sessions_closed_by(now, 1)[-1]).to_pydatetime()
    btc = next(b for b in res.intents["crypto_trend"].source.bars if b.symbol == "BTC-USDT")
    assert btc.source == "binance" and btc.last_close <= now and now - btc.last_close < timedelta(days=1)
    stored = Intent.model_validate(store.get(f"strategies/crypto_trend/intent/{res.intents['crypto_trend'].intent_id}"))
    assert stored.source.bars == res.intents["crypto_trend"].source.bars
    # The paper broker priced from the same bars: SPY at its newest cached close.
    assert ex.context.prices["SPY"] == pytest.approx(etf_rows("SPY", now)[-1][4])
    # An hour later (another process, the same cache): no new bar, no order.
    later, _ = run_at(store, settings, tmp_path, now + timedelta(hours=1))
    assert later.execution.status == "completed" and later.execution.orders_placed == []
    assert all(later.intents[s].status == "success" for s in CLASSIC)


def test_a_forward_paper_fill_is_priced_from_the_newest_closed_hour(tmp_path):
    """brokers.yaml's paper account prices from 1h bars first: as of now, BTC is quoted at the last closed
    hour's close, and its market order fills at that price (plus the half-spread), not at the daily bar that
    closed at midnight. The order fills in the run (``fill_at: close``) or rests until a later call fills it
    at the next bar's open (``next_open``); the next hours are flat at the same price, so the fill price is
    the same either way."""
    with fake_market_venues() as venues:
        now, binance, _ = venues
        daily_close = crypto_rows("BTC-USDT", now)[-1][4]
        hours = hourly_rows("BTC-USDT", now)
        t, o, h, lo, c, v = hours[-1]
        hour_close = round(daily_close * 1.03, 1)  # 3 % above the daily close: the two cannot be confused
        hours[-1] = (t, o, max(h, hour_close), min(lo, hour_close), hour_close, v)
        # The hour forming at ``now`` and the one after: flat at the newest close, read only once closed.
        flat = [(t + k * 3_600_000, hour_close, hour_close, hour_close, hour_close, v) for k in (1, 2)]
        binance.set_klines("BTCUSDT", "1h", [*hours, *flat])
        settings = live_settings(venues)
        assert settings.account.price_timeframes[0] == "1h"  # the shipped forward-paper configuration
        store = configured(settings)
        res, _ = run_at(store, settings, tmp_path, now)
        ex = res.execution
        assert ex.context.prices["BTC-USDT"] == pytest.approx(hour_close)  # the quote the Commander sized on
        btc = next(o for o in ex.orders_placed if o.symbol == "BTC-USDT")
        # Two hours later (the next open after the order has opened and closed): data update, then a run.
        later = now + timedelta(hours=2)
        market_data(settings, file_cache(tmp_path), clock=lambda: later).refresh("BTC-USDT", "1h")
        run_at(store, settings, tmp_path, later)
    [record] = [OrderLifecycle.model_validate(d) for _, d in store.list_docs(paths.ORDERS)
                if d["client_order_id"] == btc.client_order_id]
    assert record.status == "filled" and record.sign > 0, record
    slip = settings.account.slippage_bps / 10_000
    assert record.avg_fill_price == pytest.approx(hour_close * (1 + slip), rel=1e-5)  # rounded to the 0.1 tick
    assert abs(record.avg_fill_price / daily_close - 1) > 0.02
    assert record.booked_quantity == pytest.approx(record.filled_quantity)  # booked to crypto_trend


def test_warm_cache_run_makes_no_request(venues, tmp_path):
    now = venues[0]
    settings = live_settings(venues)
    run_at(configured(settings), settings, tmp_path, now, dry_run=True)
    before = requests(venues)
    run_at(configured(settings), settings, tmp_path, now, dry_run=True)
    assert requests(venues) == before


def test_historical_as_of_runs_on_cached_bars_and_fails_closed_on_uncached(venues, tmp_path):
    now = venues[0]
    settings = live_settings(venues)
    live, _ = run_at(configured(settings), settings, tmp_path, now, dry_run=True)
    before = requests(venues)
    md = market_data(settings, file_cache(tmp_path))
    day = sessions_closed_by(now, 1)[-1]  # after the newest bundled day: only the cache has it
    as_of = resolve_as_of(day, settings, md)
    assert as_of.date() == day
    st = configured(settings)
    hist = run_pipeline(st, md, make_broker(st, settings, md), settings.strategies, as_of, dry_run=True)
    assert requests(venues) == before, "a historical as-of never fetches"
    assert all(hist.intents[s].status == "success" for s in CLASSIC)
    assert {b.source for b in hist.intents["spy_macd_vixy"].source.bars} == {"yahoo"}
    # Replaying the live run's exact as-of on the cache gives the same bars.
    st = configured(settings)
    again = run_pipeline(st, md, make_broker(st, settings, md), settings.strategies, live.as_of, dry_run=True)
    assert requests(venues) == before
    for sid in CLASSIC:
        assert again.intents[sid].source.bars == live.intents[sid].source.bars
        assert again.intents[sid].target_positions == live.intents[sid].target_positions
    # Uncached: the as-of is refused with the reason, nothing runs.
    with pytest.raises(RunInputError, match="outside the bundled data and the bar cache"):
        resolve_as_of(now.date() + timedelta(days=5), settings, md)
    empty = market_data(settings, file_cache(tmp_path / "empty"))
    with pytest.raises(RunInputError, match=f"as-of {day.isoformat()} is outside the bundled data"):
        resolve_as_of(day, settings, empty)


def test_a_live_broker_refuses_a_historical_as_of(venues, provider):
    settings = replace(live_settings(venues), account=IBAccount(account="ib"))
    with pytest.raises(RunInputError, match=r"as-of 2020-03-16 is historical, and the live broker account 'ib' \(ib\)"):
        resolve_as_of(datetime(2020, 3, 16).date(), settings, provider)
    with pytest.raises(RunInputError, match="trades only as of now: run python main.py run --live-data"):
        resolve_as_of(None, settings, provider)
    t = datetime(2026, 12, 2, 12, tzinfo=timezone.utc)
    assert resolve_as_of(None, settings, provider, now=True, clock=lambda: t) == t
    with pytest.raises(RunInputError, match="exclude each other"):
        resolve_as_of(t.date(), settings, provider, now=True)


def test_the_cloud_runs_as_of_now_when_the_deployed_config_says_so(cloud, project, venues, tmp_path, monkeypatch):
    from tests.support.functions import client

    now, binance, yahoo = venues
    cfg = tmp_path / "cfg"
    shutil.copytree(ROOT / "config", cfg)
    (cfg / "market.yaml").write_text(yaml.safe_dump(market_yaml(binance.base_url, yahoo.base_url, as_of_now=True)))
    monkeypatch.setenv("INTENT_BUS_CONFIG_DIR", str(cfg))
    resp = client("orchestrator").post("/", json={"dryRun": True, "strategies": CLASSIC})
    assert resp.status_code == 200, resp.get_json()
    doc = resp.get_json()
    as_of = datetime.fromisoformat(doc["as_of"])
    assert abs(as_of - datetime.now(timezone.utc)) < timedelta(minutes=5)
    assert all(doc["strategies"][s]["status"] == "success" for s in CLASSIC), doc["strategies"]
    # The bars went to the store's cache (bar_series/*), one document per series and month.
    assert cloud.get("bar_series/yahoo:SPY:1d")["symbol"] == "SPY"
    spy = Intent.model_validate(cloud.get("strategies/spy_macd_vixy/intent/latest"))
    used = next(b for b in spy.source.bars if b.symbol == "SPY")
    assert used.source == "yahoo" and used.digest.startswith("sha256:")
    # With asOf, the same deployment runs historically on bundled and cached bars.
    resp = client("orchestrator").post("/", json={"dryRun": True, "asOf": "2020-03-16", "strategies": CLASSIC})
    assert resp.status_code == 200 and resp.get_json()["as_of"].startswith("2020-03-16T21:30")


def test_an_as_of_still_to_come_is_refused(settings, provider):
    noon = datetime(2020, 3, 16, 12, tzinfo=timezone.utc)
    with pytest.raises(RunInputError, match="2020-03-16T21:30:00[+]00:00, which is in the future"):
        resolve_as_of(noon.date(), settings, provider, clock=lambda: noon)
    assert resolve_as_of(noon.date(), settings, provider, clock=lambda: noon + timedelta(hours=10)).hour == 21
