"""Daily bars of US ETFs without an account or a key: Yahoo Finance through ``yfinance``.

:class:`YFinanceBars` is a :class:`~market.live.BarFetcher`: ``Ticker.history(interval="1d")``
over a window that covers ``count`` sessions, auto-adjusted for splits and dividends like
the bundled ``yahoo_*`` files. Bars are labelled with the session date (UTC midnight of
that date, as the bundled files are); a bar closes at the session close in New York
(:func:`market.calendar.equity_daily_close_times`), so today's bar, still forming during
the session, is never visible before 16:00 New York.

``base_url`` sends every request meant for Yahoo's hosts (``query1``/``query2.finance.yahoo.com``,
``fc.yahoo.com``, ``guce.yahoo.com``, ...) to that URL instead, path and query kept: a proxy,
or the project's fake on 127.0.0.1 in tests. It works through the session yfinance accepts
(``Ticker(symbol, session=...)``), a ``curl_cffi`` session whose ``request`` rewrites the URL.

yfinance keeps one process-wide session and small SQLite caches (time zones, cookies);
they go to a folder under the system's temporary directory, which is writable in Cloud
Functions too. Fetches are serialized by a process-wide lock.

Errors: a network failure, an HTTP error or Yahoo's rate limit is a
:class:`~market.live.FetchError` (retried by the caller); an unknown symbol (Yahoo's
``Not Found``) is a :class:`~market.history.MarketDataError`.
"""

from __future__ import annotations

import tempfile
import threading
import warnings
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any, Callable
from urllib.parse import urlsplit, urlunsplit

import pandas as pd

from market.history import MarketDataError
from market.live import FetchError

_LOCK = threading.Lock()
_SETUP_DONE = False
CACHE_DIR = Path(tempfile.gettempdir()) / "intent-bus-yfinance"


def _setup() -> None:
    """Once per process: yfinance's caches in a writable folder, its errors raised, not logged."""
    global _SETUP_DONE
    if _SETUP_DONE:
        return
    import yfinance as yf

    CACHE_DIR.mkdir(parents=True, exist_ok=True)
    yf.set_tz_cache_location(str(CACHE_DIR))  # all of its caches (time zones, cookies, ISINs)
    yf.config.debug.hide_exceptions = False
    _SETUP_DONE = True


def rewriting_session(base_url: str) -> Any:
    """A ``curl_cffi`` session that sends every ``*.yahoo.com`` request to ``base_url`` (path and
    query kept) and ignores proxy variables from the environment."""
    from curl_cffi import requests as cr

    base = urlsplit(base_url)

    class Session(cr.Session):
        def request(self, method: Any, url: str, *args: Any, **kwargs: Any) -> Any:
            parts = urlsplit(url)
            if (parts.hostname or "").endswith("yahoo.com"):
                url = urlunsplit((base.scheme, base.netloc, parts.path or "/", parts.query, parts.fragment))
            return super().request(method, url, *args, **kwargs)

    return Session(trust_env=False)


class YFinanceBars:
    """Daily bars from Yahoo Finance (a :class:`~market.live.BarFetcher` with ``equity = True``).

    Args:
        base_url: send Yahoo's requests there (see the module docstring); None for Yahoo itself.
        symbols: project symbol -> Yahoo ticker when they differ (``BRK-B`` ...).
        timeout: seconds per request.
        auto_adjust: adjust open/high/low/close for splits and dividends.
        clock: the current time (UTC), for the window's end.
    """

    equity = True

    def __init__(self, base_url: str | None = None, symbols: dict[str, str] | None = None, timeout: float = 10.0,
                 auto_adjust: bool = True, clock: Callable[[], datetime] | None = None) -> None:
        self.base_url, self.symbols = base_url, dict(symbols or {})
        self.timeout, self.auto_adjust = timeout, auto_adjust
        self.clock = clock or (lambda: datetime.now(timezone.utc))
        self._session: Any = None

    def __call__(self, symbol: str, timeframe: str, count: int) -> pd.DataFrame:
        """The last ``count`` sessions (or more) up to now, labelled by session date at 00:00 UTC.

        Raises:
            MarketDataError: a timeframe other than ``1d``, or a symbol Yahoo does not know.
            FetchError: network, HTTP or rate-limit failure.
        """
        if timeframe != "1d":
            raise MarketDataError(f"yfinance serves daily bars only, not {timeframe} ({symbol})")
        import yfinance as yf
        from yfinance.exceptions import YFPricesMissingError, YFTzMissingError

        ticker = self.symbols.get(symbol, symbol)
        now = self.clock()
        start = (now - timedelta(days=int(count * 7 / 5) + 7)).date()
        end = (now + timedelta(days=1)).date()  # exclusive: today's (forming) bar included, the view hides it
        with _LOCK:
            _setup()
            if self._session is None and self.base_url:
                self._session = rewriting_session(self.base_url)
            try:
                with warnings.catch_warnings():  # yfinance's own pandas deprecations, not ours to fix
                    warnings.simplefilter("ignore", DeprecationWarning)
                    warnings.simplefilter("ignore", FutureWarning)
                    t = yf.Ticker(ticker, session=self._session)
                    raw = t.history(start=start.isoformat(), end=end.isoformat(), interval="1d",
                                    auto_adjust=self.auto_adjust, actions=False, timeout=self.timeout)
            except YFTzMissingError as exc:  # the time-zone probe found no such ticker
                raise MarketDataError(f"{symbol}: Yahoo does not know {ticker!r}: {exc}") from exc
            except YFPricesMissingError as exc:
                if exc.yahoo_reason:  # Yahoo said why: "No data found, symbol may be delisted"
                    raise MarketDataError(f"{symbol}: Yahoo has no daily bars of {ticker!r}: {exc}") from exc
                raw = pd.DataFrame()  # a window without a session (a holiday): nothing new
            except Exception as exc:  # YFException, curl_cffi's and requests' errors
                if getattr(getattr(exc, "response", None), "status_code", None) == 404:  # "Quote not found"
                    raise MarketDataError(f"{symbol}: Yahoo does not know {ticker!r}: {exc}") from exc
                raise FetchError(f"yfinance {ticker}: {type(exc).__name__}: {exc}") from exc
        if raw.empty:
            return pd.DataFrame(columns=["open", "high", "low", "close", "volume"])
        df = raw.rename(columns=str.lower)[["open", "high", "low", "close", "volume"]]
        sessions = pd.DatetimeIndex(raw.index).tz_localize(None).normalize()  # exchange-local session dates
        df.index = sessions.tz_localize("UTC")
        return df.iloc[-(count + 1):]
