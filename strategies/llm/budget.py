"""Daily token and cost budget per model deployment, kept in ``llm_usage/{deployment}-{day}``.

Usage is counted from the tokens the API reports, cost = tokens x the model's
price per million (:meth:`ModelSpec.cost`). The day is the UTC calendar day of
the wall clock (money is spent now, whatever as-of time a backtest runs at).

* At ``alert_threshold`` (a fraction, default 0.8) of either limit, a warning
  is logged once and recorded in the usage document (``alerted_at``, ``alerts``).
* Past a limit the model is over budget: the trader switches to the cheapest
  model of its chain, or, if that is over too, writes a ``skipped`` intent
  (:func:`plan_models`).

Updates are read-modify-write under a per-document lock: the traders of one
process (the strategy step runs them in threads) never lose each other's
counts. The read is the one the trader made just before asking (:class:`Seen`)
unless another thread of this process has written the document since, in
which case it is read again. Two processes writing the same day's document at
the same instant could lose a count; the pipeline runs one strategy step at a time.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass, field
from datetime import datetime

from bus import paths
from bus.journal import Attempt, BudgetUsage
from bus.store import Store
from strategies.llm.config import ModelSpec

log = logging.getLogger(__name__)
_locks: dict[str, threading.Lock] = {}
_locks_guard = threading.Lock()
_versions: dict[str, int] = {}  # writes of each usage document by this process


@dataclass
class Seen:
    """A usage document as read, and this process's write count of it before the read."""

    usage: BudgetUsage | None
    version: int


def _lock(path: str) -> threading.Lock:
    with _locks_guard:
        return _locks.setdefault(path, threading.Lock())


def day_of(now: datetime) -> str:
    """The budget day of ``now``: ``YYYY-MM-DD`` in UTC."""
    return now.date().isoformat()


def used_fraction(usage: BudgetUsage | None, model: ModelSpec) -> float:
    """The larger of tokens / token limit and cost / cost limit (0 without limits or usage)."""
    if usage is None:
        return 0.0
    parts = [0.0]
    if model.daily_token_budget:
        parts.append(usage.total_tokens / model.daily_token_budget)
    if model.daily_cost_budget:
        parts.append(usage.cost_usd / model.daily_cost_budget)
    return max(parts)


def over_budget(usage: BudgetUsage | None, model: ModelSpec) -> str | None:
    """Why ``model`` is past its daily budget, or None when it is not."""
    if usage is None:
        return None
    if model.daily_token_budget and usage.total_tokens >= model.daily_token_budget:
        return f"{model.id}: {usage.total_tokens} tokens used on {usage.day}, daily budget {model.daily_token_budget}"
    if model.daily_cost_budget and usage.cost_usd >= model.daily_cost_budget:
        return (f"{model.id}: {usage.cost_usd:.4f} USD spent on {usage.day}, "
                f"daily budget {model.daily_cost_budget:.4f} USD")
    return None


def usage_paths(models: list[ModelSpec], now: datetime) -> dict[str, str]:
    """Model id -> today's usage document path."""
    day = day_of(now)
    return {m.id: paths.llm_usage(m.id, day) for m in models}


def versions(paths_: list[str]) -> dict[str, int]:
    """This process's write counts of ``paths_``: take them *before* reading the documents."""
    with _locks_guard:
        return {p: _versions.get(p, 0) for p in paths_}


def seen_usages(docs: dict[str, dict | None], models: list[ModelSpec], now: datetime,
                before: dict[str, int]) -> dict[str, Seen]:
    """Model id -> :class:`Seen`, from documents read after ``before = versions(...)``."""
    out = {}
    for mid, path in usage_paths(models, now).items():
        raw = docs.get(path)
        out[mid] = Seen(BudgetUsage.model_validate(raw) if raw else None, before.get(path, 0))
    return out


@dataclass
class Plan:
    """Which models to ask, in order; the ones passed over; why nothing can be asked (``skipped``)."""

    models: list[ModelSpec] = field(default_factory=list)
    passed_over: list[Attempt] = field(default_factory=list)
    skipped: str | None = None


def plan_models(chain: list[ModelSpec], usages: dict[str, BudgetUsage | None]) -> Plan:
    """The models to ask, given today's usage.

    Primary within budget: the chain, less any fallback that is over budget.
    Primary over budget: only the cheapest model of the chain (lowest input +
    output price), if it is within budget; otherwise nothing, with the reason.
    """
    out = Plan()
    if not chain:
        out.skipped = "no model to ask"
        return out
    primary_over = over_budget(usages.get(chain[0].id), chain[0])
    if primary_over:
        cheapest = min(chain, key=lambda m: m.unit_price)
        cheap_over = over_budget(usages.get(cheapest.id), cheapest)
        out.passed_over.append(Attempt(model=chain[0].id, outcome="over_budget",
                                       error=primary_over + ("" if cheap_over else f"; switching to the cheapest "
                                                             f"model of the chain, {cheapest.id}")))
        if cheap_over:
            if cheapest.id != chain[0].id:
                out.passed_over.append(Attempt(model=cheapest.id, outcome="over_budget", error=cheap_over))
            out.skipped = f"daily LLM budget exhausted: {primary_over}; cheapest model {cheap_over}"
            return out
        out.models = [cheapest]
        return out
    for m in chain:
        why = over_budget(usages.get(m.id), m)
        if why:
            out.passed_over.append(Attempt(model=m.id, outcome="over_budget", error=why))
        else:
            out.models.append(m)
    return out


def record_usage(store: Store, model: ModelSpec, now: datetime, prompt_tokens: int, completion_tokens: int,
                 alert_threshold: float, seen: Seen | None = None) -> tuple[Seen, bool]:
    """Add one request's reported tokens (and their cost) to today's usage of ``model``.

    Args:
        seen: the document as the caller read it; read again when this process wrote it since.

    Returns:
        (the usage after the update, as a :class:`Seen` to pass to the next call;
        True when this request crossed the alert threshold).

    Raises:
        bus.store.StoreError: the store is unreachable.
    """
    day = day_of(now)
    path = paths.llm_usage(model.id, day)
    with _lock(path):
        if (seen is not None and seen.version == versions([path])[path]
                and (seen.usage is None or seen.usage.day == day)):
            u = seen.usage.model_copy(deep=True) if seen.usage else None
        else:
            raw = store.get(path)
            u = BudgetUsage.model_validate(raw) if raw else None
        if u is None:
            u = BudgetUsage(deployment=model.id, day=day, updated_at=now, token_limit=model.daily_token_budget,
                            cost_limit_usd=model.daily_cost_budget, alert_threshold=alert_threshold)
        u.requests += 1
        u.prompt_tokens += int(prompt_tokens)
        u.completion_tokens += int(completion_tokens)
        u.total_tokens += int(prompt_tokens) + int(completion_tokens)
        u.cost_usd += model.cost(prompt_tokens, completion_tokens)
        u.updated_at = now
        u.token_limit, u.cost_limit_usd = model.daily_token_budget, model.daily_cost_budget
        u.alert_threshold = alert_threshold
        frac = used_fraction(u, model)
        crossed = False
        if frac >= alert_threshold and u.alerted_at is None:
            crossed = True
            u.alerted_at = now
            msg = (f"{now.isoformat()}: {model.id} reached {frac:.0%} of its daily budget "
                   f"({u.total_tokens} tokens, {u.cost_usd:.4f} USD; alert at {alert_threshold:.0%})")
            u.alerts.append(msg)
            log.warning("LLM budget alert: %s", msg)
        if over_budget(u, model) and u.exhausted_at is None:
            u.exhausted_at = now
            msg = f"{now.isoformat()}: {over_budget(u, model)}: budget exhausted"
            u.alerts.append(msg)
            log.warning("LLM budget exhausted: %s", msg)
        store.set(path, u.to_store())
        with _locks_guard:
            _versions[path] = _versions.get(path, 0) + 1
            version = _versions[path]
    return Seen(u, version), crossed
