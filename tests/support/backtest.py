"""Helpers shared by the backtest tests: the shipped backtest configuration, trimmed as a test needs."""

from __future__ import annotations

from dataclasses import replace
from datetime import date
from pathlib import Path

from backtest.engine import BacktestResult, run_backtest
from backtest.horizon import BacktestFile, load_backtest_file
from bus.models import StrategyConfig
from bus.store import MemoryStore, Store
from pipeline.settings import Settings, load_settings

BACKTEST_CONFIG = Path(__file__).resolve().parents[2] / "config" / "backtest"


def backtest_settings() -> tuple[Settings, BacktestFile]:
    """``config/backtest`` as shipped: the four classic strategies (without the second run under the other
    fill model, ``fill_sensitivity``, which only doubles a test's time; its own tests ask for it)."""
    return load_settings(BACKTEST_CONFIG), load_backtest_file(BACKTEST_CONFIG).model_copy(
        update={"fill_sensitivity": False})


def only(settings: Settings, *configs: StrategyConfig) -> Settings:
    """``settings`` with exactly these strategies."""
    return replace(settings, strategies=list(configs))


def run(settings: Settings, bfile: BacktestFile, start: date, end: date, store: Store | None = None,
        **kw) -> tuple[BacktestResult, Store]:
    """Run a backtest on ``store`` (a fresh MemoryStore by default); returns (result, store)."""
    st = store or MemoryStore()
    return run_backtest(settings, bfile, start, end, st, **kw), st
