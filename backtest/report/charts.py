"""PNG charts of a backtest (matplotlib, Agg backend: no display needed).

* ``equity.png``: the account's NAV and each strategy's book equity (base currency, log scale), with each
  buy-and-hold benchmark (dashed) bought with the account's starting cash;
* ``growth.png``: the same curves as growth of 1 (each divided by its starting value), benchmarks dashed;
* ``drawdowns.png``: small multiples, one panel per book (E_t / running max − 1, percent), its benchmark's
  drawdown in grey behind it;
* ``exposure.png``: small multiples, gross and net leverage of each book (exposure / book equity) with its
  configured ``max_leverage`` (the account's ``max_gross_leverage``) as a dashed line;
* ``monthly.png``: monthly returns per book as a heat map (years × months, percent), annual return at the right.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any, Callable

import matplotlib

matplotlib.use("Agg")

import matplotlib.dates as mdates
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from backtest.report.figures import ACCOUNT
from bus.metrics import drawdown_series

CHARTS = ("equity.png", "growth.png", "drawdowns.png", "exposure.png", "monthly.png")
BENCH_STYLE = {"SPY": "#555555", "BTC-USDT": "#c77c00"}


def _series(curve: dict[str, float]) -> pd.Series:
    s = pd.Series(curve, dtype=float)
    s.index = pd.to_datetime(s.index)
    return s.sort_index()


def _dates(ax: Any) -> None:
    loc = mdates.AutoDateLocator()
    ax.xaxis.set_major_locator(loc)
    ax.xaxis.set_major_formatter(mdates.ConciseDateFormatter(loc))


def _style(ax: Any, title: str, ylabel: str, legend_at: str = "upper left") -> None:
    ax.set_title(title, fontsize=12, loc="left")
    ax.set_ylabel(ylabel)
    ax.grid(True, alpha=0.3)
    _dates(ax)
    ax.legend(loc=legend_at, fontsize=9, framealpha=0.85)


def _save(fig: Any, path: Path, suptitle: str | None = None) -> Path:
    """Lay out (leaving 0.45 in at the top for ``suptitle``, the figure's title), write the PNG, close the figure."""
    try:
        if suptitle:
            fig.suptitle(suptitle, fontsize=12, x=0.01, ha="left")
        fig.tight_layout(rect=(0, 0, 1, 1 - 0.45 / fig.get_figheight()) if suptitle else None)
        fig.savefig(path, format="png")
    finally:
        plt.close(fig)
    return path


def _bench_of(figures: dict[str, Any], name: str) -> str | None:
    return figures["metrics"].get(name, {}).get("benchmark")


def _lines(figures: dict[str, Any], out: Path, name: str, heading: str, ylabel: str,
           transform: Callable[[dict[str, float]], pd.Series], bench_scale: float, log: bool) -> Path:
    curves = figures["curves"]
    fig, ax = plt.subplots(figsize=(11, 5.2), dpi=100)
    for book, curve in curves.items():
        if len(curve) < 2:
            continue
        s = transform(curve)
        if book == ACCOUNT:
            ax.plot(s.index, s.values, color="black", linewidth=2.0, label="account (NAV)")
        else:
            ax.plot(s.index, s.values, linewidth=1.2, label=book)
    for sym, b in figures["benchmarks"].items():
        s = _series(b["curve"]) * bench_scale
        ax.plot(s.index, s.values, linestyle="--", linewidth=1.4, color=BENCH_STYLE.get(sym, "grey"),
                label=f"{sym} buy & hold")
    if log:
        ax.set_yscale("log")
    _style(ax, heading, ylabel)
    return _save(fig, out / name)


def _grid(n: int, cols: int = 2, height: float = 2.6) -> tuple[Any, list[Any]]:
    rows = math.ceil(n / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(12, height * rows + 0.6), dpi=100, sharex=True, squeeze=False)
    flat = list(axes.ravel())
    for ax in flat[n:]:
        ax.set_visible(False)
    return fig, flat[:n]


def _drawdowns(figures: dict[str, Any], out: Path, title: str) -> Path:
    curves = {k: v for k, v in figures["curves"].items() if len(v) > 1}
    fig, axes = _grid(len(curves))
    for ax, (book, curve) in zip(axes, curves.items(), strict=True):
        sym = _bench_of(figures, book)
        if sym:
            b = drawdown_series(figures["benchmarks"][sym]["curve"]) * 100
            ax.plot(b.index, b.values, color="#999999", linewidth=0.9, label=f"{sym} buy & hold")
        dd = drawdown_series(curve) * 100
        ax.fill_between(dd.index, dd.values, 0, color="#b00020", alpha=0.35, linewidth=0)
        ax.plot(dd.index, dd.values, color="#b00020", linewidth=1.0, label=book)
        worst = figures["metrics"].get(book, {}).get("max_drawdown")
        ax.set_title(f"{book}: max {worst * 100:.1f}%" if worst is not None else book, fontsize=10, loc="left")
        ax.set_ylabel("drawdown (%)")
        ax.grid(True, alpha=0.3)
        ax.legend(loc="lower left", fontsize=8, framealpha=0.85)
        _dates(ax)
    return _save(fig, out / "drawdowns.png", f"Drawdowns, one panel per book — {title}")


def _exposure(figures: dict[str, Any], out: Path, title: str) -> Path:
    ex = {k: v for k, v in figures["exposure"].items() if v["gross_leverage"]}
    fig, axes = _grid(max(len(ex), 1))
    for ax, (book, e) in zip(axes, ex.items(), strict=False):
        g, n = _series(e["gross_leverage"]), _series(e["net_leverage"])
        ax.fill_between(g.index, g.values, 0, color="#1f77b4", alpha=0.15, linewidth=0)
        ax.plot(g.index, g.values, color="#1f77b4", linewidth=1.0, label="gross")
        ax.plot(n.index, n.values, color="#2ca02c", linewidth=0.9, label="net")
        if e["max_leverage"] is not None:
            ax.axhline(e["max_leverage"], color="#b00020", linestyle="--", linewidth=1.0,
                       label=f"max_leverage {e['max_leverage']:g}")
        ax.axhline(0, color="black", linewidth=0.5)
        mx = e["max_gross_leverage"]
        ax.set_title(f"{book}: gross mean {e['mean_gross_leverage']:.2f}×, max {mx:.2f}×", fontsize=10, loc="left")
        ax.set_ylabel("× book equity")
        ax.grid(True, alpha=0.3)
        ax.legend(loc="upper left", fontsize=8, framealpha=0.85, ncol=3)
        _dates(ax)
    return _save(fig, out / "exposure.png", f"Exposure / equity (leverage), one panel per book — {title}")


def _monthly(figures: dict[str, Any], out: Path, title: str) -> Path:
    periods = {k: v for k, v in figures["periods"].items() if v["monthly"]}
    years = sorted({m[:4] for p in periods.values() for m in p["monthly"]})
    names = list(periods)
    fig, axes = plt.subplots(len(names), 1, figsize=(12, 0.42 * len(years) * len(names) + 1.0 * len(names) + 0.4),
                             dpi=100, squeeze=False)
    for ax, book in zip(axes[:, 0], names, strict=True):
        p = periods[book]
        grid = np.full((len(years), 13), np.nan)
        for key, r in p["monthly"].items():
            grid[years.index(key[:4]), int(key[5:]) - 1] = r * 100
        for y, r in p["annual"].items():
            grid[years.index(y), 12] = r * 100
        lim = max(np.nanmax(np.abs(grid[:, :12])) if np.isfinite(grid[:, :12]).any() else 1.0, 1.0)
        ax.imshow(np.clip(grid, -lim, lim), cmap="RdYlGn", vmin=-lim, vmax=lim, aspect="auto")
        for i in range(len(years)):
            for j in range(13):
                if np.isfinite(grid[i, j]):
                    ax.text(j, i, f"{grid[i, j]:+.1f}", ha="center", va="center", fontsize=7.5,
                            fontweight="bold" if j == 12 else "normal")
        ax.axvline(11.5, color="black", linewidth=1.0)
        ax.set_xticks(range(13), [*("Jan Feb Mar Apr May Jun Jul Aug Sep Oct Nov Dec".split()), "Year"], fontsize=8)
        ax.set_yticks(range(len(years)), years, fontsize=8)
        ax.set_title(f"{book}: monthly returns (%), colour scale ±{lim:.0f}%", fontsize=10, loc="left")
    return _save(fig, out / "monthly.png", f"Monthly and annual returns — {title}")


def write_charts(figures: dict[str, Any], out_dir: Path, title: str) -> dict[str, Path]:
    """Write the PNGs of :data:`CHARTS` into ``out_dir`` from :func:`~backtest.report.figures.build_figures`'s
    document; returns name -> path. Nothing is drawn without curves.

    Raises:
        OSError: ``out_dir`` cannot be written.
    """
    out_dir.mkdir(parents=True, exist_ok=True)
    if not figures["curves"]:
        return {}
    start_cash = float(figures["meta"]["starting_cash"] or 1.0)
    paths = {
        "equity.png": _lines(figures, out_dir, "equity.png", f"Equity: account NAV, books, benchmarks — {title}",
                             "base currency (log scale)", _series, start_cash, True),
        "growth.png": _lines(figures, out_dir, "growth.png", f"Growth of 1 — {title}", "multiple of starting value",
                             lambda c: (s := _series(c)) / s.iloc[0], 1.0, False),
        "drawdowns.png": _drawdowns(figures, out_dir, title),
        "exposure.png": _exposure(figures, out_dir, title),
        "monthly.png": _monthly(figures, out_dir, title),
    }
    return paths
