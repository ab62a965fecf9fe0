"""Helpers shared by the LLM trader tests (no tests here): traders pointed at the fake OpenAI server.

Traders are built through the real configuration path
(:func:`strategies.llm.config.resolve` and :func:`strategy_config`), with models
whose ``base_url`` is the fake server's loopback URL and whose key variable is
set by the ``llm_env`` fixture to a dummy value.
"""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

import pytest

from bus.models import StrategyConfig
from strategies.llm.config import ModelsFile, ModelSpec, TraderFile, TraderRisk, resolve, strategy_config

KEY_ENV = "INTENT_BUS_TEST_LLM_KEY"
KEY_VALUE = "sk-test-7f3a9c-not-a-real-key"
AS_OF = datetime(2024, 3, 15, 21, 30, tzinfo=timezone.utc)
UNIVERSE = ["BTC-USDT", "ETH-USDT"]


@pytest.fixture
def llm_env(monkeypatch):
    """The test key variable set; every real provider's key variable unset (no test may reach the internet)."""
    from strategies.llm.config import load_models

    for m in load_models().models.values():
        monkeypatch.delenv(m.api_key_env, raising=False)
    monkeypatch.setenv(KEY_ENV, KEY_VALUE)
    return KEY_VALUE


def model(srv: Any, model_id: str, **kw: Any) -> ModelSpec:
    """A model served by the fake server ``srv`` (its name there is ``model_id``)."""
    base = dict(id=model_id, base_url=srv.base_url, api_key_env=KEY_ENV, model=model_id, temperature=0.0,
                max_tokens=512, cost_per_million_input=1.0, cost_per_million_output=2.0, timeout_seconds=5.0)
    base.update(kw)
    return ModelSpec(**base)


def trader(models: list[ModelSpec], strategy_id: str = "llm_test", allocation: float = 0.1,
           universe: list[str] | None = None, risk: dict | None = None, prompts_dir: str | None = None,
           template: str = "momentum.j2", **settings: Any) -> StrategyConfig:
    """A kind-``llm`` strategy whose chain is ``models`` (first = primary), resolved like the real configuration."""
    defaults = dict(prompt_schema_version="1", backoff_initial_seconds=0.05, backoff_max_seconds=0.5,
                    rate_limit_retries=2, malformed_retries=1)
    defaults.update(settings)
    mf = ModelsFile(models={m.id: m for m in models}, prompts_dir=prompts_dir, **defaults)
    r = dict(max_positions=3, max_position_size=5000, max_margin_use=0.8, major_coin_leverage=3, altcoin_leverage=2,
             min_risk_reward=1.5, min_confidence=60)
    r.update(risk or {})
    tf = TraderFile(id=strategy_id, name=f"Test trader {strategy_id}", capital_allocation=allocation,
                    universe=universe or UNIVERSE, model=models[0].id, fallbacks=[m.id for m in models[1:]],
                    prompt_template=template, risk=TraderRisk(**r))
    return strategy_config(tf, resolve(tf, mf))


def decision(symbol: str = "BTC-USDT", action: str = "open_long", notional: float | None = 2000.0,
             quantity: float | None = None, leverage: float | None = 2.0, stop_loss: float | None = 66000.0,
             take_profit: float | None = 76000.0, confidence: float = 80.0, reasoning: str = "trend is up",
             invalidation: str = "4h close below 66000") -> dict[str, Any]:
    """One decision of a reply (defaults: a valid BTC long at the AS_OF price of about 69,003)."""
    if action in ("close", "hold"):
        notional = leverage = stop_loss = take_profit = None
    return {"symbol": symbol, "action": action, "notional": notional, "quantity": quantity, "leverage": leverage,
            "stop_loss": stop_loss, "take_profit": take_profit, "confidence": confidence,
            "invalidation_condition": invalidation, "reasoning": reasoning}


def reply(*decisions: dict[str, Any]) -> dict[str, Any]:
    """A whole reply."""
    return {"decisions": list(decisions)}


def fund(store: Any, strategy_id: str = "llm_test", cash: float = 10_000.0,
         positions: dict[str, tuple[float, float]] | None = None) -> None:
    """Give a trader a book, as the Commander would have: ``cash`` (USDT) and symbol -> (units, entry price)."""
    from bus import paths as bus_paths
    from bus.models import Book, BookPosition

    pos = {s: BookPosition(quantity=q, avg_price=p) for s, (q, p) in (positions or {}).items()}
    equity = cash + sum(q * p for q, p in (positions or {}).values())
    book = Book(strategy_id=strategy_id, updated_at=AS_OF, starting_cash=equity, cash=cash, positions=pos,
                equity=equity, high_water_mark=equity)
    store.set(bus_paths.book(strategy_id), book.to_store())


def race_worker() -> None:
    """One process of the budget race (tests/strategies/llm/test_budget_race.py): ``argv[1:]`` =
    project, fake server base URL, trader id, calls, daily token budget (0: none). Each call is one
    decision of its own trader at its own as-of time, on the emulator named by ``FIRESTORE_EMULATOR_HOST``,
    sharing the one model ``m-shared``; it prints one line per decision: status and model requests answered."""
    import sys
    from datetime import timedelta

    from bus.store import FirestoreStore
    from market.history import HistoryProvider
    from strategies.llm.trader import llm_intent

    project, base_url, sid, calls, limit = sys.argv[1:6]
    srv = type("Srv", (), {"base_url": base_url})
    m = model(srv, "m-shared", daily_token_budget=int(limit) or None)
    cfg = trader([m], strategy_id=sid, cache_enabled=False, malformed_retries=0)
    store, provider = FirestoreStore(project), HistoryProvider()
    for k in range(int(calls)):
        as_of = AS_OF + timedelta(hours=4 * k)
        intent = llm_intent(cfg, provider.view(as_of), store)
        print(intent.status, (intent.error_message or "")[:200], flush=True)
