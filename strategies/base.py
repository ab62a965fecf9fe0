"""The Strategy interface: a strategy only says what it wants.

A strategy gets a :class:`StrategyContext` (its configuration and a
:class:`~market.history.MarketView` fixed at the run's as-of time) and returns
its **whole** desired book as target positions. It never sees a broker, the
Commander or a bar that closed after the as-of time.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from datetime import datetime
from functools import lru_cache

import pandas as pd

from bus.models import IntentMetadata, StrategyConfig, TargetPosition
from market.history import MarketView


@dataclass(frozen=True)
class StrategyContext:
    """What a strategy may look at: its config, the as-of time and the market as of then."""

    strategy_id: str
    as_of: datetime
    market: MarketView
    config: StrategyConfig

    def param(self, name: str, default):  # params are free-form
        """A parameter from the strategy's ``params``, or ``default``."""
        return self.config.params.get(name, default)

    def max_data_age(self, default_days: float) -> pd.Timedelta:
        """Allowed age of the newest bar: ``params.max_data_age_days`` or ``default_days``."""
        return _days(float(self.param("max_data_age_days", default_days)))


@lru_cache(maxsize=64)
def _days(days: float) -> pd.Timedelta:
    """``pd.Timedelta(days=days)``, built once per value (immutable; strategies ask every run)."""
    return pd.Timedelta(days=days)


@dataclass
class StrategyResult:
    """A strategy's answer: its whole target book and what it saw."""

    target_positions: list[TargetPosition]
    metadata: IntentMetadata = field(default_factory=IntentMetadata)


class Strategy(ABC):
    """Base of classic strategies. Subclasses set ``code_version`` and implement :meth:`compute`."""

    code_version: str = "0"

    @abstractmethod
    def compute(self, ctx: StrategyContext) -> StrategyResult:
        """Return the whole target book as of ``ctx.as_of``.

        Raises:
            market.history.MarketDataError: when data is missing or stale; the
                runner turns any exception into an ``error`` intent.
        """
