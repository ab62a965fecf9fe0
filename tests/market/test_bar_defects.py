"""Bad bars fail closed, per symbol: one test per defect of issue 13.

Each test copies the bundled ``yahoo_SPY_1d.csv`` into a ``--data-dir`` folder (same name: it shadows
the bundled file), doctors one thing around the bar of 2020-07-24, and runs the whole pipeline as of
2020-07-31 21:30 UTC on the real emulator and the paper broker. ``spy_macd_vixy`` reads 400 SPY bars,
so the bad bar is in its window: its intent is an ``error`` naming the defect, the execution lists it
as errored with that reason, and ``crypto_trend`` (BTC, ETH) still trades. A file that cannot be read
as bars (header only, malformed timestamp, a line cut short) does the same inside the pipeline, and on
the command line is one line and exit code 2.
"""

from __future__ import annotations

import logging
import subprocess
import sys
from datetime import datetime, timezone
from pathlib import Path
from typing import Callable

import pandas as pd
import pytest

from bus.store import MemoryStore
from market.bars import bars_digest
from market.config import BarLimits, ValidationConfig, parse_market_config
from market.history import BUNDLED_DIR, HistoryProvider, read_bar_file
from market.usage import RecordingView
from market.validate import check_bars
from pipeline.run import PipelineResult, run_pipeline
from pipeline.settings import apply_settings, load_settings
from pipeline.wiring import make_broker, market_data

ROOT = Path(__file__).resolve().parents[2]
SPY_FILE = BUNDLED_DIR / "yahoo_SPY_1d.csv"
AS_OF = datetime(2020, 7, 31, 21, 30, tzinfo=timezone.utc)  # BTC and ETH above their 50-day EMA: crypto_trend buys
BAD = "2020-07-24"  # the session a week before the as-of: inside spy_macd_vixy's 400-bar window
HEADER = "timestamp,open,high,low,close,volume\n"

Edit = Callable[[list[str], int], list[str]]


def fields(line: str) -> list[str]:
    return line.rstrip("\n").split(",")


def joined(parts: list[str]) -> str:
    return ",".join(parts) + "\n"


def doctor(folder: Path, edit: Edit) -> Path:
    """A copy of the bundled SPY file in ``folder`` (its name kept), with ``edit(lines, i)`` applied;
    ``i`` is the index of the line of the bar of :data:`BAD`."""
    lines = SPY_FILE.read_text().splitlines(keepends=True)
    i = next(n for n, ln in enumerate(lines) if ln.startswith(BAD))
    (folder / SPY_FILE.name).write_text("".join(edit(lines, i)))
    return folder


def scale_prices(factor: float) -> Edit:
    def edit(lines: list[str], i: int) -> list[str]:
        f = fields(lines[i])
        lines[i] = joined([f[0], *(repr(float(x) * factor) for x in f[1:5]), f[5]])
        return lines
    return edit


def double_every_price(lines: list[str], i: int) -> list[str]:
    return [lines[0], *(joined([f[0], *(repr(float(x) * 2) for x in f[1:5]), f[5]]) for f in map(fields, lines[1:]))]


def set_field(col: int, value: str) -> Edit:
    def edit(lines: list[str], i: int) -> list[str]:
        f = fields(lines[i])
        f[col] = value
        lines[i] = joined(f)
        return lines
    return edit


def swap_high_low(lines: list[str], i: int) -> list[str]:
    f = fields(lines[i])
    f[2], f[3] = f[3], f[2]
    lines[i] = joined(f)
    return lines


def run_on(store, data_dir: Path) -> PipelineResult:
    """The pipeline as of :data:`AS_OF` with ``data_dir`` after the bundled files (as ``run --data-dir`` has it)."""
    settings = load_settings()
    provider = market_data(settings, None, fetch=False, data_dirs=[data_dir])
    apply_settings(store, settings)
    return run_pipeline(store, provider, make_broker(store, settings, provider), settings.strategies, AS_OF)


def assert_fails_closed(res: PipelineResult, *reason: str, trades: tuple[str, ...] = ("BTC-USDT", "ETH-USDT")
                        ) -> None:
    """spy_macd_vixy failed with ``reason`` recorded in its intent and the execution; crypto_trend traded
    ``trades``."""
    ex = res.execution
    spy = res.intents["spy_macd_vixy"]
    assert spy.status == "error" and not spy.target_positions
    for part in reason:
        assert part in spy.error_message, spy.error_message
        assert part in ex.strategy_reasons["spy_macd_vixy"]
    assert "spy_macd_vixy" in ex.errored_strategies
    assert res.intents["crypto_trend"].status == "success" and "crypto_trend" not in ex.errored_strategies
    traded = {o.symbol for o in ex.orders_placed if o.status not in ("Rejected", "Cancelled")}
    assert set(trades) <= traded, ex.orders_placed
    assert ex.status in ("completed", "partial_success")


def cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "main.py", *args], cwd=ROOT, capture_output=True, text=True, timeout=240)


# ---------------------------------------------------------------------------------------------- the control


def test_an_unchanged_copy_trades_and_the_run_says_it_shadows_the_bundled_file(store, tmp_path, caplog):
    """The control for every test below, and the shadowed-file defect: the copy is used, and said so."""
    folder = doctor(tmp_path, double_every_price)  # a copy that differs from the bundled file everywhere
    with caplog.at_level(logging.WARNING, logger="market.history"):
        res = run_on(store, folder)
    assert any("shadows" in r.getMessage() and str(SPY_FILE) in r.getMessage() for r in caplog.records)
    spy = res.intents["spy_macd_vixy"]
    assert spy.status == "success"
    used = {b.symbol: b for b in spy.source.bars}
    assert used["SPY"].source == "data-dir" and used["VIXY"].source == "bundled"
    # The data-dir file won: the SPY bars read are its bars (every price doubled), not the bundled ones.
    copy = HistoryProvider([BUNDLED_DIR, folder])
    assert copy.shadowed == [(folder / SPY_FILE.name, SPY_FILE)]
    n = used["SPY"].bars
    assert used["SPY"].digest == bars_digest(copy.view(AS_OF).bars("SPY", lookback=n))
    assert used["SPY"].digest != bars_digest(HistoryProvider().view(AS_OF).bars("SPY", lookback=n))


# ---------------------------------------------------------------------------------------------- bad bars


def test_a_x100_spike_fails_spy_macd_vixy_and_crypto_trades(store, tmp_path):
    res = run_on(store, doctor(tmp_path, scale_prices(100.0)))
    assert_fails_closed(res, f"SPY 1d bar {BAD}", "max_move")
    # The paper broker never prices from the withheld bar: as of that bar's close, SPY is the day before's.
    provider = HistoryProvider([BUNDLED_DIR, tmp_path])
    close_of_bad = datetime(2020, 7, 24, 20, 0, tzinfo=timezone.utc)
    assert provider.view(close_of_bad).last_price("SPY") == HistoryProvider().frame("SPY").loc["2020-07-23", "close"]


def test_a_zero_close_fails_spy_macd_vixy_and_crypto_trades(store, tmp_path):
    res = run_on(store, doctor(tmp_path, set_field(4, "0")))
    assert_fails_closed(res, f"SPY 1d bar {BAD}", "zero or negative")


@pytest.mark.parametrize("value", ["", "nan"])
def test_a_nan_close_fails_spy_macd_vixy_and_crypto_trades(store, tmp_path, value):
    res = run_on(store, doctor(tmp_path, set_field(4, value)))
    assert_fails_closed(res, f"SPY 1d bar {BAD}", "not a finite number")


def test_a_duplicate_row_fails_spy_macd_vixy_and_crypto_trades(store, tmp_path):
    res = run_on(store, doctor(tmp_path, lambda lines, i: [*lines[:i + 1], lines[i], *lines[i + 1:]]))
    assert_fails_closed(res, f"SPY 1d bar {BAD}", "given 2 times")


def test_out_of_order_rows_fail_spy_macd_vixy_and_crypto_trades(store, tmp_path):
    res = run_on(store, doctor(tmp_path, lambda lines, i: [*lines[:i], lines[i + 1], lines[i], *lines[i + 2:]]))
    assert_fails_closed(res, f"SPY 1d bar {BAD}", "out of order")


def test_high_below_low_fails_spy_macd_vixy_and_crypto_trades(store, tmp_path):
    res = run_on(store, doctor(tmp_path, swap_high_low))
    assert_fails_closed(res, f"SPY 1d bar {BAD}", "do not bracket")


def test_an_8_session_gap_fails_spy_macd_vixy_and_crypto_trades(store, tmp_path):
    res = run_on(store, doctor(tmp_path, lambda lines, i: [*lines[:i - 7], *lines[i + 1:]]))
    assert_fails_closed(res, "8 XNYS sessions missing", "bar 2020-07-27")


def test_zero_volume_is_a_recorded_flag_and_the_strategy_trades(store, tmp_path):
    res = run_on(store, doctor(tmp_path, set_field(5, "0")))
    spy = res.intents["spy_macd_vixy"]
    assert spy.status == "success"
    flags = {b.symbol: b.flags for b in spy.source.bars}
    assert flags["SPY"] == [f"SPY 1d bar {BAD}: volume is 0"] and flags["VIXY"] == []


def test_zero_volume_fails_closed_when_configured_to(tmp_path):
    raw = read_bar_file(doctor(tmp_path, set_field(5, "0")) / SPY_FILE.name)
    checked = check_bars(raw, symbol="SPY", timeframe="1d", equity=True, limits=BarLimits(zero_volume="fail"))
    assert [f.check for f in checked.errors] == ["zero_volume"]
    assert pd.Timestamp(BAD, tz="UTC") not in checked.bars.index


# ---------------------------------------------------------------------------------------------- malformed files


def header_only(lines: list[str], i: int) -> list[str]:
    return [HEADER]


def malformed_timestamp(lines: list[str], i: int) -> list[str]:
    return set_field(0, "2020-03-1OT00:00:00Z")(lines, i)


def cut_short(lines: list[str], i: int) -> list[str]:
    return [*lines[:i], lines[i][:25]]  # a crash in the middle of a line


MALFORMED = [
    (header_only, "yahoo_SPY_1d.csv: no bars (a header only)"),
    (malformed_timestamp, "timestamp '2020-03-1OT00:00:00Z' is not an ISO 8601 time"),
    (cut_short, "2 fields, expected 6 (a line cut short?)"),
]


@pytest.mark.parametrize("edit, message", MALFORMED, ids=["header-only", "malformed-timestamp", "cut-short"])
def test_a_malformed_file_fails_spy_macd_vixy_in_the_pipeline_and_crypto_trades(store, tmp_path, edit, message):
    res = run_on(store, doctor(tmp_path, edit))
    assert_fails_closed(res, "MalformedBarFile", message)


@pytest.mark.parametrize("edit, message", MALFORMED, ids=["header-only", "malformed-timestamp", "cut-short"])
def test_a_malformed_file_is_one_line_and_exit_2_on_the_command_line(tmp_path, edit, message):
    folder = doctor(tmp_path, edit)
    for args in (["run", "--store", "memory", "--as-of", "2020-07-31"],
                 ["backtest", "--start", "2020-03-02", "--end", "2020-03-06"]):
        r = cli(*args, "--data-dir", str(folder))
        assert r.returncode == 2, r.stderr
        assert r.stderr.count("\n") == 1 and "Traceback" not in r.stderr
        assert r.stderr.startswith(f"error: --data-dir '{folder}': ") and message in r.stderr
        assert r.stdout == ""


def test_the_command_line_run_says_the_data_dir_file_shadows_the_bundled_one(tmp_path):
    folder = doctor(tmp_path, scale_prices(1.0))
    r = cli("run", "--store", "memory", "--as-of", "2020-07-31", "--strategies", "spy_macd_vixy", "--json",
            "--data-dir", str(folder))
    assert r.returncode == 0, r.stderr
    assert f"bar file {folder / SPY_FILE.name} shadows {SPY_FILE} (same name)" in r.stderr


# ---------------------------------------------------------------------------------------------- the bundled data


def test_every_bundled_series_passes_validation_with_the_configured_limits():
    """Real data has real moves and gaps (DOGE-USDT +392% in a day, 7 missing 4h bars of BTC in 2018): the
    configured limits pass all of it, and still fail the doctored cases above."""
    folders = [BUNDLED_DIR, *(d for d in sorted(BUNDLED_DIR.iterdir()) if d.is_dir())]  # hourly/ too
    provider = HistoryProvider(folders, validation=load_settings().market.validation)
    series = [tuple(p.stem.split("_")[1:]) for p in sorted(BUNDLED_DIR.rglob("*.csv"))
              if not p.stem.endswith("funding")]
    assert len(series) >= 19  # 10 daily, 9 4h series (and 1h series in hourly/)
    for symbol, tf in series:
        assert [f for f in provider.findings(symbol, tf) if f.is_error] == [], (symbol, tf)
        assert len(provider.frame(symbol, tf)) == len(read_bar_file(provider.key(symbol, tf).path))
        assert {f.check for f in provider.findings(symbol, tf)} <= {"zero_volume"}  # warnings only


def test_a_window_before_the_bad_bar_still_reads(tmp_path):
    """Only windows holding the bad bar fail: as of the session before it, SPY reads."""
    provider = HistoryProvider([BUNDLED_DIR, doctor(tmp_path, scale_prices(100.0))])
    before = RecordingView(provider.view(datetime(2020, 7, 23, 20, 0, tzinfo=timezone.utc)))
    assert before.bars("SPY", lookback=400).index[-1] == pd.Timestamp("2020-07-23", tz="UTC")
    after = RecordingView(provider.view(AS_OF))
    assert len(after.bars("SPY", lookback=5)) == 5  # 07-27 .. 07-31: the spike is not in this window
    with pytest.raises(LookupError, match="max_move"):
        after.bars("SPY", lookback=6)


def test_the_validation_limits_are_checked_in_market_yaml():
    with pytest.raises(ValueError, match="validation.equity.max_move: Input should be greater than 0"):
        parse_market_config({"validation": {"equity": {"max_move": 0}}})
    cfg = parse_market_config({"validation": {"crypto": {"max_move": 2}, "symbols": {"BTC-USDT": {"max_move": 1}}}})
    assert cfg.validation.limits("ETH-USDT", equity=False).max_missing == ValidationConfig().crypto.max_missing
    assert cfg.validation.limits("ETH-USDT", equity=False).max_move == 2
    assert cfg.validation.limits("BTC-USDT", equity=False).max_move == 1


def test_an_isolated_spike_withholds_that_bar_only():
    """The bar after a spike is compared with the last accepted close (the bar before the spike), so it passes."""
    raw = read_bar_file(SPY_FILE).iloc[:100]
    raw.iloc[50, :4] *= 100
    checked = check_bars(raw, symbol="SPY", timeframe="1d", equity=True, limits=BarLimits())
    assert [(f.check, f.open_time) for f in checked.findings] == [("jump", raw.index[50])]
    assert list(checked.bars.index) == [t for n, t in enumerate(raw.index) if n != 50]


# ---------------------------------------------------------------------------------------------- at fetch


def test_a_fetched_spike_is_not_cached_and_fails_spy_macd_vixy_while_crypto_trades(tmp_path):
    """Live data: the fake Yahoo serves SPY with a x100 spike three sessions back. The refresh caches the bars
    before it and none from it on, and says why; every read of SPY as of now fails closed with that reason (also
    a second read within the retry window, which makes no request); BTC and ETH from the fake Binance trade."""
    from dataclasses import replace

    from pipeline.wiring import file_cache, resolve_as_of
    from tests.market.today import etf_rows
    from tests.support.venues import fake_market_venues, market_yaml

    with fake_market_venues() as (now, binance, yahoo):
        rows = etf_rows("SPY", now)
        d, o, h, lo, c, v = rows[-3]
        rows[-3] = (d, o * 100, h * 100, lo * 100, c * 100, v)
        yahoo.set_bars("SPY", rows)
        base = load_settings()
        settings = replace(base, market=parse_market_config(market_yaml(binance.base_url, yahoo.base_url)),
                           strategies=[s for s in base.strategies if s.kind != "llm"])
        store = MemoryStore()
        apply_settings(store, settings)
        md = market_data(settings, file_cache(tmp_path), clock=lambda: now)
        as_of = resolve_as_of(None, settings, md, now=True, clock=lambda: now)
        res = run_pipeline(store, md, make_broker(store, settings, md), settings.strategies, as_of)
    assert_fails_closed(res, "1d bars of SPY from source yahoo failed validation", f"SPY 1d bar {d}", "max_move",
                        f"{len(rows) - 3} bar(s) before it cached", trades=("BTC-USDT",))  # ETH is below its EMA
    assert res.intents["test_signal_generator"].status == "error"  # it reads SPY's newest bar too
    cached = md.cached("SPY", "1d")
    assert len(cached) == len(rows) - 3 and cached.index[-1] < pd.Timestamp(d, tz="UTC")


def test_a_live_feed_sending_a_kline_twice_fails_the_strategy_closed():
    """market/live.py: real ccxt against the fake Binance, which sends one daily kline twice. The provider's frame
    withholds both copies; the strategy reading that window errs, naming the bar."""
    import ccxt

    from bus.models import StrategyConfig
    from market.live import CcxtBars, LiveProvider
    from strategies.runner import compute_intent
    from tests.fakes.fake_binance import FakeBinanceUSDM
    from tests.market.test_live import daily_rows, today

    rows = daily_rows(today() - pd.Timedelta(days=1))
    twice = rows[-5]
    with FakeBinanceUSDM("k-live", "s-live") as fake:
        ex = ccxt.binanceusdm({"enableRateLimit": False, "timeout": 2000})
        fake.point_ccxt(ex)
        fake.set_klines("BTCUSDT", "1d", [*rows[:-4], twice, *rows[-4:]])
        provider = LiveProvider(CcxtBars(ex), lookback=120, retry_wait=0.01)
        frame = provider.frame("BTC-USDT-PERP", "1d")
        config = StrategyConfig(strategy_id="crypto_trend", name="trend", capital_allocation=0.3,
                                params={"symbols": ["BTC-USDT-PERP"], "ema_window": 50, "weight": 0.45})
        intent = compute_intent(config, provider.view(datetime.now(timezone.utc)))
    day = pd.Timestamp(twice[0], unit="ms", tz="UTC")
    assert [(f.check, f.open_time) for f in provider.findings("BTC-USDT-PERP", "1d")] == [("duplicate", day)]
    assert day not in frame.index and len(frame) == 120 - 1
    assert intent.status == "error" and not intent.target_positions
    assert f"BTC-USDT-PERP 1d bar {day.date()}: given 2 times" in intent.error_message


def test_a_data_dir_file_of_a_less_preferred_venue_is_said_to_be_unused(tmp_path, caplog):
    """Not silently ignored either: a ``lean_SPY_1d.csv`` beside the bundled ``yahoo_SPY_1d.csv`` loses on venue
    order, and a warning says so."""
    (tmp_path / "lean_SPY_1d.csv").write_text(SPY_FILE.read_text())
    with caplog.at_level(logging.WARNING, logger="market.history"):
        provider = HistoryProvider([BUNDLED_DIR, tmp_path])
    assert provider.key("SPY").path == SPY_FILE and provider.shadowed == []
    assert [r.getMessage() for r in caplog.records] == [
        f"bar file {tmp_path / 'lean_SPY_1d.csv'} is not used: {SPY_FILE} is preferred "
        "(venue order yahoo/binance/binanceusdm/lean/ib)"]
