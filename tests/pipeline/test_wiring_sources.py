"""The paper broker's sources from pipeline.wiring on bundled bars: funding settlements as
``FundingHistory.between`` gives them (read through ``FundingHistory.settlements``), and prices as a
fresh view gives them (kept per symbol and as-of)."""

from __future__ import annotations

import random
from datetime import datetime, timedelta, timezone

import pytest

from brokers.sim import SimBroker
from bus.store import MemoryStore
from market.calendar import utc_ns
from market.funding import FundingHistory
from market.history import BUNDLED_DIR, HistoryProvider
from pipeline.settings import load_settings
from pipeline.wiring import make_broker

CONFIG = BUNDLED_DIR.parent.parent / "config" / "backtest"


@pytest.fixture(scope="module")
def broker() -> SimBroker:
    settings = load_settings(CONFIG)
    b = make_broker(MemoryStore(), settings, HistoryProvider([BUNDLED_DIR]), FundingHistory([BUNDLED_DIR]))
    assert isinstance(b, SimBroker)
    return b


def test_funding_settlements_are_those_of_the_history(broker: SimBroker):
    history = FundingHistory([BUNDLED_DIR])
    rng = random.Random(7)
    seen = 0
    assert broker.funding is not None
    for sym in ("BTC-USDT-PERP", "ETH-USDT-PERP"):
        for i in range(300):
            start = datetime(2020, 1, 1, tzinfo=timezone.utc) + timedelta(minutes=rng.randrange(0, 4 * 365 * 1440))
            if i % 4 == 0:  # on a settlement instant: (start, end] leaves it out, keeps the one at end
                start = start.replace(hour=rng.choice([0, 8, 16]), minute=0)
            end = start + timedelta(hours=rng.randrange(0, 72))
            s = history.between(sym.removesuffix("-PERP"), start, end)
            want = list(zip(s.index.to_pydatetime(), s.values.tolist(), strict=True))
            got = broker.funding(sym, start, end)
            assert got == want
            seen += len(got)
    assert seen > 100


def test_ns_is_pandas_exact():
    import pandas as pd

    rng = random.Random(3)
    for _ in range(2000):
        t = datetime(2015, 1, 1, tzinfo=timezone.utc) + timedelta(microseconds=rng.randrange(0, 10 ** 15))
        t = t.astimezone(timezone(timedelta(hours=rng.randrange(-12, 13))))
        assert utc_ns(t) == int(pd.Timestamp(t).tz_convert("UTC").as_unit("ns").value)
    stamp = pd.Timestamp("2024-01-02 03:04:05.123456789", tz="UTC")
    assert utc_ns(stamp) == stamp.value  # a pandas Timestamp keeps its nanoseconds


def test_prices_are_those_of_a_fresh_view_and_errors_are_not_kept(broker: SimBroker):
    provider = HistoryProvider([BUNDLED_DIR])
    changed = 0
    for day in range(0, 40, 3):
        for hour in (14, 21):  # the same day before and after the US close: other bars, other prices
            as_of = datetime(2023, 3, 1, hour, 30, tzinfo=timezone.utc) + timedelta(days=day)
            for sym in ("SPY", "BTC-USDT"):
                want = provider.view(as_of).last_price(sym, "1d")
                assert broker.prices(sym, as_of) == want == broker.prices(sym, as_of)
                before = provider.view(as_of - timedelta(hours=7)).last_price(sym, "1d")
                changed += want != before
    assert changed >= 10
    with pytest.raises(LookupError):
        broker.prices("NOPE", datetime(2023, 3, 1, tzinfo=timezone.utc))
    with pytest.raises(LookupError):
        broker.prices("NOPE", datetime(2023, 3, 1, tzinfo=timezone.utc))


class _Plain:
    """The same bars behind a provider that is not a HistoryProvider: asked at every call."""

    def __init__(self, provider: HistoryProvider) -> None:
        self.provider = provider
        self.asked = 0

    def frame(self, symbol: str, timeframe: str = "1d"):
        self.asked += 1
        return self.provider.frame(symbol, timeframe)


def test_next_opens_on_files_are_those_asked_afresh():
    from pipeline.wiring import next_open_source

    settings = load_settings(CONFIG)
    provider = HistoryProvider([BUNDLED_DIR, BUNDLED_DIR / "hourly"])
    plain = _Plain(provider)
    kept, fresh = next_open_source(provider, settings.instruments), next_open_source(plain, settings.instruments)
    rng = random.Random(11)
    found = 0
    for sym in ("SPY", "BTC-USDT", "ETH-USDT", "NOPE"):
        for _ in range(60):
            after = datetime(2021, 1, 1, tzinfo=timezone.utc) + timedelta(minutes=rng.randrange(0, 3 * 365 * 1440))
            until = after + timedelta(hours=rng.randrange(0, 80))
            got = kept(sym, after, until)
            assert got == fresh(sym, after, until)
            found += got is not None
    assert found > 100 and plain.asked >= 4 * 60  # the plain provider was asked at every call
