"""The digest cache: a reply that passed validation, reused for an identical request.

Key: :func:`strategies.llm.prompts.request_digest` (sha256 over the rendered
prompt, the endpoint, model name, temperature, max tokens and response
format). An entry in ``llm_cache/{digest}`` is used until its ``expires_at``
(wall clock, ``cache_ttl_seconds`` after it was written). A hit costs no
tokens and no money; replays and backtests that render the same prompt reuse it.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from bus import paths
from bus.journal import CacheEntry
from strategies.llm.config import ModelSpec


def valid_entries(docs: dict[str, dict | None], digests: list[str], now: datetime) -> dict[str, CacheEntry]:
    """Digest -> entry, for the documents (read by path) that exist and have not expired."""
    out = {}
    for d in digests:
        raw = docs.get(paths.llm_cache(d))
        if raw:
            entry = CacheEntry.model_validate(raw)
            if entry.expires_at > now:
                out[d] = entry
    return out


def entry_write(digest: str, model: ModelSpec, content: str, prompt_tokens: int, completion_tokens: int,
                now: datetime, ttl_seconds: int, decision_id: str | None) -> tuple[str, dict]:
    """The (path, document) write of the entry for ``digest``, to put in a batch."""
    entry = CacheEntry(digest=digest, model=model.id, model_name=model.model, created_at=now,
                       expires_at=now + timedelta(seconds=ttl_seconds), content=content,
                       prompt_tokens=prompt_tokens, completion_tokens=completion_tokens, decision_id=decision_id)
    return paths.llm_cache(digest), entry.to_store()
