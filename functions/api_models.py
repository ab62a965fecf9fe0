"""The read API's request and response models (pydantic): the OpenAPI document is generated from them.

Amounts are in the account's base currency; returns and drawdowns are fractions (0.05 = 5 %);
quantities are signed units; times are ISO-8601 UTC.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator


class Open(BaseModel):
    """A model that keeps fields it does not name (documents grow fields; the API passes them on)."""

    model_config = ConfigDict(extra="allow")


class PageQuery(BaseModel):
    """``?limit=&cursor=``: at most ``limit`` items after the item whose id is ``cursor``."""

    model_config = ConfigDict(extra="forbid")
    limit: int = Field(50, ge=1, le=500)
    cursor: str | None = Field(None, max_length=200, pattern=r"^[A-Za-z0-9_\-:.]+$")

    @field_validator("cursor")
    @classmethod
    def _not_reserved(cls, v: str | None) -> str | None:
        if v is not None and (v in (".", "..") or (v.startswith("__") and v.endswith("__"))):
            raise ValueError("is not an id of this API (Firestore reserves it)")
        return v


class LeaderRow(Open):
    rank: int
    strategy_id: str
    kind: str
    equity: float
    total_return: float | None = None
    sharpe: float | None = None
    max_drawdown: float | None = None
    win_rate: float | None = None
    trades: int = 0
    model: str | None = Field(None, description="LLM trader: the model of its latest answered decision")
    decisions: int | None = Field(None, description="LLM trader: decisions counted (its latest, at most 200)")
    tokens: int | None = Field(None, description="LLM trader: prompt + completion tokens of those decisions")
    cost_usd: float | None = Field(None, description="LLM trader: US dollars those decisions cost")
    failure_rate: float | None = Field(None, description="LLM trader: fraction of those decisions that errored")


class Leaderboard(BaseModel):
    rows: list[LeaderRow]


class Account(BaseModel):
    """Account totals: NAV and cash now, the capital the books started with, and the return since inception."""

    mode: str
    as_of: str | None = None
    net_liquidation: float | None = None
    cash: float | None = None
    holdings: int = 0
    starting_capital: float = Field(0.0, description="NAV at the account's first snapshot (before any order)")
    return_since_inception: float | None = Field(None, description="NAV / starting_capital − 1 (a fraction)")
    books_equity: float = 0.0
    external_equity: float | None = None


class PositionRow(BaseModel):
    symbol: str
    held: float = Field(description="units the broker held at the last snapshot")
    target: float | None = Field(None, description="units the last execution aimed for (None: no target)")
    price: float | None = None
    by_strategy: dict[str, float] = Field(default_factory=dict, description="strategy id -> booked units")


class Positions(BaseModel):
    snapshot_id: str | None = None
    execution_id: str | None = None
    rows: list[PositionRow]


class TradeRow(Open):
    trade_id: str
    strategy_id: str
    symbol: str
    quantity: float
    realized_pnl: float | None = None


class Trades(BaseModel):
    items: list[TradeRow]
    next_cursor: str | None = None


class ExecutionHeader(Open):
    execution_id: str
    executed_at: str
    as_of: str
    status: str
    dry_run: bool = False
    summary: str = ""


class Executions(BaseModel):
    items: list[ExecutionHeader]
    next_cursor: str | None = None


class ExecutionDoc(Open):
    execution_id: str
    status: str
    decision: dict[str, Any] = Field(default_factory=dict)
    orders_placed: list[dict[str, Any]] = Field(default_factory=list)


class StrategyRow(Open):
    strategy_id: str
    name: str = ""
    kind: str = "classic"
    enabled: bool = True
    state: str = "active"
    capital_allocation: float = 0.0
    equity: float | None = None


class Strategies(BaseModel):
    items: list[StrategyRow]


class EquityPointRow(Open):
    date: str
    equity: float


class EquityCurve(BaseModel):
    strategy_id: str
    points: list[EquityPointRow]


class JournalRow(Open):
    decision_id: str


class Journal(BaseModel):
    strategy_id: str
    items: list[JournalRow]
    next_cursor: str | None = None


class StateBody(BaseModel):
    """``POST /api/strategies/{id}/state``: the lifecycle action, why, and who."""

    model_config = ConfigDict(extra="forbid")
    action: Literal["pause", "resume", "isolate", "retire"]
    reason: str = Field(min_length=1, max_length=500)
    by: str = Field(min_length=1, max_length=100)


class StateChangeOut(Open):
    change_id: str
    strategy_id: str
    before: str
    after: str


class ErrorBody(Open):
    error: dict[str, Any]
