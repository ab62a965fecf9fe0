"""Token counts without the API: a strict upper bound for budget reservations, an estimate for replies without usage.

* :func:`upper_bound` - UTF-8 bytes of every message plus a per-message
  allowance for the chat format. Byte-level BPE tokenizers (OpenAI's, and the
  byte-fallback SentencePiece ones) never make a token of less than one byte,
  so no model counts more tokens than this for the same messages; a budget
  reservation built on it can never be exceeded by the prompt.
* :func:`estimate` - the tokens a text is charged when a reply carries no
  ``usage``: OpenAI's ``o200k_base`` encoding, counted with ``bpe-openai``
  (a tiktoken-compatible tokenizer that ships its encodings inside the wheel;
  ``tiktoken`` itself downloads them from the internet at first use, which
  fails offline), or, if that package is missing, OpenAI's documented rule of
  thumb of about four characters a token (rounded up). Other providers'
  tokenizers differ by some tens of percent; the charge is flagged as estimated.
"""

from __future__ import annotations

import functools
import math
from typing import Any, Iterable

#: Tokens the chat format adds per message (role markers) and per request (the reply's primer).
#: OpenAI's cookbook counts 3 + 1 per message and 3 per reply; this allows more, for other templates.
PER_MESSAGE = 8
PER_REQUEST = 8
ENCODING = "o200k_base"


@functools.lru_cache(maxsize=1)
def _encoding() -> Any | None:
    try:
        import bpe_openai  # bundled encodings: works offline
    except ImportError:
        return None
    return bpe_openai.get_encoding(ENCODING)


def method() -> str:
    """How :func:`estimate` counts: ``bpe-openai o200k_base`` or ``chars/4``."""
    return f"bpe-openai {ENCODING}" if _encoding() is not None else "chars/4"


def estimate(text: str | None) -> int:
    """Estimated tokens of ``text`` (see the module docstring); 0 for no text."""
    if not text:
        return 0
    enc = _encoding()
    if enc is not None:
        return len(enc.encode(text))
    return math.ceil(len(text) / 4)


def estimate_messages(texts: Iterable[str]) -> int:
    """Estimated prompt tokens of the messages ``texts``, chat format included."""
    texts = list(texts)
    return sum(estimate(t) for t in texts) + PER_MESSAGE * len(texts) + PER_REQUEST


def upper_bound(texts: Iterable[str]) -> int:
    """A count of prompt tokens no byte-level tokenizer exceeds for these messages (UTF-8 bytes + format)."""
    texts = list(texts)
    return sum(len(t.encode("utf-8")) for t in texts) + PER_MESSAGE * len(texts) + PER_REQUEST
