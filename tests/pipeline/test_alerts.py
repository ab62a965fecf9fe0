"""Alerts from real runs to a webhook receiver on 127.0.0.1: one per kind, repeats suppressed, URL never logged."""

from __future__ import annotations

import dataclasses
import logging
import socket
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from brokers.ib import IBBroker
from bus import paths
from bus.journal import BudgetUsage
from pipeline.notify import AlertsConfig, Notifier, Webhook
from pipeline.observe import after_run
from pipeline.run import run_pipeline
from pipeline.settings import apply_settings
from pipeline.wiring import make_broker
from tests.fakes.fake_webhook import FakeWebhook

AS_OF = datetime(2020, 3, 16, 21, 30, tzinfo=timezone.utc)
CONFIG_DIR = Path(__file__).resolve().parents[2] / "config"


@pytest.fixture
def hook():
    with FakeWebhook() as h:
        yield h


@pytest.fixture
def one(store, settings, provider):
    """The shipped settings with one classic strategy (so each kind's key is unique in a run)."""
    s = dataclasses.replace(settings, strategies=[x for x in settings.strategies if x.strategy_id == "spy_macd_vixy"])
    apply_settings(store, s)
    return s


def notifier(store, hook, **kw):
    cfg = AlertsConfig(webhooks=[Webhook(format="json", url_env="TEST_ALERT_WEBHOOK")], **kw)
    return Notifier(store, cfg, env={"TEST_ALERT_WEBHOOK": hook.url})


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_each_kind_alerts_once_from_real_runs_and_repeats_are_suppressed(store, one, provider, hook, caplog):
    caplog.set_level(logging.INFO)
    n = notifier(store, hook)
    now = datetime.now(timezone.utc).replace(microsecond=0)
    # 1. A halted account: the paper account lost more than daily_loss_halt since the previous close.
    paper = make_broker(store, one, provider)
    first = run_pipeline(store, provider, paper, one.strategies, AS_OF)
    assert first.execution.status == "completed" and first.execution.orders_placed
    acct = store.get(paths.account_state("paper"))
    store.set(paths.account_state("paper"), {**acct, "last_nav": acct["last_nav"] * 2})
    halted = run_pipeline(store, provider, paper, one.strategies, AS_OF + timedelta(days=1))
    assert any(a.rule == "daily_loss_halt" for a in halted.execution.decision.risk_adjustments)
    after_run(store, halted.execution, config_dir=CONFIG_DIR, intents=halted.intents, notifier=n)
    assert hook.kinds() == ["risk_halt"]

    # 2. A broker that refuses the connection, as of now: bundled bars end in 2026-05, so the series is stale.
    ib = IBBroker("127.0.0.1", closed_port(), client_id=7, connect_timeout=1.0, reconnect_attempts=1,
                  reconnect_wait=0.0)
    res = run_pipeline(store, provider, ib, one.strategies, now)
    assert res.execution.status == "skipped" and res.reconcile_error
    sent = after_run(store, res.execution, config_dir=CONFIG_DIR, reconcile_error=res.reconcile_error,
                     intents=res.intents, notifier=n)
    assert sorted(d.alert.kind for d in sent if d.sent) == ["broker_disconnect", "execution_skipped", "market_data"]
    assert sorted(hook.kinds()) == ["broker_disconnect", "execution_skipped", "market_data", "risk_halt"]
    stale = next(b for b in hook.bodies if b["alert"]["kind"] == "market_data")["alert"]
    assert stale["key"] == "spy_macd_vixy" and "stale" in stale["text"]

    # The same failure again within the window: recorded as suppressed, nothing posted.
    res2 = run_pipeline(store, provider, ib, one.strategies, now + timedelta(minutes=5))
    again = after_run(store, res2.execution, config_dir=CONFIG_DIR, reconcile_error=res2.reconcile_error,
                      intents=res2.intents, notifier=n)
    assert again and all(not d.sent and d.suppressed == "repeat" for d in again)
    assert len(hook.bodies) == 4
    assert (store.get("alerts/execution_skipped") or {}).get("suppressed") == 1

    # 3. An exhausted LLM budget and an order whose answer was lost, as their modules record them.
    today = now.date().isoformat()
    store.set(paths.llm_usage("fake-model", today), BudgetUsage(
        deployment="fake-model", day=today, updated_at=now, total_tokens=10_000, token_limit=10_000,
        alerted_at=now, exhausted_at=now).to_store())
    order = {"client_order_id": "ex1-SPY", "execution_id": "ex1", "symbol": "SPY", "action": "BUY",
             "quantity": 3.0, "status": "unknown", "open": True, "error": "timeout"}
    store.set(paths.order("ex1-SPY"), order)
    from pipeline.lifecycle import change_state

    change_state(store, "spy_macd_vixy", "pause", "ana", "model review")
    after_run(store, halted.execution, config_dir=CONFIG_DIR, intents=halted.intents, notifier=n)
    kinds = hook.kinds()
    for kind in ("execution_skipped", "broker_disconnect", "market_data", "risk_halt", "llm_budget",
                 "order_unknown", "strategy_paused"):
        assert kinds.count(kind) == 1, (kind, kinds)
    assert len(kinds) == 7
    # The URL is a secret: in no log line.
    assert hook.url not in caplog.text
    assert "alert order_unknown" in caplog.text


def test_rate_limit_per_kind_and_retry_of_a_failing_webhook(store, hook):
    from pipeline.alerts import Alert

    n = notifier(store, hook, max_per_kind=2)
    hook.fail_next(2, 503)  # the first alert needs three attempts
    out = n.send([Alert("order_unknown", f"o{i}", "critical", f"order o{i}", "lost") for i in range(4)])
    assert [d.sent for d in out] == [True, True, False, False]
    assert [d.suppressed for d in out[2:]] == ["rate limit", "rate limit"]
    assert hook.refused == 2 and [b["alert"]["key"] for b in hook.bodies] == ["o0", "o1"]
    doc = store.get("alerts/order_unknown")
    assert doc["sent"] == 2 and doc["suppressed"] == 2


def test_a_webhook_that_stays_down_is_logged_not_raised(store, hook, caplog):
    from pipeline.alerts import Alert

    n = notifier(store, hook)
    hook.fail_next(3, 500)
    [d] = n.send([Alert("execution_failed", "boom", "critical", "execution x failed", "boom")])
    assert d.sent and d.targets == 0 and d.errors and "HTTP Error 500" in d.errors[0]
    assert hook.url not in caplog.text and hook.url not in d.errors[0]


def test_slack_and_discord_bodies(store):
    from pipeline.alerts import Alert
    from pipeline.notify import render

    a = Alert("risk_halt", "daily_loss_halt", "critical", "risk halt: daily_loss_halt", "NAV down 12%", "ex9")
    now = datetime(2026, 1, 2, tzinfo=timezone.utc)
    assert render(a, "slack", now) == {"text": "[CRITICAL] risk halt: daily_loss_halt\nNAV down 12%\nexecution: ex9"}
    assert render(a, "discord", now)["content"].startswith("[CRITICAL] risk halt")
    assert render(a, "json", now)["alert"]["execution_id"] == "ex9"


def test_an_unset_webhook_variable_sends_nothing_and_says_so(store, caplog):
    from pipeline.alerts import Alert

    caplog.set_level(logging.INFO)
    n = Notifier(store, AlertsConfig(webhooks=[Webhook(url_env="UNSET_ALERT_WEBHOOK")]), env={})
    [d] = n.send([Alert("execution_failed", "k", "critical", "t", "x")])
    assert d.sent and d.targets == 0
    assert "UNSET_ALERT_WEBHOOK" in caplog.text and "off" in caplog.text
