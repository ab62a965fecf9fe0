"""The classic strategies computed ahead in a worker process (backtest/strategy_worker.py): the same backtest.

``WAIT_READY`` makes the first step wait for the child, so that it computes every step of these short runs
(by default the main loop computes the steps itself until the child is ready, and a short run may end first).
"""

from __future__ import annotations

import dataclasses
import logging
import os
import subprocess
import sys
import threading
import uuid
from datetime import date
from pathlib import Path

import pytest

import backtest.strategy_worker as sw
from bus.faults import FAULTS_ENV
from bus.models import Intent, IntentMetadata, StrategyConfig, TargetPosition
from bus.store import Store
from market.history import BUNDLED_DIR
from strategies.base import Strategy, StrategyContext, StrategyResult
from strategies.registry import register
from tests.support.backtest import backtest_settings, only, run

ROOT = Path(__file__).resolve().parents[2]
START, END = date(2021, 2, 20), date(2021, 3, 20)
MARK = "INTENT_BUS_TEST_WORKER"


@register("fails_on_mondays")
class FailsOnMondays(Strategy):
    """For these tests: SPY at 0.5, but its compute raises on Mondays (as of 21:30 UTC), and it logs a warning."""

    code_version = "fails_on_mondays/0"

    def compute(self, ctx: StrategyContext) -> StrategyResult:
        ctx.market.require_fresh("SPY", ctx.max_data_age(5))
        if ctx.as_of.weekday() == 0:
            raise ValueError(f"no trading on Mondays ({ctx.as_of.date()})")
        return StrategyResult([TargetPosition(symbol="SPY", weight=0.5)], IntentMetadata(signal_strength=0.5))


@pytest.fixture
def wait_ready(monkeypatch):
    monkeypatch.setattr(sw, "WAIT_READY", True)


@pytest.fixture
def marked(monkeypatch) -> str:
    """A unique environment entry the worker inherits: finds it among live processes."""
    mark = uuid.uuid4().hex
    monkeypatch.setenv(MARK, mark)
    return f"{MARK}={mark}"


def live_with_env(entry: str) -> list[int]:
    """Live processes (not zombies) whose environment holds ``entry``, this one left out."""
    pids = []
    for d in Path("/proc").iterdir():
        try:
            if (d.name.isdigit() and int(d.name) != os.getpid()
                    and entry.encode() in (d / "environ").read_bytes().split(b"\0")
                    and ") Z " not in (d / "stat").read_text()):
                pids.append(int(d.name))
        except OSError:
            continue
    return pids


def intent_docs(store: Store, sids: list[str]) -> dict[tuple[str, str], dict]:
    """(strategy id, as-of day) -> the stored intent (immutable copies), without its random id and wall-clock time."""
    out = {}
    for sid in sids:
        for iid, doc in store.list_docs(f"strategies/{sid}/intent"):
            if iid != "latest":
                i = Intent.model_validate(doc)
                out[(sid, i.as_of.date().isoformat())] = i.model_dump(exclude={"intent_id", "updated_at"})
    return out


def test_the_worker_gives_the_same_backtest_as_the_step(wait_ready, caplog):
    settings, bfile = backtest_settings()
    sids = [s.strategy_id for s in settings.strategies]
    inline, st_inline = run(settings, bfile, START, END, strategy_workers=0)
    with caplog.at_level(logging.INFO, logger="backtest.strategy_worker"):
        ahead, st_ahead = run(settings, bfile, START, END, strategy_workers=1)
    days = (END - START).days + 1
    assert f"computed {days} of {days} steps taken (from step 0)" in caplog.text  # the child did every step
    assert ahead.days == inline.days == days
    assert [dataclasses.asdict(s) for s in ahead.steps] == [dataclasses.asdict(s) for s in inline.steps]
    a, b = intent_docs(st_inline, sids), intent_docs(st_ahead, sids)
    assert len(a) == days * len(sids) and a == b
    assert all(d["source"]["bars"] for d in b.values())  # the bars read are recorded (digests compared above)


def test_a_compute_that_raises_is_the_same_error_intent_and_its_log_reaches_this_process(wait_ready, caplog):
    settings, bfile = backtest_settings()
    etf = next(s for s in settings.strategies if s.strategy_id == "etf_trend")
    odd = StrategyConfig(strategy_id="fails_on_mondays", name="odd", capital_allocation=0.3, universe=["SPY"])
    s = only(settings, etf, odd)
    assert sw.runs_in_worker(odd)  # a module-level class: the child imports this module and runs it
    inline, st_inline = run(s, bfile, START, END, strategy_workers=0)
    caplog.clear()
    with caplog.at_level(logging.INFO):
        ahead, st_ahead = run(s, bfile, START, END, strategy_workers=1)
    a, b = intent_docs(st_inline, ["fails_on_mondays"]), intent_docs(st_ahead, ["fails_on_mondays"])
    assert a == b
    mondays = [d for (_, d), doc in b.items() if doc["status"] == "error"]
    assert len(mondays) == 4 and all(date.fromisoformat(d).weekday() == 0 for d in mondays)
    assert b[("fails_on_mondays", "2021-03-01")]["error_message"] == "ValueError: no trading on Mondays (2021-03-01)"
    assert [r.not_used for r in ahead.steps] == [r.not_used for r in inline.steps]
    logged = [r for r in caplog.records if r.name == "strategies.runner" and "fails_on_mondays failed" in r.message]
    assert len(logged) == 4 and all(r.process != os.getpid() for r in logged)  # the child's records, emitted here


def test_bars_from_a_data_dir_and_what_loading_them_logged_come_through_the_worker(wait_ready, caplog, tmp_path):
    settings, bfile = backtest_settings()
    s = only(settings, next(c for c in settings.strategies if c.strategy_id == "etf_trend"))
    lines = (BUNDLED_DIR / "yahoo_GLD_1d.csv").read_text().splitlines(keepends=True)
    i = next(n for n, ln in enumerate(lines) if ln.startswith("2021-03-02"))
    f = lines[i].rstrip("\n").split(",")
    lines[i] = ",".join([f[0], *(str(float(x) * 100) for x in f[1:5]), f[5]]) + "\n"  # a x100 spike: withheld
    (tmp_path / "yahoo_GLD_1d.csv").write_text("".join(lines))
    inline, st_inline = run(s, bfile, START, END, data_dirs=[tmp_path], strategy_workers=0)
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="market.history"):
        ahead, st_ahead = run(s, bfile, START, END, data_dirs=[tmp_path], strategy_workers=1)
    a, b = intent_docs(st_inline, ["etf_trend"]), intent_docs(st_ahead, ["etf_trend"])
    assert a == b
    assert b[("etf_trend", "2021-03-05")]["status"] == "error" and "GLD 1d bar 2021-03-02" in \
        b[("etf_trend", "2021-03-05")]["error_message"]
    assert {d["source"]["bars"][0]["source"] for d in b.values() if d["status"] == "success"} == {"data-dir"}
    assert [dataclasses.asdict(x) for x in ahead.steps] == [dataclasses.asdict(x) for x in inline.steps]
    assert any("bad bar(s) withheld" in r.message and r.process != os.getpid() for r in caplog.records)


def test_llm_traders_and_classes_the_child_cannot_import_stay_in_this_process():
    settings, _ = backtest_settings()
    classic = settings.strategies[0]
    assert sw.runs_in_worker(classic)
    assert not sw.runs_in_worker(classic.model_copy(update={"kind": "llm"}))
    assert not sw.runs_in_worker(classic.model_copy(update={"enabled": False}))
    assert not sw.runs_in_worker(classic.model_copy(update={"strategy_id": "not_registered"}))

    @register("defined_in_a_function")
    class Local(Strategy):
        def compute(self, ctx: StrategyContext) -> StrategyResult:
            return StrategyResult([])

    assert not sw.runs_in_worker(classic.model_copy(update={"strategy_id": "defined_in_a_function"}))


def test_a_worker_that_dies_fails_the_backtest_and_leaves_no_process(wait_ready, marked, monkeypatch):
    settings, bfile = backtest_settings()
    monkeypatch.setenv(FAULTS_ENV, "backtest.strategy_worker.step#5=exit")  # the child's 5th step: os._exit(137)
    with pytest.raises(sw.StrategyWorkerError, match=r"^the strategy worker process ended with exit code 137 before "
                                                     r"the step as of 2021-02-24T21:30:00\+00:00; rerun with "
                                                     r"--strategy-workers 0"):
        run(settings, bfile, START, END, strategy_workers=1)
    assert live_with_env(marked) == []


@pytest.mark.parametrize("how", ["stop", "ctrl-c"])
def test_stop_and_ctrl_c_end_the_loop_with_a_partial_result_and_no_worker_left(wait_ready, marked, how):
    settings, bfile = backtest_settings()
    stop = threading.Event()
    seen: list[list[int]] = []

    def on_step(rec, done, total):
        seen.append(live_with_env(marked))
        if done == 4:
            if how == "stop":
                stop.set()
            else:
                raise KeyboardInterrupt

    result, _ = run(settings, bfile, START, END, on_step=on_step, stop=stop, strategy_workers=1)
    assert result.interrupted and result.days == 4
    assert all(len(pids) == 1 for pids in seen)  # one worker process while the days ran ...
    assert live_with_env(marked) == []  # ... and none after


def test_a_second_ctrl_c_while_the_day_waits_for_the_worker_abandons_the_day(wait_ready, marked, monkeypatch):
    from cli.commands.backtest import ctrl_c_handled

    settings, bfile = backtest_settings()
    monkeypatch.setenv(FAULTS_ENV, "backtest.strategy_worker.wait#3=sigint")  # SIGINT as day 3 waits for the worker
    stop = threading.Event()
    with ctrl_c_handled(stop) as handler:  # the command's handler (main thread)
        handler.count, handler.phase = 1, "days"  # a first Ctrl-C came: the next one abandons the running day
        result, _ = run(settings, bfile, START, END, stop=stop, strategy_workers=1)
    assert handler.count == 2 and not stop.is_set()
    assert result.interrupted and result.days == 2
    assert any("interrupted by Ctrl-C inside a step" in n for n in result.notes)
    assert live_with_env(marked) == []


def test_the_command_line_reports_a_dead_worker_in_one_line(tmp_path):
    env = {**os.environ, FAULTS_ENV: "backtest.strategy_worker.start=exit"}  # as soon as it has read its spec
    r = subprocess.run([sys.executable, "main.py", "backtest", "--start", "2021-01-01", "--end", "2021-12-31",
                        "--out", str(tmp_path / "out"), "--strategy-workers", "1"], cwd=ROOT, env=env,
                       capture_output=True, text=True, timeout=240)
    assert r.returncode == 1, r.stderr
    errors = [line for line in r.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "the strategy worker process ended with exit code 137" in errors[0]
    assert "Traceback" not in r.stderr


def test_the_command_line_refuses_other_worker_counts(tmp_path):
    r = subprocess.run([sys.executable, "main.py", "backtest", "--start", "2021-01-01", "--end", "2021-01-02",
                        "--out", str(tmp_path / "out"), "--strategy-workers", "2"], cwd=ROOT,
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 2 and "--strategy-workers 2: expected 0 or 1" in r.stderr


def test_by_default_a_worker_runs_only_with_a_second_cpu_and_enough_steps(monkeypatch):
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {0, 1})
    assert sw.default_workers(sw.MIN_STEPS) == 1 and sw.default_workers(sw.MIN_STEPS - 1) == 0
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {0})
    assert sw.default_workers(10_000) == 0
