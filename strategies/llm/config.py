"""Configuration of the LLM virtual traders: ``config/llm_models.yaml`` and ``config/llm_traders.yaml``.

A trader is configuration, not code. :func:`trader_strategy_configs` reads both
files, checks them (including every prompt template's ``Version:`` header
against ``prompt_schema_version``: a mismatch is refused here, at load time),
and turns each trader into an ordinary :class:`bus.models.StrategyConfig` of
kind ``llm`` whose ``llm`` block is the resolved :class:`TraderSpec` (model
chain included), so the stored strategy document says everything the trader
runs with. API keys are never in the files nor in documents: only the *name*
of the environment variable that holds each key.

Units: costs in US dollars per million tokens, budgets in tokens and US
dollars per UTC day, ``max_position_size`` a notional in quote currency
(USDT ~ USD), ``max_margin_use`` a fraction of the trader's equity,
leverages multiples, ``min_confidence`` 0..100, ``min_risk_reward`` a ratio
(reward / risk), times in seconds unless a name says otherwise.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from bus.config_files import first_error, read_yaml
from bus.models import StrategyConfig, StrategyRiskParameters

DEFAULT_CONFIG_DIR = Path(__file__).resolve().parents[2] / "config"
PROMPTS_DIR = Path(__file__).resolve().parent / "prompts"
MODELS_FILE = "llm_models.yaml"
TRADERS_FILE = "llm_traders.yaml"
CODE_VERSION = "llm_trader/1"
_INTERVAL = re.compile(r"^(?P<n>\d+)\s*(?P<unit>m|h|d)$")
_UNIT_SECONDS = {"m": 60, "h": 3600, "d": 86400}


class LLMConfigError(ValueError):
    """An LLM configuration file is missing, malformed or inconsistent; the message names file and field."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ModelSpec(_Strict):
    """One model deployment: an OpenAI-compatible endpoint and how to call and bill it.

    Attributes:
        id: the name traders use for it (the key in ``llm_models.yaml``).
        base_url: the endpoint, e.g. ``https://api.deepseek.com/v1``.
        api_key_env: name of the environment variable holding the API key.
        model: the provider's model name sent in requests.
        temperature, max_tokens: sampling parameters (``max_tokens`` caps the reply).
        cost_per_million_input / _output: US dollars per million prompt / completion tokens.
        priority: 1 is preferred; a trader's fallbacks are tried in priority order.
        response_format: ``json_schema`` (structured output) or ``json_object`` (JSON mode) for
            endpoints without schemas; a 400 on ``json_schema`` falls back to JSON mode by itself.
        timeout_seconds: per request.
        daily_token_budget / daily_cost_budget: limits per UTC day (None: unlimited).
    """

    id: str = Field(pattern=r"^[A-Za-z0-9_.\-]+$")
    base_url: str = Field(pattern=r"^https?://\S+$")
    api_key_env: str = Field(pattern=r"^[A-Z_][A-Z0-9_]*$")
    model: str = Field(min_length=1)
    temperature: float = Field(0.7, ge=0, le=2)
    max_tokens: int = Field(4096, gt=0)
    cost_per_million_input: float = Field(ge=0)
    cost_per_million_output: float = Field(ge=0)
    priority: int = Field(1, ge=1)
    response_format: Literal["json_schema", "json_object"] = "json_schema"
    timeout_seconds: float = Field(60.0, gt=0)
    daily_token_budget: int | None = Field(None, gt=0)
    daily_cost_budget: float | None = Field(None, gt=0)

    def cost(self, prompt_tokens: int, completion_tokens: int) -> float:
        """US dollars for a request: tokens x the price per million (provider price lists)."""
        return (prompt_tokens * self.cost_per_million_input + completion_tokens * self.cost_per_million_output) / 1e6

    @property
    def unit_price(self) -> float:
        """Input + output price per million tokens: what "cheapest" compares."""
        return self.cost_per_million_input + self.cost_per_million_output


class ChainSettings(_Strict):
    """Settings of ``llm_models.yaml`` every trader takes as they are (see :class:`ModelsFile`)."""

    length_retry_factor: float = Field(2.0, gt=1)
    breaker_failures: int = Field(5, ge=1)
    breaker_window_seconds: int = Field(600, gt=0)
    breaker_cooldown_seconds: int = Field(1800, gt=0)
    failure_window: int = Field(20, ge=1)
    max_failure_rate: float = Field(0.10, ge=0, le=1)
    memory_decisions: int = Field(10, ge=0, le=50)
    assumed_nav: float = Field(100_000.0, gt=0, description=(
        "account NAV (base currency) a trader without a book assumes before the first portfolio snapshot; "
        "its opens are sent as fractions of allocation x this NAV, so they scale to the capital its book opens with"))


class ModelsFile(ChainSettings):
    """``llm_models.yaml``: models plus the settings every trader shares.

    Attributes:
        prompt_schema_version: every template must carry this ``Version:``.
        prompts_dir: folder of the Jinja2 templates (default: the package's ``prompts/``);
            relative paths are taken from the configuration folder.
        alert_threshold: share of a daily budget at which a warning is logged and recorded.
        cache_enabled: the digest cache (entries never expire: a recorded reply is the durable
            cache of replays and backtests).
        malformed_retries: extra requests to one model after a reply that fails validation.
        length_retry_factor: a reply cut at ``max_tokens`` (``finish_reason: length``) is asked
            once more with ``max_tokens`` x this, within budget.
        breaker_failures, breaker_window_seconds, breaker_cooldown_seconds: the circuit breaker
            per model: that many failed requests within the window -> the model is skipped for the
            cool-down (:mod:`strategies.llm.breaker`).
        failure_window, max_failure_rate: a trader whose errored decisions among its last
            ``failure_window`` exceed ``max_failure_rate`` (a fraction) is paused until resumed.
        memory_decisions: how many of its own latest decisions the prompt shows.
        assumed_nav: the account NAV (base currency) a trader without a book assumes while no portfolio
            snapshot exists (the very first run: strategies run before reconcile); see
            :func:`strategies.llm.trader.capital_estimate`.
        rate_limit_retries: extra requests after HTTP 429, with exponential backoff
            (``backoff_initial_seconds`` doubling, at most ``backoff_max_seconds``, at least Retry-After).
    """

    prompt_schema_version: str = Field(pattern=r"^[A-Za-z0-9_.\-]+$")
    prompts_dir: str | None = None
    alert_threshold: float = Field(0.8, gt=0, le=1)
    cache_enabled: bool = True
    malformed_retries: int = Field(2, ge=0, le=5)
    rate_limit_retries: int = Field(3, ge=0, le=10)
    backoff_initial_seconds: float = Field(1.0, ge=0)
    backoff_max_seconds: float = Field(30.0, ge=0)
    models: dict[str, ModelSpec]

    @model_validator(mode="before")
    @classmethod
    def _ids(cls, data: Any) -> Any:
        if isinstance(data, dict) and isinstance(data.get("models"), dict):
            data = dict(data)
            data["models"] = {k: {"id": k, **(v or {})} if isinstance(v, dict) else v
                              for k, v in data["models"].items()}
        return data


class TraderRisk(_Strict):
    """A trader's pre-trade limits (see :mod:`strategies.llm.checks`)."""

    max_positions: int = Field(3, ge=1)
    max_position_size: float = Field(5000.0, gt=0, description="notional per position, quote currency")
    max_margin_use: float = Field(0.6, gt=0, le=1, description="Σ notional / leverage ≤ this × equity")
    major_coin_leverage: float = Field(5.0, ge=1)
    altcoin_leverage: float = Field(3.0, ge=1)
    major_coins: list[str] = Field(default_factory=lambda: ["BTC", "ETH"], description="base assets")
    min_risk_reward: float = Field(2.0, ge=0)
    min_confidence: float = Field(70.0, ge=0, le=100)
    stop_loss_enabled: bool = True
    take_profit_enabled: bool = True
    max_drawdown: float = Field(0.3, gt=0, le=1, description="the Commander's drawdown isolation")

    @model_validator(mode="after")
    def _rr_needs_both(self) -> "TraderRisk":
        if self.min_risk_reward > 0 and not (self.stop_loss_enabled and self.take_profit_enabled):
            raise ValueError("min_risk_reward > 0 needs stop_loss_enabled and take_profit_enabled "
                             "(risk/reward is computed from the stop and the target)")
        return self

    def leverage_cap(self, symbol: str) -> float:
        """The leverage cap of ``symbol`` (``BTC-USDT`` -> base ``BTC``)."""
        return self.major_coin_leverage if base_asset(symbol) in self.major_coins else self.altcoin_leverage


class InstrumentTemplate(_Strict):
    """How target positions name the instrument (IB field names)."""

    secType: str = "CRYPTO"
    exchange: str = "BINANCE"
    currency: str = "USDT"


class TraderFile(_Strict):
    """One trader in ``llm_traders.yaml``."""

    id: str = Field(pattern=r"^[a-z0-9_\-]+$")
    name: str
    description: str = ""
    enabled: bool = True
    capital_allocation: float = Field(ge=0, le=1)
    universe: list[str] = Field(min_length=1)
    model: str
    fallbacks: list[str] = Field(default_factory=list)
    prompt_template: str
    user_template: str = "context.j2"
    decision_interval: str = "4h"
    max_data_age_hours: float = Field(12.0, gt=0)
    max_intent_age_seconds: int | None = Field(None, gt=0)
    risk: TraderRisk = Field(default_factory=TraderRisk)
    instrument: InstrumentTemplate = Field(default_factory=InstrumentTemplate)

    @field_validator("decision_interval")
    @classmethod
    def _interval(cls, v: str) -> str:
        interval_seconds(v)
        return v


class TradersFile(_Strict):
    """``llm_traders.yaml``: a list under ``traders``."""

    traders: list[TraderFile]


class TraderSpec(ChainSettings):
    """The resolved ``llm`` block of a kind-``llm`` strategy document: everything one trader runs with."""

    trader: str
    model_chain: list[ModelSpec] = Field(min_length=1, description="primary first, then fallbacks by priority")
    prompt_template: str
    user_template: str
    prompt_schema_version: str
    prompts_dir: str | None = None
    decision_interval_seconds: int = Field(gt=0)
    max_data_age_hours: float = Field(gt=0)
    risk: TraderRisk
    instrument: InstrumentTemplate
    alert_threshold: float = Field(0.8, gt=0, le=1)
    cache_enabled: bool = True
    malformed_retries: int = Field(2, ge=0)
    rate_limit_retries: int = Field(3, ge=0)
    backoff_initial_seconds: float = Field(1.0, ge=0)
    backoff_max_seconds: float = Field(30.0, ge=0)
    llm_mode: Literal["live", "replay"] = Field(
        "live", description="replay: recorded replies only, never a model request (set by the CLI)")
    replies_dir: str | None = Field(
        None, description="folder of the reply archive shared by runs and stores (set by the CLI)")

    @property
    def templates_dir(self) -> Path:
        """The folder templates are loaded from."""
        return Path(self.prompts_dir) if self.prompts_dir else PROMPTS_DIR

    def model(self, model_id: str) -> ModelSpec:
        """The spec of ``model_id`` in this trader's chain.

        Raises:
            KeyError: the model is not in the chain.
        """
        for m in self.model_chain:
            if m.id == model_id:
                return m
        raise KeyError(f"model {model_id!r} is not in the chain of {self.trader}")


def base_asset(symbol: str) -> str:
    """``BTC-USDT`` -> ``BTC`` (the part before the first dash)."""
    return symbol.split("-", 1)[0].upper()


def interval_seconds(text: str) -> int:
    """``30m`` / ``4h`` / ``1d`` -> seconds.

    Raises:
        ValueError: not a positive number followed by m, h or d.
    """
    m = _INTERVAL.match(str(text).strip())
    if not m or int(m["n"]) <= 0:
        raise ValueError(f"decision_interval {text!r}: expected a positive number of m, h or d, e.g. '4h'")
    return int(m["n"]) * _UNIT_SECONDS[m["unit"]]


def _read(path: Path) -> Any:
    return read_yaml(path, LLMConfigError) or {}


def _first(path: Path | str, exc: ValidationError) -> LLMConfigError:
    return first_error(path, exc, LLMConfigError)


def load_models(config_dir: Path | None = None) -> ModelsFile:
    """Read and validate ``llm_models.yaml``.

    Raises:
        LLMConfigError: naming the file and the field.
    """
    path = Path(config_dir or DEFAULT_CONFIG_DIR) / MODELS_FILE
    try:
        return ModelsFile.model_validate(_read(path))
    except ValidationError as exc:
        raise _first(path, exc) from exc


def load_traders(config_dir: Path | None = None) -> list[TraderFile]:
    """Read and validate ``llm_traders.yaml``; an absent file means no traders.

    Raises:
        LLMConfigError: naming the file and the field, or duplicate ids.
    """
    path = Path(config_dir or DEFAULT_CONFIG_DIR) / TRADERS_FILE
    if not path.is_file():
        return []
    try:
        traders = TradersFile.model_validate(_read(path)).traders
    except ValidationError as exc:
        raise _first(path, exc) from exc
    ids = [t.id for t in traders]
    dup = sorted({i for i in ids if ids.count(i) > 1})
    if dup:
        raise LLMConfigError(f"{path}: duplicate trader ids {dup}")
    return traders


def resolve(trader: TraderFile, models: ModelsFile, config_dir: Path | None = None) -> TraderSpec:
    """The trader's :class:`TraderSpec`: its model chain resolved, templates checked.

    Raises:
        LLMConfigError: an unknown model, or a template that is missing or whose
            ``Version:`` header does not match ``prompt_schema_version``.
    """
    from strategies.llm.prompts import TemplateError, check_templates

    where = f"{Path(config_dir or DEFAULT_CONFIG_DIR) / TRADERS_FILE}: trader {trader.id}"
    names = [trader.model, *trader.fallbacks]
    unknown = [n for n in names if n not in models.models]
    if unknown:
        raise LLMConfigError(f"{where}: unknown model(s) {unknown}; "
                             f"configured in {MODELS_FILE}: {sorted(models.models)}")
    if len(set(names)) != len(names):
        raise LLMConfigError(f"{where}: a model appears twice in model + fallbacks {names}")
    fallbacks = sorted(trader.fallbacks, key=lambda n: models.models[n].priority)  # stable: ties keep their order
    prompts_dir = None
    if models.prompts_dir:
        p = Path(models.prompts_dir)
        prompts_dir = str(p if p.is_absolute() else Path(config_dir or DEFAULT_CONFIG_DIR) / p)
    spec = TraderSpec(
        trader=trader.id, model_chain=[models.models[n] for n in [trader.model, *fallbacks]],
        prompt_template=trader.prompt_template, user_template=trader.user_template,
        prompt_schema_version=models.prompt_schema_version, prompts_dir=prompts_dir,
        decision_interval_seconds=interval_seconds(trader.decision_interval),
        max_data_age_hours=trader.max_data_age_hours, risk=trader.risk, instrument=trader.instrument,
        alert_threshold=models.alert_threshold, cache_enabled=models.cache_enabled,
        malformed_retries=models.malformed_retries, rate_limit_retries=models.rate_limit_retries,
        backoff_initial_seconds=models.backoff_initial_seconds, backoff_max_seconds=models.backoff_max_seconds,
        **models.model_dump(include=set(ChainSettings.model_fields)))
    try:
        check_templates(spec)
    except TemplateError as exc:
        raise LLMConfigError(f"{where}: {exc}") from exc
    return spec


def strategy_config(trader: TraderFile, spec: TraderSpec) -> StrategyConfig:
    """The trader as a kind-``llm`` strategy document.

    The Commander's own caps follow from the trader's limits: gross exposure at
    most ``max_margin_use`` x the highest leverage cap of its capital, one
    position at most the highest leverage cap of its capital.
    """
    top = max(trader.risk.major_coin_leverage, trader.risk.altcoin_leverage)
    return StrategyConfig(
        strategy_id=trader.id, name=trader.name, description=trader.description, enabled=trader.enabled,
        kind="llm", author="llm", capital_allocation=trader.capital_allocation, universe=list(trader.universe),
        max_intent_age_seconds=trader.max_intent_age_seconds,
        risk_parameters=StrategyRiskParameters(max_drawdown=trader.risk.max_drawdown,
                                               max_single_position_exposure=top,
                                               max_leverage=round(max(1.0, trader.risk.max_margin_use * top), 6)),
        llm=spec.model_dump(mode="json"))


def trader_strategy_configs(config_dir: Path | None = None) -> list[StrategyConfig]:
    """Every trader of ``llm_traders.yaml`` as a validated kind-``llm`` :class:`StrategyConfig`.

    Returns an empty list when ``llm_traders.yaml`` is absent.

    Raises:
        LLMConfigError: the first problem found, naming the file and the field.
    """
    traders = load_traders(config_dir)
    if not traders:
        return []
    models = load_models(config_dir)
    return [strategy_config(t, resolve(t, models, config_dir)) for t in traders]


def with_llm_mode(configs: list[StrategyConfig], mode: str, replies_dir: str | None) -> list[StrategyConfig]:
    """``configs`` with every kind-``llm`` one set to ``mode`` (``live`` | ``replay``) and the reply archive
    ``replies_dir``; the others unchanged. How the CLI passes ``--llm`` down to the traders."""
    out = []
    for c in configs:
        if c.kind == "llm" and c.llm:
            c = c.model_copy(update={"llm": {**c.llm, "llm_mode": mode, "replies_dir": replies_dir}})
        out.append(c)
    return out


def trader_spec(config: StrategyConfig) -> TraderSpec:
    """The :class:`TraderSpec` in a kind-``llm`` strategy document.

    Raises:
        LLMConfigError: the document has no ``llm`` block or it does not validate.
    """
    if config.kind != "llm" or not config.llm:
        raise LLMConfigError(f"strategy {config.strategy_id}: kind {config.kind!r} without an 'llm' block")
    try:
        return TraderSpec.model_validate(config.llm)
    except ValidationError as exc:
        raise _first(Path(f"strategies/{config.strategy_id}"), exc) from exc
