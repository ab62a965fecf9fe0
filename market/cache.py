"""The bar cache: fetched bars, appended once and then read back, so runs are reproducible.

A series is ``(source, symbol, timeframe)``: ``source`` is the ``market.yaml`` source name.
Only bars that had closed when they were fetched are stored, and a bar once stored is
never rewritten: :meth:`BarCache.append` keeps only bars newer than the newest cached one.
A replay or a historical as-of therefore reads exactly what the live run read.

Two stores, one interface:

* :class:`FileBarCache` (locally): ``{root}/{source}/{symbol}-{timeframe}.csv`` in the bundled
  format (``timestamp,open,high,low,close,volume``; ``timestamp`` the UTC open time), appended
  line by line. ``root`` is ``{state dir}/bars``.
* :class:`StoreBarCache` (the cloud): Firestore documents, one per series and calendar month of
  open times, so a document stays far below the 1 MiB limit (a month of 1h bars is 744 rows,
  ~45 KB)::

      bar_series/{source}:{symbol}:{timeframe}                  source, symbol, timeframe, first_open,
                                                                last_open, months [YYYY-MM...], updated_at
      bar_series/{source}:{symbol}:{timeframe}/months/{YYYY-MM}  t [epoch ms], open, high, low, close, volume
                                                                (parallel arrays; Firestore has no nested arrays)

  One append is one batch: the touched month documents and the series document. The paths are
  :func:`bus.paths.bar_series` and :func:`bus.paths.bar_month`.

Both are thread-safe within a process. Errors: ``OSError`` (files), ``bus.store.StoreError`` (store).
"""

from __future__ import annotations

import os
import threading
from datetime import datetime, timezone
from pathlib import Path
from typing import Protocol

import pandas as pd

from bus.paths import bar_month as month_path  # the document paths, also imported from here
from bus.paths import bar_series as series_path
from bus.store import Store
from market.bars import COLUMNS, clean_bars, empty_bars


class BarCache(Protocol):
    """Where fetched bars are kept (see the module docstring)."""

    #: a short name for messages and benchmarks: ``files`` or ``store``.
    kind: str

    def read(self, source: str, symbol: str, timeframe: str) -> pd.DataFrame:
        """The cached bars of a series (a clean bar frame, :mod:`market.bars`), empty when none."""
        ...

    def last_open(self, source: str, symbol: str, timeframe: str) -> pd.Timestamp | None:
        """Open time of the newest cached bar of a series, None when none."""
        ...

    def append(self, source: str, symbol: str, timeframe: str, bars: pd.DataFrame) -> int:
        """Append the bars newer than the newest cached one; return how many were appended."""
        ...


def _newer(bars: pd.DataFrame, last: pd.Timestamp | None) -> pd.DataFrame:
    df = clean_bars(bars)
    return df if last is None else df[df.index > last]


# ---------------------------------------------------------------------------------------------- files


class FileBarCache:
    """Bars as CSV files under ``root`` (``{root}/{source}/{symbol}-{timeframe}.csv``).

    A file is parsed once per process and re-read only when it changed on disk.
    """

    kind = "files"

    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        self._frames: dict[Path, tuple[tuple[int, int], pd.DataFrame]] = {}
        self._lock = threading.Lock()

    def path(self, source: str, symbol: str, timeframe: str) -> Path:
        """The file of a series."""
        return self.root / source / f"{symbol}-{timeframe}.csv"

    def read(self, source: str, symbol: str, timeframe: str) -> pd.DataFrame:
        p = self.path(source, symbol, timeframe)
        with self._lock:
            try:
                st = p.stat()
            except FileNotFoundError:
                return empty_bars()
            stamp = (st.st_mtime_ns, st.st_size)
            hit = self._frames.get(p)
            if hit is not None and hit[0] == stamp:
                return hit[1]
            raw = pd.read_csv(p)
            raw.index = pd.to_datetime(raw.pop("timestamp"), utc=True)
            df = clean_bars(raw)  # a line cut short by a crash reads as NaN and is dropped
            self._frames[p] = (stamp, df)
            return df

    def last_open(self, source: str, symbol: str, timeframe: str) -> pd.Timestamp | None:
        df = self.read(source, symbol, timeframe)
        return None if df.empty else df.index[-1]

    def append(self, source: str, symbol: str, timeframe: str, bars: pd.DataFrame) -> int:
        new = _newer(bars, self.last_open(source, symbol, timeframe))
        if new.empty:
            return 0
        p = self.path(source, symbol, timeframe)
        p.parent.mkdir(parents=True, exist_ok=True)
        lines = "".join(f"{t.strftime('%Y-%m-%dT%H:%M:%SZ')},{','.join(repr(float(x)) for x in row)}\n"
                        for t, row in zip(new.index, new[COLUMNS].itertuples(index=False), strict=True))
        with self._lock:
            header = "" if p.exists() and p.stat().st_size else "timestamp," + ",".join(COLUMNS) + "\n"
            with open(p, "a", encoding="utf-8") as f:
                f.write(header + lines)
                f.flush()
                os.fsync(f.fileno())
        return len(new)


# ---------------------------------------------------------------------------------------------- store


def _month_doc(df: pd.DataFrame) -> dict:
    return {"t": [int(t.value // 1_000_000) for t in df.index], **{c: [float(x) for x in df[c]] for c in COLUMNS}}


def _month_frame(doc: dict) -> pd.DataFrame:
    df = pd.DataFrame({c: doc.get(c, []) for c in COLUMNS},
                      index=pd.to_datetime(doc.get("t", []), unit="ms", utc=True))
    return clean_bars(df)


class StoreBarCache:
    """Bars as Firestore documents in ``store`` (see the module docstring for the layout).

    Reads cost one ``get`` of the series document and, when it changed since the last
    read in this process, one ``get_all`` of its month documents.
    """

    kind = "store"

    def __init__(self, store: Store) -> None:
        self.store = store
        self._frames: dict[str, tuple[object, pd.DataFrame]] = {}
        self._lock = threading.Lock()

    def _series(self, source: str, symbol: str, timeframe: str) -> dict | None:
        return self.store.get(series_path(source, symbol, timeframe))

    def read(self, source: str, symbol: str, timeframe: str) -> pd.DataFrame:
        key = series_path(source, symbol, timeframe)
        meta = self.store.get(key)
        if meta is None:
            return empty_bars()
        stamp = (meta.get("last_open"), tuple(meta.get("months", [])))
        with self._lock:
            hit = self._frames.get(key)
        if hit is not None and hit[0] == stamp:
            return hit[1]
        docs = self.store.get_all([month_path(source, symbol, timeframe, m) for m in meta.get("months", [])])
        parts = [_month_frame(d) for d in docs.values() if d]
        df = clean_bars(pd.concat(parts)) if parts else empty_bars()
        with self._lock:
            self._frames[key] = (stamp, df)
        return df

    def last_open(self, source: str, symbol: str, timeframe: str) -> pd.Timestamp | None:
        meta = self._series(source, symbol, timeframe)
        if not meta or meta.get("last_open") is None:
            return None
        return pd.Timestamp(meta["last_open"]).tz_convert("UTC")

    def append(self, source: str, symbol: str, timeframe: str, bars: pd.DataFrame) -> int:
        meta = self._series(source, symbol, timeframe) or {}
        last = pd.Timestamp(meta["last_open"]).tz_convert("UTC") if meta.get("last_open") is not None else None
        new = _newer(bars, last)
        if new.empty:
            return 0
        months = sorted(set(meta.get("months", [])) | set(new.index.strftime("%Y-%m")))
        touched = sorted(set(new.index.strftime("%Y-%m")))
        old = self.store.get_all([month_path(source, symbol, timeframe, m) for m in touched])
        writes = []
        for m in touched:
            prev = old.get(month_path(source, symbol, timeframe, m))
            part = new[new.index.strftime("%Y-%m") == m]
            merged = clean_bars(pd.concat([_month_frame(prev), part])) if prev else part
            writes.append((month_path(source, symbol, timeframe, m), _month_doc(merged)))
        first = meta.get("first_open") or new.index[0].to_pydatetime()
        writes.append((series_path(source, symbol, timeframe), {
            "source": source, "symbol": symbol, "timeframe": timeframe, "first_open": first,
            "last_open": new.index[-1].to_pydatetime(), "months": months,
            "updated_at": datetime.now(timezone.utc)}))
        self.store.write_batch(writes)
        return len(new)
