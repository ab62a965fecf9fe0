"""Asking the model chain: the ``openai`` client against any OpenAI-compatible endpoint.

For one rendered prompt, :func:`ask_chain`:

1. passes over models whose API key variable is unset (``no_api_key``);
2. reuses a recorded reply for an identical request (digest cache in the store,
   then the reply archive: zero tokens); in ``replay`` mode nothing else, and a
   missing entry is reported (``not_recorded``, the intent ``skipped``);
3. applies the daily budget (:func:`strategies.llm.budget.plan_models`) and
   passes over models whose circuit breaker is open (``circuit_open``);
4. asks each planned model in turn, each request's worst case first reserved in
   the budget (:func:`strategies.llm.budget.reserve`; a request that does not
   fit is not sent: ``over_budget``), with its timeout, for structured output
   (``response_format`` ``json_schema``, or ``json_object`` where the model is
   configured so or the endpoint answers 400 on ``json_schema``), and validates
   the reply with pydantic (:func:`strategies.llm.decisions.parse_reply`):

   * HTTP 429: retried with exponential backoff (tenacity: ``backoff_initial_seconds``
     doubling, capped at ``backoff_max_seconds``, never shorter than the
     server's ``Retry-After``), at most ``rate_limit_retries`` times, then the
     next model;
   * a malformed reply: asked again at most ``malformed_retries`` times, then
     the next model;
   * a refusal (``message.refusal``): journalled whole, never asked again of the
     same model: the next model;
   * a reply cut at ``max_tokens`` (``finish_reason: length``): asked once more
     with ``max_tokens`` x ``length_retry_factor``, within budget, then the next model;
   * a tool call instead of content: its arguments are taken as the reply;
   * a timeout, a connection error or another HTTP error: the next model;

5. settles every answered request in the budget with the tokens the API
   reported, or a tokenizer estimate when the reply has no ``usage`` (flagged
   ``usage_estimated``; a model without a daily limit is charged in the caller's
   journal commit: :attr:`ChainResult.charges`); counts failures in the model's circuit breaker; records
   every outcome as an :class:`~bus.journal.Attempt`; the cache entry of a good
   reply is returned as a write for the caller's journal batch and recorded in
   the reply archive.

Store round trips: one ``get_all`` for the cache entries, today's budget and
breaker documents (none when the caller read them and knows no entry can exist),
two budget writes per request of a model with a daily limit (reserve, settle), none
for a model without one (its charge goes into the journal's commit).

API keys are read from the environment at call time and never logged nor
recorded: any error text is scrubbed of the key before it is kept.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import openai
import tenacity

from bus import telemetry
from bus.journal import Attempt, AttemptOutcome, BudgetNote, BudgetUsage, CacheEntry
from bus.paths import llm_cache as cache_path
from bus.redaction import redact, register
from bus.store import Increment, Store
from strategies.llm import breaker, budget, cache, tokens
from strategies.llm.config import ModelSpec, TraderSpec
from strategies.llm.decisions import MalformedReply, Reply, parse_reply, response_format
from strategies.llm.prompts import RenderedPrompt, request_digest

log = logging.getLogger(__name__)
MAX_CACHED_CHARS = 200_000
_clients: dict[tuple[str, str, float], tuple[str, openai.OpenAI]] = {}
_clients_lock = threading.Lock()


@dataclass
class Answer:
    """A validated reply and what it cost (tokens as reported, USD, milliseconds)."""

    model: ModelSpec
    content: str
    reply: Reply
    request_digest: str
    response_format: str
    cache_hit: bool = False
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cost_usd: float = 0.0


@dataclass
class ChainResult:
    """What asking the chain gave: an answer, or why not (``skipped`` or ``error``), and every attempt."""

    answer: Answer | None = None
    attempts: list[Attempt] = field(default_factory=list)
    skipped: str | None = None
    error: str | None = None
    budget: BudgetNote | None = None
    model_wait_ms: float = 0.0
    request_digests: dict[str, str] = field(default_factory=dict)
    last_raw: str | None = None
    writes: list[tuple[str, dict]] = field(default_factory=list)
    refusal: str | None = None
    usage_before: dict[str, BudgetUsage | None] = field(default_factory=dict)
    charges: list[Increment] = field(default_factory=list)

    def write_charges(self, store: Store) -> None:
        """Write the budget charges of :attr:`charges` on their own (one increment each), for a decision
        whose journal commit - which carries them - was not made; best effort: a failure is logged."""
        charges, self.charges = self.charges, []
        for path, deltas, fields in charges:
            try:
                store.increment(path, deltas, fields)
            except Exception as exc:  # the decision already failed; its error is the one reported
                log.error("LLM budget charge %s %s not written: %s", path, deltas, exc)

    @property
    def prompt_tokens(self) -> int:
        """Tokens billed over all attempts (prompt side)."""
        return sum(a.prompt_tokens for a in self.attempts)

    @property
    def completion_tokens(self) -> int:
        """Tokens billed over all attempts (completion side)."""
        return sum(a.completion_tokens for a in self.attempts)

    @property
    def cost_usd(self) -> float:
        """US dollars over all attempts."""
        return sum(a.cost_usd for a in self.attempts)


def missing_keys(chain: list[ModelSpec]) -> list[str]:
    """Names of the API key variables of ``chain`` that are unset or empty, in chain order."""
    return list(dict.fromkeys(m.api_key_env for m in chain if not os.environ.get(m.api_key_env)))


def no_key_message(chain: list[ModelSpec]) -> str:
    """Why a trader whose models have no API key cannot run, naming the variables."""
    names = missing_keys(chain)
    if len(names) == 1:
        return f"no LLM endpoint configured: environment variable {names[0]} is not set"
    return (f"no LLM endpoint configured: none of the environment variables {', '.join(names)} is set "
            f"(set one of them)")


def client_for(model: ModelSpec, api_key: str) -> openai.OpenAI:
    """A (reused) ``openai`` client for the model's endpoint: its timeout, no retries of its own."""
    key = (model.base_url, model.api_key_env, model.timeout_seconds)
    with _clients_lock:
        hit = _clients.get(key)
        if hit and hit[0] == api_key:
            return hit[1]
        client = openai.OpenAI(base_url=model.base_url, api_key=api_key, timeout=model.timeout_seconds,
                               max_retries=0)
        _clients[key] = (api_key, client)
        return client


def _retry_after(exc: BaseException | None) -> float | None:
    """Seconds the server asked to wait (``retry-after-ms`` or ``Retry-After``), if it said."""
    resp = getattr(exc, "response", None)
    if resp is None:
        return None
    headers = resp.headers
    try:
        if headers.get("retry-after-ms"):
            return float(headers["retry-after-ms"]) / 1000.0
        if headers.get("retry-after"):
            return float(headers["retry-after"])
    except ValueError:
        return None
    return None


def backoff(spec: TraderSpec) -> Any:
    """The tenacity wait for HTTP 429: exponential, capped, at least the server's Retry-After."""
    expo = tenacity.wait_exponential(multiplier=spec.backoff_initial_seconds, max=spec.backoff_max_seconds)

    def wait(state: tenacity.RetryCallState) -> float:
        w = expo(state)
        ra = _retry_after(state.outcome.exception() if state.outcome else None)
        return max(w, min(ra, spec.backoff_max_seconds)) if ra is not None else w

    return wait


def _call(spec: TraderSpec, model: ModelSpec, api_key: str, prompt: RenderedPrompt, rf: str, max_tokens: int,
          attempts: list[Attempt]) -> Any:
    """One chat completion, retrying HTTP 429 with backoff; each 429 is recorded as an attempt."""
    client = client_for(model, api_key)
    started = [time.perf_counter()]

    def on_429(state: tenacity.RetryCallState) -> None:
        exc = state.outcome.exception() if state.outcome else None
        attempts.append(Attempt(model=model.id, outcome="rate_limited", response_format=rf, max_tokens=max_tokens,
                                latency_ms=(time.perf_counter() - started[0]) * 1000,
                                error=redact(f"HTTP 429: {exc}; retrying in {state.upcoming_sleep:.2f} s")))
        started[0] = time.perf_counter() + state.upcoming_sleep

    retrying = tenacity.Retrying(retry=tenacity.retry_if_exception_type(openai.RateLimitError),
                                 wait=backoff(spec), stop=tenacity.stop_after_attempt(spec.rate_limit_retries + 1),
                                 before_sleep=on_429, reraise=True)
    return retrying(client.chat.completions.create, model=model.model,
                    messages=[{"role": "system", "content": prompt.system}, {"role": "user", "content": prompt.user}],
                    temperature=model.temperature, max_tokens=max_tokens, response_format=response_format(rf))


@dataclass
class _Reply:
    """What one answered request said: content (or a tool call's arguments), refusal, finish reason,
    tokens (reported, or estimated when the reply has no ``usage``)."""

    content: str | None
    refusal: str | None
    finish_reason: str | None
    prompt_tokens: int
    completion_tokens: int
    estimated: bool
    tool_call: str | None = None


def _read_reply(resp: Any, prompt: RenderedPrompt) -> _Reply:
    choice = resp.choices[0] if resp.choices else None
    msg = choice.message if choice is not None else None
    content = getattr(msg, "content", None)
    refusal = getattr(msg, "refusal", None)
    tool = None
    calls = getattr(msg, "tool_calls", None) or []
    if not content and calls:
        fn = getattr(calls[0], "function", None)
        tool, content = getattr(fn, "name", None), getattr(fn, "arguments", None)
    usage = getattr(resp, "usage", None)
    if usage is not None:
        pt, ct, est = int(usage.prompt_tokens or 0), int(usage.completion_tokens or 0), False
    else:
        pt = tokens.estimate_messages([prompt.system, prompt.user])
        ct, est = tokens.estimate((content or "") + (refusal or "")), True
    return _Reply(content, refusal, getattr(choice, "finish_reason", None), pt, ct, est, tool)


def _failed(store: Store, spec: TraderSpec, model: ModelSpec, now: datetime, outcome: str) -> None:
    """Count a failed request in the model's circuit breaker (a store failure here is logged, not raised)."""
    if outcome in breaker.FAILURES:
        try:
            breaker.record_failure(store, model, spec, now, outcome)
        except Exception as exc:  # the decision goes on; the breaker is best effort
            log.warning("circuit breaker of %s not updated: %s", model.id, exc)


def _transport_error(store: Store, spec: TraderSpec, model: ModelSpec, now: datetime, exc: Exception, rf: str,
                     max_tokens: int, ms: float, res: ChainResult) -> None:
    """Record a request that got no reply (timeout, connection error, HTTP error) and count it in the breaker."""
    res.model_wait_ms += ms
    outcome: AttemptOutcome = ("timeout" if isinstance(exc, openai.APITimeoutError) else
                               "rate_limited" if isinstance(exc, openai.RateLimitError) else
                               "connection_error" if isinstance(exc, openai.APIConnectionError) else "http_error")
    status = getattr(exc, "status_code", None)
    text = f"HTTP {status}: {exc}" if status else f"{type(exc).__name__}: {exc}"
    if outcome == "timeout":
        text += f" (timeout {model.timeout_seconds:g} s)"
    res.attempts.append(Attempt(model=model.id, outcome=outcome, response_format=rf, latency_ms=ms,
                                max_tokens=max_tokens, error=redact(text)))
    _failed(store, spec, model, now, outcome)


def _note_budget(res: ChainResult, model: ModelSpec, usage: BudgetUsage, alert: bool) -> None:
    res.budget = BudgetNote(deployment=model.id, day=usage.day, tokens_used=usage.total_tokens,
                            cost_used_usd=usage.cost_usd, token_limit=model.daily_token_budget,
                            cost_limit_usd=model.daily_cost_budget,
                            alert=alert or (res.budget.alert if res.budget else False),
                            note=usage.alerts[-1] if usage.alerts else None)


def _charge(store: Store, spec: TraderSpec, model: ModelSpec, now: datetime, r: "_Reply",
            resv: budget.Reservation, res: ChainResult) -> tuple[BudgetUsage, bool]:
    """Charge one reply's tokens to the model's daily usage; return the usage after it and whether it
    crossed the alert threshold.

    A model with a daily limit is charged at once (:func:`budget.settle`): the limit and the alert need
    the exact count. A model without one cannot cross anything, so its charge (:func:`budget.charge`)
    is added to ``res.charges`` and written in the decision's journal commit (one round trip for both,
    atomically; :meth:`ChainResult.write_charges` when no journal is written), and the usage returned
    is the one read before the chain was asked plus this chain's replies (a concurrent trader's
    requests on the same model may be missing from it).
    """
    if model.daily_token_budget or model.daily_cost_budget or resv.tokens:
        return budget.settle(store, model, now, r.prompt_tokens, r.completion_tokens, spec.alert_threshold,
                             resv, estimated=r.estimated)
    res.charges.append(budget.charge(model, now, r.prompt_tokens, r.completion_tokens, spec.alert_threshold, resv,
                                     estimated=r.estimated))
    before = res.usage_before.get(model.id) or BudgetUsage(deployment=model.id, day=budget.day_of(now), updated_at=now)
    pt, ct = int(r.prompt_tokens), int(r.completion_tokens)
    after = before.model_copy(update={
        "updated_at": now, "requests": before.requests + 1, "prompt_tokens": before.prompt_tokens + pt,
        "completion_tokens": before.completion_tokens + ct, "total_tokens": before.total_tokens + pt + ct,
        "cost_usd": before.cost_usd + model.cost(pt, ct), "alerts": []})
    res.usage_before[model.id] = after
    return after, False


def _ask_one(store: Store, spec: TraderSpec, model: ModelSpec, api_key: str, prompt: RenderedPrompt,
             now: datetime, decision_id: str, res: ChainResult, archive: cache.ReplyArchive | None) -> Answer | None:
    """Ask one model until it answers well, or give up on it (outcomes appended to ``res.attempts``).

    The cache entry of a good reply is added to ``res.writes`` (written with the journal) and to ``archive``.
    """
    rf = model.response_format
    max_tokens = model.max_tokens
    malformed_left, length_left = spec.malformed_retries, 1
    bound = tokens.upper_bound([prompt.system, prompt.user])
    while True:
        resv, why = budget.reserve(store, model, now, bound, max_tokens, spec.alert_threshold)
        if resv is None:
            res.attempts.append(Attempt(model=model.id, outcome="over_budget", max_tokens=max_tokens, error=why))
            return None
        t0 = time.perf_counter()
        try:
            resp = _call(spec, model, api_key, prompt, rf, max_tokens, res.attempts)
        except openai.BadRequestError as exc:
            budget.release(store, resv)
            ms = (time.perf_counter() - t0) * 1000
            res.model_wait_ms += ms
            if rf == "json_schema" and (getattr(exc, "param", None) or "").startswith("response_format"):
                res.attempts.append(Attempt(model=model.id, outcome="schema_unsupported", response_format=rf,
                                            latency_ms=ms, error=redact(str(exc))))
                rf = "json_object"
                continue
            res.attempts.append(Attempt(model=model.id, outcome="http_error", response_format=rf, latency_ms=ms,
                                        error=redact(f"HTTP {exc.status_code}: {exc}")))
            return None
        except (openai.APITimeoutError, openai.APIConnectionError, openai.APIStatusError) as exc:
            budget.release(store, resv)
            _transport_error(store, spec, model, now, exc, rf, max_tokens, (time.perf_counter() - t0) * 1000, res)
            return None
        ms = (time.perf_counter() - t0) * 1000
        res.model_wait_ms += ms
        r = _read_reply(resp, prompt)
        usage, alert = _charge(store, spec, model, now, r, resv, res)
        _note_budget(res, model, usage, alert)
        telemetry.observe_llm(model.id, r.prompt_tokens, r.completion_tokens,
                              model.cost(r.prompt_tokens, r.completion_tokens), ms / 1000)
        attempt = Attempt(model=model.id, outcome="ok", response_format=rf, latency_ms=ms,
                          prompt_tokens=r.prompt_tokens, completion_tokens=r.completion_tokens,
                          cost_usd=model.cost(r.prompt_tokens, r.completion_tokens), max_tokens=max_tokens,
                          finish_reason=r.finish_reason, usage_estimated=r.estimated)
        res.attempts.append(attempt)
        if r.refusal:
            attempt.outcome, attempt.refusal = "refused", r.refusal
            attempt.error = "refused: " + r.refusal[:300]
            res.refusal, res.last_raw = r.refusal, r.content
            return None  # a refusal is not retried on the same model
        if r.finish_reason == "length":
            attempt.outcome = "truncated"
            attempt.error = f"reply cut at max_tokens {max_tokens} (finish_reason length)"
            res.last_raw = r.content
            if length_left <= 0:
                return None
            length_left -= 1
            max_tokens = int(max_tokens * spec.length_retry_factor)
            continue
        try:
            reply = parse_reply(r.content)
        except MalformedReply as exc:
            attempt.outcome, attempt.error = "malformed", str(exc)
            res.last_raw = r.content
            _failed(store, spec, model, now, "malformed")
            if budget.over_budget(usage, model):
                res.attempts.append(Attempt(model=model.id, outcome="over_budget",
                                            error=budget.over_budget(usage, model)))
                return None
            if malformed_left <= 0:
                return None
            malformed_left -= 1
            continue
        if r.tool_call:
            attempt.error = f"answered with a tool call ({r.tool_call}); its arguments taken as the reply"
        return _good_answer(spec, model, prompt, r, reply, rf, now, decision_id, res, archive)


def _good_answer(spec: TraderSpec, model: ModelSpec, prompt: RenderedPrompt, r: _Reply, reply: Reply, rf: str,
                 now: datetime, decision_id: str, res: ChainResult, archive: cache.ReplyArchive | None) -> Answer:
    """The :class:`Answer` of a validated reply; its cache entry added to ``res.writes`` and the archive."""
    content = r.content or ""
    # Keyed by the request as configured, so the next identical request finds it even when
    # this endpoint needed JSON mode instead of a schema.
    digest = request_digest(prompt.digest, model, model.response_format, prompt.version)
    if spec.cache_enabled and len(content) <= MAX_CACHED_CHARS:
        e = cache.entry(digest, model, content, r.prompt_tokens, r.completion_tokens, now, decision_id)
        res.writes.append(cache.entry_write(e))
        if archive is not None:
            try:
                archive.put(e)
            except OSError as exc:
                log.warning("reply archive %s not written: %s", archive.folder, exc)
    return Answer(model=model, content=content, reply=reply, request_digest=digest, response_format=rf,
                  prompt_tokens=r.prompt_tokens, completion_tokens=r.completion_tokens,
                  cost_usd=model.cost(r.prompt_tokens, r.completion_tokens))


def state_paths(models: list[ModelSpec], now: datetime) -> list[str]:
    """The documents :func:`ask_chain` decides on besides the cache: today's budget and the breaker of each model."""
    return [*budget.usage_paths(models, now).values(), *(breaker.path(m.id) for m in models)]


def _recorded(spec: TraderSpec, keyed: list[ModelSpec], digests: dict[str, str], docs: dict,
              archive: cache.ReplyArchive | None) -> tuple[ModelSpec, CacheEntry, Reply] | None:
    """The first model of the chain with a recorded reply that still validates: store cache, then archive."""
    hits = cache.valid_entries(docs, list(digests.values())) if spec.cache_enabled else {}
    for m in keyed:
        entry = hits.get(digests[m.id]) or (archive.get(digests[m.id]) if archive is not None else None)
        if entry is None:
            continue
        try:
            return m, entry, parse_reply(entry.content)
        except MalformedReply:
            continue
    return None


def ask_chain(store: Store, spec: TraderSpec, prompt: RenderedPrompt, now: datetime, decision_id: str,
              docs: dict[str, dict | None] | None = None, lookup_cache: bool = True) -> ChainResult:
    """Ask the trader's model chain for decisions on ``prompt`` (see the module docstring).

    Args:
        docs: the documents of :func:`state_paths` for the chain's keyed models as the caller
            already read them; None: read here, with the cache entries.
        lookup_cache: False when no store cache entry can exist for this prompt (the caller knows
            it never rendered it before), which saves a round trip. The reply archive is always
            looked up, and in ``replay`` mode the store cache too.

    Returns a :class:`ChainResult`: ``answer`` set on success; ``skipped`` when
    no key is set, the budget is exhausted or a replay has no recorded reply;
    ``error`` when every model failed. Its ``writes`` (the cache entry) and ``charges`` (the budget
    charges of models without a daily limit) are for the caller's journal commit
    (:func:`strategies.llm.journal.write`); :meth:`ChainResult.write_charges` when it makes none.

    Raises:
        bus.store.StoreError: the store is unreachable (budget, cache); charges already due are written.
    """
    res = ChainResult()
    replay = spec.llm_mode == "replay"
    keyed = []
    for m in spec.model_chain:
        if os.environ.get(m.api_key_env) or replay:
            keyed.append(m)
        else:
            res.attempts.append(Attempt(model=m.id, outcome="no_api_key",
                                        error=f"environment variable {m.api_key_env} is not set"))
    if not keyed:
        res.skipped = no_key_message(spec.model_chain)
        return res
    digests = {m.id: request_digest(prompt.digest, m, m.response_format, prompt.version) for m in keyed}
    res.request_digests = digests
    archive = cache.ReplyArchive(spec.replies_dir) if spec.replies_dir else None
    to_read = [] if docs is not None else state_paths(keyed, now)
    cache_paths = ([cache_path(d) for d in digests.values()]
                   if spec.cache_enabled and (lookup_cache or replay) else [])
    read: dict = dict(docs or {})
    if to_read or cache_paths:
        read.update(store.get_all(cache_paths + to_read))  # one round trip for the cache, budget and breakers
    hit = _recorded(spec, keyed, digests, read, archive) if (cache_paths or archive) else None
    if hit is not None:
        m, entry, reply = hit
        res.attempts.append(Attempt(model=m.id, outcome="cache_hit", response_format=m.response_format))
        res.answer = Answer(model=m, content=entry.content, reply=reply, request_digest=digests[m.id],
                            response_format=m.response_format, cache_hit=True)
        return res
    if replay:
        res.attempts.extend(Attempt(model=m.id, outcome="not_recorded", error=f"request digest {digests[m.id]}")
                            for m in keyed)
        res.skipped = ("replay: no recorded reply for this prompt (request digests "
                       + ", ".join(f"{m.id} {digests[m.id][:16]}" for m in keyed) + "); no model was asked")
        return res
    res.usage_before = budget.usages(read, keyed, now)
    plan = budget.plan_models(keyed, res.usage_before)
    res.attempts.extend(plan.passed_over)
    if plan.skipped:
        res.skipped = plan.skipped
        return res
    for m in plan.models:
        why = breaker.open_reason(read.get(breaker.path(m.id)), now)
        if why:
            res.attempts.append(Attempt(model=m.id, outcome="circuit_open", error=why))
            continue
        api_key = os.environ.get(m.api_key_env, "")
        register(api_key)  # every error text, journal and log line masks it from now on
        try:
            answer = _ask_one(store, spec, m, api_key, prompt, now, decision_id, res, archive)
        except BaseException:
            res.write_charges(store)  # the replies already paid for are counted, the chain fails
            raise
        if answer is not None:
            res.answer = answer
            return res
    failed = [a for a in res.attempts if a.outcome not in ("ok", "cache_hit")]
    res.error = "all models failed: " + "; ".join(f"{a.model}: {a.outcome}" + (f" ({a.error})" if a.error else "")
                                                  for a in failed)
    return res
