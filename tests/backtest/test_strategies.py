"""The backtest's new classic strategies on real bars: crypto_vol_target (seed 004) and etf_trend."""

from __future__ import annotations

import math
from datetime import datetime, timezone

import numpy as np
import pandas as pd

from backtest.horizon import HorizonHistory
from strategies.crypto_vol_target import realized_vol, trend_sign, vol_target_weight
from strategies.runner import compute_intent
from tests.support.backtest import backtest_settings


def _cfg(sid):
    settings, bfile = backtest_settings()
    return next(s for s in settings.strategies if s.strategy_id == sid), bfile


def test_crypto_vol_target_sizes_by_seed_004_on_real_bars(provider):
    cfg, _ = _cfg("crypto_vol_target")
    p = cfg.params
    as_of = datetime(2021, 6, 1, 21, 30, tzinfo=timezone.utc)
    intent = compute_intent(cfg, provider.view(as_of))
    assert intent.status == "success", intent.error_message
    got = {t.symbol: t.weight for t in intent.target_positions}
    assert set(got) == {"BTC-USDT-PERP", "ETH-USDT-PERP", "SOL-USDT-PERP"}
    for perp, spot in p["symbols"].items():
        df = provider.frame(spot)
        closes = df[df["close_time"] <= pd.Timestamp(as_of)]["close"].to_numpy()
        # Independent arithmetic: annualized std of the last 30 daily log returns, sign of the 60-day return.
        r = np.log(closes[-31:][1:] / closes[-31:][:-1])
        vol = float(np.std(r, ddof=1)) * math.sqrt(365)
        sign = np.sign(closes[-1] / closes[-61] - 1)
        want = sign * min(p["w_max"], p["risk_budget"][perp] * p["target_vol"] / vol)
        assert got[perp] == want or abs(got[perp] - want) < 1e-12, (perp, got[perp], want)
        assert intent.metadata.indicators[f"{perp}_realized_vol"] == vol or \
            abs(intent.metadata.indicators[f"{perp}_realized_vol"] - vol) < 1e-12
    assert all(abs(w) <= p["w_max"] for w in got.values())
    # June 2021, after the May crash: the 60-day trend of BTC was down, so the book is short BTC.
    assert got["BTC-USDT-PERP"] < 0


def test_crypto_vol_target_leaves_out_a_symbol_with_no_bars_yet_and_fails_closed_when_stale(provider):
    cfg, _ = _cfg("crypto_vol_target")
    early = datetime(2020, 3, 16, 21, 30, tzinfo=timezone.utc)  # SOL's bars begin 2020-08-11
    intent = compute_intent(cfg, provider.view(early))
    assert intent.status == "success"
    assert {t.symbol for t in intent.target_positions} == {"BTC-USDT-PERP", "ETH-USDT-PERP"}
    assert "no data" in intent.metadata.indicators["SOL-USDT-PERP_status"]
    stale = datetime(2026, 6, 1, 21, 30, tzinfo=timezone.utc)  # bundled crypto bars end 2026-05-16
    bad = compute_intent(cfg, provider.view(stale))
    assert bad.status == "error" and "stale" in bad.error_message


def test_crypto_vol_target_formula_pieces():
    assert vol_target_weight(0.4, 0.6, 0.8, 0.5) == 0.4 * 0.6 / 0.8
    assert vol_target_weight(1.0, 0.6, 0.3, 0.5) == 0.5  # the cap binds
    assert vol_target_weight(0.4, 0.6, 0.0, 0.5) == 0.5
    closes = np.array([100.0, 110.0, 99.0, 120.0])
    assert trend_sign(closes, 3) == 1 and trend_sign(closes[:3], 1) == -1
    r = np.diff(np.log(closes))
    assert realized_vol(closes, 3, 365) == float(np.std(r, ddof=1) * math.sqrt(365))


def test_etf_trend_holds_in_trend_etfs_at_inverse_volatility_weights(provider):
    cfg, _ = _cfg("etf_trend")
    as_of = datetime(2022, 6, 30, 21, 30, tzinfo=timezone.utc)  # 2022: SPY and TLT below their 200-day SMA
    intent = compute_intent(cfg, provider.view(as_of))
    assert intent.status == "success", intent.error_message
    got = {t.symbol: t.weight for t in intent.target_positions}
    inv, trend = {}, {}
    for sym in ("SPY", "TLT", "GLD"):
        df = provider.frame(sym)
        c = df[df["close_time"] <= pd.Timestamp(as_of)]["close"].to_numpy()
        trend[sym] = c[-1] > c[-200:].mean()
        inv[sym] = 1 / (np.std(np.diff(np.log(c[-61:])), ddof=1) * math.sqrt(252))
    total = sum(inv.values())
    for sym in inv:
        want = inv[sym] / total if trend[sym] else 0.0
        assert abs(got[sym] - want) < 1e-9, (sym, got[sym], want)
    assert not trend["SPY"] and got["SPY"] == 0.0
    assert sum(got.values()) <= 1.0 + 1e-12


def test_perpetuals_are_priced_from_their_spot_pair_in_a_backtest():
    _, bfile = backtest_settings()
    as_of = datetime(2021, 6, 1, 21, 30, tzinfo=timezone.utc)
    h = HorizonHistory(None, as_of, bfile.price_aliases)
    assert h.view(as_of).last_price("SOL-USDT-PERP") == h.view(as_of).last_price("SOL-USDT")
    assert "SOL-USDT-PERP" in h.symbols()
    assert h.frame("SPY")["close_time"].max() <= pd.Timestamp(as_of)  # nothing after the horizon exists
