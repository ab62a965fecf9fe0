"""The digest cache: a reply that passed validation, reused for an identical request.

Key: :func:`strategies.llm.prompts.request_digest` (sha256 over the rendered
prompt, the model name, temperature, max tokens, response format and prompt
schema version; not the endpoint, so a model moved to another URL keeps its
replies). Two places hold entries, and neither expires them:

* ``llm_cache/{digest}`` in the run's store, written with the journal entry;
* the reply archive (:class:`ReplyArchive`), a folder of one JSON file per
  digest (``{dir}/{digest[:2]}/{digest}.json``), shared by every run and every
  store on the machine: a backtest runs on a fresh store each time, and its
  second run finds the first run's replies here (``--llm replay`` uses nothing
  else and never calls a model).

A hit costs no tokens and no money.
"""

from __future__ import annotations

import json
import os
import tempfile
from datetime import datetime
from pathlib import Path

from bus import paths
from bus.journal import CacheEntry
from strategies.llm.config import ModelSpec


def valid_entries(docs: dict[str, dict | None], digests: list[str]) -> dict[str, CacheEntry]:
    """Digest -> entry, for the documents (read by path) that exist."""
    out = {}
    for d in digests:
        raw = docs.get(paths.llm_cache(d))
        if raw:
            out[d] = CacheEntry.model_validate(raw)
    return out


def entry(digest: str, model: ModelSpec, content: str, prompt_tokens: int, completion_tokens: int,
          now: datetime, decision_id: str | None) -> CacheEntry:
    """The cache entry of a validated reply."""
    return CacheEntry(digest=digest, model=model.id, model_name=model.model, created_at=now, content=content,
                      prompt_tokens=prompt_tokens, completion_tokens=completion_tokens, decision_id=decision_id)


def entry_write(e: CacheEntry) -> tuple[str, dict]:
    """The (path, document) write of an entry, to put in the journal's batch."""
    return paths.llm_cache(e.digest), e.model_dump(mode="python", exclude_none=True)


class ReplyArchive:
    """Recorded replies in a folder, by request digest (see the module docstring).

    Writes are atomic (a temporary file renamed into place), so concurrent
    processes never read half a file.
    """

    def __init__(self, folder: str | Path) -> None:
        self.folder = Path(folder)

    def _path(self, digest: str) -> Path:
        return self.folder / digest[:2] / f"{digest}.json"

    def get(self, digest: str) -> CacheEntry | None:
        """The recorded entry of ``digest``; None when there is none or it cannot be read."""
        try:
            return CacheEntry.model_validate_json(self._path(digest).read_bytes())
        except (OSError, ValueError):
            return None

    def put(self, e: CacheEntry) -> None:
        """Record ``e`` (replacing any entry of the same digest).

        Raises:
            OSError: the folder cannot be written.
        """
        path = self._path(e.digest)
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, suffix=".tmp")
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            json.dump(e.model_dump(mode="json", exclude_none=True), f)
        os.replace(tmp, path)
