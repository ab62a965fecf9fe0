"""Step 2: classify intents as fresh, stale, missing, errored or skipped."""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping, Sequence
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


def union(lists: Iterable[Sequence[str]]) -> set[str]:
    """The symbols of all ``lists``; a list equal to the one before it (strategies often list the same
    universe in the same order) is compared, not hashed again."""
    out: set[str] = set()
    last: Sequence[str] | None = None
    for syms in lists:
        if last is None or syms != last:
            out.update(syms)
            last = syms
    return out


def classify(config: TradingConfig, strategies: dict[str, StrategyConfig], intents: dict[str, Intent | None],
             as_of: datetime, known: Collection[str] | None = None,
             symbols: Mapping[str, Sequence[str]] | None = None) -> Classification:
    """Sort each enabled strategy's latest intent.

    Stale: the intent's ``as_of`` is older than the strategy's
    ``max_intent_age_seconds`` (or the config default) before the run's as-of,
    or later than it (an intent from the future of this run cannot be used).

    Args:
        known: the symbols the venue gave a spec or a quote for; a fresh intent naming any other
            symbol is ``errored`` ("unknown instrument"), so its strategy keeps its book. None: not checked.
        symbols: strategy id -> the symbols of its intent's targets, when the caller already read them.
    """
    out = Classification()
    known_set = set(known) if known is not None else set()
    # One set over every read symbol: when the venue knows them all, no intent needs checking on its own.
    unknown_any = bool(union(symbols.values()) - known_set) if symbols is not None else True
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
        unknown: list[str] = []
        if known is not None and (unknown_any or symbols is None or sid not in symbols):
            syms = symbols.get(sid) if symbols is not None else None
            syms = syms if syms is not None else [t.symbol for t in intent.target_positions]
            unknown = sorted(set(syms) - known_set)
        if unknown:
            out.errored.append(sid)
            out.reasons[sid] = (f"unknown instrument(s) {', '.join(unknown)}: the venue gave no spec and no quote; "
                                f"the strategy keeps its book")
            continue
        out.fresh[sid] = intent
    return out
