"""Store paths of the LLM traders' documents (shapes in :mod:`bus.journal`). Pure string helpers."""

from __future__ import annotations


def journal(strategy_id: str, decision_id: str) -> str:
    """``strategies/{id}/journal/{decision_id}``: one decision, whole."""
    return f"strategies/{strategy_id}/journal/{decision_id}"


def journal_collection(strategy_id: str) -> str:
    """``strategies/{id}/journal``: every decision of one trader."""
    return f"strategies/{strategy_id}/journal"


def state(strategy_id: str) -> str:
    """``strategies/{id}/llm/state``: invocation count, last decision, exit plans."""
    return f"strategies/{strategy_id}/llm/state"


def trades(strategy_id: str) -> str:
    """``strategies/{id}/trades``: the closed trades the Commander books (read for the performance view)."""
    return f"strategies/{strategy_id}/trades"


def usage(deployment: str, day: str) -> str:
    """``llm_usage/{deployment}-{YYYY-MM-DD}``: one model's usage on one UTC day."""
    return f"llm_usage/{deployment}-{day}"


def cache(digest: str) -> str:
    """``llm_cache/{digest}``: a validated reply for one request digest."""
    return f"llm_cache/{digest}"
