"""``python main.py leaderboard``: every strategy's book, ranked by total return."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Optional

import typer
from rich.console import Console
from rich.table import Table

from orchestrator.cli import app, fail


def _pct(x: float | None) -> str:
    return "-" if x is None else f"{x:+.2%}"


def _num(x: float | None, fmt: str = "{:.2f}") -> str:
    return "-" if x is None else fmt.format(x)


@app.command()
def leaderboard(
    as_json: bool = typer.Option(False, "--json", help="print the rows as JSON"),
    state_dir: Optional[Path] = typer.Option(None, "--state-dir", help="where the emulator's state is kept"),
) -> None:
    """Rank strategies by total return: equity, return, Sharpe, max drawdown, win rate, trades."""
    from bus.emulator import EmulatorError
    from orchestrator.leaderboard import leaderboard as board
    from orchestrator.local import RunInputError, open_store

    try:
        with open_store("emulator", state_dir) as store:
            rows = board(store)
    except (EmulatorError, RunInputError) as exc:
        fail(str(exc))
    if as_json:
        typer.echo(json.dumps(rows, indent=2))
        return
    if not rows:
        typer.echo("No strategy has a book yet: run the pipeline first (python main.py run).")
        return
    t = Table(title="Leaderboard")
    for c in ("#", "strategy", "kind", "equity", "return", "Sharpe", "max DD", "win rate", "trades", "fees"):
        t.add_column(c, justify="left" if c in ("strategy", "kind") else "right")
    for r in rows:
        t.add_row(str(r["rank"]), r["strategy_id"], r["kind"], f"{r['equity']:,.2f}", _pct(r["total_return"]),
                  _num(r["sharpe"]), _pct(r["max_drawdown"]), _pct(r["win_rate"]), str(r["trades"]),
                  f"{r['fees']:,.2f}")
    Console(width=None if sys.stdout.isatty() else 140).print(t)
