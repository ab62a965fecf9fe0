"""Fake market-data venues serving bars that end now, and the ``market.yaml`` that points at them
(shared by the live-data tests of the pipeline and of the command line)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timedelta, timezone

from tests.fakes.fake_binance import FakeBinanceUSDM
from tests.fakes.fake_etf_source import FakeYahoo
from tests.market.today import crypto_rows, etf_rows, last_boundary


@contextmanager
def fake_market_venues() -> Iterator[tuple[datetime, FakeBinanceUSDM, FakeYahoo]]:
    """A fake Binance USD-M (BTC/ETH daily and hourly klines) and a fake Yahoo (SPY/VIXY daily bars), up to now."""
    now = datetime.now(timezone.utc)
    with FakeBinanceUSDM() as binance, FakeYahoo() as yahoo:
        for sym in ("BTC-USDT", "ETH-USDT"):
            binance.set_klines(sym.replace("-", ""), "1d", crypto_rows(sym, now))
            binance.set_klines(sym.replace("-", ""), "1h", hourly_rows(sym, now))
        yahoo.set_bars("SPY", etf_rows("SPY", now))
        yahoo.set_bars("VIXY", etf_rows("VIXY", now))
        yield now, binance, yahoo
        assert binance.internal_errors == [] and yahoo.errors == []


def hourly_rows(symbol: str, now: datetime, n: int = 200) -> list[tuple]:
    """``(open_ms, o, h, l, c, v)`` 1h rows (the bundled files have none): the last ``n`` bundled 4h bars of
    ``symbol`` relabelled as hours, the newest closing at the last full hour at or before ``now``."""
    rows = crypto_rows(symbol, now, n=n, timeframe="4h")
    first = last_boundary(now, "1h") - len(rows) * timedelta(hours=1)
    return [(int((first + i * timedelta(hours=1)).timestamp() * 1000), *r[1:]) for i, r in enumerate(rows)]


def market_yaml(binance: str, yahoo: str, as_of_now: bool = False) -> dict:
    """market.yaml for the fakes: ETFs from the fake Yahoo; BTC/ETH from the fake Binance USD-M
    (its perpetual klines stand in for spot)."""
    return {
        "as_of_now": as_of_now,
        "sources": {
            "yahoo": {"kind": "yfinance", "base_url": yahoo, "retry_wait": 0.01},
            "binance": {"kind": "ccxt", "exchange": "binanceusdm", "base_url": binance, "retry_wait": 0.01,
                        "symbols": {"BTC-USDT": "BTC/USDT:USDT", "ETH-USDT": "ETH/USDT:USDT"}},
        },
        "symbols": {"SPY": "yahoo", "VIXY": "yahoo", "BTC-USDT": "binance", "ETH-USDT": "binance"},
    }
