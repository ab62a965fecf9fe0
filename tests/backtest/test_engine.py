"""The backtest engine: the live pipeline stepped day by day; the books add up at every step."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import uuid
from datetime import date, timedelta
from pathlib import Path

import pytest

from backtest.engine import BacktestInputError, backtest_days, choose_strategies, open_backtest_store
from backtest.horizon import HorizonHistory
from backtest.report import write_report
from bus import paths
from bus.faults import FAULTS_ENV
from bus.models import Execution, SimAccountState, StrategyConfig
from commander.attribute import EXTERNAL
from pipeline.settings import Settings
from tests.support.backtest import backtest_settings, only, run

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def q1_2021():
    """All four classic strategies, 2021-01-01 .. 2021-03-31 (perpetuals held, funding positive)."""
    settings, bfile = backtest_settings()
    return run(settings, bfile, date(2021, 1, 1), date(2021, 3, 31))


def test_every_day_is_one_completed_pipeline_run(q1_2021):
    result, store = q1_2021
    assert result.days == 90 and not result.interrupted
    assert [s.day for s in result.steps] == [d.isoformat() for d in backtest_days(date(2021, 1, 1), date(2021, 3, 31))]
    assert {s.status for s in result.steps} == {"completed"}
    ex = Execution.model_validate(store.get(paths.execution("bt-20210104")))
    assert ex.trigger == "backtest" and ex.as_of.hour == 21 and ex.as_of.minute == 30
    assert set(ex.context.strategy_intents_refs) == {"spy_macd_vixy", "etf_trend", "crypto_trend", "crypto_vol_target"}
    assert sum(s.orders for s in result.steps) > 50  # it really trades


def test_books_add_up_to_the_paper_account_at_every_step(q1_2021):
    result, store = q1_2021
    aliases = backtest_settings()[1].price_aliases
    for s in result.steps:
        assert s.book_mismatch < 1e-6, (s.day, s.book_mismatch)
        assert abs(s.nav_identity_error) < 0.005, (s.day, s.nav_identity_error)
    # Recompute the final identity independently from the paper account's own state, to the cent.
    acct = SimAccountState.model_validate(store.get(paths.sim_account(result.settings.account.account)))
    view = HorizonHistory(None, result.steps[-1].as_of, aliases).view(result.steps[-1].as_of)
    unrealized = sum(p.quantity * (view.last_price(sym) - p.avg_cost) for sym, p in acct.positions.items()
                     if p.quantity)
    expected = acct.starting_cash + acct.realized_pnl + unrealized - acct.fees_paid - acct.funding_paid
    assert result.final_account["nav"] == pytest.approx(expected, abs=0.005)
    assert acct.fees_paid > 0 and acct.funding_paid != 0
    # Sum of books (+ external) equals the holdings, symbol by symbol, at the end.
    held = acct.quantities()
    summed: dict[str, float] = {}
    for b in result.books.values():
        for sym, q in b.quantities().items():
            summed[sym] = summed.get(sym, 0.0) + q
    assert summed.keys() == held.keys()
    for sym in held:
        assert summed[sym] == pytest.approx(held[sym], abs=1e-6)


def test_funding_is_paid_on_perpetuals_and_split_among_books(q1_2021):
    result, store = q1_2021
    acct = SimAccountState.model_validate(store.get(paths.sim_account(result.settings.account.account)))
    perps = {s: p for s, p in acct.positions.items() if s.endswith("-PERP")}
    # BTC and ETH have Binance funding history in 2021; SOL's starts in 2023, so it pays none here.
    assert perps["BTC-USDT-PERP"].funding > 0 and perps["ETH-USDT-PERP"].funding > 0
    assert perps["SOL-USDT-PERP"].funding == 0.0
    assert result.funding_coverage["SOL-USDT"] is None or result.funding_coverage["SOL-USDT"][0] >= "2023-01-01"
    attributed = sum(v for s in result.steps for v in s.funding.values())
    assert attributed == pytest.approx(acct.funding_paid, abs=0.01)
    by_book = {sid for s in result.steps for sid in s.funding}
    assert by_book == {"crypto_vol_target"}  # the only strategy holding perpetuals
    assert result.books["crypto_vol_target"].funding == pytest.approx(attributed, abs=1e-9)  # the book's own field
    # Q1 2021 funding was strongly positive: the long trend book pays.
    assert acct.funding_paid > 0


def test_the_memory_and_emulator_stores_give_the_same_backtest(emulator):
    settings, bfile = backtest_settings()
    start, end = date(2021, 3, 1), date(2021, 3, 5)
    mem, _ = run(settings, bfile, start, end)
    with open_backtest_store("emulator") as st:
        emu, _ = run(settings, bfile, start, end, store=st, store_kind="emulator")
    assert [s.day for s in emu.steps] == [s.day for s in mem.steps]
    for a, b in zip(mem.steps, emu.steps, strict=True):
        assert a.status == b.status == "completed"
        assert a.orders == b.orders and a.nav == pytest.approx(b.nav, abs=1e-6)
        assert a.equity == pytest.approx(b.equity, abs=1e-6)


def test_a_stop_request_ends_the_loop_with_a_partial_report(tmp_path):
    settings, bfile = backtest_settings()
    stop = threading.Event()

    def on_step(rec, done, total):
        if done == 4:
            stop.set()

    result, _ = run(settings, bfile, date(2021, 3, 1), date(2021, 3, 31), on_step=on_step, stop=stop)
    assert result.interrupted and result.days == 4
    assert any("interrupted after 4 of 31 days" in n for n in result.notes)
    written = write_report(result, tmp_path)
    html = written["report.html"].read_text()
    assert "partial: interrupted" in html and "2021-03-04" in html


def test_ctrl_c_inside_a_step_keeps_the_finished_days():
    settings, bfile = backtest_settings()

    def on_step(rec, done, total):
        if done == 3:
            raise KeyboardInterrupt

    result, _ = run(settings, bfile, date(2021, 3, 1), date(2021, 3, 31), on_step=on_step)
    assert result.interrupted and result.days == 3
    assert result.final_account["nav"] == result.steps[-1].nav


PNG = b"\x89PNG\r\n\x1a\n"
REPORT_FILES = ("report.json", "report.html", "round_trips.csv", "equity.png", "growth.png", "drawdowns.png",
                "exposure.png", "monthly.png")


def backtest_cli(out: Path, faults: str, *args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    """``python main.py backtest`` over 2021-03-01 .. 2021-03-10 sending itself SIGINT at the named fault points."""
    return subprocess.run([sys.executable, "main.py", "backtest", "--start", "2021-03-01", "--end", "2021-03-10",
                           "--out", str(out), *args], cwd=ROOT, env={**(env or os.environ), FAULTS_ENV: faults},
                          capture_output=True, text=True, timeout=240)


def assert_whole_report(out: Path, r: subprocess.CompletedProcess, days: int, interrupted: bool) -> None:
    """Exit 130, every report file complete, the summary table printed, no traceback."""
    assert r.returncode == 130, r.stderr
    assert "Traceback" not in r.stderr and "Ctrl-C" in r.stderr
    assert sorted(p.name for p in out.iterdir()) == sorted(REPORT_FILES)
    fig = json.loads((out / "report.json").read_text())
    assert fig["meta"]["days"] == days and fig["meta"]["interrupted"] is interrupted
    assert any(f"interrupted after {days} of 10 days" in n for n in fig["meta"]["notes"]) is interrupted
    assert (out / "report.html").read_text().rstrip().endswith("</html>")
    for png in REPORT_FILES[3:]:
        assert (out / png).read_bytes().startswith(PNG), png
    assert "account" in r.stdout and "Report:" in r.stdout
    assert ("interrupted" in r.stdout) is interrupted


# Ctrl-C on the command line, at an exact place (bus/faults.py: the process sends itself SIGINT there, no sleeping):
# always exit 130 and a whole report; a Ctrl-C before the first day lets that day finish, so there is one to report.
@pytest.mark.parametrize("faults, days, interrupted", [
    pytest.param("backtest.start=sigint", 1, True, id="before-the-first-day"),
    pytest.param("backtest.day#3=sigint", 3, True, id="mid-run"),
    pytest.param("backtest.report=sigint", 10, False, id="while-the-report-is-written"),
    pytest.param("backtest.day#3=sigint,backtest.report=sigint", 3, True, id="mid-run-and-again-while-reporting"),
])
def test_ctrl_c_on_the_command_line_exits_130_with_a_report(tmp_path, faults, days, interrupted):
    out = tmp_path / "out"
    assert_whole_report(out, backtest_cli(out, faults), days, interrupted)


def processes_with_env(entry: str) -> list[int]:
    """Live processes whose environment holds ``entry`` (``NAME=value``): the children of a test's subprocess."""
    pids = []
    for d in Path("/proc").iterdir():
        try:
            if d.name.isdigit() and entry.encode() in (d / "environ").read_bytes().split(b"\0"):
                pids.append(int(d.name))
        except OSError:
            continue
    return pids


def test_ctrl_c_mid_run_on_an_emulator_it_started_stops_the_emulator(tmp_path):
    """--store emulator without $FIRESTORE_EMULATOR_HOST: the backtest starts its own emulator, and stops it."""
    out = tmp_path / "out"
    mark = f"INTENT_BUS_TEST_RUN={uuid.uuid4().hex}"  # inherited by the emulator this backtest starts, and no other
    env = {k: v for k, v in os.environ.items() if k != "FIRESTORE_EMULATOR_HOST"}
    env.update([mark.split("=", 1)], TMPDIR=str(tmp_path))  # the emulator's log, deleted once it has stopped
    r = backtest_cli(out, "backtest.day#2=sigint", "--store", "emulator", env=env)
    assert_whole_report(out, r, 2, True)
    assert json.loads((out / "report.json").read_text())["meta"]["store"] == "emulator"
    assert processes_with_env(mark) == [] and list(tmp_path.glob("emulator-*.log")) == []


def test_llm_traders_are_left_out_with_a_note_unless_asked_for():
    settings, _ = backtest_settings()
    llm = StrategyConfig(strategy_id="llm_x", name="x", kind="llm", capital_allocation=0.0, llm={})
    s = only(settings, *settings.strategies, llm)
    chosen, notes = choose_strategies(s, None, include_llm=False)
    assert "llm_x" not in [c.strategy_id for c in chosen]
    assert notes and "digest cache or a configured endpoint" in notes[0]
    chosen, notes = choose_strategies(s, None, include_llm=True)
    assert "llm_x" in [c.strategy_id for c in chosen] and not notes
    with pytest.raises(BacktestInputError, match="unknown strategy"):
        choose_strategies(s, ["nope"], include_llm=False)


def test_bad_dates_and_live_accounts_are_refused(tmp_path):
    settings, bfile = backtest_settings()
    with pytest.raises(BacktestInputError, match="after"):
        run(settings, bfile, date(2021, 3, 2), date(2021, 3, 1))
    from brokers.config import IBAccount

    with pytest.raises(BacktestInputError, match="paper broker only"):
        run(Settings(settings.trading, settings.strategies, IBAccount(), settings.instruments), bfile,
            date(2021, 3, 1), date(2021, 3, 2))
    r = subprocess.run([sys.executable, "main.py", "backtest", "--start", "2021-03-05", "--end", "2021-03-01"],
                       cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert r.returncode == 2 and "after" in r.stderr and r.stderr.count("\n") == 1


def test_external_book_stays_empty_without_manual_trades(q1_2021):
    result, _ = q1_2021
    assert max(s.external_units for s in result.steps) == 0.0
    ext = result.books.get(EXTERNAL)
    assert ext is None or not ext.quantities()


def test_market_orders_fill_at_the_first_price_after_the_run_and_the_next_step_books_them(q1_2021):
    """The default fill model (``fill_at: next_open``): each market order rests and fills at the first open after
    its 21:30 UTC run (ETFs: the next XNYS session's open, never on a weekend or holiday; crypto spot: the next 1h
    bar, 22:00; perpetuals: their next 4h bar, 00:00); the next step books it to the strategies as a late fill,
    and every execution placed its sells before its buys."""
    import exchange_calendars as xc
    import pandas as pd

    from bus.models import SimOrder

    result, store = q1_2021
    assert result.fill_model == "next_open"
    account = result.settings.account.account
    orders = [SimOrder.model_validate(d) for _, d in store.list_docs(f"sim_accounts/{account}/orders")]
    filled = [o for o in orders if o.status == "Filled"]
    assert len(filled) > 50 and all(o.orderType == "MKT" and o.maker is False for o in filled)
    xnys = xc.get_calendar("XNYS")
    etfs = {"SPY", "VIXY", "TLT", "GLD"}
    for o in filled:
        if o.symbol in etfs:
            expected = xnys.next_open(pd.Timestamp(o.as_of)).to_pydatetime()
        elif o.symbol.endswith("-PERP"):
            expected = pd.Timestamp(o.as_of).ceil("4h").to_pydatetime()
        else:
            expected = pd.Timestamp(o.as_of).ceil("1h").to_pydatetime()
        assert o.filled_as_of == expected, (o.client_order_id, o.filled_as_of, expected)
        assert o.symbol not in etfs or xnys.is_session(pd.Timestamp(o.filled_as_of.date()))
        booking_day = o.filled_as_of.date() if o.filled_as_of.hour < 21 else o.filled_as_of.date() + timedelta(days=1)
        ex = Execution.model_validate(store.get(paths.execution(f"bt-{booking_day:%Y%m%d}")))
        assert ex.fill_model == "next_open"
        [late] = [f for f in ex.late_fills if f.client_order_id == o.client_order_id]
        assert abs(late.quantity) == pytest.approx(o.totalQuantity) and late.price == pytest.approx(o.fill_price)
    weekend_fills = [o for o in filled if o.symbol in etfs and o.filled_as_of.weekday() >= 5]
    assert weekend_fills == []
    for _, d in store.list_docs("executions"):
        actions = [o["action"] for o in d.get("orders_placed", [])]
        assert actions == sorted(actions, key=lambda a: a != "SELL"), (d["execution_id"], actions)
    # the steps' fill counts are the fills booked (late ones included), not the orders placed
    assert sum(s.orders for s in result.steps) == sum(1 for o in filled if o.filled_as_of <= result.steps[-1].as_of)
