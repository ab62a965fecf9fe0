"""``python main.py backtest``: the live pipeline over a date range, a report, a summary table.

Ctrl-C (:class:`CtrlC`, the command's SIGINT handler from its first line until the report is printed):

* the first Ctrl-C lets the day in progress finish (the first day, when none has
  finished yet, so that there is something to report), then the loop stops, a
  partial report is written and the exit code is 130;
* a second Ctrl-C while a day runs abandons that day (the engine keeps the
  finished ones, and the partial report is still written);
* a Ctrl-C at any other time (imports, configuration, the emulator starting or
  stopping, the engine's setup or final read, the report being written or
  printed) is deferred: it never aborts the report nor the emulator's shutdown,
  and the exit code is 130 once the report is out.

The process never ends by the raw signal: the handler raises only inside a
day, where the engine catches it; typer and :func:`cli.app.main` turn any other
``KeyboardInterrupt`` into exit code 130.

Fault points (:mod:`bus.faults`) let tests send the signal at an exact place:
``backtest.start`` (before the run), ``backtest.day`` (after each day, numbered
from 1) and ``backtest.report`` (right before the report is written).
"""

from __future__ import annotations

import os
import signal
import sys
import threading
from contextlib import contextmanager
from pathlib import Path
from types import CodeType, FrameType
from typing import Annotated, Any, Iterator, Optional

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn
from rich.table import Table

from bus.constants import CHECK_NAV_EPS, CHECK_UNITS_EPS
from bus.faults import fault_point
from cli.app import EXIT_FAILED, EXIT_INTERRUPTED, app, fail
from cli.commands.llm import LLMMode, llm_chosen
from cli.options import ConfigDir, DataDirs, End, Start, Store, Strategies, json_option, load_config, store_option
from cli.output import money, num, pct, print_json, stderr_console, stdout_console, table

DEFAULT_CONFIG = Path(__file__).resolve().parent.parent.parent / "config" / "backtest"


def _say(msg: str) -> None:
    """One line on stderr from a signal handler: ``os.write``, never a Python stream the interrupted code may be
    writing to (a buffered stream entered twice raises)."""
    try:
        os.write(2, (msg + "\n").encode())
    except OSError:
        pass


class CtrlC:
    """The backtest's SIGINT handler: what each Ctrl-C does depends on where the run is (see the module docstring).

    Args:
        stop: the engine's stop request (checked before each day).
        day_code: the code of the function that runs one day; a second Ctrl-C raises
            ``KeyboardInterrupt`` only while it is on the interrupted stack (default:
            :meth:`backtest.engine.StepRunner.run`, once imported: the day's strategy step, which may wait for
            the strategy worker, then :func:`pipeline.run.run_pipeline`).

    Attributes:
        count: Ctrl-Cs received; ``interrupted`` when any.
        phase: ``start`` (no day finished yet), ``days`` (at least one finished), ``after``
            (the engine returned: the emulator stops, the report is written).
    """

    def __init__(self, stop: threading.Event, day_code: CodeType | None = None) -> None:
        self.stop = stop
        self.day_code = day_code
        self.count = 0
        self.phase = "start"

    @property
    def interrupted(self) -> bool:
        return self.count > 0

    def __call__(self, signum: int, frame: FrameType | None) -> None:
        self.count += 1
        if self.phase == "after":
            _say("Ctrl-C: the days are over; the report is written all the same, then exit code 130")
        elif self.count == 1 and self.phase == "days":
            self.stop.set()
            _say("Ctrl-C: finishing this day, then writing a partial report (Ctrl-C again to abandon the day)")
        elif self.count == 1:
            _say("Ctrl-C: the first day runs to the end, then a partial report is written "
                 "(Ctrl-C again to abandon it)")
        elif self._in_a_day(frame):
            _say("Ctrl-C again: abandoning this day; the report keeps the finished days")
            raise KeyboardInterrupt
        else:
            self.stop.set()
            _say("Ctrl-C again: no day will start")

    def day_done(self, done: int) -> None:
        """Called after each day: a Ctrl-C that came before the first day finished now stops the loop."""
        self.phase = "days"
        if self.count:
            self.stop.set()

    def _in_a_day(self, frame: FrameType | None) -> bool:
        code = self.day_code
        if code is None:
            runner = getattr(sys.modules.get("backtest.engine"), "StepRunner", None)
            code = getattr(getattr(runner, "run", None), "__code__", None)
        while frame is not None and code is not None:
            if frame.f_code is code:
                return True
            frame = frame.f_back
        return False


@contextmanager
def ctrl_c_handled(stop: threading.Event) -> Iterator[CtrlC]:
    """Install a :class:`CtrlC` as the SIGINT handler for the block (main thread only), then the previous one."""
    handler = CtrlC(stop)
    if threading.current_thread() is not threading.main_thread():
        yield handler
        return
    old = signal.signal(signal.SIGINT, handler)
    try:
        yield handler
    finally:
        signal.signal(signal.SIGINT, old)


def summary_table(figures: dict[str, Any]) -> Table:
    """The account's and each strategy's metrics as a rich table (Sharpe annualized with each book's ``ppy``:
    252 for an ETF book, 365 otherwise; win rate over closed round trips)."""
    meta = figures["meta"]
    t = table(("book", "end equity", "return", "CAGR", "vol", "Sharpe", "ppy", "Sortino", "max DD", "Calmar",
               "win rate", "round trips", "turnover/yr", "fees", "slippage", "funding"), left=("book",),
              title=f"Backtest {meta['first_day']} .. {meta['last_day']} ({meta['days']} days"
                    f"{', interrupted' if meta['interrupted'] else ''})")
    t.columns[0].min_width = max((len(n) for n in figures["metrics"]), default=4)  # ids stay readable in a pipe
    for name, m in figures["metrics"].items():
        t.add_row(f"[bold]{name}[/]" if name == "account" else name, money(m["equity"]), pct(m["total_return"]),
                  pct(m["cagr"]), pct(m["volatility"]), num(m["sharpe"]), str(m["periods_per_year"]),
                  num(m["sortino"]), pct(m["max_drawdown"]), num(m["calmar"]), pct(m["win_rate"]), str(m["trades"]),
                  num(m["turnover"]), money(m["fees"]), money(m["slippage"]), money(m["funding"]))
    return t


def checks_ok(figures: dict[str, Any]) -> bool:
    """Books add up (to :data:`CHECK_UNITS_EPS` units) and the NAV identity holds to the cent
    (:data:`CHECK_NAV_EPS`) at every step."""
    c = figures["checks"]
    return (c["books_add_up"]["max_units_mismatch"] < CHECK_UNITS_EPS
            and c["nav_identity"]["max_abs_error"] < CHECK_NAV_EPS)


def print_summary(figures: dict[str, Any], written: dict[str, Path]) -> None:
    """The summary table, conflicts and risk adjustments, the accounting checks, notes and the report's files."""
    con = stdout_console(200)
    con.print(summary_table(figures))
    conf = ", ".join(f"{k} {v}" for k, v in figures["conflicts"].items()) or "none"
    risk = ", ".join(f"{k} {v}" for k, v in figures["risk_adjustments"].items()) or "none"
    con.print(f"Conflicts: {conf}.  Risk adjustments: {risk}.")
    c = figures["checks"]
    con.print(f"Books add up: worst {c['books_add_up']['max_units_mismatch']:.2g} units; NAV identity: worst "
              f"{c['nav_identity']['max_abs_error']:.2g} (must be < {CHECK_NAV_EPS})")
    for n in figures["meta"]["notes"]:
        con.print(f"[yellow]Note:[/] {n}")
    con.print("Report: " + ", ".join(str(p) for p in written.values()))


@app.command()
def backtest(
    start: Start,
    end: End,
    strategies: Strategies = None,
    config_dir: ConfigDir = DEFAULT_CONFIG,
    out: Annotated[Optional[Path], typer.Option(
        "--out", metavar="DIR", help="report folder (default: .state/backtests/START_END)")] = None,
    store: Annotated[Store, store_option(Store.memory, Store.emulator, refused={
        Store.firestore: "is not for backtests: they run on a fresh store (memory | emulator)"})] = Store.memory,
    data_dir: DataDirs = None,
    llm: Annotated[Optional[LLMMode], typer.Option(
        "--llm", help="include kind-llm strategies: 'live' asks their models for what no run recorded yet; "
        "'replay' only reuses recorded replies (never asks a model; a missing one is reported)")] = None,
    replies_dir: Annotated[Optional[Path], typer.Option(
        "--replies", metavar="DIR", help="the LLM reply archive shared by runs (default: .state/llm_replies)")] = None,
    as_json: Annotated[bool, json_option("print the report's figures (without curves) as JSON")] = False,
    fill_at: Annotated[Optional[str], typer.Option(
        "--fill-at", metavar="next_open|close", help="the paper broker's fill model (default: the account's "
        "fill_at, next_open): a market order fills at the next open, or at once at the as-of close")] = None,
    fill_sensitivity: Annotated[Optional[bool], typer.Option(
        "--fill-sensitivity/--no-fill-sensitivity", help="also run the other fill model and report each book's "
        "return under both (default: backtest.yaml's fill_sensitivity)")] = None,
    strategy_workers: Annotated[Optional[int], typer.Option(
        "--strategy-workers", metavar="0|1", help="1: compute the classic strategies ahead in a worker process "
        "(the same intents, sooner); 0: in each day's step (default: 1 with more than one CPU and 120 days or "
        "more)")] = None,
) -> None:
    """Step strategies -> reconcile -> Commander over every day from START to END; write a report."""
    stop = threading.Event()
    with ctrl_c_handled(stop) as ctrl_c:  # from here on, no Ctrl-C ends the process before the report is out
        from backtest.engine import BacktestInputError, choose_strategies, open_backtest_store, run_backtest
        from backtest.horizon import BacktestConfigError, load_backtest_file
        from backtest.report import write_report
        from backtest.report.figures import build_figures
        from backtest.strategy_worker import StrategyWorkerError
        from bus.emulator import EmulatorError

        if start > end:
            fail(f"--start {start} is after --end {end}")
        if fill_at not in (None, "next_open", "close"):
            fail(f"--fill-at {fill_at!r}: expected next_open or close")
        if strategy_workers not in (None, 0, 1):
            fail(f"--strategy-workers {strategy_workers}: expected 0 or 1")
        settings = load_config(config_dir)
        try:
            bfile = load_backtest_file(config_dir or DEFAULT_CONFIG)
            chosen, notes = choose_strategies(settings, list(strategies) if strategies else None, llm is not None)
            chosen = llm_chosen(chosen, llm, replies_dir)
        except (BacktestConfigError, BacktestInputError) as exc:
            fail(str(exc))
        progress = Progress(TextColumn("[bold]backtest"), BarColumn(), MofNCompleteColumn(),
                            TextColumn("{task.description}"), TimeElapsedColumn(), TimeRemainingColumn(),
                            console=stderr_console(), transient=False)
        try:
            with progress, open_backtest_store("emulator" if store is Store.emulator else "memory") as st:
                task = progress.add_task("", total=(end - start).days + 1)

                def on_step(rec: Any, done: int, total: int) -> None:
                    progress.update(task, completed=done, description=f"{rec.day} NAV {rec.nav:,.0f}")
                    ctrl_c.day_done(done)
                    fault_point("backtest.day", done)

                fault_point("backtest.start")
                result = run_backtest(settings, bfile, start, end, st, strategies=chosen, notes=notes,
                                      data_dirs=data_dir, store_kind=store.value, on_step=on_step, stop=stop,
                                      fill_at=fill_at, fill_sensitivity=fill_sensitivity,  # type: ignore[arg-type]
                                      strategy_workers=strategy_workers)
                ctrl_c.phase = "after"
        except (EmulatorError, BacktestInputError) as exc:
            fail(str(exc))
        except StrategyWorkerError as exc:
            fail(str(exc), EXIT_FAILED)
        fault_point("backtest.report")
        if not result.steps:
            fail("interrupted before the first day finished: nothing to report", EXIT_INTERRUPTED)
        written = write_report(result, out or Path(".state") / "backtests" / f"{start}_{end}")
        figures = build_figures(result)
        if as_json:
            print_json({k: v for k, v in figures.items() if k != "curves"})
        else:
            print_summary(figures, written)
    if not checks_ok(figures):
        fail("the books do not add up (see the report's 'Books add up' section)", EXIT_FAILED)
    if result.interrupted or ctrl_c.interrupted:
        raise typer.Exit(EXIT_INTERRUPTED)
