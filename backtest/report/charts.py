"""PNG charts of a backtest (matplotlib, Agg backend: no display needed).

* ``equity.png``: the account's NAV and each strategy's book equity (base currency, log scale);
* ``growth.png``: the same curves as growth of 1 (each divided by its starting value);
* ``drawdowns.png``: drawdown of the account and of each book (E_t / running max − 1, percent).
"""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")

import matplotlib.dates as mdates
import matplotlib.pyplot as plt
import pandas as pd

from backtest.report.figures import ACCOUNT
from bus.metrics import drawdown_series

CHARTS = ("equity.png", "growth.png", "drawdowns.png")


def _series(curve: dict[str, float]) -> pd.Series:
    s = pd.Series(curve, dtype=float)
    s.index = pd.to_datetime(s.index)
    return s.sort_index()


def _style(ax, title: str, ylabel: str, legend_at: str = "upper left") -> None:  # an Axes
    ax.set_title(title, fontsize=12, loc="left")
    ax.set_ylabel(ylabel)
    ax.grid(True, alpha=0.3)
    ax.xaxis.set_major_locator(mdates.AutoDateLocator())
    ax.xaxis.set_major_formatter(mdates.ConciseDateFormatter(ax.xaxis.get_major_locator()))
    ax.legend(loc=legend_at, fontsize=9, framealpha=0.85)


def _plot_all(ax, curves: dict[str, dict[str, float]], transform) -> None:
    for name, curve in curves.items():
        if len(curve) < 2:
            continue
        s = transform(curve)
        if name == ACCOUNT:
            ax.plot(s.index, s.values, color="black", linewidth=2.0, label="account (NAV)")
        else:
            ax.plot(s.index, s.values, linewidth=1.2, label=name)


def write_charts(curves: dict[str, dict[str, float]], out_dir: Path, title: str) -> dict[str, Path]:
    """Write the three PNGs into ``out_dir``; returns name -> path. Nothing is drawn for an empty curve set.

    Raises:
        OSError: ``out_dir`` cannot be written.
    """
    out_dir.mkdir(parents=True, exist_ok=True)
    paths: dict[str, Path] = {}
    specs = [
        ("equity.png", "Equity: account NAV and strategy books", "base currency (log scale)", _series, True,
         "upper left"),
        ("growth.png", "Growth of 1", "multiple of starting value", lambda c: (s := _series(c)) / s.iloc[0], False,
         "upper left"),
        ("drawdowns.png", "Drawdowns", "drawdown (%)", lambda c: drawdown_series(c) * 100, False, "lower left"),
    ]
    for name, heading, ylabel, transform, log, legend_at in specs:
        fig, ax = plt.subplots(figsize=(11, 5.2), dpi=100)
        try:
            _plot_all(ax, curves, transform)
            if log and any(len(c) > 1 for c in curves.values()):
                ax.set_yscale("log")
            _style(ax, f"{heading} — {title}", ylabel, legend_at)
            fig.tight_layout()
            path = out_dir / name
            fig.savefig(path, format="png")
            paths[name] = path
        finally:
            plt.close(fig)
    return paths
