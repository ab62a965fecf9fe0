"""``config/brokers.yaml``: the accounts the pipeline can trade, like the seed's ``exchange.yaml``.

Shape::

    defaults: {paper: sim-paper, live: ib}      # the account each trading mode uses
    accounts:
      sim-paper: {kind: sim, starting_cash: 100000, fee_bps: 1.0, slippage_bps: 2.0}
      ib:        {kind: ib, host: 127.0.0.1, ports: {paper: 7497, live: 7496}, client_id: 17}
      binance:   {kind: ccxt, exchange: binanceusdm, api_key_env: BINANCE_API_KEY, secret_env: BINANCE_API_SECRET}

Secrets never appear in the file: an account names the *environment variables*
that hold them (``*_env``). They are read when the broker is built
(:mod:`brokers.factory`), and a missing one is an error then.

Every strategy may name the account it trades (``StrategyConfig.account``); a run
trades the account of its mode, so a strategy naming another account is refused
by :meth:`BrokersFile.check_strategy_accounts` (fail closed: its intents would
otherwise be netted into an account it did not choose).
"""

from __future__ import annotations

from typing import Annotated, Literal, Union
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from bus.models import InstrumentSpec

Mode = Literal["paper", "live"]
#: The bar timeframes, spelled out (``market/`` is out of reach; see :mod:`market.timeframes`).
PriceTimeframe = Literal["1h", "4h", "1d"]
ENV_NAME = r"^[A-Z_][A-Z0-9_]*$"


# Typed default factories: a lambda's list/dict literal is inferred as list[str] / dict[str, ...], not the Literals.
def _default_price_timeframes() -> list[PriceTimeframe]:
    return ["1d", "4h"]


def _default_ports() -> dict[Mode, int]:
    return {"paper": 7497, "live": 7496}


def _default_accounts() -> dict[Mode, str]:
    return {"paper": "paper", "live": "live"}


class BrokersConfigError(ValueError):
    """``brokers.yaml`` is inconsistent (an unknown account name, a strategy naming another account)."""


class _Account(BaseModel):
    model_config = ConfigDict(extra="forbid")
    account: str | None = Field(None, description="account id at the venue or in the store; default: the key")
    as_of_tolerance_seconds: float = Field(
        900.0, gt=0, description="live brokers refuse an as-of further than this from the wall clock")


class SimCosts(BaseModel):
    """Per-symbol costs of the paper broker (bps), overriding the account's defaults."""

    model_config = ConfigDict(extra="forbid")
    taker_fee_bps: float = Field(ge=0)
    maker_fee_bps: float = Field(ge=-10)  # a rebate is a negative maker fee
    half_spread_bps: float = Field(ge=0)
    impact_bps: float = Field(0.0, ge=0)
    impact_ref_notional: float = Field(1_000_000.0, gt=0)


class SimAccount(_Account):
    """The paper broker: amounts in base currency, costs in bps (see :mod:`brokers.sim`).

    ``fee_bps`` is the taker fee and ``slippage_bps`` the half-spread of every symbol
    without its own ``costs``; ``leverage`` per symbol (default: the instrument's
    ``max_leverage``); ``price_timeframes``: bar files the as-of price comes from,
    first found wins; ``funding``: apply the bundled funding history to perpetuals;
    ``instruments``: venue rules of the venue this account imitates, added to (and
    overriding) ``instruments.yaml`` for this account only; ``fill_at``: when a market
    order fills, ``next_open`` (the first price after the run: the next session's open
    for US ETFs, the next 1h/4h/1d bar's open for crypto; the default) or ``close`` (at
    once, at the as-of close: optimistic, kept for comparison).
    """

    kind: Literal["sim"] = "sim"
    starting_cash: float = Field(100_000.0, gt=0)
    fee_bps: float = Field(1.0, ge=0)
    maker_fee_bps: float | None = Field(None, ge=-10)
    slippage_bps: float = Field(2.0, ge=0)
    impact_bps: float = Field(0.0, ge=0)
    impact_ref_notional: float = Field(1_000_000.0, gt=0)
    costs: dict[str, SimCosts] = Field(default_factory=dict)
    leverage: dict[str, float] = Field(default_factory=dict)
    price_timeframes: list[PriceTimeframe] = Field(default_factory=_default_price_timeframes, min_length=1)
    funding: bool = True
    instruments: dict[str, InstrumentSpec] = Field(default_factory=dict)
    fill_at: Literal["next_open", "close"] = "next_open"

    @field_validator("instruments", mode="before")
    @classmethod
    def _symbols(cls, v: object) -> object:
        if isinstance(v, dict):
            return {s: ({"symbol": s, **spec} if isinstance(spec, dict) else spec) for s, spec in v.items()}
        return v


class IBAccount(_Account):
    """Interactive Brokers through TWS / IB Gateway (``ib_async``).

    Paper vs live is the port: ``ports[mode]`` (TWS 7497 paper / 7496 live; IB Gateway
    4002 / 4001). ``ib_account``: the IB account code; empty means the only managed one.
    Paper account codes start with ``D``; the broker refuses a live account in paper
    mode and a paper account in live mode.
    """

    kind: Literal["ib"] = "ib"
    ib_account: str = Field("", pattern=r"^[A-Z0-9]*$")
    host: str = "127.0.0.1"
    ports: dict[Mode, int] = Field(default_factory=_default_ports)
    client_id: int = Field(17, ge=0)
    connect_timeout: float = Field(5.0, gt=0, description="seconds for connect() and its synchronisation")
    request_timeout: float = Field(10.0, gt=0, description="seconds for one request before NotConnected")
    order_wait: float = Field(5.0, gt=0, description="seconds to wait for a placed order's first status")
    reconnect_attempts: int = Field(3, ge=1)
    reconnect_wait: float = Field(1.0, ge=0, description="first backoff between connect attempts, doubling")
    market_data_type: Literal[1, 2, 3, 4] = 1


class CcxtAccount(_Account):
    """A crypto exchange through ``ccxt``: Binance USD-M futures or Hyperliquid perpetuals.

    Secrets, by environment variable name: ``api_key_env`` and ``secret_env`` (Binance),
    ``wallet_address_env`` and ``private_key_env`` (Hyperliquid). ``leverage`` per symbol
    (``default_leverage`` otherwise) and ``margin_mode`` are set on the venue before a
    symbol's first order. ``symbols`` maps a project symbol to a ccxt one when the rule
    ``BASE-QUOTE-PERP`` -> ``BASE/QUOTE:QUOTE`` does not fit. ``market_slippage``: the
    worst price a Hyperliquid market order accepts, as a fraction through the quote.

    Endpoints: ``sandbox: true`` trades the venue's testnet (ccxt ``set_sandbox_mode``:
    Binance USD-M ``testnet.binancefuture.com``, Hyperliquid ``api.hyperliquid-testnet.xyz``;
    testnet keys differ from live ones). ``base_url`` (``http(s)://host[:port][/prefix]``)
    sends every API request there instead, each endpoint's path kept (``/fapi/v1/order``
    -> ``{base_url}/fapi/v1/order``): a proxy, a gateway, a fake venue. With both, the
    testnet's paths go to ``base_url``.
    """

    kind: Literal["ccxt"] = "ccxt"
    exchange: Literal["binanceusdm", "hyperliquid"]
    api_key_env: str | None = Field(None, pattern=ENV_NAME)
    secret_env: str | None = Field(None, pattern=ENV_NAME)
    wallet_address_env: str | None = Field(None, pattern=ENV_NAME)
    private_key_env: str | None = Field(None, pattern=ENV_NAME)
    sandbox: bool = Field(False, description="trade the venue's testnet (ccxt set_sandbox_mode)")
    base_url: str | None = Field(None, description="send every API request to this http(s) URL, paths kept")
    margin_mode: Literal["cross", "isolated"] = "cross"
    leverage: dict[str, int] = Field(default_factory=dict)
    default_leverage: int = Field(1, ge=1)
    symbols: dict[str, str] = Field(default_factory=dict)
    timeout_ms: int = Field(10_000, gt=0)
    enable_rate_limit: bool = Field(True, description="ccxt's client-side throttle by the venue's request weights")
    market_slippage: float = Field(0.01, gt=0, lt=0.5)
    retries: int = Field(2, ge=0, description="extra attempts of a read after a network error, with backoff")

    @field_validator("base_url")
    @classmethod
    def _base_url(cls, v: str | None) -> str | None:
        if v is None:
            return v
        parts = urlsplit(v)
        if parts.username or parts.password or "@" in parts.netloc:
            raise ValueError("base_url must not carry credentials; name them with *_env")
        if parts.scheme not in ("http", "https") or not parts.hostname or parts.query or parts.fragment:
            raise ValueError(f"base_url {v!r}: expected http(s)://host[:port][/path], no query")
        return v.rstrip("/")

    @model_validator(mode="after")
    def _secrets_named(self) -> "CcxtAccount":
        need = {"binanceusdm": ("api_key_env", "secret_env"),
                "hyperliquid": ("wallet_address_env", "private_key_env")}[self.exchange]
        missing = [n for n in need if not getattr(self, n)]
        if missing:
            raise ValueError(f"{self.exchange} needs {' and '.join(missing)} (the environment variable names)")
        return self


AccountConfig = Annotated[Union[SimAccount, IBAccount, CcxtAccount], Field(discriminator="kind")]


class BrokersFile(BaseModel):
    """``brokers.yaml``: accounts by name, and the account each trading mode uses."""

    model_config = ConfigDict(extra="forbid")
    defaults: dict[Mode, str] = Field(default_factory=_default_accounts)
    accounts: dict[str, AccountConfig]

    @model_validator(mode="after")
    def _names(self) -> "BrokersFile":
        for name, acct in self.accounts.items():
            if acct.account is None:
                acct.account = name
        return self

    def name_for(self, mode: Mode) -> str:
        """The account name mode ``mode`` trades.

        Raises:
            BrokersConfigError: no default for the mode, or it names no account.
        """
        name = self.defaults.get(mode)
        if name is None:
            raise BrokersConfigError(f"defaults: no account for mode {mode!r}")
        if name not in self.accounts:
            raise BrokersConfigError(f"defaults.{mode}: no account named {name!r}; accounts: {sorted(self.accounts)}")
        return name

    def account_for(self, mode: Mode) -> SimAccount | IBAccount | CcxtAccount:
        """The account configuration mode ``mode`` trades (see :meth:`name_for`)."""
        return self.accounts[self.name_for(mode)]

    def check_strategy_accounts(self, mode: Mode, strategy_accounts: dict[str, str | None]) -> None:
        """Refuse strategies (id -> account name or None) naming an unknown account or one this mode does not trade.

        Raises:
            BrokersConfigError: naming the strategy and the account.
        """
        trading = self.name_for(mode)
        for sid, name in strategy_accounts.items():
            if name is None or name == trading:
                continue
            if name not in self.accounts:
                raise BrokersConfigError(f"strategy {sid}: account {name!r} is not in brokers.yaml "
                                         f"(accounts: {sorted(self.accounts)})")
            raise BrokersConfigError(f"strategy {sid}: trades account {name!r} but mode {mode!r} trades {trading!r}; "
                                     "one run trades one account")
