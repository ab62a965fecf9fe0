"""Document paths of the bus (see the table in DESIGN.md). Pure string helpers."""

from __future__ import annotations

TRADING_CONFIG = "config/trading"


def strategy(strategy_id: str) -> str:
    """``strategies/{id}``: the strategy's configuration."""
    return f"strategies/{strategy_id}"


def intent(strategy_id: str, intent_id: str = "latest") -> str:
    """``strategies/{id}/intent/{intent_id}``; ``latest`` by default."""
    return f"strategies/{strategy_id}/intent/{intent_id}"


def state_changes(strategy_id: str) -> str:
    """``strategies/{id}/state_changes``: the audit records of a strategy's lifecycle changes (the collection)."""
    return f"strategies/{strategy_id}/state_changes"


def state_change(strategy_id: str, change_id: str) -> str:
    """``strategies/{id}/state_changes/{change_id}``: one lifecycle change (who, when, why, before/after)."""
    return f"strategies/{strategy_id}/state_changes/{change_id}"


def book(strategy_id: str) -> str:
    """``strategies/{id}/book/latest``: the strategy's virtual sub-account."""
    return f"strategies/{strategy_id}/book/latest"


def portfolio(mode: str, snapshot_id: str = "latest") -> str:
    """``positions/{mode}/portfolio/{snapshot_id}``; ``latest`` by default."""
    return f"positions/{mode}/portfolio/{snapshot_id}"


def portfolios(mode: str) -> str:
    """``positions/{mode}/portfolio``: the account's snapshots (the collection: ``latest`` and the immutable copies)."""
    return f"positions/{mode}/portfolio"


def account_state(mode: str) -> str:
    """``positions/{mode}``: the Commander's memory of the account (previous close NAV)."""
    return f"positions/{mode}"


def equity_point(strategy_id: str, day: str) -> str:
    """``strategies/{id}/equity/{YYYY-MM-DD}``: one daily equity point."""
    return f"strategies/{strategy_id}/equity/{day}"


def trade(strategy_id: str, trade_id: str) -> str:
    """``strategies/{id}/trades/{trade_id}``: one closed trade."""
    return f"strategies/{strategy_id}/trades/{trade_id}"


def equity_points(strategy_id: str) -> str:
    """``strategies/{id}/equity``: a strategy's daily equity points (the collection)."""
    return f"strategies/{strategy_id}/equity"


def trades(strategy_id: str) -> str:
    """``strategies/{id}/trades``: a strategy's closed trades (the collection)."""
    return f"strategies/{strategy_id}/trades"


def journal(strategy_id: str, decision_id: str) -> str:
    """``strategies/{id}/journal/{decision_id}``: one LLM decision, whole."""
    return f"strategies/{strategy_id}/journal/{decision_id}"


def llm_state(strategy_id: str) -> str:
    """``strategies/{id}/llm/state``: an LLM trader's invocation count, last decision, exit plans."""
    return f"strategies/{strategy_id}/llm/state"


def llm_usage(deployment: str, day: str) -> str:
    """``llm_usage/{deployment}-{YYYY-MM-DD}``: one model's token and cost usage on one UTC day."""
    return f"llm_usage/{deployment}-{day}"


def llm_cache(digest: str) -> str:
    """``llm_cache/{digest}``: a validated LLM reply for one request digest."""
    return f"llm_cache/{digest}"


def execution(execution_id: str) -> str:
    """``executions/{execution_id}``: the audit record of one Commander run."""
    return f"executions/{execution_id}"


def execution_part(execution_id: str, revision: str, field: str, index: int) -> str:
    """``executions/{execution_id}/parts/{revision}-{field}.{index:04d}``: chunk ``index`` of a large field of
    the record written as ``revision``."""
    return f"executions/{execution_id}/parts/{revision}-{field}.{index:04d}"


def lock(mode: str) -> str:
    """``locks/commander-{mode}``: the Commander's lease on one account."""
    return f"locks/commander-{mode}"


def sim_account(account: str) -> str:
    """``sim_accounts/{account}``: the paper broker's persisted account."""
    return f"sim_accounts/{account}"


def sim_order(account: str, client_order_id: str) -> str:
    """``sim_accounts/{account}/orders/{client_order_id}``: one paper order and its fill."""
    return f"sim_accounts/{account}/orders/{client_order_id}"


#: ``orders``: the order lifecycle records (the collection).
ORDERS = "orders"


def order(client_order_id: str) -> str:
    """``orders/{client_order_id}``: one order's lifecycle, written ahead of the venue call."""
    return f"{ORDERS}/{client_order_id}"


#: ``bar_series``: the bar cache in the store (the collection), one document per series.
BAR_SERIES = "bar_series"


def bar_series_id(source: str, symbol: str, timeframe: str) -> str:
    """The document id of one cached bar series: ``{source}:{symbol}:{timeframe}`` (``source`` is a
    ``market.yaml`` source name, ``timeframe`` ``1h`` / ``4h`` / ``1d``, or ``funding``)."""
    return f"{source}:{symbol}:{timeframe}"


def bar_series(source: str, symbol: str, timeframe: str) -> str:
    """``bar_series/{source}:{symbol}:{timeframe}``: a cached series' metadata (first/last open, months)."""
    return f"{BAR_SERIES}/{bar_series_id(source, symbol, timeframe)}"


def bar_month(source: str, symbol: str, timeframe: str, month: str) -> str:
    """``bar_series/{source}:{symbol}:{timeframe}/months/{YYYY-MM}``: one calendar month of a series' bars."""
    return f"{bar_series(source, symbol, timeframe)}/months/{month}"
