"""Build the fetchers of the ``market.yaml`` sources (:mod:`market.config`).

Each fetched source becomes a :class:`~market.live.BarFetcher`:

* ``ccxt``: :class:`~market.live.CcxtBars` on a public (key-less) ccxt exchange; its funding
  rates: :class:`~market.live.CcxtFunding`;
* ``yfinance``: :class:`~market.etf_daily.YFinanceBars`;
* ``ib``: :class:`~market.live.IBBars` (its own connection and client id).

Client libraries are imported only when a source of their kind is built, and a source
is built only when a run first fetches from it (:class:`Fetchers`).

Errors: :class:`SourceError` (a ``MarketDataError``) for a source that cannot be built
(an exchange ccxt does not know, no sandbox for it).
"""

from __future__ import annotations

import threading
from datetime import datetime
from typing import Any, Callable
from urllib.parse import urlsplit, urlunsplit

from market.config import CcxtSource, IBSource, MarketConfig, YFinanceSource
from market.history import MarketDataError
from market.live import BarFetcher, CcxtBars, CcxtFunding

# Hyperliquid: ccxt signs a builder fee approval and a referrer by default; public data needs neither.
_CCXT_DEFAULT_OPTIONS: dict[str, dict[str, Any]] = {
    "hyperliquid": {"builderFee": False, "approvedBuilderFee": False, "refSet": True},
}


class SourceError(MarketDataError):
    """A configured source cannot be built."""


def _rewrite(value: Any, base: str) -> Any:
    if isinstance(value, str) and value.startswith(("http://", "https://")):
        b, u = urlsplit(base), urlsplit(value)
        return urlunsplit((b.scheme, b.netloc, u.path, u.query, u.fragment))
    if isinstance(value, dict):
        return {k: _rewrite(v, base) for k, v in value.items()}
    return value


def ccxt_exchange(name: str, cfg: CcxtSource) -> Any:
    """A key-less ccxt exchange for source ``name``: sandbox URLs when asked, then every API URL
    pointed at ``base_url`` when set (scheme and host replaced, path kept).

    Raises:
        SourceError: ccxt has no such exchange, or no sandbox for it.
    """
    import ccxt

    cls = getattr(ccxt, cfg.exchange, None)
    if cls is None or not isinstance(cls, type):
        raise SourceError(f"market source {name}: ccxt has no exchange {cfg.exchange!r}")
    options = {**_CCXT_DEFAULT_OPTIONS.get(cfg.exchange, {}), **cfg.options}
    ex = cls({"enableRateLimit": True, "timeout": int(cfg.timeout * 1000), "options": options})
    if cfg.sandbox:
        try:
            ex.set_sandbox_mode(True)
        except ccxt.NotSupported as exc:
            raise SourceError(f"market source {name}: {cfg.exchange} has no sandbox in ccxt: {exc}") from exc
    if cfg.base_url:
        for section in ("api", "test"):
            if isinstance(ex.urls.get(section), (dict, str)):
                ex.urls[section] = _rewrite(ex.urls[section], cfg.base_url)
    return ex


class Fetchers:
    """The fetchers of a configuration's sources, each built on first use and then reused.

    Args:
        config: the ``market:`` configuration.
        clock: the current time (UTC) for the fetch windows.
        exchanges: prebuilt ccxt exchanges by source name (tests point them at fakes).
    """

    def __init__(self, config: MarketConfig, clock: Callable[[], datetime], exchanges: dict[str, Any] | None = None
                 ) -> None:
        self.config, self.clock = config, clock
        self._exchanges = dict(exchanges or {})
        self._bars: dict[str, BarFetcher] = {}
        self._funding: dict[str, CcxtFunding] = {}
        self._lock = threading.Lock()

    def _exchange(self, name: str, cfg: CcxtSource) -> Any:
        if name not in self._exchanges:
            self._exchanges[name] = ccxt_exchange(name, cfg)
        return self._exchanges[name]

    def bars(self, name: str) -> BarFetcher:
        """The bar fetcher of source ``name``.

        Raises:
            SourceError: the source is bundled (never fetched) or cannot be built.
        """
        with self._lock:
            if name in self._bars:
                return self._bars[name]
            cfg = self.config.source(name)
            fetcher: BarFetcher
            if isinstance(cfg, CcxtSource):
                fetcher = CcxtBars(self._exchange(name, cfg), cfg.symbols, clock=self.clock)
            elif isinstance(cfg, YFinanceSource):
                from market.etf_daily import YFinanceBars

                fetcher = YFinanceBars(cfg.base_url, cfg.symbols, cfg.timeout, cfg.auto_adjust, clock=self.clock)
            elif isinstance(cfg, IBSource):
                from market.live import IBBars

                fetcher = IBBars(cfg.host, cfg.port, cfg.client_id, timeout=cfg.timeout, use_rth=cfg.use_rth)
            else:
                raise SourceError(f"market source {name} ({cfg.kind}) is not fetched")
            self._bars[name] = fetcher
            return fetcher

    def funding(self, name: str) -> CcxtFunding:
        """The funding-rate fetcher of ccxt source ``name``.

        Raises:
            SourceError: the source is not a ccxt exchange.
        """
        with self._lock:
            if name not in self._funding:
                cfg = self.config.source(name)
                if not isinstance(cfg, CcxtSource):
                    raise SourceError(f"market source {name} ({cfg.kind}) has no funding rates")
                self._funding[name] = CcxtFunding(self._exchange(name, cfg), retries=cfg.retries,
                                                  retry_wait=cfg.retry_wait)
            return self._funding[name]

    def close(self) -> None:
        """Close the fetchers that hold connections (IB)."""
        with self._lock:
            for f in self._bars.values():
                closer = getattr(f, "close", None)
                if closer is not None:
                    closer()
            self._bars.clear()
