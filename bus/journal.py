"""Documents of the LLM virtual traders: journal entries, daily budget usage, the digest cache, trader state.

Shapes only (pydantic, on :class:`bus.models.Doc`); the paths are built in
:mod:`bus.paths` (``journal``, ``llm_usage``, ``llm_cache``, ``llm_state``):

* :class:`JournalEntry` - ``strategies/{id}/journal/{decision_id}``: one decision, whole.
* :class:`BudgetUsage` - ``llm_usage/{deployment}-{YYYY-MM-DD}``: one model's tokens and cost on one UTC day.
* :class:`CacheEntry` - ``llm_cache/{digest}``: a validated model reply, reused for an identical request.
* :class:`TraderState` - ``strategies/{id}/llm/state``: the invocation count, the last decision and the
  exit plan of each open position.

Units: tokens are counts as the API reports them; costs are US dollars (model
providers bill in USD); latencies are milliseconds; prices are quote currency
per unit (USDT for the crypto perpetuals); ``notional`` is |quantity| x price in
quote currency; ``confidence`` is 0..100; ``leverage`` a multiple (3 = 3x).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import Field

from bus.models import Doc, TargetPosition

DecisionStatus = Literal["success", "error", "skipped"]
AttemptOutcome = Literal[
    "ok", "cache_hit", "malformed", "timeout", "rate_limited", "connection_error", "http_error",
    "no_api_key", "over_budget", "schema_unsupported", "refused", "truncated", "circuit_open", "not_recorded",
]


class Attempt(Doc):
    """One request to one model (or one reason a model was passed over).

    ``outcome`` says what happened; ``error`` the message (secrets removed);
    tokens are what the API reported for this request (0 when none).
    """

    model: str
    outcome: AttemptOutcome
    error: str | None = None
    latency_ms: float = 0.0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cost_usd: float = 0.0
    response_format: str | None = None
    max_tokens: int | None = Field(None, description="the request's max_tokens (a truncated reply's retry doubles it)")
    finish_reason: str | None = None
    refusal: str | None = Field(None, description="the model's refusal text (message.refusal), kept whole")
    usage_estimated: bool = Field(False, description="the reply had no usage: tokens are a tokenizer estimate")


class Rejection(Doc):
    """A decision the pre-trade checks refused: ``rule`` broken and why, with the numbers."""

    index: int = Field(description="position of the decision in the reply, from 0")
    symbol: str
    action: str
    rule: str
    reason: str


class BudgetNote(Doc):
    """Budget state of the model that answered, after this decision's usage.

    ``tokens_used`` / ``cost_used_usd`` are the day's totals; limits ``None`` mean unlimited.
    ``alert`` is True when this decision crossed the alert threshold.
    """

    deployment: str
    day: str
    tokens_used: int
    cost_used_usd: float
    token_limit: int | None = None
    cost_limit_usd: float | None = None
    alert: bool = False
    note: str | None = None


class MarketRef(Doc):
    """The bars and funding one symbol's context was computed from.

    ``series`` names the bundled 4h series used (``BTC-USDT-PERP`` is the
    perpetual, ``SOL-USDT`` spot); the 1d bars are its whole UTC days.
    ``bars_*`` count the bars the indicators were computed on; the close times
    are those of the first and last 4h bar shown and of the last day;
    ``funding_at`` is the last funding settlement shown. ``unavailable`` says
    why a symbol was left out (then the other fields are empty). Flat on
    purpose: every field of a document is indexed, and a journal entry is
    written at every decision.
    """

    symbol: str
    series: str | None = None
    price: float | None = None
    bars_4h: int | None = None
    bars_1d: int | None = None
    first_close_4h: datetime | None = None
    last_close_4h: datetime | None = None
    last_close_1d: datetime | None = None
    funding_at: datetime | None = None
    unavailable: str | None = None


class JournalEntry(Doc):
    """``strategies/{id}/journal/{decision_id}``: everything one decision saw, asked, got and did.

    Long texts (prompts, raw response, reasoning) are kept whole up to a size
    and otherwise summarised in place (head, tail and the sha256 of the whole),
    listed in ``summarised``, so no field is ever dropped and the document stays
    well under Firestore's 1 MiB limit.
    """

    decision_id: str
    strategy_id: str
    as_of: datetime
    created_at: datetime
    status: DecisionStatus
    error_message: str | None = None
    intent_id: str | None = None
    invocation: int = 0
    prompt_version: str
    templates: dict[str, str] = Field(default_factory=dict, description="role -> template file")
    prompt_digest: str
    request_digest: str | None = None
    model: str | None = Field(None, description="the model id that answered (None when none did)")
    model_name: str | None = None
    system_prompt: str
    user_prompt: str
    raw_response: str | None = None
    decisions: list[dict[str, Any]] = Field(default_factory=list)
    accepted: list[int] = Field(default_factory=list, description="indexes of the decisions that passed")
    rejections: list[Rejection] = Field(default_factory=list)
    target_positions: list[TargetPosition] = Field(default_factory=list)
    attempts: list[Attempt] = Field(default_factory=list)
    cache_hit: bool = False
    prompt_tokens: int = 0
    completion_tokens: int = 0
    total_tokens: int = 0
    cost_usd: float = 0.0
    latency_ms: float = Field(0.0, description="time spent waiting for models, all attempts")
    budget: BudgetNote | None = None
    market_refs: list[MarketRef] = Field(default_factory=list)
    book_ref: str | None = None
    equity: float | None = None
    held_margins: dict[str, float] = Field(
        default_factory=dict, description="symbol -> margin (quote currency) of each position held when deciding: "
        "with equity and market_refs' prices, what `journal replay` re-checks the reply against")
    summarised: list[str] = Field(default_factory=list)


class BudgetUsage(Doc):
    """``llm_usage/{deployment}-{day}``: one deployment's usage on one UTC day.

    Counted from the tokens the API reports, cost = tokens x the configured
    price per million. ``alerted_at`` is set once, when usage first reached
    ``alert_threshold`` of a limit; ``alerts`` keeps the messages.
    """

    deployment: str
    day: str
    updated_at: datetime
    requests: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    total_tokens: int = 0
    cost_usd: float = 0.0
    token_limit: int | None = None
    cost_limit_usd: float | None = None
    alert_threshold: float = 0.8
    alerted_at: datetime | None = None
    exhausted_at: datetime | None = None
    alerts: list[str] = Field(default_factory=list)
    reserved_tokens: int = Field(0, description="worst case (prompt bound + max_tokens) of the requests in flight")
    reserved_cost_usd: float = 0.0
    estimated_requests: int = Field(0, description="replies without usage, charged by a tokenizer estimate")
    estimated_tokens: int = 0


class CacheEntry(Doc):
    """``llm_cache/{digest}``: a reply that passed validation, for an identical request.

    ``digest`` = sha256 over the rendered prompt, the model name and its parameters
    (not the endpoint). Entries never expire (``expires_at`` is only read from old
    entries). The tokens are those the original request was billed; a hit costs nothing.
    """

    digest: str
    model: str
    model_name: str
    created_at: datetime
    expires_at: datetime | None = None
    content: str
    prompt_tokens: int = 0
    completion_tokens: int = 0
    decision_id: str | None = None


class PositionPlan(Doc):
    """The exit plan the trader gave when it opened a position (leverage a multiple, prices per unit)."""

    side: Literal["long", "short"]
    leverage: float = 1.0
    stop_loss: float | None = None
    take_profit: float | None = None
    invalidation_condition: str = ""
    confidence: float | None = None
    opened_at: datetime | None = None
    decision_id: str | None = None


class MemoItem(Doc):
    """One decision of a past reply as the prompt's memory shows it: ``price`` the symbol's price when it
    was decided (quote currency per unit), ``rejected`` the rule that refused it (None: accepted)."""

    symbol: str
    action: str
    notional: float | None = None
    quantity: float | None = None
    leverage: float | None = None
    price: float | None = None
    rejected: str | None = None


class DecisionMemo(Doc):
    """One past decision of a trader, compact, for the prompt's memory (no ids: a replayed backtest
    renders the same prompt). ``note`` says why there was no answer (status ``error`` / ``skipped``)."""

    as_of: datetime
    status: DecisionStatus
    model: str | None = None
    items: list[MemoItem] = Field(default_factory=list)
    note: str | None = None


class TraderState(Doc):
    """``strategies/{id}/llm/state``: what a trader remembers between runs.

    ``invocations`` counts distinct as-of times the model was consulted;
    ``recent_decisions`` the ids of the latest journal entries, oldest first
    (at most 200), so ``journal --last N`` reads only what it shows. ``memory``
    keeps the latest decisions for the prompt, ``recent_statuses`` the failure-rate
    window; ``paused_at`` / ``paused_reason`` are set when that rate passed its limit.
    """

    strategy_id: str
    started_at: datetime
    updated_at: datetime
    invocations: int = 0
    last_invocation_as_of: datetime | None = None
    last_decision_as_of: datetime | None = None
    last_decision_id: str | None = None
    recent_decisions: list[str] = Field(default_factory=list)
    plans: dict[str, PositionPlan] = Field(default_factory=dict)
    memory: list[DecisionMemo] = Field(default_factory=list, description="the latest decisions, oldest first")
    recent_statuses: list[DecisionStatus] = Field(
        default_factory=list, description="statuses of the latest decisions (the failure-rate window), oldest first")
    paused_at: datetime | None = None
    paused_reason: str | None = Field(None, description="why the trader is paused; cleared by `llm resume`")
