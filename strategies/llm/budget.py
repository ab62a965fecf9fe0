"""Daily token and cost budget per model deployment, kept in ``llm_usage/{deployment}-{day}``.

The budget holds across processes: every change to a usage document is one
atomic write of Firestore ``Increment`` transforms (:meth:`bus.store.Store.increment`)
that returns the counters as they stand after it, so concurrent traders,
threads or processes never lose a count, and no read-modify-write (nor a
transaction, which the emulator resolves badly under contention: the
three-process race test saw commits fail after 50 attempts) is needed.

* Before each request, :func:`reserve` books the request's worst case - a
  strict upper bound of the prompt's tokens (:func:`strategies.llm.tokens.upper_bound`)
  plus ``max_tokens``, and its cost at the model's prices - against what is left
  (limit - used - reserved). When it does not fit, the request is not sent: no
  request can push spend past a limit.
* After the reply, :func:`settle` replaces the reservation by what the API
  reported (``usage``), or, for a reply without ``usage``, by a tokenizer
  estimate (:func:`strategies.llm.tokens.estimate`), counted in
  ``estimated_requests`` / ``estimated_tokens``. A request that got no reply
  (timeout, HTTP error) releases its reservation. A model without a daily
  limit reserves nothing and cannot cross anything: its charge (:func:`charge`)
  is written in the decision's journal commit, atomically with the journal entry.
* At ``alert_threshold`` (a fraction, default 0.8) of either limit a warning is
  logged once and recorded in the usage document (``alerted_at``, ``alerts``);
  the decision's journal entry carries it into the run's records.
* Past a limit the model is over budget: the trader switches to the cheapest
  model of its chain, or, if that is over too, writes a ``skipped`` intent
  (:func:`plan_models`).

The day is the UTC calendar day of the wall clock (money is spent now, whatever
as-of time a backtest runs at). A process that dies between :func:`reserve` and
:func:`settle` leaves its reservation booked until the day ends (fail closed).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from bus import paths
from bus.journal import Attempt, BudgetUsage
from bus.store import Increment, Store
from strategies.llm.config import ModelSpec

log = logging.getLogger(__name__)


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


def usages(docs: dict[str, dict | None], models: list[ModelSpec], now: datetime) -> dict[str, BudgetUsage | None]:
    """Model id -> today's usage (None when none yet), from documents read by path."""
    out: dict[str, BudgetUsage | None] = {}
    for mid, path in usage_paths(models, now).items():
        raw = docs.get(path)
        out[mid] = BudgetUsage.model_validate(raw) if raw else None
    return out


@dataclass
class Plan:
    """Which models to ask, in order; the ones passed over; why nothing can be asked (``skipped``)."""

    models: list[ModelSpec] = field(default_factory=list)
    passed_over: list[Attempt] = field(default_factory=list)
    skipped: str | None = None


def plan_models(chain: list[ModelSpec], usage: dict[str, BudgetUsage | None]) -> Plan:
    """The models to ask, given today's usage.

    Primary within budget: the chain, less any fallback that is over budget.
    Primary over budget: only the cheapest model of the chain (lowest input +
    output price), if it is within budget; otherwise nothing, with the reason.
    """
    out = Plan()
    if not chain:
        out.skipped = "no model to ask"
        return out
    primary_over = over_budget(usage.get(chain[0].id), chain[0])
    if primary_over:
        cheapest = min(chain, key=lambda m: m.unit_price)
        cheap_over = over_budget(usage.get(cheapest.id), cheapest)
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
        why = over_budget(usage.get(m.id), m)
        if why:
            out.passed_over.append(Attempt(model=m.id, outcome="over_budget", error=why))
        else:
            out.models.append(m)
    return out


@dataclass(frozen=True)
class Reservation:
    """A request's worst case booked in today's usage document (tokens; US dollars)."""

    path: str
    model: ModelSpec
    tokens: int
    cost_usd: float


def _base_fields(model: ModelSpec, day: str, now: datetime, alert_threshold: float) -> dict[str, Any]:
    return {"deployment": model.id, "day": day, "updated_at": now, "token_limit": model.daily_token_budget,
            "cost_limit_usd": model.daily_cost_budget, "alert_threshold": alert_threshold}


def reserve(store: Store, model: ModelSpec, now: datetime, prompt_bound: int, max_tokens: int,
            alert_threshold: float) -> tuple[Reservation | None, str | None]:
    """Book the worst case of one request (``prompt_bound`` + ``max_tokens`` tokens) against the daily limits.

    One atomic write adds the worst case to ``reserved_tokens`` / ``reserved_cost_usd``
    and returns the counters as they stand right after it; when used + reserved then
    passes a limit, a second write takes the reservation back and the request is refused.
    So used + reserved never stays above a limit, and spend (at most each request's
    reservation) never passes it. Two requests reserving at once may both be refused
    when only one would have fitted (fail closed).

    Returns (the reservation, None), or (None, why it does not fit). A model without
    limits books nothing (a zero reservation, no store round trip).

    Raises:
        bus.store.StoreError: the store is unreachable.
    """
    day = day_of(now)
    path = paths.llm_usage(model.id, day)
    if not (model.daily_token_budget or model.daily_cost_budget):
        return Reservation(path, model, 0, 0.0), None
    tokens = int(prompt_bound) + int(max_tokens)
    cost = model.cost(prompt_bound, max_tokens)
    got = store.increment(path, {"reserved_tokens": tokens, "reserved_cost_usd": cost, "total_tokens": 0,
                                 "cost_usd": 0.0}, _base_fields(model, day, now, alert_threshold))
    used, reserved = int(got["total_tokens"]), int(got["reserved_tokens"])
    spent, reserved_cost = float(got["cost_usd"]), float(got["reserved_cost_usd"])
    why = None
    if model.daily_token_budget and used + reserved > model.daily_token_budget:
        why = (f"{model.id}: worst case {tokens} tokens (prompt at most {prompt_bound} + max_tokens "
               f"{max_tokens}) does not fit: {used} used + {reserved - tokens} reserved of "
               f"{model.daily_token_budget} on {day}")
    elif model.daily_cost_budget and spent + reserved_cost > model.daily_cost_budget:
        why = (f"{model.id}: worst case {cost:.6f} USD does not fit: {spent:.6f} spent + "
               f"{reserved_cost - cost:.6f} reserved of {model.daily_cost_budget:.6f} USD on {day}")
    resv = Reservation(path, model, tokens, cost)
    if why:
        release(store, resv)
        return None, why
    return resv, None


def release(store: Store, reservation: Reservation) -> None:
    """Give back a reservation whose request got no reply (nothing was billed).

    Raises:
        bus.store.StoreError: the store is unreachable.
    """
    if reservation.tokens:
        store.increment(reservation.path, {"reserved_tokens": -reservation.tokens,
                                           "reserved_cost_usd": -reservation.cost_usd})


def charge(model: ModelSpec, now: datetime, prompt_tokens: int, completion_tokens: int, alert_threshold: float,
           reservation: Reservation | None = None, estimated: bool = False) -> Increment:
    """The counter update that charges one request to today's usage of ``model``, releasing its reservation:
    (usage document path, deltas for ``Increment`` transforms, fields to merge), for :meth:`Store.increment`
    or a :meth:`Store.commit` (a model without a daily limit is charged in its decision's journal commit).

    Args:
        prompt_tokens, completion_tokens: the request's tokens (as reported, or a tokenizer estimate).
        estimated: the tokens are a tokenizer estimate (the reply had no ``usage``).
    """
    day = day_of(now)
    path = reservation.path if reservation else paths.llm_usage(model.id, day)
    pt, ct = int(prompt_tokens), int(completion_tokens)
    inc: dict[str, float] = {"requests": 1, "prompt_tokens": pt, "completion_tokens": ct, "total_tokens": pt + ct,
                             "cost_usd": model.cost(pt, ct), "reserved_tokens": 0, "reserved_cost_usd": 0.0,
                             "estimated_requests": 0, "estimated_tokens": 0}
    if reservation and reservation.tokens:
        inc.update(reserved_tokens=-reservation.tokens, reserved_cost_usd=-reservation.cost_usd)
    if estimated:
        inc.update(estimated_requests=1, estimated_tokens=pt + ct)
    return path, inc, _base_fields(model, day, now, alert_threshold)


def settle(store: Store, model: ModelSpec, now: datetime, prompt_tokens: int, completion_tokens: int,
           alert_threshold: float, reservation: Reservation | None = None,
           estimated: bool = False) -> tuple[BudgetUsage, bool]:
    """Charge one request's tokens (and their cost) to today's usage of ``model``, releasing its reservation.

    One atomic write of ``Increment`` transforms; the request whose charge takes usage
    across the alert threshold (or a limit) is the only one that sees the crossing, and
    records it with a second write (``alerted_at`` / ``exhausted_at``, a line in ``alerts``).

    Args:
        estimated: the tokens are a tokenizer estimate (the reply had no ``usage``).

    Returns:
        (the day's counters after this charge - ``alerts`` holds only what this charge
        recorded; True when this request crossed the alert threshold).

    Raises:
        bus.store.StoreError: the store is unreachable.
    """
    day = day_of(now)
    pt, ct = int(prompt_tokens), int(completion_tokens)
    cost = model.cost(pt, ct)
    path, inc, base = charge(model, now, pt, ct, alert_threshold, reservation, estimated)
    got = store.increment(path, inc, base)
    after = BudgetUsage.model_validate({
        "deployment": model.id, "day": day, "updated_at": now, "token_limit": model.daily_token_budget,
        "cost_limit_usd": model.daily_cost_budget, "alert_threshold": alert_threshold,
        **{k: (float(v) if k.endswith("usd") else int(v)) for k, v in got.items()}})
    before = after.model_copy(update={"total_tokens": after.total_tokens - pt - ct, "cost_usd": after.cost_usd - cost})
    fields: dict[str, Any] = {}
    frac, was = used_fraction(after, model), used_fraction(before, model)
    crossed = was < alert_threshold <= frac
    if crossed:
        fields["alerted_at"] = after.alerted_at = now
        after.alerts.append(f"{now.isoformat()}: {model.id} reached {frac:.0%} of its daily budget "
                            f"({after.total_tokens} tokens, {after.cost_usd:.4f} USD; alert at {alert_threshold:.0%})")
        log.warning("LLM budget alert: %s", after.alerts[-1])
    over = over_budget(after, model)
    if over and not over_budget(before, model):
        fields["exhausted_at"] = after.exhausted_at = now
        after.alerts.append(f"{now.isoformat()}: {over}: budget exhausted")
        log.warning("LLM budget exhausted: %s", after.alerts[-1])
    if fields:
        store.increment(path, {}, fields, {"alerts": list(after.alerts)})
    return after, crossed
