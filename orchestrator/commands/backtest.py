"""``python main.py backtest``: the live pipeline over a date range, a report, a summary table.

Ctrl-C once: the current day finishes, the loop stops and a partial report is
written (exit code 130). Ctrl-C twice: the day in progress is abandoned, a
partial report of the finished days is still written.
"""

from __future__ import annotations

import json
import signal
import sys
import threading
from datetime import date
from enum import Enum
from pathlib import Path
from typing import Any, Optional

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn
from rich.table import Table

from orchestrator.cli import EXIT_FAILED, app, fail

DEFAULT_CONFIG = Path(__file__).resolve().parent.parent.parent / "config" / "backtest"
EXIT_INTERRUPTED = 130


class BacktestStore(str, Enum):
    memory = "memory"
    emulator = "emulator"


def _date(opt: str, value: str) -> date:
    from orchestrator.backtest import BacktestInputError

    try:
        return date.fromisoformat(value)
    except ValueError:
        raise BacktestInputError(f"{opt} {value!r} is not a date (YYYY-MM-DD)") from None


def _pct(x: float | None) -> str:
    return "-" if x is None else f"{x:+.2%}"


def _num(x: float | None) -> str:
    return "-" if x is None else f"{x:.2f}"


def _money(x: float | None) -> str:
    return "-" if x is None else f"{x:,.0f}"


def summary_table(figures: dict[str, Any]) -> Table:
    """The account's and each strategy's metrics as a rich table."""
    meta = figures["meta"]
    t = Table(title=f"Backtest {meta['first_day']} .. {meta['last_day']} ({meta['days']} days"
                    f"{', interrupted' if meta['interrupted'] else ''})")
    cols = ("book", "end equity", "return", "CAGR", "vol", "Sharpe", "Sortino", "max DD", "Calmar", "win rate",
            "trades", "turnover/yr", "fees", "funding")
    for c in cols:
        t.add_column(c, justify="left" if c == "book" else "right")
    for name, m in figures["metrics"].items():
        t.add_row(f"[bold]{name}[/]" if name == "account" else name, _money(m["equity"]), _pct(m["total_return"]),
                  _pct(m["cagr"]), _pct(m["volatility"]), _num(m["sharpe"]), _num(m["sortino"]),
                  _pct(m["max_drawdown"]), _num(m["calmar"]), _pct(m["win_rate"]), str(m["trades"]),
                  _num(m["turnover"]), _money(m["fees"]), _money(m["funding"]))
    return t


def checks_ok(figures: dict[str, Any]) -> bool:
    """Books add up (to 1e-6 units) and the NAV identity holds to the cent at every step."""
    c = figures["checks"]
    return c["books_add_up"]["max_units_mismatch"] < 1e-6 and c["nav_identity"]["max_abs_error"] < 0.005


@app.command()
def backtest(
    start: str = typer.Option(..., "--start", help="first day, YYYY-MM-DD"),
    end: str = typer.Option(..., "--end", help="last day, YYYY-MM-DD (inclusive)"),
    strategies: Optional[str] = typer.Option(None, "--strategies", help="comma-separated strategy ids (default: all enabled)"),
    config_dir: Path = typer.Option(DEFAULT_CONFIG, "--config", help="folder with the YAML configuration"),
    out: Optional[Path] = typer.Option(None, "--out", help="report folder (default: .state/backtests/START_END)"),
    store: BacktestStore = typer.Option(BacktestStore.memory, "--store", help="memory | emulator"),
    data_dir: Optional[list[Path]] = typer.Option(None, "--data-dir", help="extra folder of bar CSVs"),
    llm: bool = typer.Option(False, "--llm", help="include kind-llm strategies (digest cache or configured endpoint)"),
    as_json: bool = typer.Option(False, "--json", help="print the report's figures (without curves) as JSON"),
) -> None:
    """Step strategies -> reconcile -> Commander over every day from START to END; write a report."""
    from bus.emulator import EmulatorError
    from orchestrator.backtest import (
        BacktestInputError, choose_strategies, open_backtest_store, run_backtest,
    )
    from orchestrator.backtest_data import BacktestConfigError, load_backtest_file
    from orchestrator.config import ConfigError, load_settings
    from orchestrator.report import write_report
    from orchestrator.report.figures import build_figures

    try:
        d0, d1 = _date("--start", start), _date("--end", end)
        settings = load_settings(config_dir)
        bfile = load_backtest_file(config_dir)
        ids = [s.strip() for s in strategies.split(",") if s.strip()] if strategies else None
        chosen, notes = choose_strategies(settings, ids, llm)
        if d0 > d1:
            raise BacktestInputError(f"--start {d0} is after --end {d1}")
    except (ConfigError, BacktestConfigError, BacktestInputError) as exc:
        fail(str(exc))
    out_dir = out or Path(".state") / "backtests" / f"{d0}_{d1}"
    console = Console(stderr=True)
    stop = threading.Event()

    def on_sigint(*_: object) -> None:
        if stop.is_set():
            raise KeyboardInterrupt
        stop.set()
        console.print("[yellow]Ctrl-C: finishing this day, then writing a partial report (Ctrl-C again to abandon "
                      "the day)[/]")

    old = signal.signal(signal.SIGINT, on_sigint) if threading.current_thread() is threading.main_thread() else None
    progress = Progress(TextColumn("[bold]backtest"), BarColumn(), MofNCompleteColumn(), TextColumn("{task.description}"),
                        TimeElapsedColumn(), TimeRemainingColumn(), console=console, transient=False)
    try:
        with progress, open_backtest_store(store.value) as st:
            task = progress.add_task("", total=(d1 - d0).days + 1)

            def on_step(rec, done: int, total: int) -> None:  # noqa: ANN001
                progress.update(task, completed=done, description=f"{rec.day} NAV {rec.nav:,.0f}")

            result = run_backtest(settings, bfile, d0, d1, st, strategies=chosen, notes=notes, data_dirs=data_dir,
                                  store_kind=store.value, on_step=on_step, stop=stop)
    except (EmulatorError, BacktestInputError) as exc:
        fail(str(exc))
    finally:
        if old is not None:
            signal.signal(signal.SIGINT, old)
    written = write_report(result, out_dir)
    figures = build_figures(result)
    if as_json:
        typer.echo(json.dumps({k: v for k, v in figures.items() if k != "curves"}, indent=2, default=str))
    else:
        con = Console(width=None if sys.stdout.isatty() else 160)
        con.print(summary_table(figures))
        conf = ", ".join(f"{k} {v}" for k, v in figures["conflicts"].items()) or "none"
        risk = ", ".join(f"{k} {v}" for k, v in figures["risk_adjustments"].items()) or "none"
        con.print(f"Conflicts: {conf}.  Risk adjustments: {risk}.")
        c = figures["checks"]
        con.print(f"Books add up: worst {c['books_add_up']['max_units_mismatch']:.2g} units; NAV identity: worst "
                  f"{c['nav_identity']['max_abs_error']:.2g} (must be < 0.005)")
        for n in figures["meta"]["notes"]:
            con.print(f"[yellow]Note:[/] {n}")
        con.print("Report: " + ", ".join(str(p) for p in written.values()))
    if not checks_ok(figures):
        fail("the books do not add up (see the report's 'Books add up' section)", EXIT_FAILED)
    if result.interrupted:
        raise typer.Exit(EXIT_INTERRUPTED)
