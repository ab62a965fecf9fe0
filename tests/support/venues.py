"""Fake market-data venues serving bars that end now, and the ``market.yaml`` that points at them
(shared by the live-data tests of the pipeline and of the command line)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timezone

from tests.fakes.fake_binance import FakeBinanceUSDM
from tests.fakes.fake_etf_source import FakeYahoo
from tests.market.today import crypto_rows, etf_rows


@contextmanager
def fake_market_venues() -> Iterator[tuple[datetime, FakeBinanceUSDM, FakeYahoo]]:
    """A fake Binance USD-M (BTC/ETH daily klines) and a fake Yahoo (SPY/VIXY daily bars), both up to now."""
    now = datetime.now(timezone.utc)
    with FakeBinanceUSDM() as binance, FakeYahoo() as yahoo:
        binance.set_klines("BTCUSDT", "1d", crypto_rows("BTC-USDT", now))
        binance.set_klines("ETHUSDT", "1d", crypto_rows("ETH-USDT", now))
        yahoo.set_bars("SPY", etf_rows("SPY", now))
        yahoo.set_bars("VIXY", etf_rows("VIXY", now))
        yield now, binance, yahoo
        assert binance.internal_errors == [] and yahoo.errors == []


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
