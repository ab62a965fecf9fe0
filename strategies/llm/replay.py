"""``python main.py journal replay DECISION_ID``: a stored reply checked again against today's checks.

The journal entry keeps the raw reply, the prices the decision saw (``market_refs``), the
trader's equity and the margin of each position it held (``held_margins``). The reply is
parsed again (:func:`strategies.llm.decisions.parse_reply`) and its decisions put through
today's pre-trade checks (:func:`strategies.llm.checks.check_decisions`) with the trader's
current risk configuration. No model is asked and nothing is written.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from bus import paths
from bus.journal import JournalEntry, Rejection
from bus.models import StrategyConfig
from bus.store import Store
from strategies.llm.checks import check_decisions
from strategies.llm.config import trader_spec
from strategies.llm.decisions import MalformedReply, parse_reply


@dataclass
class Revalidation:
    """A stored reply checked again: ``error`` when it no longer parses; the indexes accepted and
    the rejections today, next to what was recorded; ``same`` when both verdicts agree."""

    entry: JournalEntry
    error: str | None = None
    accepted: list[int] = field(default_factory=list)
    rejections: list[Rejection] = field(default_factory=list)

    @property
    def same(self) -> bool:
        """Today's verdict equals the recorded one (accepted indexes and each rejection's rule)."""
        if self.error is not None:
            return self.entry.status != "success"
        return (self.accepted == sorted(self.entry.accepted)
                and [(r.index, r.rule) for r in self.rejections] == [(r.index, r.rule) for r in self.entry.rejections])


def find_entry(store: Store, decision_id: str, trader_ids: list[str]) -> JournalEntry | None:
    """The journal entry ``decision_id`` of one of ``trader_ids`` (one ``get_all``), or None."""
    docs = store.get_all([paths.journal(t, decision_id) for t in trader_ids])
    for raw in docs.values():
        if raw:
            return JournalEntry.model_validate(raw)
    return None


def revalidate(entry: JournalEntry, config: StrategyConfig) -> Revalidation:
    """Parse the entry's raw reply and check its decisions with today's configuration of the trader.

    Raises:
        strategies.llm.config.LLMConfigError: ``config`` has no valid ``llm`` block.
    """
    spec = trader_spec(config)
    out = Revalidation(entry)
    try:
        reply = parse_reply(entry.raw_response)
    except MalformedReply as exc:
        out.error = str(exc)
        return out
    prices = {m.symbol: m.price for m in entry.market_refs if m.price is not None}
    account = {"equity": entry.equity,
               "positions": [{"symbol": s, "margin": m} for s, m in sorted(entry.held_margins.items())]}
    checked = check_decisions(reply.decisions, spec.risk, list(config.universe), prices, account)
    out.accepted, out.rejections = sorted(checked.accepted), checked.rejections
    return out
