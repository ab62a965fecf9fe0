"""Strategy lifecycle on the real emulator: pause holds the book, isolate reduces only, retire flattens then
disables; every change is recorded, and applying the configuration keeps the state."""

from __future__ import annotations

import dataclasses
import subprocess
import sys
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from bus import paths
from bus.models import Book, StrategyConfig
from bus.store import read
from pipeline.lifecycle import LifecycleError, change_state, state_changes
from pipeline.run import run_pipeline
from pipeline.settings import apply_settings
from pipeline.wiring import make_broker

AS_OF = datetime(2020, 3, 16, 21, 30, tzinfo=timezone.utc)
ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def env(store, settings, provider):
    s = dataclasses.replace(settings, strategies=[x for x in settings.strategies
                                                  if x.strategy_id in ("spy_macd_vixy", "test_signal_generator")])
    apply_settings(store, s)
    return store, s, provider, make_broker(store, s, provider)


def run(env, day: int):
    store, s, provider, broker = env
    return run_pipeline(store, provider, broker, s.strategies, AS_OF + timedelta(days=day))


def units(store, sid):
    b = read(store, paths.book(sid), Book)
    return b.quantities() if b else {}


def test_pause_holds_the_book_and_ignores_the_intent(env):
    store = env[0]
    run(env, 0)
    held = units(store, "test_signal_generator")
    assert held
    change = change_state(store, "test_signal_generator", "pause", "ana", "model review")
    ex = run(env, 1).execution  # test_signal_generator changes its targets every day
    assert units(store, "test_signal_generator") == pytest.approx(held)
    assert "test_signal_generator" not in ex.context.strategy_intents_refs or \
        "paused by ana: model review" in ex.strategy_reasons["test_signal_generator"]
    assert "paused by ana: model review" in ex.strategy_reasons["test_signal_generator"]
    lines = {t.symbol: t for t in ex.decision.final_target}
    for sym, q in held.items():
        assert lines[sym].contributions["test_signal_generator"] == pytest.approx(q)
    [rec] = state_changes(store, "test_signal_generator")
    assert (rec.by, rec.before, rec.after, rec.reason) == ("ana", "active", "paused", "model review")
    assert rec.change_id == change.change_id
    # Applying the configuration again keeps the state.
    store_settings = env[1]
    apply_settings(store, store_settings)
    assert read(store, paths.strategy("test_signal_generator"), StrategyConfig).state == "paused"


def test_retire_flattens_then_disables_and_resume_enables(env):
    store = env[0]
    run(env, 0)
    assert units(store, "spy_macd_vixy")
    change_state(store, "spy_macd_vixy", "retire", "ana", "replaced by v2")
    ex = run(env, 1).execution
    assert all(abs(q) < 1.0 for q in units(store, "spy_macd_vixy").values())  # under one whole share
    assert any(a.rule == "strategy_retired" and a.strategy_id == "spy_macd_vixy" for a in ex.decision.risk_adjustments)
    cfg = read(store, paths.strategy("spy_macd_vixy"), StrategyConfig)
    assert cfg.state == "retired" and cfg.enabled is False and "retired" in (cfg.disabled_reason or "")
    recs = state_changes(store, "spy_macd_vixy")
    assert [r.action for r in recs] == ["retire", "retired_flat"]
    change_state(store, "spy_macd_vixy", "resume", "bo", "back")
    cfg = read(store, paths.strategy("spy_macd_vixy"), StrategyConfig)
    assert cfg.state == "active" and cfg.enabled


def test_isolate_is_reduce_only(env):
    store = env[0]
    run(env, 0)
    before = units(store, "test_signal_generator")
    change_state(store, "test_signal_generator", "isolate", "ana", "drawdown review")
    ex = run(env, 1).execution
    after = units(store, "test_signal_generator")
    for sym, q in after.items():
        b = before.get(sym, 0.0)
        assert abs(q) <= abs(b) + 1e-9 and q * b >= 0, (sym, b, q)
    assert all(a.rule != "strategy_isolated" or a.strategy_id == "test_signal_generator"
               for a in ex.decision.risk_adjustments)


def test_bad_changes_are_refused(env):
    store = env[0]
    with pytest.raises(LifecycleError, match="no strategy"):
        change_state(store, "nope", "pause", "ana", "x")
    with pytest.raises(LifecycleError, match="reason is required"):
        change_state(store, "spy_macd_vixy", "pause", "ana", " ")
    change_state(store, "spy_macd_vixy", "pause", "ana", "x")
    with pytest.raises(LifecycleError, match="already paused"):
        change_state(store, "spy_macd_vixy", "pause", "ana", "x")


def test_cli_pause_is_one_line_and_recorded(tmp_path):
    def cli(*args):
        return subprocess.run([sys.executable, "main.py", *args], cwd=ROOT, capture_output=True, text=True,
                              timeout=300)

    r = cli("strategy", "pause", "spy_macd_vixy", "--reason", "review", "--by", "ana", "--state-dir", str(tmp_path))
    assert r.returncode == 2 and r.stderr.strip().startswith("error: no strategy"), r.stderr  # nothing applied yet
    assert cli("run", "--dry-run", "--state-dir", str(tmp_path)).returncode == 0
    r = cli("strategy", "pause", "spy_macd_vixy", "--reason", "review", "--by", "ana", "--state-dir", str(tmp_path))
    assert r.returncode == 0, r.stderr
    assert r.stdout.startswith("spy_macd_vixy: active -> paused by ana (review)")
    h = cli("strategy", "history", "spy_macd_vixy", "--state-dir", str(tmp_path))
    assert '"after": "paused"' in h.stdout and '"by": "ana"' in h.stdout
