"""Document paths of the bus (see the table in DESIGN.md). Pure string helpers."""

from __future__ import annotations

TRADING_CONFIG = "config/trading"


def strategy(strategy_id: str) -> str:
    """``strategies/{id}``: the strategy's configuration."""
    return f"strategies/{strategy_id}"


def intent(strategy_id: str, intent_id: str = "latest") -> str:
    """``strategies/{id}/intent/{intent_id}``; ``latest`` by default."""
    return f"strategies/{strategy_id}/intent/{intent_id}"


def book(strategy_id: str) -> str:
    """``strategies/{id}/book/latest``: the strategy's virtual sub-account."""
    return f"strategies/{strategy_id}/book/latest"


def portfolio(mode: str, snapshot_id: str = "latest") -> str:
    """``positions/{mode}/portfolio/{snapshot_id}``; ``latest`` by default."""
    return f"positions/{mode}/portfolio/{snapshot_id}"


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
