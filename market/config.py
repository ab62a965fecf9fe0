"""``config/market.yaml``: where each symbol's bars and funding come from.

Shape::

    as_of_now: false          # the cloud: POST /orchestrator without asOf runs as of now (the CLI: run --live-data)
    default: bundled          # the source of every symbol not listed under symbols
    sources:
      binance: {kind: ccxt, exchange: binance}                  # public endpoints, no key
      binanceusdm: {kind: ccxt, exchange: binanceusdm, base_url: "http://127.0.0.1:8081"}
      yahoo: {kind: yfinance}                                   # keyless daily bars of US ETFs
      ib: {kind: ib, host: 127.0.0.1, port: 7497, client_id: 31}
    symbols:
      SPY: yahoo                                                # shorthand for {bars: yahoo}
      BTC-USDT: {bars: binance, timeframes: [1d, 4h]}
      BTC-USDT-PERP: {bars: binanceusdm, funding: binanceusdm, timeframes: [4h]}

``bundled`` (the CSV files in ``market/data``, :mod:`market.history`) is always a source
and needs no entry. Every other source's bars are fetched only for a run as of now or by
``python main.py data update``, appended to the bar cache (:mod:`market.cache`) and read
from there; bundled bars fill in before the first cached bar.

Units: ``timeout`` in seconds, ``retry_wait`` the first wait between attempts in seconds
(it doubles), ``lookback`` bars fetched on a cold cache, ``max_staleness_hours`` per
timeframe the allowed age of the newest closed bar against the clock, in hours.

``validation`` sets the limits of the bar checks run on every series loaded or fetched
(:mod:`market.validate`), per asset class (``equity``: bars of the equity venues and sources,
daily bars checked against the XNYS calendar; ``crypto``: everything else, every hour of every
day) and per symbol::

    validation:
      equity: {max_move: 1.0, max_missing: {1d: 0}, zero_volume: warn}
      crypto: {max_move: 5.0, max_missing: {1h: 36, 4h: 8, 1d: 0}, zero_volume: warn}
      symbols:
        BTC-USDT: {max_move: 1.5}   # overrides the class limits for one symbol

A class written in part keeps the class defaults for the rest (:data:`EQUITY_LIMITS`,
:data:`CRYPTO_LIMITS`).

Errors: :func:`parse_market_config` raises :class:`MarketConfigError` with one line
naming the field (``sources.yahoo.kind: ...``).
"""

from __future__ import annotations

from typing import Annotated, Any, Literal, Union

from pydantic import BaseModel, ConfigDict, Field, ValidationError, ValidationInfo, field_validator, model_validator

Timeframe = Literal["1h", "4h", "1d"]
BUNDLED = "bundled"


def _default_timeframes() -> list[Timeframe]:
    """Typed default factory: a lambda's ``["1d"]`` is inferred as ``list[str]``, not the Literal."""
    return ["1d"]


class MarketConfigError(ValueError):
    """``market.yaml`` is malformed or inconsistent (one line, naming the field)."""


class _Source(BaseModel):
    model_config = ConfigDict(extra="forbid")
    retries: int = Field(3, ge=1, description="fetch attempts before the read fails closed")
    retry_wait: float = Field(0.5, ge=0, description="seconds before the 2nd attempt, doubling")
    lookback: int = Field(1000, ge=2, le=5000, description="bars fetched per series on a cold cache")
    max_staleness_hours: dict[Timeframe, float] = Field(
        default_factory=dict, description="allowed age of the newest closed bar, hours (default: 2 bars; "
                                          "4 days for daily equity bars)")
    symbols: dict[str, str] = Field(default_factory=dict, description="project symbol -> the venue's symbol")


class BundledSource(_Source):
    """The bars shipped in ``market/data`` (never fetched)."""

    kind: Literal["bundled"] = "bundled"


class CcxtSource(_Source):
    """A ccxt exchange's public OHLCV and funding endpoints (no API key).

    ``base_url``: every API URL's scheme and host are replaced by it (a proxy, a mirror, a
    local fake), its path kept. ``sandbox``: ccxt's testnet URLs (``set_sandbox_mode``).
    ``options``: passed to the ccxt constructor's ``options``. Default symbols: ``BTC-USDT``
    -> ``BTC/USDT``, ``BTC-USDT-PERP`` -> ``BTC/USDT:USDT``.
    """

    kind: Literal["ccxt"]
    exchange: str = Field(pattern=r"^[a-z0-9]+$", description="a ccxt exchange id: binance, binanceusdm, ...")
    base_url: str | None = Field(None, pattern=r"^https?://[^/\s]+/?$")
    sandbox: bool = False
    timeout: float = Field(10.0, gt=0)
    options: dict[str, Any] = Field(default_factory=dict)


class YFinanceSource(_Source):
    """Daily bars of US ETFs and stocks from Yahoo Finance through ``yfinance`` (no key).

    ``base_url``: requests to Yahoo's hosts go there instead (a proxy or a local fake).
    ``auto_adjust``: prices adjusted for splits and dividends, as the bundled ``yahoo_*`` files are.
    """

    kind: Literal["yfinance"]
    base_url: str | None = Field(None, pattern=r"^https?://[^/\s]+/?$")
    timeout: float = Field(10.0, gt=0)
    auto_adjust: bool = True


class IBSource(_Source):
    """Historical TRADES bars from TWS / IB Gateway (``reqHistoricalData``) on their own
    connection: ``client_id`` must differ from the broker's."""

    kind: Literal["ib"]
    host: str = "127.0.0.1"
    port: int = Field(7497, gt=0, lt=65536)
    client_id: int = Field(31, ge=0)
    timeout: float = Field(10.0, gt=0)
    use_rth: bool = True


Source = Annotated[Union[BundledSource, CcxtSource, YFinanceSource, IBSource], Field(discriminator="kind")]


class SymbolSource(BaseModel):
    """Where one symbol's data comes from: ``bars`` and ``funding`` name sources; ``timeframes``
    are the bar series ``data update`` refreshes (a run fetches any timeframe a strategy reads)."""

    model_config = ConfigDict(extra="forbid")
    bars: str = BUNDLED
    funding: str | None = None
    timeframes: list[Timeframe] = Field(default_factory=_default_timeframes, min_length=1)


class BarLimits(BaseModel):
    """The limits of the bar checks (:mod:`market.validate`) for one asset class or one symbol.

    Attributes:
        max_move: a close-to-close move beyond this fraction is a spike: ``close / prev_close - 1 >
            max_move`` or ``prev_close / close - 1 > max_move`` (1.0: a doubling, or a halving; the previous
            close is the newest bar that passed the checks).
        max_missing: per timeframe, how many bars in a row may be missing: XNYS sessions for daily
            equity bars, bar lengths for crypto. A timeframe not listed is not checked for gaps (intraday
            equity bars never are: their sessions are not on a fixed grid).
        zero_volume: a bar with volume 0 is a ``warn``-ing (recorded, the bar is used) or a ``fail``-ure.
    """

    model_config = ConfigDict(extra="forbid")
    max_move: float = Field(1.0, gt=0, description="a close-to-close move beyond this fraction is a spike")
    max_missing: dict[Timeframe, Annotated[int, Field(ge=0)]] = Field(
        default_factory=dict, description="bars in a row allowed missing")
    zero_volume: Literal["warn", "fail"] = "warn"


class SymbolLimits(BaseModel):
    """Per-symbol overrides of the class limits (each field optional)."""

    model_config = ConfigDict(extra="forbid")
    max_move: float | None = Field(None, gt=0)
    max_missing: dict[Timeframe, Annotated[int, Field(ge=0)]] | None = None
    zero_volume: Literal["warn", "fail"] | None = None


#: Defaults, set to pass every bundled series (largest real moves: VIXY +43% on 2024-08-05; DOGE-USDT
#: +392% on 2021-01-28; largest gaps: 7 missing 4h bars of BTC/ETH on 2018-02-08/09, Binance's outage)
#: and to fail a x100 (or /100) spike and any missing XNYS session.
EQUITY_LIMITS = BarLimits(max_move=1.0, max_missing={"1d": 0}, zero_volume="warn")
CRYPTO_LIMITS = BarLimits(max_move=5.0, max_missing={"1h": 36, "4h": 8, "1d": 0}, zero_volume="warn")


def _equity_limits() -> BarLimits:
    return EQUITY_LIMITS.model_copy(deep=True)


def _crypto_limits() -> BarLimits:
    return CRYPTO_LIMITS.model_copy(deep=True)


class ValidationConfig(BaseModel):
    """``validation:``: the bar checks' limits per asset class and per symbol (see the module docstring)."""

    model_config = ConfigDict(extra="forbid")
    equity: BarLimits = Field(default_factory=_equity_limits)
    crypto: BarLimits = Field(default_factory=_crypto_limits)
    symbols: dict[str, SymbolLimits] = Field(default_factory=dict)

    @field_validator("equity", "crypto", mode="before")
    @classmethod
    def _class_defaults(cls, v: object, info: ValidationInfo) -> object:
        base = EQUITY_LIMITS if info.field_name == "equity" else CRYPTO_LIMITS
        return {**base.model_dump(), **v} if isinstance(v, dict) else v

    def limits(self, symbol: str, equity: bool) -> BarLimits:
        """The limits for ``symbol``'s bars: its class's, with the symbol's overrides."""
        base = self.equity if equity else self.crypto
        over = self.symbols.get(symbol)
        if over is None:
            return base
        return base.model_copy(update=over.model_dump(exclude_none=True))


class MarketConfig(BaseModel):
    """The ``market:`` configuration (see the module docstring)."""

    model_config = ConfigDict(extra="forbid")
    as_of_now: bool = Field(False, description="requests without an as-of run as of now on these sources")
    default: str = BUNDLED
    sources: dict[str, Source] = Field(default_factory=dict)
    symbols: dict[str, SymbolSource] = Field(default_factory=dict)
    validation: ValidationConfig = Field(default_factory=ValidationConfig)

    @field_validator("symbols", mode="before")
    @classmethod
    def _shorthand(cls, v: object) -> object:
        if isinstance(v, dict):
            return {s: ({"bars": spec} if isinstance(spec, str) else spec) for s, spec in v.items()}
        return v

    @model_validator(mode="after")
    def _known_sources(self) -> "MarketConfig":
        if BUNDLED in self.sources and self.sources[BUNDLED].kind != "bundled":
            raise ValueError(f"the source name {BUNDLED!r} is reserved for the bundled files")
        names = set(self.sources) | {BUNDLED}
        refs = [("default", self.default)]
        refs += [(f"symbols.{s}.bars", spec.bars) for s, spec in self.symbols.items()]
        refs += [(f"symbols.{s}.funding", spec.funding) for s, spec in self.symbols.items() if spec.funding]
        for where, name in refs:
            if name not in names:
                raise ValueError(f"{where}: no source named {name!r}; sources: {sorted(names)}")
        for s, spec in self.symbols.items():
            if spec.funding and self.source(spec.funding).kind not in ("ccxt", "bundled"):
                raise ValueError(f"symbols.{s}.funding: source {spec.funding!r} has no funding rates (ccxt only)")
            if self.source(spec.bars).kind == "yfinance" and spec.timeframes != ["1d"]:
                raise ValueError(f"symbols.{s}.timeframes: yfinance source {spec.bars!r} serves daily bars only")
        return self

    def source(self, name: str) -> BundledSource | CcxtSource | YFinanceSource | IBSource:
        """The source called ``name`` (``bundled`` always exists).

        Raises:
            KeyError: no such source.
        """
        if name == BUNDLED and name not in self.sources:
            return BundledSource()
        return self.sources[name]

    def bars_source(self, symbol: str) -> str:
        """The name of the source of ``symbol``'s bars."""
        spec = self.symbols.get(symbol)
        return spec.bars if spec else self.default

    def funding_source(self, symbol: str) -> str:
        """The name of the source of ``symbol``'s funding (``BTC-USDT`` or ``BTC-USDT-PERP``), bundled by default."""
        for s in (symbol, f"{symbol}-PERP", symbol.removesuffix("-PERP")):
            spec = self.symbols.get(s)
            if spec and spec.funding:
                return spec.funding
        return BUNDLED

    def fetched(self) -> list[tuple[str, str, str]]:
        """(source, symbol, timeframe) of every configured series that is fetched (not bundled), sorted."""
        out = []
        for sym, spec in self.symbols.items():
            if self.source(spec.bars).kind != "bundled":
                out += [(spec.bars, sym, tf) for tf in spec.timeframes]
        return sorted(out)


def parse_market_config(raw: Any, where: str = "market.yaml") -> MarketConfig:
    """Validate a parsed ``market.yaml`` (None or empty: everything bundled).

    Raises:
        MarketConfigError: ``"{where}: {field}: {reason}"``, one line.
    """
    try:
        return MarketConfig.model_validate(raw or {})
    except ValidationError as exc:
        e = exc.errors()[0]
        loc = ".".join(str(x) for x in e["loc"])
        more = f" (+{exc.error_count() - 1} more)" if exc.error_count() > 1 else ""
        msg = str(e["msg"]).removeprefix("Value error, ")
        raise MarketConfigError(f"{where}: {loc + ': ' if loc else ''}{msg}{more}") from None
