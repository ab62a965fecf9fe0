"""What a function needs to run a step: the store, the history, the configuration, the broker.

In the cloud the configuration lives in Firestore: the Commander's steps
(``/allocation``, ``/orchestrator``) read ``config/trading`` and ``strategies/*``
at every request (a person may flip ``enabled`` or the kill switch in the
console between runs); a strategy step reads only its own ``strategies/{id}``
and ``config/trading`` once per run (:mod:`functions.step_context`). The broker
account (``brokers.yaml``) and the venue rules (``instruments.yaml``) are files
deployed with the source; ``$INTENT_BUS_CONFIG_DIR`` points elsewhere.

The project id comes from ``$GOOGLE_CLOUD_PROJECT`` (the emulator when
``$FIRESTORE_EMULATOR_HOST`` is set). Heavy modules (pandas, the Firestore
client) are imported on first use, not at import, to keep cold starts short.
"""

from __future__ import annotations

import os
import threading
from dataclasses import dataclass
from datetime import date, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from bus.constants import CONFIG_DIR_ENV

if TYPE_CHECKING:  # functions/ may import only pipeline and bus (DESIGN.md)
    from bus.models import StrategyConfig, TradingConfig
    from bus.store import Store
    from pipeline.settings import Settings

    Broker = Any  # brokers.base.Broker
    HistoryProvider = Any  # market.history.HistoryProvider


_lock = threading.Lock()
_stores: dict[tuple[str, str], Any] = {}
_provider: Any = None
_markets: dict[tuple[int, str], Any] = {}
_files: dict[str, Any] = {}


class NotConfigured(RuntimeError):
    """The store holds no ``config/trading`` (never applied), or it does not fit the deployed files (a 500)."""


def store() -> "Store":
    """The Firestore store of ``$GOOGLE_CLOUD_PROJECT``, one client per project and emulator host."""
    from bus.store import FirestoreStore
    from pipeline.wiring import project_id

    key = (project_id(), os.environ.get("FIRESTORE_EMULATOR_HOST", ""))
    with _lock:
        st = _stores.get(key)
        if st is None:
            st = _stores[key] = FirestoreStore(key[0])
    return st


def provider() -> "HistoryProvider":
    """The bundled history, shared by all requests of this instance (thread-safe, parsed once)."""
    global _provider
    from pipeline.steps import history_provider

    with _lock:
        if _provider is None:
            _provider = history_provider()
    return _provider


def market(st: "Store", settings: "Settings") -> "HistoryProvider":
    """The market data of this instance for store ``st``: the bundled history (:func:`provider`), the
    bar cache in ``st`` and the ``market.yaml`` sources (fetched only for a run as of now); one per
    store and configuration folder, so fetched bars stay memoized between requests."""
    from pipeline.steps import history_provider

    key = (id(st), os.environ.get(CONFIG_DIR_ENV, ""))
    bundled = provider()
    with _lock:
        md = _markets.get(key)
        if md is None or md.config != settings.market:
            md = _markets[key] = history_provider(settings, st, bundled=bundled)
    return md


def file_settings() -> "Settings":
    """The YAML configuration deployed with the source (cached per folder).

    Raises:
        pipeline.settings.ConfigError: a file is missing or invalid.
    """
    from pipeline.settings import load_settings

    folder = os.environ.get(CONFIG_DIR_ENV, "")
    with _lock:
        s = _files.get(folder)
    if s is None:
        s = load_settings(Path(folder) if folder else None)
        with _lock:
            _files[folder] = s
    return s


@dataclass
class Runtime:
    """One request's view: the store, the market data, and the settings with the store's configuration.

    ``settings.trading`` and ``settings.strategies`` come from the store;
    ``settings.account`` and ``settings.instruments`` from the files.
    ``strategies`` maps every configured strategy id (enabled or not) to its configuration.
    """

    store: "Store"
    provider: "HistoryProvider"
    settings: "Settings"
    strategies: dict[str, "StrategyConfig"]

    @property
    def mode(self) -> str:
        """The trading mode of ``config/trading`` (``paper`` or ``live``): which account and lease."""
        return self.settings.trading.mode

    def enabled(self) -> list["StrategyConfig"]:
        """The enabled strategies, by id."""
        return [c for _, c in sorted(self.strategies.items()) if c.enabled]

    def as_of(self, value: date | datetime | None) -> datetime:
        """The run's as-of instant (:func:`pipeline.steps.resolve_step_as_of`): now when ``value`` is None
        and ``market.yaml`` says ``as_of_now: true`` (the provider then refreshes the bars from the
        configured sources); the configured run time on a date (default the last day every
        instrument's bundled or cached bars cover); an instant (the plan's, passed on by the
        workflow) as it is.

        Raises:
            pipeline.wiring.RunInputError: a date or an old instant outside the bundled and cached bars;
                a live broker with a historical as-of; an instant in the future or without an offset.
        """
        from pipeline.steps import resolve_step_as_of

        return resolve_step_as_of(value, self.settings, self.provider)

    def broker(self) -> "Broker":
        """The paper broker of the configured account (persisted in the store)."""
        from pipeline.wiring import make_broker

        return make_broker(self.store, self.settings, self.provider)


def read_trading_config(st: "Store", files: "Settings") -> "TradingConfig":
    """``config/trading`` from the store, checked against the deployed files' mode.

    Raises:
        NotConfigured: the document is missing, or its mode has no broker account in ``brokers.yaml``.
        pydantic.ValidationError: the document is invalid.
    """
    from bus import paths
    from bus.models import TradingConfig

    raw = st.get(paths.TRADING_CONFIG)
    if raw is None:
        raise NotConfigured("config/trading is missing in the store: apply the configuration first "
                            "(python main.py deploy --apply-config, or python main.py serve locally)")
    trading = TradingConfig.model_validate(raw)
    if trading.mode != files.trading.mode:
        raise NotConfigured(f"config/trading mode {trading.mode!r} has no broker account here: "
                            f"brokers.yaml was loaded for mode {files.trading.mode!r}")
    return trading


def runtime() -> Runtime:
    """Read ``config/trading`` and the ``strategies`` collection (two reads, no write).

    Raises:
        NotConfigured: ``config/trading`` is missing, or its mode has no account in ``brokers.yaml``.
        bus.store.StoreError: the store is unreachable.
        pipeline.settings.ConfigError: the deployed files are invalid.
    """
    from dataclasses import replace

    from bus.models import StrategyConfig

    st = store()
    files = file_settings()
    trading = read_trading_config(st, files)
    strategies = {sid: StrategyConfig.model_validate(doc) for sid, doc in st.list_docs("strategies")}
    settings = replace(files, trading=trading, strategies=[strategies[k] for k in sorted(strategies)])
    return Runtime(st, market(st, settings), settings, strategies)
