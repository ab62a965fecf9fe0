"""Writing intents: ``latest`` plus an immutable copy, and never an older as-of over a newer ``latest``."""

from __future__ import annotations

from datetime import datetime, timezone

from bus import paths
from bus.models import Intent
from bus.store import MemoryStore
from strategies.runner import write_intent

NEW = datetime(2026, 5, 15, 21, 30, tzinfo=timezone.utc)
OLD = datetime(2020, 3, 16, 21, 30, tzinfo=timezone.utc)


def intent(intent_id: str, as_of: datetime) -> Intent:
    return Intent(intent_id=intent_id, strategy_id="s", updated_at=as_of, as_of=as_of, status="success")


def test_an_older_as_of_is_stored_under_its_id_only():
    store = MemoryStore()
    assert write_intent(store, intent("today", NEW)) is True
    assert write_intent(store, intent("back-then", OLD)) is False
    assert store.get(paths.intent("s"))["intent_id"] == "today"
    assert store.get(paths.intent("s", "back-then"))["as_of"] == OLD


def test_a_newer_or_equal_as_of_replaces_latest():
    store = MemoryStore()
    write_intent(store, intent("a", OLD))
    assert write_intent(store, intent("b", OLD)) is True
    assert write_intent(store, intent("c", NEW)) is True
    assert store.get(paths.intent("s"))["intent_id"] == "c"
