"""Registry of classic strategy implementations, by strategy id."""

from __future__ import annotations

import importlib
from typing import Callable

from strategies.base import Strategy

_REGISTRY: dict[str, type[Strategy]] = {}


def register(strategy_id: str) -> Callable[[type[Strategy]], type[Strategy]]:
    """Class decorator: make ``cls`` the implementation of ``strategy_id``."""

    def deco(cls: type[Strategy]) -> type[Strategy]:
        _REGISTRY[strategy_id] = cls
        return cls

    return deco


#: Modules of the built-in classic strategies; importing one registers its strategies.
BUILTIN_MODULES: tuple[str, ...] = ("crypto_trend", "crypto_vol_target", "etf_trend", "spy_macd_vixy", "test_signal")


def _load_builtin() -> None:
    for name in BUILTIN_MODULES:
        importlib.import_module(f"strategies.{name}")


def known() -> list[str]:
    """Ids of all registered classic strategies."""
    _load_builtin()
    return sorted(_REGISTRY)


def implementation(strategy_id: str) -> type[Strategy] | None:
    """The class registered as ``strategy_id`` (built-in modules loaded first), or None when there is none."""
    _load_builtin()
    return _REGISTRY.get(strategy_id)


def create(strategy_id: str) -> Strategy:
    """A new instance of the strategy registered as ``strategy_id``.

    Raises:
        KeyError: naming the id and the known ones.
    """
    _load_builtin()
    cls = _REGISTRY.get(strategy_id)
    if cls is None:
        raise KeyError(f"no strategy implementation {strategy_id!r}; known: {', '.join(sorted(_REGISTRY))}")
    return cls()
