"""Asking the model chain: the ``openai`` client against any OpenAI-compatible endpoint.

For one rendered prompt, :func:`ask_chain`:

1. passes over models whose API key variable is unset (``no_api_key``);
2. reuses a cached reply for an identical request (digest cache: zero tokens);
3. applies the daily budget (:func:`strategies.llm.budget.plan_models`);
4. asks each planned model in turn, with its timeout, for structured output
   (``response_format`` ``json_schema``, or ``json_object`` where the model is
   configured so or the endpoint answers 400 on ``json_schema``), and validates
   the reply with pydantic (:func:`strategies.llm.decisions.parse_reply`):

   * HTTP 429: retried with exponential backoff (tenacity: ``backoff_initial_seconds``
     doubling, capped at ``backoff_max_seconds``, never shorter than the
     server's ``Retry-After``), at most ``rate_limit_retries`` times, then the
     next model;
   * a malformed reply: asked again at most ``malformed_retries`` times, then
     the next model;
   * a timeout, a connection error or another HTTP error: the next model;

5. records every request's reported tokens in the budget and every outcome as
   an :class:`~bus.journal.Attempt`; the cache entry of a good reply is returned
   as a write for the caller's journal batch.

Store round trips: one ``get_all`` for the cache entries and today's budget
documents (none when the caller read the budget and knows no entry can exist),
one write of a budget document per request answered.

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

from bus.journal import Attempt, AttemptOutcome, BudgetNote
from bus.paths import llm_cache as cache_path
from bus.redaction import redact, register
from bus.store import Store
from strategies.llm import budget, cache
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


def _call(spec: TraderSpec, model: ModelSpec, api_key: str, prompt: RenderedPrompt, rf: str,
          attempts: list[Attempt]) -> Any:
    """One chat completion, retrying HTTP 429 with backoff; each 429 is recorded as an attempt."""
    client = client_for(model, api_key)
    started = [time.perf_counter()]

    def on_429(state: tenacity.RetryCallState) -> None:
        exc = state.outcome.exception() if state.outcome else None
        attempts.append(Attempt(model=model.id, outcome="rate_limited", response_format=rf,
                                latency_ms=(time.perf_counter() - started[0]) * 1000,
                                error=redact(f"HTTP 429: {exc}; retrying in {state.upcoming_sleep:.2f} s")))
        started[0] = time.perf_counter() + state.upcoming_sleep

    retrying = tenacity.Retrying(retry=tenacity.retry_if_exception_type(openai.RateLimitError),
                                 wait=backoff(spec), stop=tenacity.stop_after_attempt(spec.rate_limit_retries + 1),
                                 before_sleep=on_429, reraise=True)
    return retrying(client.chat.completions.create, model=model.model,
                    messages=[{"role": "system", "content": prompt.system}, {"role": "user", "content": prompt.user}],
                    temperature=model.temperature, max_tokens=model.max_tokens, response_format=response_format(rf))


def _ask_one(store: Store, spec: TraderSpec, model: ModelSpec, api_key: str, prompt: RenderedPrompt,
             now: datetime, decision_id: str, res: ChainResult, seen: dict[str, budget.Seen]) -> Answer | None:
    """Ask one model until it answers well, or give up on it (outcomes appended to ``res.attempts``).

    The cache entry of a good reply is added to ``res.writes`` (written with the journal).
    """
    rf = model.response_format
    malformed_left = spec.malformed_retries
    while True:
        t0 = time.perf_counter()
        try:
            resp = _call(spec, model, api_key, prompt, rf, res.attempts)
        except openai.BadRequestError as exc:
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
            ms = (time.perf_counter() - t0) * 1000
            res.model_wait_ms += ms
            outcome: AttemptOutcome = ("timeout" if isinstance(exc, openai.APITimeoutError) else
                       "rate_limited" if isinstance(exc, openai.RateLimitError) else
                       "connection_error" if isinstance(exc, openai.APIConnectionError) else "http_error")
            status = getattr(exc, "status_code", None)
            text = f"HTTP {status}: {exc}" if status else f"{type(exc).__name__}: {exc}"
            if outcome == "timeout":
                text += f" (timeout {model.timeout_seconds:g} s)"
            res.attempts.append(Attempt(model=model.id, outcome=outcome, response_format=rf, latency_ms=ms,
                                        error=redact(text)))
            return None
        ms = (time.perf_counter() - t0) * 1000
        res.model_wait_ms += ms
        pt = int(getattr(resp.usage, "prompt_tokens", 0) or 0) if resp.usage else 0
        ct = int(getattr(resp.usage, "completion_tokens", 0) or 0) if resp.usage else 0
        seen[model.id], alert = budget.record_usage(store, model, now, pt, ct, spec.alert_threshold,
                                                    seen.get(model.id))
        usage = seen[model.id].usage
        if usage is not None:  # always, after record_usage
            res.budget = BudgetNote(deployment=model.id, day=usage.day, tokens_used=usage.total_tokens,
                                    cost_used_usd=usage.cost_usd, token_limit=model.daily_token_budget,
                                    cost_limit_usd=model.daily_cost_budget,
                                    alert=alert or (res.budget.alert if res.budget else False),
                                    note=usage.alerts[-1] if usage.alerts else None)
        content = resp.choices[0].message.content if resp.choices else None
        attempt = Attempt(model=model.id, outcome="ok", response_format=rf, latency_ms=ms, prompt_tokens=pt,
                          completion_tokens=ct, cost_usd=model.cost(pt, ct))
        try:
            reply = parse_reply(content)
        except MalformedReply as exc:
            attempt.outcome, attempt.error = "malformed", str(exc)
            res.attempts.append(attempt)
            res.last_raw = content
            if budget.over_budget(usage, model):
                res.attempts.append(Attempt(model=model.id, outcome="over_budget",
                                            error=budget.over_budget(usage, model)))
                return None
            if malformed_left <= 0:
                return None
            malformed_left -= 1
            continue
        res.attempts.append(attempt)
        # Keyed by the request as configured, so the next identical request finds it even when
        # this endpoint needed JSON mode instead of a schema.
        digest = request_digest(prompt.digest, model, model.response_format, prompt.version)
        if spec.cache_enabled and len(content or "") <= MAX_CACHED_CHARS:
            res.writes.append(cache.entry_write(digest, model, content or "", pt, ct, now, spec.cache_ttl_seconds,
                                                decision_id))
        return Answer(model=model, content=content or "", reply=reply, request_digest=digest, response_format=rf,
                      prompt_tokens=pt, completion_tokens=ct, cost_usd=model.cost(pt, ct))


def ask_chain(store: Store, spec: TraderSpec, prompt: RenderedPrompt, now: datetime, decision_id: str,
              seen: dict[str, budget.Seen] | None = None, lookup_cache: bool = True) -> ChainResult:
    """Ask the trader's model chain for decisions on ``prompt`` (see the module docstring).

    Args:
        seen: today's budget documents of the chain's models as the caller already read them
            (:func:`budget.seen_usages`); None: read here, with the cache entries.
        lookup_cache: False when no cache entry can exist for this prompt (the caller knows it
            never rendered it before), which saves a round trip.

    Returns a :class:`ChainResult`: ``answer`` set on success; ``skipped`` when
    no key is set or the budget is exhausted; ``error`` when every model failed.

    Raises:
        bus.store.StoreError: the store is unreachable (budget, cache).
    """
    res = ChainResult()
    keyed = []
    for m in spec.model_chain:
        if os.environ.get(m.api_key_env):
            keyed.append(m)
        else:
            res.attempts.append(Attempt(model=m.id, outcome="no_api_key",
                                        error=f"environment variable {m.api_key_env} is not set"))
    if not keyed:
        res.skipped = no_key_message(spec.model_chain)
        return res
    digests = {m.id: request_digest(prompt.digest, m, m.response_format, prompt.version) for m in keyed}
    res.request_digests = digests
    usage_paths = [] if seen is not None else list(budget.usage_paths(keyed, now).values())
    cache_paths = [cache_path(d) for d in digests.values()] if spec.cache_enabled and lookup_cache else []
    docs: dict = {}
    if usage_paths or cache_paths:
        before = budget.versions(usage_paths)
        docs = store.get_all(cache_paths + usage_paths)  # one round trip for the cache and the budget
        if seen is None:
            seen = budget.seen_usages(docs, keyed, now, before)
    seen = dict(seen or {})
    if cache_paths:
        hits = cache.valid_entries(docs, list(digests.values()), now)
        for m in keyed:
            entry = hits.get(digests[m.id])
            if entry is None:
                continue
            try:
                reply = parse_reply(entry.content)
            except MalformedReply:
                continue
            res.attempts.append(Attempt(model=m.id, outcome="cache_hit", response_format=m.response_format,
                                        error=None))
            res.answer = Answer(model=m, content=entry.content, reply=reply, request_digest=digests[m.id],
                                response_format=m.response_format, cache_hit=True)
            return res
    plan = budget.plan_models(keyed, {mid: x.usage for mid, x in seen.items() if x is not None})
    res.attempts.extend(plan.passed_over)
    if plan.skipped:
        res.skipped = plan.skipped
        return res
    for m in plan.models:
        api_key = os.environ.get(m.api_key_env, "")
        register(api_key)  # every error text, journal and log line masks it from now on
        answer = _ask_one(store, spec, m, api_key, prompt, now, decision_id, res, seen)
        if answer is not None:
            res.answer = answer
            return res
    failed = [a for a in res.attempts if a.outcome not in ("ok", "cache_hit")]
    res.error = "all models failed: " + "; ".join(f"{a.model}: {a.outcome}" + (f" ({a.error})" if a.error else "")
                                                  for a in failed)
    return res
