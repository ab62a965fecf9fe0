"""Step 2: classify intents as fresh, stale, missing, errored or skipped."""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from bus.models import Intent, StrategyConfig, TradingConfig


@dataclass
class Classification:
    """``fresh`` intents are used; every other strategy keeps its current book."""

    fresh: dict[str, Intent] = field(default_factory=dict)
    stale: list[str] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)
    errored: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    reasons: dict[str, str] = field(default_factory=dict)


def classify(config: TradingConfig, strategies: dict[str, StrategyConfig], intents: dict[str, Intent | None],
             as_of: datetime, known: Collection[str] | None = None) -> Classification:
    """Sort each enabled strategy's latest intent.

    Stale: the intent's ``as_of`` is older than the strategy's
    ``max_intent_age_seconds`` (or the config default) before the run's as-of,
    or later than it (an intent from the future of this run cannot be used).

    Args:
        known: the symbols the venue gave a spec or a quote for; a fresh intent naming any other
            symbol is ``errored`` ("unknown instrument"), so its strategy keeps its book. None: not checked.
    """
    out = Classification()
    for sid in sorted(strategies):
        intent = intents.get(sid)
        if intent is None:
            out.missing.append(sid)
            out.reasons[sid] = "no intent"
            continue
        if intent.status == "error":
            out.errored.append(sid)
            out.reasons[sid] = intent.error_message or "error"
            continue
        if intent.status == "skipped":
            out.skipped.append(sid)
            out.reasons[sid] = intent.error_message or "skipped"
            continue
        max_age = strategies[sid].max_intent_age_seconds or config.default_max_intent_age_seconds
        age = as_of - intent.as_of
        if age > timedelta(seconds=max_age) or age < timedelta(0):
            out.stale.append(sid)
            out.reasons[sid] = f"intent as of {intent.as_of.isoformat()} is outside {max_age} s of the run"
            continue
        unknown = sorted({t.symbol for t in intent.target_positions} - set(known)) if known is not None else []
        if unknown:
            out.errored.append(sid)
            out.reasons[sid] = (f"unknown instrument(s) {', '.join(unknown)}: the venue gave no spec and no quote; "
                                f"the strategy keeps its book")
            continue
        out.fresh[sid] = intent
    return out
