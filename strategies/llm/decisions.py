"""The model's reply: a list of trading decisions, its JSON schema, and parsing with pydantic.

A reply is ``{"decisions": [ ... ]}``, each decision::

    {symbol, action: open_long|open_short|close|hold, notional, quantity, leverage,
     stop_loss, take_profit, confidence (0-100), invalidation_condition, reasoning}

``notional`` is the position's size in quote currency (USDT), ``quantity`` in
coins; an open gives exactly one of them (checked by the pre-trade checks, so
one bad decision does not void the others). ``leverage`` is a multiple,
``stop_loss`` / ``take_profit`` prices per coin.

Structure and types are checked here: a reply that is not JSON, or does not fit
:class:`Reply`, is *malformed* and is retried (see :mod:`strategies.llm.client`).
"""

from __future__ import annotations

import json
import re
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

Action = Literal["open_long", "open_short", "close", "hold"]
_FENCE = re.compile(r"^\s*```(?:json)?\s*(?P<body>.*?)\s*```\s*$", re.DOTALL)


class MalformedReply(ValueError):
    """The reply is not JSON or does not fit the decision schema; the message says where."""


class TradeDecision(BaseModel):
    """One decision about one symbol (see the module docstring for units)."""

    model_config = ConfigDict(extra="ignore")

    symbol: str = Field(min_length=1)
    action: Action
    notional: float | None = Field(None, ge=0)
    quantity: float | None = Field(None, ge=0)
    leverage: float | None = Field(None, gt=0)
    stop_loss: float | None = Field(None, gt=0)
    take_profit: float | None = Field(None, gt=0)
    confidence: float = Field(ge=0, le=100)
    invalidation_condition: str = ""
    reasoning: str = ""


class Reply(BaseModel):
    """The whole reply: ``{"decisions": [...]}``."""

    model_config = ConfigDict(extra="ignore")

    decisions: list[TradeDecision]


_NULLABLE_NUMBER = {"type": ["number", "null"]}
_DECISION_PROPERTIES = {
    "symbol": {"type": "string"},
    "action": {"type": "string", "enum": ["open_long", "open_short", "close", "hold"]},
    "notional": _NULLABLE_NUMBER,
    "quantity": _NULLABLE_NUMBER,
    "leverage": _NULLABLE_NUMBER,
    "stop_loss": _NULLABLE_NUMBER,
    "take_profit": _NULLABLE_NUMBER,
    "confidence": {"type": "number"},
    "invalidation_condition": {"type": "string"},
    "reasoning": {"type": "string"},
}
#: ``response_format.json_schema`` for endpoints with structured output (OpenAI strict mode:
#: every property required, nullable ones typed ``[..., "null"]``, no extra properties).
JSON_SCHEMA = {
    "name": "trading_decisions",
    "strict": True,
    "schema": {
        "type": "object",
        "additionalProperties": False,
        "required": ["decisions"],
        "properties": {
            "decisions": {
                "type": "array",
                "items": {"type": "object", "additionalProperties": False,
                          "required": list(_DECISION_PROPERTIES), "properties": _DECISION_PROPERTIES},
            }
        },
    },
}


def response_format(kind: str) -> dict:
    """The ``response_format`` request parameter: ``json_schema`` with :data:`JSON_SCHEMA`, or ``json_object``."""
    if kind == "json_schema":
        return {"type": "json_schema", "json_schema": JSON_SCHEMA}
    return {"type": "json_object"}


def parse_reply(content: str | None) -> Reply:
    """Parse and validate a model's reply (a surrounding Markdown code fence is tolerated).

    Raises:
        MalformedReply: empty, not JSON, or not a :class:`Reply`; the message names the first problem.
    """
    if not content or not content.strip():
        raise MalformedReply("empty reply")
    m = _FENCE.match(content)
    text = m["body"] if m else content
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise MalformedReply(f"not JSON: {exc.msg} at line {exc.lineno} column {exc.colno}") from exc
    try:
        return Reply.model_validate(data)
    except ValidationError as exc:
        e = exc.errors()[0]
        loc = ".".join(str(x) for x in e["loc"]) or "(root)"
        more = f" (+{exc.error_count() - 1} more)" if exc.error_count() > 1 else ""
        raise MalformedReply(f"does not fit the decision schema: {loc}: {e['msg']}{more}") from exc
