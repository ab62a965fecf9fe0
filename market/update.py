"""``python main.py data update``: refresh the bar cache (and optionally the bundled files) from the sources.

:func:`update` refreshes every configured fetched series (:meth:`market.config.MarketConfig.fetched`),
or the ones asked for, through :meth:`market.provider.MarketData.refresh`: a series whose next bar
cannot have closed yet costs no request. The configured funding series (:func:`funding_series`: a
perpetual whose ``market.yaml`` entry names a ``funding`` source) are refreshed the same way, through
:meth:`market.funding_feed.FundingFeed.refresh`, under the pseudo-timeframe ``funding``: no request
until the next 8-hourly settlement is due. A failing series is reported and the others go on.

:func:`append_bundled` then appends the cached bars newer than a bundled file's newest bar to
that file (``market/data/{venue}_{SYMBOL}_{timeframe}.csv``), creating it when missing: venue
``yahoo`` for yfinance, ``ib`` for IB, the exchange id for ccxt (``binance``, ``binanceusdm``).
Funding goes to ``binanceusdm_{SYMBOL}-PERP_funding.csv`` (``timestamp,funding_rate``, the format of
:class:`market.funding.FundingHistory`), for a Binance USD-M funding source only.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import pandas as pd

from market.bars import COLUMNS
from market.config import BUNDLED, CcxtSource, IBSource, MarketConfig, YFinanceSource
from market.funding_feed import FUNDING, PERIOD, FundingFeed
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
    feed = FundingFeed(md.config, cache=md.cache, fetchers=md.fetchers, clock=md.clock)
    for source, symbol, timeframe in series:
        item = SeriesUpdate(FetchReport(source, symbol, timeframe))
        try:
            if timeframe == FUNDING:
                item.report = refresh_funding(feed, symbol)
                if bundled_dir is not None:
                    item.bundled_file, item.bundled_appended = append_bundled_funding(feed, symbol, bundled_dir)
            else:
                item.report = md.refresh(symbol, timeframe)
                if bundled_dir is not None:
                    item.bundled_file, item.bundled_appended = append_bundled(md, symbol, timeframe, bundled_dir)
        except (MarketDataError, OSError) as exc:
            item.error = f"{type(exc).__name__}: {exc}"
        out.append(item)
        if on_done is not None:
            on_done(item)
    return out


def funding_series(config: MarketConfig) -> list[tuple[str, str, str]]:
    """``(source, SYMBOL-PERP, "funding")`` of every perpetual whose ``market.yaml`` entry names a fetched
    ``funding`` source (a ccxt exchange), sorted: what ``data update`` refreshes besides the bars."""
    out = {(spec.funding, f"{sym.removesuffix('-PERP')}-PERP", FUNDING) for sym, spec in config.symbols.items()
           if spec.funding and config.source(spec.funding).kind != BUNDLED}
    return sorted(out)


def refresh_funding(feed: FundingFeed, symbol: str) -> FetchReport:
    """Refresh ``symbol``'s cached funding settlements (:meth:`FundingFeed.refresh`) and report it like a
    bar series: ``requested`` when a settlement was due (the source was asked), ``appended`` settlements,
    ``last_close`` the newest cached settlement time (UTC).

    Raises:
        MarketDataError: the source failed after its retries, or has no funding for ``symbol``.
    """
    name = feed.source_name(symbol)
    report = FetchReport(name, symbol, FUNDING)
    if name == BUNDLED or feed.cache is None or feed.fetchers is None:
        return report
    last = feed.cache.last_open(name, symbol, FUNDING)
    report.requested = last is None or last + PERIOD <= pd.Timestamp(feed.clock())
    report.appended = feed.refresh(symbol)
    report.last_close = feed.cache.last_open(name, symbol, FUNDING)
    return report


def append_bundled_funding(feed: FundingFeed, symbol: str, bundled_dir: Path) -> tuple[Path, int]:
    """Append ``symbol``'s cached funding settlements newer than its bundled file in ``bundled_dir``
    (``binanceusdm_{SYMBOL}-PERP_funding.csv``; created when missing). Returns (the file, rows appended).

    Raises:
        MarketDataError: the funding source is not Binance USD-M (no bundled file name for it).
        OSError: the file cannot be written.
    """
    name = feed.source_name(symbol)
    cfg = feed.config.source(name)
    if not (isinstance(cfg, CcxtSource) and cfg.exchange == "binanceusdm"):
        raise MarketDataError(f"{symbol}: bundled funding files are Binance USD-M's; source {name!r} is not")
    assert feed.cache is not None
    cached = feed.cache.read(name, symbol, FUNDING)["close"]
    path = Path(bundled_dir) / f"binanceusdm_{symbol}_funding.csv"
    last = pd.to_datetime(pd.read_csv(path)["timestamp"], utc=True).max() if path.exists() else None
    new = cached if last is None or pd.isna(last) else cached[cached.index > last]
    if new.empty:
        return path, 0
    header = "" if path.exists() else "timestamp,funding_rate\n"
    lines = "".join(f"{pd.Timestamp(t).strftime('%Y-%m-%dT%H:%M:%SZ')},{float(r)!r}\n" for t, r in new.items())
    with open(path, "a", encoding="utf-8") as f:
        f.write(header + lines)
    return path, len(new)


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
