"""The backtest report: JSON figures that follow from the curves, real PNG charts, a self-contained HTML page."""

from __future__ import annotations

import base64
import json
import math
import re
import subprocess
import sys
from datetime import date
from pathlib import Path

import numpy as np
import pytest

from backtest.report import write_report
from tests.support.backtest import backtest_settings, run

ROOT = Path(__file__).resolve().parents[2]
PNG = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def report(tmp_path_factory):
    settings, bfile = backtest_settings()
    result, store = run(settings, bfile, date(2021, 1, 1), date(2021, 6, 30))
    out = tmp_path_factory.mktemp("report")
    return result, write_report(result, out), json.loads((out / "report.json").read_text())


def test_metrics_follow_from_the_equity_curves(report):
    result, _, fig = report
    ppy = fig["meta"]["periods_per_year"]
    for name in ["account", *result.strategies]:
        curve = np.array(list(fig["curves"][name].values()))
        m = fig["metrics"][name]
        r = curve[1:] / curve[:-1] - 1
        assert m["total_return"] == pytest.approx(curve[-1] / curve[0] - 1, rel=1e-9)
        assert m["max_drawdown"] == pytest.approx((curve / np.maximum.accumulate(curve) - 1).min(), abs=1e-9)
        assert m["volatility"] == pytest.approx(r.std(ddof=1) * math.sqrt(ppy), rel=1e-6)
        assert m["sharpe"] == pytest.approx(r.mean() / r.std(ddof=1) * math.sqrt(ppy), rel=1e-6)
        assert m["cagr"] == pytest.approx((curve[-1] / curve[0]) ** (ppy / len(r)) - 1, rel=1e-6)
        assert m["calmar"] == pytest.approx(m["cagr"] / abs(m["max_drawdown"]), rel=1e-6)
    # The account curve is the paper account's NAV, starting from its starting cash.
    acct = list(fig["curves"]["account"].values())
    assert acct[0] == result.starting_cash and acct[-1] == result.steps[-1].nav
    assert fig["metrics"]["account"]["fees"] == pytest.approx(result.final_account["fees_paid"])
    assert fig["metrics"]["account"]["funding"] == pytest.approx(result.final_account["funding_paid"])
    vt = fig["metrics"]["crypto_vol_target"]
    assert vt["funding"] == pytest.approx(result.final_account["funding_paid"], abs=0.01) and vt["funding"] > 0
    assert all(fig["metrics"][s]["turnover"] > 0 for s in result.strategies)
    trades = fig["metrics"]["spy_macd_vixy"]["trades"]
    assert trades == len(result.trades["spy_macd_vixy"]) > 0


def test_report_lists_the_leaderboard_conflicts_risk_and_checks(report):
    result, _, fig = report
    assert [r["strategy_id"] for r in fig["leaderboard"]] and {r["strategy_id"] for r in fig["leaderboard"]} == set(
        result.strategies)
    assert fig["checks"]["books_add_up"]["max_units_mismatch"] < 1e-6
    assert fig["checks"]["nav_identity"]["max_abs_error"] < 0.005
    assert fig["conflicts"] == {k: sum(s.conflicts.get(k, 0) for s in result.steps)
                                for k in {k for s in result.steps for k in s.conflicts}}
    assert fig["risk_adjustments"] == {k: sum(s.risk.get(k, 0) for s in result.steps)
                                       for k in {k for s in result.steps for k in s.risk}}
    assert fig["statuses"] == {"completed": 181}


def test_charts_are_real_pngs_of_the_curves_and_embedded_in_the_html(report):
    _, written, fig = report
    for name in ("equity.png", "growth.png", "drawdowns.png"):
        data = written[name].read_bytes()
        assert data.startswith(PNG) and len(data) > 20_000, name
    html = written["report.html"].read_text()
    assert "<img" in html and "src=\"http" not in html  # self-contained
    imgs = re.findall(r'src="data:image/png;base64,([^"]+)"', html)
    assert len(imgs) == 3 and all(base64.b64decode(i).startswith(PNG) for i in imgs)
    for sid in ("spy_macd_vixy", "etf_trend", "crypto_trend", "crypto_vol_target", "Leaderboard", "Sortino",
                "Calmar", "turnover", "funding", "risk adjustments"):
        assert sid in html
    assert f"{fig['metrics']['account']['equity']:,.2f}" in html


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
