"""The dashboard in a real headless Chromium (Playwright, Debian's ``chromium``), on a store seeded with two
weeks of real runs: each view loads with no console error, shows the seeded figures, and is saved as a PNG.

``make test`` installs Debian's ``chromium`` when it is missing (``playwright install`` cannot download its own
browser here). Screenshots go to ``$INTENT_BUS_SCREENSHOTS`` (default: the test's temporary folder).
"""

from __future__ import annotations

import os
import shutil
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from bus import paths
from bus.models import Book
from bus.store import read
from ops.server import LocalFunctions
from pipeline.run import run_pipeline
from pipeline.wiring import make_broker
from tests.fakes.fake_openai import Behaviour
from tests.support.llm import decision, model, reply, trader

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
START = datetime(2020, 3, 2, 21, 30, tzinfo=timezone.utc)


def seed(store, settings, provider, srv) -> list[str]:
    """Ten weekdays of runs: the classic strategies plus one LLM trader answering from the fake server."""
    srv.set_default("m-dash", Behaviour.ok(reply(decision()), prompt_tokens=900, completion_tokens=120))
    llm = trader([model(srv, "m-dash")], strategy_id="llm_dashboard", allocation=0.05)
    for s in settings.strategies:  # the shipped traders have no key here: this one takes their place
        if s.kind == "llm":
            store.set(paths.strategy(s.strategy_id), s.model_copy(update={"enabled": False}).to_store())
    store.set(paths.strategy(llm.strategy_id), llm.to_store())
    classic = [s for s in settings.strategies if s.kind == "classic"]
    broker = make_broker(store, settings, provider)
    ids, day = [], START
    while len(ids) < 10:
        if day.weekday() < 5:
            ids.append(run_pipeline(store, provider, broker, [*classic, llm], day).execution.execution_id)
        day += timedelta(days=1)
    return ids


@pytest.mark.skipif(not os.path.exists(CHROMIUM), reason="Debian's chromium is not installed (make test installs it)")
def test_each_view_loads_without_console_errors(cloud, settings, provider, srv, llm_env, tmp_path):
    from playwright.sync_api import sync_playwright

    ids = seed(cloud, settings, provider, srv)
    out = Path(os.environ.get("INTENT_BUS_SCREENSHOTS") or tmp_path)
    out.mkdir(parents=True, exist_ok=True)
    errors: list[str] = []
    with LocalFunctions() as fns, sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        page = browser.new_page(viewport={"width": 1280, "height": 900})
        page.on("console", lambda m: errors.append(f"console {m.type}: {m.text}") if m.type == "error" else None)
        page.on("pageerror", lambda e: errors.append(f"page error: {e}"))

        def view(name: str, ready: str) -> str:
            page.goto(f"{fns.base_url}/api/dashboard#{name}")
            page.wait_for_selector(f"#view[data-ready='{ready}']", timeout=60_000)
            page.screenshot(path=str(out / f"{name.replace('/', '_')}.png"), full_page=True)
            return page.inner_text("#view")

        text = view("overview", "overview")
        assert "Leaderboard" in text and "spy_macd_vixy" in text
        assert page.locator("svg polyline").count() >= 3  # one equity curve per book with points
        book = read(cloud, paths.book("spy_macd_vixy"), Book)
        assert f"{book.equity:,.2f}" in text or f"{book.equity:,.1f}" in text or f"{book.equity:,.0f}" in text
        text = view("positions", "positions")
        assert "SPY" in text and "target" in text
        text = view("executions", "executions")
        assert ids[-1] in text or "completed" in text
        page.click("tr.click >> nth=0")
        page.wait_for_selector("#view[data-ready='execution']", timeout=60_000)
        page.screenshot(path=str(out / "execution.png"), full_page=True)
        assert "Targets and contributions" in page.inner_text("#view")
        text = view("llm", "llm")
        assert "llm_dashboard" in text and "success" in text and "open_long BTC-USDT" in text and "trend is up" in text
        browser.close()
    assert errors == []
    print(f"dashboard screenshots: {out}")
