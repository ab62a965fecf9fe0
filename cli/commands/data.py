"""``python main.py data update``: refresh the bar cache from the ``market.yaml`` sources, like freqtrade's
``download-data``.

Every configured series that is not bundled (:meth:`market.config.MarketConfig.fetched`), or those of
``--symbols`` / ``--timeframes``, is refreshed into the local cache (``{state dir}/bars``): only bars
that may have closed since the newest cached one are fetched, and none when none can have. So is every
configured funding series (a perpetual with a ``funding`` source; timeframe ``funding``: 8-hourly
settlements, fetched once one is due). A rich progress bar on stderr advances per series; a table (or
``--json``) says what each series got.
``--bundled`` also appends the new bars to the bundled CSV files (``market/data``, or ``--bundled-dir``).

Exit codes: 0 every series refreshed, 1 some series failed (each named with its reason), 2 bad input.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Optional, TypedDict

import typer

from cli.app import EXIT_FAILED, app, fail
from cli.options import ConfigDir, Json, StateDir, load_config
from cli.output import print_json, stderr_console, stdout_console, table

if TYPE_CHECKING:
    from market.update import SeriesUpdate

data_app = typer.Typer(no_args_is_help=True, help="Market data: the bar cache and the bundled files.")
app.add_typer(data_app, name="data")


class _SeriesRow(TypedDict):
    """One series of the ``--json`` output and of the table."""

    source: str
    symbol: str
    timeframe: str
    requested: bool
    appended: int
    last_close: str | None
    bundled_appended: int
    error: str | None


def _row(u: SeriesUpdate) -> _SeriesRow:
    r = u.report
    return {"source": r.source, "symbol": r.symbol, "timeframe": r.timeframe, "requested": r.requested,
            "appended": r.appended, "last_close": r.last_close.isoformat() if r.last_close is not None else None,
            "bundled_appended": u.bundled_appended, "error": u.error}


def _names(value: str | None) -> list[str] | None:
    return [s.strip() for s in value.split(",") if s.strip()] if value else None


@data_app.command("update")
def update(
    symbols: Annotated[Optional[str], typer.Option(
        "--symbols", metavar="SYM,SYM", help="only these symbols (default: every fetched symbol)")] = None,
    timeframes: Annotated[Optional[str], typer.Option(
        "--timeframes", metavar="TF,TF", help="only these timeframes (1h, 4h, 1d; funding: the funding rates)")] = None,
    bundled: Annotated[bool, typer.Option(
        "--bundled", help="also append the new bars to the bundled CSV files")] = False,
    bundled_dir: Annotated[Optional[Path], typer.Option(
        "--bundled-dir", metavar="DIR", help="the bundled files' folder (default: market/data)")] = None,
    config_dir: ConfigDir = None,
    state_dir: StateDir = None,
    as_json: Json = False,
) -> None:
    """Refresh the bar cache (and with --bundled the bundled files) from the configured sources."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from market.history import BUNDLED_DIR
    from market.update import funding_series
    from market.update import update as do_update
    from pipeline.wiring import file_cache, market_data

    settings = load_config(config_dir)
    series = settings.market.fetched() + funding_series(settings.market)
    want_sym, want_tf = _names(symbols), _names(timeframes)
    unknown = sorted(set(want_sym or []) - {s for _, s, _ in series})
    if unknown:
        fail(f"--symbols {','.join(unknown)}: not fetched by market.yaml (fetched: "
             f"{', '.join(sorted({s for _, s, _ in series})) or 'none'})")
    bad_tf = sorted(set(want_tf or []) - {"1h", "4h", "1d", "funding"})
    if bad_tf:
        fail(f"--timeframes {','.join(bad_tf)}: not a timeframe (1h, 4h, 1d, funding)")
    series = [x for x in series if (not want_sym or x[1] in want_sym) and (not want_tf or x[2] in want_tf)]
    if not series:
        fail("nothing to update: market.yaml fetches no series" + (" of those" if want_sym or want_tf else ""))
    target = (bundled_dir or BUNDLED_DIR) if bundled else None
    if target is not None and not Path(target).is_dir():
        fail(f"--bundled-dir {str(target)!r} is not a folder")
    cache = file_cache(state_dir)
    md = market_data(settings, cache)
    columns = [TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn()]
    with Progress(*columns, console=stderr_console(), transient=False) as bar:
        task = bar.add_task("data", total=len(series))

        def done(item: SeriesUpdate) -> None:
            r = item.report
            bar.update(task, advance=1, description=f"{r.source} {r.symbol} {r.timeframe}")

        results = do_update(md, series, bundled_dir=Path(target) if target else None, on_done=done)
    rows = [_row(u) for u in results]
    if as_json:
        print_json({"cache": str(cache.root), "series": rows})
    else:
        t = table(["source", "symbol", "timeframe", "fetched", "new bars", "last close", "bundled +", "error"],
                  left=["source", "symbol", "timeframe", "last close", "error"], title="data update")
        for r in rows:
            t.add_row(r["source"], r["symbol"], r["timeframe"], "yes" if r["requested"] else "no", str(r["appended"]),
                      r["last_close"] or "-", str(r["bundled_appended"]) if bundled else "-", r["error"] or "")
        stdout_console().print(t)
    if any(r["error"] for r in rows):
        raise typer.Exit(EXIT_FAILED)
