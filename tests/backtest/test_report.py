"""The backtest report: JSON figures that follow from the curves (recomputed here with pandas/numpy on the same
series), the benchmark from the bundled closes, round trips of a hand-made fill sequence, real PNG charts and a
self-contained HTML page."""

from __future__ import annotations

import base64
import json
import math
import re
import subprocess
import sys
from datetime import date
from pathlib import Path

import exchange_calendars as xc
import numpy as np
import pandas as pd
import pytest

from backtest.report import render_html, write_report
from backtest.report.figures import round_trips
from bus import paths
from bus.metrics import summary
from bus.models import SimOrder
from tests.support.backtest import backtest_settings, run

ROOT = Path(__file__).resolve().parents[2]
DATA = ROOT / "market" / "data"
PNG = b"\x89PNG\r\n\x1a\n"
CHARTS = ("equity.png", "growth.png", "drawdowns.png", "exposure.png", "monthly.png")
ETF_BOOKS, CRYPTO_BOOKS = ("spy_macd_vixy", "etf_trend"), ("crypto_trend", "crypto_vol_target")


def _sessions(first: str, last: str) -> set[str]:
    return {d.strftime("%Y-%m-%d") for d in xc.get_calendar("XNYS").sessions_in_range(first, last)}


def _on_calendar(curve: dict[str, float], name: str) -> np.ndarray:
    """The curve's values an independent reader keeps: every day for crypto and the account; for an ETF book the
    starting point, then NYSE sessions only."""
    days = list(curve)
    if name not in ETF_BOOKS:
        return np.array(list(curve.values()))
    keep = _sessions(days[0], days[-1])
    return np.array([curve[days[0]]] + [curve[d] for d in days[1:] if d in keep])


@pytest.fixture(scope="module")
def ran(tmp_path_factory):
    """(result, store, files written, report.json) of the four strategies over 2021-H1."""
    settings, bfile = backtest_settings()
    result, store = run(settings, bfile, date(2021, 1, 1), date(2021, 6, 30))
    out = tmp_path_factory.mktemp("report")
    written = write_report(result, out)
    return result, store, written, json.loads((out / "report.json").read_text())


@pytest.fixture(scope="module")
def report(ran):
    result, _, written, fig = ran
    return result, written, fig


def test_metrics_follow_from_the_equity_curves(report):
    result, _, fig = report
    for name in ["account", *result.strategies]:
        ppy = 252 if name in ETF_BOOKS else 365
        m = fig["metrics"][name]
        assert (m["calendar"], m["periods_per_year"]) == ("XNYS" if name in ETF_BOOKS else "24/7", ppy)
        full = np.array(list(fig["curves"][name].values()))
        curve = _on_calendar(fig["curves"][name], name)
        r = curve[1:] / curve[:-1] - 1
        assert m["total_return"] == pytest.approx(full[-1] / full[0] - 1, rel=1e-9)
        assert m["max_drawdown"] == pytest.approx((full / np.maximum.accumulate(full) - 1).min(), abs=1e-9)
        assert m["volatility"] == pytest.approx(r.std(ddof=1) * math.sqrt(ppy), rel=1e-6)
        assert m["sharpe"] == pytest.approx(r.mean() / r.std(ddof=1) * math.sqrt(ppy), rel=1e-6)
        assert m["cagr"] == pytest.approx((curve[-1] / curve[0]) ** (ppy / len(r)) - 1, rel=1e-6)
        assert m["calmar"] == pytest.approx(m["cagr"] / abs(m["max_drawdown"]), rel=1e-6)
    assert len(_on_calendar(fig["curves"]["etf_trend"], "etf_trend")) == 1 + len(_sessions("2021-01-01", "2021-06-30"))
    # The account curve is the paper account's NAV, starting from its starting cash.
    acct = list(fig["curves"]["account"].values())
    assert acct[0] == result.starting_cash and acct[-1] == result.steps[-1].nav
    assert fig["metrics"]["account"]["fees"] == pytest.approx(result.final_account["fees_paid"])
    assert fig["metrics"]["account"]["funding"] == pytest.approx(result.final_account["funding_paid"])
    assert all(fig["metrics"][s]["turnover"] > 0 for s in result.strategies)
    # "trims" are the closed reductions the Commander records; "trades" are round trips, far fewer
    m = fig["metrics"]["spy_macd_vixy"]
    assert m["reductions"] == len(result.trades["spy_macd_vixy"]) > m["trades"] > 0


def test_the_books_funding_adds_up_to_the_accounts(report):
    result, _, fig = report
    vt = fig["metrics"]["crypto_vol_target"]
    assert vt["funding"] == pytest.approx(result.final_account["funding_paid"], abs=0.01) and vt["funding"] > 0


def test_monthly_and_annual_returns_match_pandas(report):
    result, _, fig = report
    for name in ["account", *result.strategies]:
        s = pd.Series(fig["curves"][name])
        s.index = pd.to_datetime(s.index)
        first_month = s.index[1].to_period("M")
        for freq, key, fmt in (("ME", "monthly", "%Y-%m"), ("YE", "annual", "%Y")):
            ends = s.resample(freq).last()
            prev = ends.shift(1)
            prev.iloc[0] = s.iloc[0]
            r = (ends / prev - 1)[ends.index.to_period("M") >= first_month] if key == "monthly" else \
                (ends / prev - 1)[ends.index.year >= s.index[1].year]
            expected = {d.strftime(fmt): v for d, v in r.items()}
            got = fig["periods"][name][key]
            assert list(got) == list(expected), (name, key)
            for k, v in expected.items():
                assert got[k] == pytest.approx(v, rel=1e-9, abs=1e-12), (name, key, k)
    assert list(fig["periods"]["account"]["monthly"]) == [f"2021-{m:02d}" for m in range(1, 7)]
    assert fig["periods"]["account"]["annual"]["2021"] == pytest.approx(fig["metrics"]["account"]["total_return"])


def _bundled_close(csv: str, day: str, shift_days: int) -> float:
    """Close of the newest bar of a bundled CSV whose timestamp (a session date, or a crypto bar's open) is at most
    ``day`` − ``shift_days``: what a 21:30 UTC run on ``day`` sees (an ETF's session closed at 16:00 New York that
    day; a crypto daily bar opened the day before closed at 00:00 UTC)."""
    df = pd.read_csv(DATA / csv)
    ts = pd.to_datetime(df["timestamp"]).dt.strftime("%Y-%m-%d")
    limit = (pd.Timestamp(day) - pd.Timedelta(days=shift_days)).strftime("%Y-%m-%d")
    return float(df["close"][ts <= limit].iloc[-1])


def test_benchmarks_are_buy_and_hold_of_the_bundled_closes(report):
    result, written, fig = report
    days = [s.day for s in result.steps]
    for sym, csv, shift in (("SPY", "yahoo_SPY_1d.csv", 0), ("BTC-USDT", "binance_BTC-USDT_1d.csv", 1)):
        b = fig["benchmarks"][sym]
        assert b["calendar"] == ("XNYS" if sym == "SPY" else "24/7")
        curve = b["curve"]
        assert list(curve)[0] == "2020-12-31" and curve["2020-12-31"] == 1.0
        base = _bundled_close(csv, days[0], shift)
        for d in days[::7] + days[-1:]:
            assert curve[d] == pytest.approx(_bundled_close(csv, d, shift) / base, rel=1e-12), (sym, d)
        assert b["metrics"]["total_return"] == pytest.approx(curve[days[-1]] - 1, rel=1e-12)
    # SPY went from 373.88 (2020-12-31) to 428.06 (2021-06-30) unadjusted; the bundle is adjusted: ~+15 %
    assert 0.10 < fig["benchmarks"]["SPY"]["metrics"]["total_return"] < 0.20
    for sid in ETF_BOOKS:
        assert fig["metrics"][sid]["benchmark"] == "SPY"
    for sid in CRYPTO_BOOKS:
        assert fig["metrics"][sid]["benchmark"] == "BTC-USDT"
    html = written["report.html"].read_text()
    assert "SPY buy &amp; hold" in html and "BTC-USDT buy &amp; hold" in html


def test_exposure_agrees_with_the_commanders_equity_points(report):
    result, _, fig = report
    for sid in result.strategies:
        e = fig["exposure"][sid]
        points = result.equity_points[sid]
        checked = 0
        for day, gross in e["gross"].items():
            if day in points:
                assert gross == pytest.approx(points[day].gross_exposure, rel=1e-6, abs=1e-6), (sid, day)
                assert e["gross_leverage"][day] == pytest.approx(gross / points[day].equity, rel=1e-6)
                checked += 1
        assert checked > 150
        assert e["max_gross_leverage"] == pytest.approx(max(e["gross_leverage"].values()))
        assert e["max_leverage"] == next(s for s in result.settings.strategies
                                         if s.strategy_id == sid).risk_parameters.max_leverage
    for sid in ("etf_trend", "crypto_trend"):  # long only: net = gross
        e = fig["exposure"][sid]
        assert all(e["net"][d] == pytest.approx(g, abs=1e-6) for d, g in e["gross"].items())


def test_costs_break_down_fees_slippage_and_funding(ran):
    result, store, _, fig = ran
    c = fig["costs"]
    books = sum(c[s]["slippage"] for s in result.strategies)
    assert c["account"]["slippage"] > 0 and books == pytest.approx(c["account"]["slippage"], rel=1e-6)
    # Only the two ETF books trade ETFs, whose fills pay the account's slippage_bps and no impact: their signed
    # shares add up to the paper orders' fill x bps / (1e4 + bps) (a buy) or fill x bps / (1e4 - bps) (a sell).
    bps = result.settings.account.slippage_bps
    orders = [SimOrder.model_validate(d) for _, d in store.list_docs(paths.sim_order(result.settings.account.account,
                                                                                      "x")[:-2])]
    etf = sum(o.filled_quantity * o.fill_price * bps / (1e4 + (bps if o.action == "BUY" else -bps))
              for o in orders if o.fill_price and o.symbol in ("SPY", "VIXY", "TLT", "GLD"))
    assert etf > 0 and sum(c[s]["slippage"] for s in ETF_BOOKS) == pytest.approx(etf, rel=1e-6)
    for name, row in c.items():
        assert row["total"] == pytest.approx(row["fees"] + row["slippage"] + row["funding"])
        assert row["fees"] == fig["metrics"][name]["fees"]


def test_round_trips_of_a_hand_made_fill_sequence():
    fills = [
        ("2021-01-04", "SPY", 10.0, 100.0),    # open long
        ("2021-01-04", "MES", 2.0, 4000.0),    # a contract with multiplier 5
        ("2021-01-05", "SPY", 5.0, 106.0),     # add: entry 102
        ("2021-01-05", "MES", -2.0, 4010.0),   # flat: +2 x 10 x 5
        ("2021-01-06", "SPY", -6.0, 110.0),    # trim
        ("2021-01-08", "SPY", -9.0, 95.0),     # flat: exit (6 x 110 + 9 x 95) / 15 = 101
        ("2021-01-08", "BTC", -0.5, 30000.0),  # open short
        ("2021-01-10", "BTC", 1.0, 28000.0),   # through zero: the short closes, a long of 0.5 opens
        ("2021-01-12", "BTC", -0.5, 29000.0),  # flat
        ("2021-01-12", "SPY", 3.0, 100.0),     # still open at the end
    ]
    trips = round_trips(fills, {"MES": 5.0})
    got = [(t["symbol"], t["side"], t["entry_time"], t["exit_time"], t["quantity"], t["entry_price"], t["exit_price"],
            t["pnl"], t["holding_days"], t["fills"]) for t in trips]
    assert got == [
        ("SPY", "long", "2021-01-04", "2021-01-08", 15.0, 102.0, 101.0, pytest.approx(-15.0), 4, 4),
        ("MES", "long", "2021-01-04", "2021-01-05", 2.0, 4000.0, 4010.0, pytest.approx(100.0), 1, 2),
        ("BTC", "short", "2021-01-08", "2021-01-10", 0.5, 30000.0, 28000.0, pytest.approx(1000.0), 2, 2),
        ("BTC", "long", "2021-01-10", "2021-01-12", 0.5, 28000.0, 29000.0, pytest.approx(500.0), 2, 2),
        ("SPY", "long", "2021-01-12", None, 3.0, 100.0, None, None, None, 1),
    ]
    assert trips[0]["max_quantity"] == 15.0 and trips[0]["return"] == pytest.approx(101 / 102 - 1)
    assert [t["open_quantity"] for t in trips] == [0.0, 0.0, 0.0, 0.0, 3.0]
    assert trips[2]["return"] == pytest.approx(-(28000 / 30000 - 1))
    closed = [t["pnl"] for t in trips if t["pnl"] is not None]
    assert summary({}, closed, 365)["win_rate"] == 0.75  # 3 of 4 round trips, not 4 of 5 reductions


def test_round_trips_of_the_run_end_at_the_books_positions(report):
    result, written, fig = report
    for sid in result.strategies:
        trips = fig["round_trips"][sid]
        open_units: dict[str, float] = {}
        for t in trips:
            if t["exit_time"] is None:
                open_units[t["symbol"]] = (1 if t["side"] == "long" else -1) * t["open_quantity"]
        held = result.books[sid].quantities()
        assert set(held) == set(open_units), sid
        for sym, q in held.items():
            assert open_units[sym] == pytest.approx(q, rel=1e-9, abs=1e-9), (sid, sym)
        closed = [t for t in trips if t["exit_time"] is not None]
        m = fig["metrics"][sid]
        assert m["trades"] == len(closed) and m["open_round_trips"] == len(open_units)
        if closed:
            assert m["win_rate"] == pytest.approx(sum(1 for t in closed if t["pnl"] > 0) / len(closed))
        for sym, st in fig["round_trip_stats"][sid].items():
            mine = [t for t in closed if t["symbol"] == sym]
            assert st["closed"] == len(mine) and st["pnl"] == pytest.approx(sum(t["pnl"] for t in mine))
    csv = pd.read_csv(written["round_trips.csv"])
    assert list(csv.columns[:6]) == ["book", "symbol", "side", "entry_time", "exit_time", "quantity"]
    assert len(csv) == sum(len(v) for v in fig["round_trips"].values()) > 0
    assert set(csv["book"]) <= set(result.strategies)


def test_report_lists_the_leaderboard_conflicts_risk_and_checks(report):
    result, _, fig = report
    assert [r["strategy_id"] for r in fig["leaderboard"]] and {r["strategy_id"] for r in fig["leaderboard"]} == set(
        result.strategies)
    for r in fig["leaderboard"]:  # the store's equity points give the same curve, calendar and Sharpe
        m = fig["metrics"][r["strategy_id"]]
        assert (r["calendar"], r["periods_per_year"]) == (m["calendar"], m["periods_per_year"])
        assert r["sharpe"] == pytest.approx(m["sharpe"], rel=1e-9)
        assert r["max_drawdown"] == pytest.approx(m["max_drawdown"], rel=1e-9)
    assert fig["checks"]["books_add_up"]["max_units_mismatch"] < 1e-6
    assert fig["checks"]["nav_identity"]["max_abs_error"] < 0.005
    assert fig["conflicts"] == {k: sum(s.conflicts.get(k, 0) for s in result.steps)
                                for k in {k for s in result.steps for k in s.conflicts}}
    assert fig["risk_adjustments"] == {k: sum(s.risk.get(k, 0) for s in result.steps)
                                       for k in {k for s in result.steps for k in s.risk}}
    assert fig["statuses"] == {"completed": 181}


def test_charts_are_real_pngs_of_the_curves_and_embedded_in_the_html(report):
    _, written, fig = report
    for name in CHARTS:
        data = written[name].read_bytes()
        assert data.startswith(PNG) and len(data) > 20_000, name
    html = written["report.html"].read_text()
    assert "<img" in html and "src=\"http" not in html  # self-contained
    imgs = re.findall(r'src="data:image/png;base64,([^"]+)"', html)
    assert len(imgs) == len(CHARTS) and all(base64.b64decode(i).startswith(PNG) for i in imgs)
    for sid in ("spy_macd_vixy", "etf_trend", "crypto_trend", "crypto_vol_target", "Leaderboard", "Sortino",
                "Calmar", "turnover", "funding", "risk adjustments", "slippage", "round trips", "Monthly and annual",
                "gross leverage", "XNYS (252)", "24/7 (365)", "Fill model", fig["fill_model"]["fill_at"]):
        assert sid in html
    assert f"{fig['metrics']['account']['equity']:,.2f}" in html
    assert f"{fig['costs']['account']['slippage']:,.2f}" in html


def test_the_fill_models_sensitivity_is_rendered_when_the_engine_measured_it(report):
    _, _, fig = report
    sens = {"models": ["next_open", "close"], "account": {"next_open": 0.1, "close": 0.12, "difference": -0.02},
            "books": {"etf_trend": {"next_open": 0.0123, "close": 0.0456, "difference": -0.0333}}}
    html = render_html({**fig, "fill_model": {**fig["fill_model"], "sensitivity": sens}}, {})
    assert "difference (next_open &minus; close)" in html
    assert all(x in html for x in ("+1.23%", "+4.56%", "-3.33%", "+12.00%", "-2.00%"))
    assert "not measured" in render_html(fig, {})


def test_command_line_prints_the_summary_table_and_writes_the_report(tmp_path):
    out = tmp_path / "out"
    r = subprocess.run([sys.executable, "main.py", "backtest", "--start", "2021-03-01", "--end", "2021-03-20",
                        "--out", str(out), "--strategies", "etf_trend,crypto_vol_target"],
                       cwd=ROOT, capture_output=True, text=True, timeout=240)
    assert r.returncode == 0, r.stderr
    for word in ("account", "etf_trend", "crypto_vol_target", "Sharpe", "funding", "Books add up"):
        assert word in r.stdout
    assert "spy_macd_vixy" not in r.stdout
    fig = json.loads((out / "report.json").read_text())
    assert fig["meta"]["days"] == 20 and fig["meta"]["strategies"] == ["etf_trend", "crypto_vol_target"]
    assert (out / "report.html").is_file() and (out / "drawdowns.png").read_bytes().startswith(PNG)
