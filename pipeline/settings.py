"""Configuration files of the local runner: YAML in ``config/``, validated before anything runs.

* ``trading.yaml`` -> ``config/trading`` (:class:`bus.models.TradingConfig`; ``rebalance`` is
  ``never``, ``monthly`` or ``on_config_change``, and not ``on_config_change`` with ``performance_based``)
* ``strategies.yaml`` -> ``strategies/{id}`` (:class:`bus.models.StrategyConfig`), a list under ``strategies``
* ``brokers.yaml`` -> the account the pipeline trades (:mod:`brokers.config`: sim, ib or ccxt)
* ``instruments.yaml`` -> venue rules per symbol (:class:`bus.models.InstrumentSpec`)
* ``market.yaml`` (optional; absent: every symbol bundled) -> where bars and funding come from
  (:class:`market.config.MarketConfig`)

Every problem is a :class:`ConfigError` whose message names the file and the
field, so the command line can print it on one line.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from brokers.config import BrokersConfigError, BrokersFile, CcxtAccount, IBAccount, SimAccount
from bus import paths
from bus.config_files import first_error, read_yaml
from bus.models import InstrumentSpec, StrategyConfig, TradingConfig
from bus.store import Store
from commander.allocate import AllocationError, validate_allocations
from market.config import MarketConfig, MarketConfigError, parse_market_config
from strategies.llm.config import LLMConfigError, trader_strategy_configs

log = logging.getLogger(__name__)
DEFAULT_DIR = Path(__file__).resolve().parent.parent / "config"


class ConfigError(ValueError):
    """A configuration file is missing, malformed or inconsistent."""


# brokers.yaml's models live with the brokers (brokers/config.py); re-exported here.
Account = SimAccount | IBAccount | CcxtAccount


@dataclass
class Settings:
    """All configuration of one run, validated."""

    trading: TradingConfig
    strategies: list[StrategyConfig]
    account: Account
    instruments: dict[str, InstrumentSpec]
    market: MarketConfig = field(default_factory=MarketConfig)

    def strategy_ids(self) -> list[str]:
        return [s.strategy_id for s in self.strategies]


def _read_yaml(path: Path) -> Any:
    return read_yaml(path, ConfigError)


def _first_error(path: Path | str, exc: ValidationError) -> ConfigError:
    return first_error(path, exc, ConfigError)


def _check_alerts(d: Path) -> None:
    """``alerts.yaml`` (optional) validates, so a bad file is found before a run, not after it.

    Raises:
        ConfigError: it is not a mapping, or a field is wrong.
    """
    from pipeline.notify import load_alerts_config

    try:
        load_alerts_config(d)
    except ValidationError as exc:
        raise _first_error(d / "alerts.yaml", exc) from exc
    except ValueError as exc:
        raise ConfigError(str(exc)) from exc


def load_settings(config_dir: Path | None = None) -> Settings:
    """Load and validate the files (``market.yaml`` is optional).

    Raises:
        ConfigError: the first problem found, naming file and field.
    """
    d = Path(config_dir or DEFAULT_DIR)
    raw_trading = _read_yaml(d / "trading.yaml")
    if not isinstance(raw_trading, dict) or not raw_trading:
        # An empty file would validate as all defaults (e.g. a looser gross leverage than the shipped one).
        raise ConfigError(f"{d / 'trading.yaml'}: expected a mapping of settings, got "
                          f"{'an empty file' if not raw_trading else type(raw_trading).__name__}")
    try:
        trading = TradingConfig.model_validate(raw_trading)
    except ValidationError as exc:
        raise _first_error(d / "trading.yaml", exc) from exc
    check_rebalance(trading, d / "trading.yaml")
    raw = _read_yaml(d / "strategies.yaml") or {}
    if not isinstance(raw, dict) or not isinstance(raw.get("strategies"), list):
        raise ConfigError(f"{d / 'strategies.yaml'}: expected a list under 'strategies'")
    strategies = []
    for i, item in enumerate(raw["strategies"]):
        try:
            strategies.append(StrategyConfig.model_validate(item))
        except ValidationError as exc:
            raise _first_error(d / f"strategies.yaml: strategies[{i}]", exc) from exc
    try:
        strategies += trader_strategy_configs(d)  # LLM virtual traders from llm_traders.yaml / llm_models.yaml
    except LLMConfigError as exc:
        raise ConfigError(str(exc)) from exc
    ids = [s.strategy_id for s in strategies]
    dup = sorted({i for i in ids if ids.count(i) > 1})
    if dup:
        raise ConfigError(f"{d / 'strategies.yaml'}: duplicate strategy ids {dup}")
    try:
        validate_allocations(trading, strategies)
    except AllocationError as exc:
        raise ConfigError(f"{d / 'strategies.yaml'}: {exc}") from exc
    _check_alerts(d)
    try:
        brokers = BrokersFile.model_validate(_read_yaml(d / "brokers.yaml") or {})
    except ValidationError as exc:
        raise _first_error(d / "brokers.yaml", exc) from exc
    try:
        account = brokers.account_for(trading.mode)
        brokers.check_strategy_accounts(trading.mode, {s.strategy_id: s.account for s in strategies if s.enabled})
    except BrokersConfigError as exc:
        raise ConfigError(f"{d / 'brokers.yaml'}: {exc}") from exc
    raw_inst = _read_yaml(d / "instruments.yaml") or {}
    try:
        instruments = {s: InstrumentSpec.model_validate({"symbol": s, **v}) for s, v in raw_inst.items()}
    except (ValidationError, TypeError, AttributeError) as exc:
        if isinstance(exc, ValidationError):
            raise _first_error(d / "instruments.yaml", exc) from exc
        raise ConfigError(f"{d / 'instruments.yaml'}: expected a mapping of symbol -> spec") from exc
    market = load_market(d)
    return Settings(trading, strategies, account, instruments, market)


def check_rebalance(trading: TradingConfig, path: Path | str) -> None:
    """Refuse a rebalance rule that would move capital at every run.

    ``performance_based`` fractions follow each book's Sharpe ratio, which changes every
    day, so ``rebalance: on_config_change`` would rebalance every run: use ``monthly`` or
    ``never`` with it.

    Raises:
        ConfigError: naming the file and the fields.
    """
    if trading.allocation_method == "performance_based" and trading.rebalance == "on_config_change":
        raise ConfigError(f"{path}: rebalance: on_config_change with allocation_method: performance_based would "
                          "rebalance the books at every run (the fractions follow the Sharpe ratios); "
                          "use rebalance: monthly or never")


def load_market(config_dir: Path) -> MarketConfig:
    """``market.yaml`` of ``config_dir`` validated; without the file, every symbol is bundled.

    Raises:
        ConfigError: the file is malformed or names an unknown source (one line, naming the field).
    """
    path = Path(config_dir) / "market.yaml"
    if not path.is_file():
        return MarketConfig()
    try:
        return parse_market_config(_read_yaml(path), str(path))
    except MarketConfigError as exc:
        raise ConfigError(str(exc)) from exc


#: Fields a person sets (``python main.py strategy ...``) that applying the files never resets.
LIFECYCLE_FIELDS = ("state", "state_reason", "state_changed_at", "state_changed_by")


def _keep_state(doc: dict[str, Any], before: dict[str, Any] | None) -> dict[str, Any]:
    """``doc`` (from the files) with the lifecycle state of ``before`` (as stored) kept; a retired strategy
    that was disabled once flat stays disabled (``resume`` enables it again)."""
    if not before:
        return doc
    kept = {k: before[k] for k in LIFECYCLE_FIELDS if k in before}
    if before.get("state") == "retired" and before.get("enabled") is False:
        kept |= {"enabled": False, "disabled_reason": before.get("disabled_reason")}
    return {**doc, **kept}


def apply_settings(store: Store, settings: Settings) -> list[str]:
    """Write ``config/trading`` and every ``strategies/{id}`` in one batch; returns the ids it disabled.

    A strategy in the store that the files no longer name is *disabled*, not left trading with a
    stale allocation: its document keeps its book and history, gets ``enabled: false`` and a
    ``disabled_reason`` saying when and why, and a warning is logged. Its book is then held as
    it is (the Commander no longer reads its intent). A strategy's lifecycle state
    (:data:`LIFECYCLE_FIELDS`, set by ``python main.py strategy ...``) is kept.

    Raises:
        bus.store.StoreError: the store is unreachable.
    """
    named = {s.strategy_id for s in settings.strategies}
    now = datetime.now(timezone.utc)
    dropped = []
    stored = dict(store.list_docs("strategies"))
    writes = [(paths.TRADING_CONFIG, settings.trading.to_store())]
    writes += [(paths.strategy(s.strategy_id), _keep_state(s.to_store(), stored.get(s.strategy_id)))
               for s in settings.strategies]
    for sid, doc in stored.items():
        if sid in named or not doc.get("enabled", True):
            continue
        doc = {**doc, "enabled": False,
               "disabled_reason": f"not in the configuration files applied at {now.isoformat()}"}
        writes.append((paths.strategy(sid), doc))
        dropped.append(sid)
    if dropped:
        log.warning("strategies %s are no longer configured: disabled (their books are kept)", ", ".join(dropped))
    store.write_batch(writes)
    return dropped
