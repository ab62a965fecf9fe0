"""The bar timeframes the project knows: the one table.

A timeframe is named as the bundled files and the configuration name it (``1h``,
``4h``, ``1d``). Each has its bar length (a crypto bar closes at open + length,
see :mod:`market.calendar`) and the names the venues use for it: Interactive
Brokers' ``barSizeSetting`` of ``reqHistoricalData`` and ccxt's ``timeframe``
argument of ``fetch_ohlcv``.

``brokers/config.py`` cannot import ``market/`` (DESIGN.md's boundary table), so
its ``price_timeframes`` field spells the names out as a ``Literal``;
``tests/market/test_timeframes.py`` checks that it matches this table.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta


class UnknownTimeframeError(ValueError):
    """A timeframe name that is not in :data:`TIMEFRAMES`."""


@dataclass(frozen=True)
class Timeframe:
    """One bar timeframe.

    Attributes:
        name: the project's name (file names, configuration, ``MarketView.bars``).
        duration: the length of one bar.
        ib_bar_size: IB's ``barSizeSetting`` for ``reqHistoricalData``.
        ccxt: ccxt's ``timeframe`` for ``fetch_ohlcv``.
    """

    name: str
    duration: timedelta
    ib_bar_size: str
    ccxt: str


TIMEFRAMES: dict[str, Timeframe] = {tf.name: tf for tf in (
    Timeframe("1h", timedelta(hours=1), ib_bar_size="1 hour", ccxt="1h"),
    Timeframe("4h", timedelta(hours=4), ib_bar_size="4 hours", ccxt="4h"),
    Timeframe("1d", timedelta(days=1), ib_bar_size="1 day", ccxt="1d"),
)}


def timeframe(name: str) -> Timeframe:
    """The timeframe called ``name``.

    Raises:
        UnknownTimeframeError: ``name`` is not in :data:`TIMEFRAMES`.
    """
    try:
        return TIMEFRAMES[name]
    except KeyError:
        raise UnknownTimeframeError(f"unknown timeframe {name!r}; known: {sorted(TIMEFRAMES)}") from None
