"""``python main.py leaderboard``: every strategy's book, ranked by total return."""

from __future__ import annotations

from typing import Annotated

import typer

from cli.app import app
from cli.options import ConfigDir, StateDir, json_option, load_config, opened_store
from cli.output import money, num, pct, print_json, stdout_console, table


def _failed(row: dict) -> str:
    """``12%/25``: an LLM trader's failure rate over its decisions counted."""
    rate = row.get("failure_rate")
    return f"{'-' if rate is None else format(rate, '.0%')}/{row['decisions']}"


@app.command()
def leaderboard(
    as_json: Annotated[bool, json_option("print the rows as JSON")] = False,
    state_dir: StateDir = None,
    config_dir: ConfigDir = None,
) -> None:
    """Rank strategies by total return: equity, return, Sharpe, max drawdown, win rate, trades; an LLM
    trader's model, tokens, cost (US dollars) and failure rate over its latest decisions.

    Sharpe is annualized by each book's calendar: 252 NYSE sessions for a book of US ETFs, 365 days
    otherwise (the instruments of ``--config``, default ``config/``).
    """
    from pipeline.leaderboard import leaderboard as board

    instruments = load_config(config_dir).instruments
    with opened_store("emulator", state_dir) as store:
        rows = board(store, instruments)
    if as_json:
        print_json(rows)
        return
    if not rows:
        typer.echo("No strategy has a book yet: run the pipeline first (python main.py run).")
        return
    t = table(("#", "strategy", "kind", "equity", "return", "Sharpe", "calendar", "max DD", "win rate", "trades",
               "fees", "model", "tokens", "cost $", "failed/of"),
              title="Leaderboard", left=("strategy", "kind", "model"))
    for r in rows:
        llm = r.get("decisions") is not None
        t.add_row(str(r["rank"]), r["strategy_id"], r["kind"], money(r["equity"], 2), pct(r["total_return"]),
                  num(r["sharpe"]), f"{r['calendar']} ({r['periods_per_year']})", pct(r["max_drawdown"]),
                  pct(r["win_rate"]), str(r["trades"]), money(r["fees"], 2), r.get("model") or "-",
                  money(r.get("tokens")), num(r.get("cost_usd"), ".4f"),
                  _failed(r) if llm else "-")
    stdout_console().print(t)
