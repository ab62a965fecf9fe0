"""``python main.py data update``: refresh the bar cache (and optionally the bundled files) from the sources.

:func:`update` refreshes every configured fetched series (:meth:`market.config.MarketConfig.fetched`),
or the ones asked for, through :meth:`market.provider.MarketData.refresh`: a series whose next bar
cannot have closed yet costs no request. A failing series is reported and the others go on.

:func:`append_bundled` then appends the cached bars newer than a bundled file's newest bar to
that file (``market/data/{venue}_{SYMBOL}_{timeframe}.csv``), creating it when missing: venue
``yahoo`` for yfinance, ``ib`` for IB, the exchange id for ccxt (``binance``, ``binanceusdm``).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import pandas as pd

from market.bars import COLUMNS
from market.config import CcxtSource, IBSource, YFinanceSource
from market.history import VENUE_ORDER, MarketDataError, SeriesKey, load_csv
from market.provider import FetchReport, MarketData


@dataclass
class SeriesUpdate:
    """One series' outcome: the fetch report, the error (None when it went well), bundled rows appended."""

    report: FetchReport
    error: str | None = None
    bundled_file: Path | None = None
    bundled_appended: int = 0


def update(md: MarketData, series: list[tuple[str, str, str]], *, bundled_dir: Path | None = None,
           on_done: Callable[[SeriesUpdate], None] | None = None) -> list[SeriesUpdate]:
    """Refresh each ``(source, symbol, timeframe)`` of ``series`` into ``md``'s cache, in order; with
    ``bundled_dir``, also append to the bundled files there. ``on_done`` is called after each series
    (a progress bar advances)."""
    out = []
    for source, symbol, timeframe in series:
        item = SeriesUpdate(FetchReport(source, symbol, timeframe))
        try:
            item.report = md.refresh(symbol, timeframe)
            if bundled_dir is not None:
                item.bundled_file, item.bundled_appended = append_bundled(md, symbol, timeframe, bundled_dir)
        except (MarketDataError, OSError) as exc:
            item.error = f"{type(exc).__name__}: {exc}"
        out.append(item)
        if on_done is not None:
            on_done(item)
    return out


def bundled_venue(md: MarketData, symbol: str) -> str:
    """The venue part of a new bundled file's name for ``symbol``'s source.

    Raises:
        MarketDataError: a ccxt exchange the bundled files have no name for.
    """
    name = md.source_name(symbol)
    cfg = md.config.source(name)
    if isinstance(cfg, YFinanceSource):
        return "yahoo"
    if isinstance(cfg, IBSource):
        return "ib"
    if isinstance(cfg, CcxtSource) and cfg.exchange in VENUE_ORDER:
        return cfg.exchange
    raise MarketDataError(f"{symbol}: no bundled file name for source {name!r}; bundled venues: {list(VENUE_ORDER)}")


def append_bundled(md: MarketData, symbol: str, timeframe: str, bundled_dir: Path) -> tuple[Path, int]:
    """Append ``symbol``'s cached bars newer than its bundled file in ``bundled_dir`` to that file.

    Returns (the file, rows appended).

    Raises:
        MarketDataError: no file name for the source (see :func:`bundled_venue`).
        OSError: the file cannot be written.
    """
    cached = md.cached(symbol, timeframe)
    existing = sorted(Path(bundled_dir).glob(f"*_{symbol}_{timeframe}.csv"))
    path = existing[0] if existing else Path(bundled_dir) / f"{bundled_venue(md, symbol)}_{symbol}_{timeframe}.csv"
    last = None
    if path.exists():
        venue = path.name.split("_", 1)[0]
        bundled = load_csv(SeriesKey(venue, symbol, timeframe, path))
        last = bundled.index[-1] if len(bundled) else None
    new = cached if last is None else cached[cached.index > last]
    if new.empty:
        return path, 0
    header = "" if path.exists() else "timestamp," + ",".join(COLUMNS) + "\n"
    lines = "".join(f"{pd.Timestamp(t).strftime('%Y-%m-%dT%H:%M:%SZ')},{','.join(repr(float(x)) for x in row)}\n"
                    for t, row in zip(new.index, new[COLUMNS].itertuples(index=False), strict=True))
    with open(path, "a", encoding="utf-8") as f:
        f.write(header + lines)
    return path, len(new)
