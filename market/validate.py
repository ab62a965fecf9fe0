"""Bar validation: a bar frame in, findings out (pure: no I/O, no clock).

Every bar series is checked where it enters the process: a bundled or ``--data-dir`` CSV when
it is loaded (:mod:`market.history`), the bar cache when it is read and fetched bars before they
are appended to it (:mod:`market.provider`), live bars when fetched (:mod:`market.live`).
:func:`check_bars` runs the checks and returns a :class:`CheckedBars`: the bars that passed and
one :class:`Finding` per defect.

The checks (limits from ``market.yaml``'s ``validation:``, :class:`market.config.BarLimits`):

* ``order``: open times strictly increasing in the order given (a row older than one before it);
* ``duplicate``: an open time given more than once (every row of that time is withheld: which one
  is right cannot be told);
* ``finite`` / ``positive``: open, high, low and close finite and > 0;
* ``ohlc``: high >= max(open, close), low <= min(open, close) (hence high >= low), to a relative
  1e-9 for the rounding of adjusted prices;
* ``volume``: volume finite and >= 0; ``zero_volume``: volume 0 (a warning, or an error when
  ``zero_volume: fail``);
* ``session`` (daily equity bars): labelled with an XNYS session date at 00:00 UTC; ``grid``
  (crypto): the open time is a whole number of bar lengths since the epoch (00:00, 04:00 ... UTC);
* ``jump``: ``max(c / p, p / c) - 1 > max_move``, where ``c`` is the close and ``p`` the close of
  the newest earlier bar that passed every check (so after an isolated spike the next bar is
  compared with the bar before the spike and passes);
* ``gap``: more than ``max_missing`` bars in a row missing before a bar: XNYS sessions
  (``exchange_calendars``) for daily equity bars, bar lengths for crypto (every hour of every day).

Every finding but a warning is an error. A bar with an error (other than ``gap``, which is about
the bars missing before it) is withheld from :attr:`CheckedBars.bars`: prices, marks and fills
never use it. A strategy that reads a window of bars containing an error finding fails closed
with the finding's message (:class:`market.usage.RecordingView`), while warnings are recorded in
the intent (``source.bars[].flags``) and the bars are used.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from market.bars import COLUMNS, as_bars
from market.calendar import equity_daily_close_times, xnys_sessions
from market.config import BarLimits
from market.timeframes import timeframe as _timeframe

ERROR = "error"
WARNING = "warning"
#: Relative tolerance of the high/low checks (adjusted prices are rounded to a few decimals).
OHLC_RTOL = 1e-9


@dataclass(frozen=True)
class Finding:
    """One defect of one bar series.

    Attributes:
        symbol / timeframe: the series.
        check: ``order``, ``duplicate``, ``finite``, ``positive``, ``ohlc``, ``volume``, ``zero_volume``,
            ``session``, ``grid``, ``jump`` or ``gap`` (see the module docstring).
        severity: ``error`` (the strategies reading the bar fail) or ``warning`` (recorded only).
        open_time: the bar's open time (UTC); for ``gap``, the first bar after the missing ones.
        close_time: when that bar closes (UTC): before it, no as-of view can see the defect.
        message: one line naming the series, the bar, the values and the limit.
    """

    symbol: str
    timeframe: str
    check: str
    severity: str
    open_time: pd.Timestamp
    close_time: pd.Timestamp
    message: str

    @property
    def is_error(self) -> bool:
        return self.severity == ERROR

    def __str__(self) -> str:
        return self.message


@dataclass(frozen=True)
class CheckedBars:
    """What :func:`check_bars` returns.

    Attributes:
        bars: the bars that passed: float columns open, high, low, close, volume, indexed by UTC open
            time (``open_time``), strictly increasing.
        findings: every defect, oldest bar first.
    """

    bars: pd.DataFrame
    findings: tuple[Finding, ...]

    @property
    def errors(self) -> tuple[Finding, ...]:
        return tuple(f for f in self.findings if f.is_error)

    @property
    def warnings(self) -> tuple[Finding, ...]:
        return tuple(f for f in self.findings if not f.is_error)


class _Collector:
    """Findings of one series, with the bar labels and close times they need."""

    def __init__(self, symbol: str, timeframe: str, equity: bool, limits: BarLimits) -> None:
        self.symbol, self.timeframe, self.equity, self.limits = symbol, timeframe, equity, limits
        self.daily_equity = equity and timeframe == "1d"
        self.items: list[tuple[int, str, str, str]] = []  # (open time ns, check, severity, text)

    def label(self, t_ns: int) -> str:
        t = pd.Timestamp(t_ns, tz="UTC")
        return t.strftime("%Y-%m-%d") if self.timeframe == "1d" and t == t.normalize() else t.strftime(
            "%Y-%m-%dT%H:%MZ")

    def add(self, t_ns: int, check: str, text: str, severity: str = ERROR) -> None:
        self.items.append((int(t_ns), check, severity, text))

    def findings(self) -> tuple[Finding, ...]:
        if not self.items:
            return ()
        items = sorted(self.items, key=lambda x: x[0])
        opens = pd.DatetimeIndex([pd.Timestamp(t, tz="UTC") for t, *_ in items])
        if self.daily_equity:
            closes = equity_daily_close_times(opens.tz_convert(None))
        else:
            closes = opens + _timeframe(self.timeframe).duration
        return tuple(Finding(self.symbol, self.timeframe, check, sev, o, c,
                             f"{self.symbol} {self.timeframe} bar {self.label(t)}: {text}")
                     for (t, check, sev, text), o, c in zip(items, opens, closes, strict=True))


def _frame(raw: pd.DataFrame) -> tuple[pd.DataFrame, np.ndarray]:
    df = as_bars(raw)
    df.index = pd.DatetimeIndex(df.index).as_unit("ns")
    return df, np.asarray(df.index.asi8)


def _structure(t: np.ndarray, prev_t: int | None, out: _Collector) -> np.ndarray:
    """Rows out of order or duplicated (a bad-row mask)."""
    bad = np.zeros(len(t), dtype=bool)
    if len(t) == 0:
        return bad
    before = np.concatenate([[prev_t if prev_t is not None else np.iinfo(np.int64).min],
                             np.maximum.accumulate(t)[:-1]])
    if prev_t is not None:
        before = np.maximum(before, prev_t)
    late = np.flatnonzero(t < before)
    for i in late:
        out.add(t[i], "order", f"out of order: given after a bar opened {out.label(before[i])}")
    bad[late] = True
    values, counts = np.unique(t, return_counts=True)
    for v in values[counts > 1]:
        out.add(v, "duplicate", f"given {int(counts[values == v][0])} times; every copy withheld")
    bad |= np.isin(t, values[counts > 1])
    return bad


def _values(df: pd.DataFrame, t: np.ndarray, out: _Collector) -> np.ndarray:
    """Rows with a non-finite or non-positive price, inconsistent OHLC, bad volume (a bad-row mask)."""
    o, h, lo, c, v = (df[k].to_numpy() for k in COLUMNS)
    prices = np.column_stack([o, h, lo, c])
    finite = np.isfinite(prices).all(axis=1)
    positive = finite & (prices > 0).all(axis=1)
    with np.errstate(invalid="ignore"):
        ohlc = positive & (h >= np.maximum(o, c) * (1 - OHLC_RTOL)) & (lo <= np.minimum(o, c) * (1 + OHLC_RTOL))
        vol_ok = np.isfinite(v) & (v >= 0)
    for i in np.flatnonzero(~finite):
        out.add(t[i], "finite", f"a price is not a finite number (open {o[i]:g} high {h[i]:g} low {lo[i]:g} "
                                f"close {c[i]:g})")
    for i in np.flatnonzero(finite & ~positive):
        out.add(t[i], "positive", f"a price is zero or negative (open {o[i]:g} high {h[i]:g} low {lo[i]:g} "
                                  f"close {c[i]:g})")
    for i in np.flatnonzero(positive & ~ohlc):
        out.add(t[i], "ohlc", f"high {h[i]:g} / low {lo[i]:g} do not bracket open {o[i]:g} and close {c[i]:g}")
    for i in np.flatnonzero(~vol_ok):
        out.add(t[i], "volume", f"volume {v[i]:g} is not a finite number >= 0")
    zero = np.flatnonzero(vol_ok & (v == 0))
    fail_zero = out.limits.zero_volume == "fail"
    for i in zero:
        out.add(t[i], "zero_volume", "volume is 0", ERROR if fail_zero else WARNING)
    bad = ~ohlc | ~vol_ok
    if fail_zero:
        bad[zero] = True
    return bad


def _grid(t: np.ndarray, out: _Collector) -> np.ndarray:
    """Rows off the timeframe's grid: crypto open times, daily equity session labels (a bad-row mask)."""
    bad = np.zeros(len(t), dtype=bool)
    if out.daily_equity:
        days = pd.DatetimeIndex(t).normalize()
        sessions = xnys_sessions()
        in_range = (days >= sessions[0]) & (days <= sessions[-1])
        not_midnight = np.asarray(t) != np.asarray(days.asi8)
        not_session = in_range & ~np.asarray(days.isin(sessions))
        for i in np.flatnonzero(not_midnight):
            out.add(t[i], "session", "a daily bar must be labelled with its session date at 00:00 UTC")
        for i in np.flatnonzero(not_session & ~not_midnight):
            out.add(t[i], "session", "not an XNYS session (a weekend or an exchange holiday)")
        bad = not_midnight | not_session
    elif not out.equity:
        step = int(_timeframe(out.timeframe).duration.total_seconds() * 1e9)
        bad = (t % step) != 0
        for i in np.flatnonzero(bad):
            out.add(t[i], "grid", f"open time is not on the {out.timeframe} grid (00:00 UTC + whole bars)")
    return bad


def _gaps(t: np.ndarray, prev_t: int | None, out: _Collector) -> None:
    """More bars in a row missing than ``max_missing`` allows (no row is withheld for it)."""
    by_tf: dict[str, int] = {str(k): v for k, v in out.limits.max_missing.items()}
    limit = by_tf.get(out.timeframe)
    if limit is None or (out.equity and not out.daily_equity):
        return
    times = np.unique(t if prev_t is None else np.concatenate([[prev_t], t]))
    if len(times) < 2:
        return
    if out.daily_equity:
        sessions = xnys_sessions()
        days = pd.DatetimeIndex(times).normalize()
        keep = np.asarray(days.isin(sessions))
        times, days = times[keep], days[keep]
        pos = sessions.searchsorted(days)
        missing = np.diff(pos) - 1
        unit = "XNYS sessions"
    else:
        step = int(_timeframe(out.timeframe).duration.total_seconds() * 1e9)
        missing = np.diff(times) // step - 1
        unit = f"{out.timeframe} bars"
    for i in np.flatnonzero(missing > limit):
        out.add(times[i + 1], "gap", f"{int(missing[i])} {unit} missing since the bar of {out.label(times[i])} "
                                     f"(limit {limit})")


def _jumps(closes: np.ndarray, t: np.ndarray, prev_close: float | None, out: _Collector) -> np.ndarray:
    """Bars whose close moved beyond ``max_move`` from the last accepted close (a mask over ``closes``)."""
    bad = np.zeros(len(closes), dtype=bool)
    if len(closes) == 0:
        return bad
    limit = out.limits.max_move
    ref = np.concatenate([[prev_close if prev_close is not None else closes[0]], closes[:-1]])
    ratio = closes / ref
    first = np.flatnonzero(np.maximum(ratio, 1 / ratio) - 1 > limit)
    if len(first) == 0:
        return bad
    start = int(first[0])
    last = float(ref[start])
    for i in range(start, len(closes)):  # sequential from the first suspect bar only: rare, short
        r = closes[i] / last
        move = max(r, 1 / r) - 1
        if move > limit:
            bad[i] = True
            out.add(t[i], "jump", f"close {closes[i]:g} is {r:.4g}x the previous accepted close {last:g}: a move of "
                                  f"{move:.1%} beyond the limit {limit:.0%} (max_move)")
        else:
            last = float(closes[i])
    return bad


def check_bars(raw: pd.DataFrame, *, symbol: str, timeframe: str, equity: bool, limits: BarLimits,
               prev: tuple[pd.Timestamp, float] | None = None) -> CheckedBars:
    """Check one bar series (see the module docstring for the checks).

    Args:
        raw: columns open, high, low, close, volume (prices in the quote currency per unit, volume in
            units), indexed by open time (UTC, or naive meaning UTC) in the order the source gave them.
        symbol / timeframe: the series (``timeframe`` one of :data:`market.timeframes.TIMEFRAMES`).
        equity: daily bars labelled by session date, checked against the XNYS calendar (US ETFs).
        limits: ``max_move``, ``max_missing``, ``zero_volume``.
        prev: (open time, close) of the bar already accepted before ``raw`` (the newest cached or
            bundled bar), so that a jump or a gap at the seam is found.

    Returns:
        the bars that passed (sorted, unique) and every finding.

    Raises:
        KeyError: a column is missing. UnknownTimeframeError: an unknown timeframe.
    """
    out = _Collector(symbol, timeframe, equity, limits)
    df, t = _frame(raw)
    prev_t = int(pd.Timestamp(prev[0]).as_unit("ns").value) if prev is not None else None
    bad = _structure(t, prev_t, out) | _values(df, t, out) | _grid(t, out)
    _gaps(t, prev_t, out)
    good = df[~bad].sort_index()
    good_t = np.asarray(good.index.asi8)
    jumped = _jumps(good["close"].to_numpy(), good_t, prev[1] if prev is not None else None, out)
    return CheckedBars(good[~jumped], out.findings())


def errors_in(findings: tuple[Finding, ...], first_open: pd.Timestamp, as_of: pd.Timestamp) -> list[Finding]:
    """The error findings about bars in a window read as of ``as_of`` that starts with the bar opened at
    ``first_open``: the bar opened at or after ``first_open`` and had closed by ``as_of``."""
    return [f for f in findings if f.is_error and f.open_time >= first_open and f.close_time <= as_of]


def warnings_in(findings: tuple[Finding, ...], first_open: pd.Timestamp, last_open: pd.Timestamp) -> list[Finding]:
    """The warning findings about bars opened from ``first_open`` to ``last_open`` (both included)."""
    return [f for f in findings if not f.is_error and first_open <= f.open_time <= last_open]
