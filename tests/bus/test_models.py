"""Document models: exactly one size, aware times, unknown fields refused, schema names."""

from __future__ import annotations

from datetime import datetime, timezone

import pytest
from pydantic import ValidationError

from bus.models import Execution, Intent, OpenOrder, PortfolioSnapshot, StrategyConfig, TargetPosition, TradingConfig


def test_target_needs_exactly_one_size():
    assert TargetPosition(symbol="SPY", weight=0.5).weight == 0.5
    with pytest.raises(ValidationError, match="exactly one of quantity, weight, notional"):
        TargetPosition(symbol="SPY")
    with pytest.raises(ValidationError, match="exactly one"):
        TargetPosition(symbol="SPY", weight=0.5, quantity=3)


def test_naive_times_are_refused_and_aware_ones_become_utc():
    with pytest.raises(ValidationError, match="should have timezone info"):
        Intent(intent_id="i", strategy_id="s", updated_at=datetime(2024, 1, 1), as_of=datetime(2024, 1, 1),
               status="success")
    from zoneinfo import ZoneInfo
    t = datetime(2024, 1, 2, 16, 0, tzinfo=ZoneInfo("America/New_York"))
    i = Intent(intent_id="i", strategy_id="s", updated_at=t, as_of=t, status="success")
    assert i.as_of == datetime(2024, 1, 2, 21, 0, tzinfo=timezone.utc) and i.as_of.tzinfo == timezone.utc


def test_unknown_fields_are_refused():
    with pytest.raises(ValidationError, match="tradingEnabledd"):
        TradingConfig.model_validate({"tradingEnabledd": False})


def test_field_names_follow_the_schema():
    assert {"tradingEnabled", "mode", "allocation_method", "conflict_policy"} <= set(TradingConfig.model_fields)
    assert {"name", "description", "enabled", "kind", "author", "capital_allocation",
            "risk_parameters"} <= set(StrategyConfig.model_fields)
    assert {"updated_at", "status", "error_message", "metadata", "target_positions",
            "source"} <= set(Intent.model_fields)
    assert {"symbol", "secType", "exchange", "currency", "contract_details"} <= set(TargetPosition.model_fields)
    assert {"updated_at", "net_liquidation", "available_funds", "holdings",
            "open_orders"} <= set(PortfolioSnapshot.model_fields)
    assert {"orderId", "symbol", "action", "totalQuantity", "lmtPrice"} <= set(OpenOrder.model_fields)
    assert {"executed_at", "trigger", "dry_run", "status", "summary", "context", "decision",
            "orders_placed"} <= set(Execution.model_fields)


def test_open_order_signed_quantity():
    now = datetime.now(timezone.utc)
    sell = OpenOrder(orderId="1", client_order_id="c", symbol="SPY", action="SELL", totalQuantity=5, created_at=now)
    assert sell.signed_quantity == -5
