"""README's "Trade today", as a person runs it: every ``python main.py`` line of the section, in order, exactly as
written, each in its own process, against the project's fake venues on 127.0.0.1 and the Firestore emulator.

The lines are read from README.md (so the README cannot drift from what is tested). The test plays the person:
it copies ``config`` to ``my-config`` in a scratch folder (the README's first command), writes the fakes'
addresses into ``my-config`` (``base_url``, host and port) and made-up keys into the environment, and, for the
after-hours step, opens the fake TWS's session between two runs. ``EXECUTION_ID`` is the id the run before
printed (``Execution <id>: ...``).
"""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import subprocess
import sys
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
import yaml

from bus import paths
from bus.models import Execution, Intent, PortfolioSnapshot
from bus.orders import OrderLifecycle
from bus.store import read
from tests.fakes.commander_scenario import assert_books_match
from tests.fakes.fake_binance import FakeBinanceUSDM
from tests.fakes.fake_hyperliquid import FakeHyperliquid
from tests.fakes.fake_tws import FakeTWS
from tests.market.today import crypto_rows, etf_rows
from tests.support.venues import fake_market_venues, market_yaml

ROOT = Path(__file__).resolve().parents[2]
MAIN = "python main.py"


def section() -> str:
    """The README's "Trade today" section."""
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    start = text.index("\n## Trade today\n")
    end = text.index("\n## ", start + 1)
    return text[start:end]


def steps() -> list[list[str]]:
    """The section's ``sh`` blocks, each as its command lines: [setup, step 1, step 2, step 3]."""
    blocks = re.findall(r"```sh\n(.*?)```", section(), re.S)
    return [[ln.strip() for ln in b.splitlines() if ln.strip() and not ln.lstrip().startswith("#")] for b in blocks]


def commands(step: int) -> list[str]:
    """The ``python main.py`` lines of step ``step`` (1, 2 or 3); a step is only such lines."""
    lines = steps()[step]
    assert lines and all(ln.startswith(MAIN + " ") for ln in lines), lines
    return lines


class Person:
    """Runs README lines in a scratch folder, as a shell would, with the emulator and a fresh project."""

    def __init__(self, home: Path, env: dict[str, str]) -> None:
        self.home, self.env = home, env
        self.last_execution: str | None = None

    def run(self, line: str, timeout: float = 300) -> subprocess.CompletedProcess:
        args = shlex.split(line)
        assert args[:2] == ["python", "main.py"], line
        if "EXECUTION_ID" in args:
            assert self.last_execution, "no run printed an execution id before: " + line
            args[args.index("EXECUTION_ID")] = self.last_execution
        r = subprocess.run([sys.executable, str(ROOT / "main.py"), *args[2:]], cwd=self.home,
                           env={**os.environ, **self.env}, capture_output=True, text=True, timeout=timeout)
        m = re.search(r"^Execution (\S+): ", r.stdout, re.M)
        if m:
            self.last_execution = m.group(1)
        return r

    @property
    def config(self) -> Path:
        return self.home / "my-config"

    def edit(self, name: str, change) -> None:
        """Edit ``my-config/{name}`` (YAML) with ``change(doc) -> doc``."""
        path = self.config / name
        path.write_text(yaml.safe_dump(change(yaml.safe_load(path.read_text()))))


@pytest.fixture
def person(emulator, project, tmp_path) -> Person:
    """The README's first command, ``cp -r config my-config``, done in a scratch folder."""
    [setup] = steps()[:1]
    assert setup == ["cp -r config my-config"], setup
    shutil.copytree(ROOT / "config", tmp_path / "my-config")
    return Person(tmp_path, {"GOOGLE_CLOUD_PROJECT": project, "FIRESTORE_EMULATOR_HOST": emulator.host})


def recent(t: datetime, since: datetime) -> bool:
    return since - timedelta(seconds=5) <= t <= datetime.now(timezone.utc)


def bars_recorded(store, ex: Execution) -> None:
    """Every successful intent of ``ex`` names the bars it used (source, timeframe, last close, digest)."""
    for sid, ref in ex.context.strategy_intents_refs.items():
        intent = read(store, ref, Intent)
        if intent.status == "success" and intent.target_positions:
            assert intent.source.bars, sid
            assert all(b.digest.startswith("sha256:") and b.last_close <= ex.as_of for b in intent.source.bars), sid


def paper_market(person: Person, binance: FakeBinanceUSDM, yahoo, **market) -> None:
    """What the person types into my-config for forward paper: market.yaml's sources (here the fakes)."""
    person.edit("market.yaml", lambda _: market_yaml(binance.base_url, yahoo.base_url, **market))


# ---------------------------------------------------------------------------------------------- step 1


def test_step_1_forward_paper_locally(person, store):
    data_update, dry_run, trade, replay, cron = commands(1)
    with fake_market_venues() as (now, binance, yahoo):
        paper_market(person, binance, yahoo)
        state = person.home / "my-state"

        r = person.run(data_update)
        assert r.returncode == 0, r.stderr
        assert "4/4" in r.stderr, r.stderr  # the progress bar
        assert (state / "bars" / "yahoo" / "SPY-1d.csv").exists() and (state / "bars" / "binance").is_dir()

        started = datetime.now(timezone.utc)
        r = person.run(dry_run)
        assert r.returncode == 0, r.stderr
        ex = read(store, paths.execution(person.last_execution), Execution)
        assert ex.dry_run and ex.status == "completed" and recent(ex.as_of, started), (ex.status, ex.as_of)
        assert ex.orders_placed and all(o.status == "DryRun" for o in ex.orders_placed)
        assert store.list_docs(paths.ORDERS) == []  # a dry run writes no order
        bars_recorded(store, ex)

        started = datetime.now(timezone.utc)
        r = person.run(trade)
        assert r.returncode == 0, r.stderr
        traded = person.last_execution
        ex = read(store, paths.execution(traded), Execution)
        assert not ex.dry_run and ex.status == "completed" and recent(ex.as_of, started), ex.reason
        assert {o.symbol for o in ex.orders_placed} >= {"SPY", "BTC-USDT"}
        assert all(o.status in ("Filled", "Submitted") for o in ex.orders_placed), ex.orders_placed
        spy = next(b for b in read(store, paths.intent("spy_macd_vixy"), Intent).source.bars if b.symbol == "SPY")
        assert spy.source == "yahoo" and now - spy.last_close < timedelta(days=5)
        assert ex.context.prices["SPY"] == pytest.approx(etf_rows("SPY", now)[-1][4])  # priced from the same bars
        bars_recorded(store, ex)

        r = person.run(replay)
        assert r.returncode == 0 and f"{traded}: identical" in r.stdout, r.stdout + r.stderr

        asked = len(binance.requests("/fapi/v1/klines")) + len(yahoo.chart_requests())
        r = person.run(cron)
        assert r.returncode == 0, r.stderr  # --strict: a skipped run would exit 4
        later = read(store, paths.execution(person.last_execution), Execution)
        assert later.execution_id != traded and later.status == "completed" and later.orders_placed == [], later
        if datetime.now(timezone.utc).replace(minute=0, second=0, microsecond=0) == now.replace(
                minute=0, second=0, microsecond=0):  # no bar can have closed since: the cache answers alone
            assert len(binance.requests("/fapi/v1/klines")) + len(yahoo.chart_requests()) == asked


# ---------------------------------------------------------------------------------------------- step 2


def test_step_2_forward_paper_in_the_cloud(person, store):
    workflow_run, deploy = commands(2)
    with fake_market_venues() as (_, binance, yahoo):
        paper_market(person, binance, yahoo, as_of_now=True)
        assert yaml.safe_load((person.config / "trading.yaml").read_text())["mode"] == "paper"
        started = datetime.now(timezone.utc)
        r = person.run(workflow_run)
    assert r.returncode == 0, r.stderr[-3000:]
    result = json.loads(r.stdout)
    assert result["status"] == "completed" and result["strategy_failures"] == {}, result
    ex = read(store, paths.execution(result["execution_id"]), Execution)
    assert recent(ex.as_of, started) and ex.trigger == "manual"
    # One instant from the plan to the Commander: every intent and the snapshot are as of the execution's as-of.
    for sid in ("spy_macd_vixy", "crypto_trend", "test_signal_generator"):
        intent = read(store, ex.context.strategy_intents_refs[sid], Intent)
        assert intent.status == "success" and intent.as_of == ex.as_of, (sid, intent.error_message)
    assert read(store, ex.context.portfolio_snapshot_ref, PortfolioSnapshot).as_of == ex.as_of
    assert ex.orders_placed and all(o.status in ("Filled", "Submitted") for o in ex.orders_placed)
    assert store.get(paths.bar_series("yahoo", "SPY", "1d"))["symbol"] == "SPY"  # the cache in Firestore
    bars_recorded(store, ex)

    r = person.run(deploy, timeout=60)
    assert r.returncode == 0, r.stderr
    assert "gcloud functions deploy orchestrator" in r.stdout and "gcloud workflows deploy" in r.stdout


# ---------------------------------------------------------------------------------------------- step 3

ETF_STRATEGIES = ("spy_macd_vixy", "test_signal_generator")


def live_config(person: Person, account: str, strategies: tuple[str, ...], market: dict, brokers) -> None:
    """What the person types into my-config for a live run: mode live, the account, its strategies."""
    person.edit("trading.yaml", lambda d: {**d, "mode": "live"})
    person.edit("market.yaml", lambda _: market)

    def pick(doc):
        doc["defaults"]["live"] = account
        brokers(doc["accounts"][account])
        return doc

    person.edit("brokers.yaml", pick)
    person.edit("strategies.yaml", lambda d: {**d, "strategies": [
        {**s, "enabled": s["strategy_id"] in strategies} for s in d["strategies"]]})
    (person.config / "llm_traders.yaml").write_text("traders: []\n")  # no LLM trader on these accounts


def test_step_3_live_with_ib_after_hours(person, store):
    historical, dry_run, trade, next_run = commands(3)
    with fake_market_venues() as (now, binance, yahoo):
        closes = {s: etf_rows(s, now)[-1][4] for s in ("SPY", "VIXY")}
        with FakeTWS(account="U7654321", cash=100_000.0, prices=closes) as tws:  # a live account
            def point(acct):
                acct.update(host="127.0.0.1", ports={"paper": tws.port, "live": tws.port})

            live_config(person, "ib", ETF_STRATEGIES, market_yaml(binance.base_url, yahoo.base_url), point)

            r = person.run(historical)
            assert r.returncode == 2 and "live broker account 'ib' (ib)" in r.stderr, r.stderr
            assert r.stderr.strip().count("\n") == 0  # one line

            r = person.run(dry_run)
            assert r.returncode == 0, r.stderr
            ex = read(store, paths.execution(person.last_execution), Execution)
            assert ex.dry_run and ex.status == "completed" and ex.orders_placed, ex.reason
            assert tws.orders == []

            tws.set_session("closed")  # after the close: IB holds the orders (PreSubmitted, warning 399)
            r = person.run(trade)
            assert r.returncode == 0, r.stderr
            placed = read(store, paths.execution(person.last_execution), Execution)
            assert placed.status != "skipped", placed.reason
            assert {o.symbol for o in placed.orders_placed} == {"SPY", "VIXY"}
            assert all(o.status in ("PreSubmitted", "Submitted") for o in placed.orders_placed), placed.orders_placed
            assert all(tws.position(s) == 0 for s in closes)

            opening = {s: round(px * 1.002, 2) for s, px in closes.items()}
            tws.open_session(opening)  # the next open: the held orders fill there
            held = {s: tws.position(s) for s in closes}
            assert all(held.values()), held

            r = person.run(next_run)
            assert r.returncode == 0, r.stderr
            booked = read(store, paths.execution(person.last_execution), Execution)
            assert booked.status == "completed" and booked.orders_placed == [], booked
            held = {s: tws.position(s) for s in closes}
    records = [OrderLifecycle.model_validate(d) for _, d in store.list_docs(paths.ORDERS)]
    assert {r.symbol for r in records} == {"SPY", "VIXY"} and all(r.status == "filled" for r in records), records
    for rec in records:
        assert rec.avg_fill_price == pytest.approx(opening[rec.symbol])  # booked at the open's price
        assert rec.booked_quantity == pytest.approx(rec.filled_quantity)
    assert_books_match(store, held, strategies=ETF_STRATEGIES)  # external stays empty


BN_KEY, BN_SECRET = "readme-bn-key-3f1c", "readme-bn-secret-9d2e71"
HL_WALLET, HL_KEY = "0x" + "cd" * 20, "0x" + "22" * 32


def crypto_trend_on(perps: dict[str, str]):
    """strategies.yaml's crypto_trend trading perpetuals (project symbol -> the bundled spot symbol it follows)."""
    def change(doc):
        for s in doc["strategies"]:
            if s["strategy_id"] == "crypto_trend":
                s["universe"] = list(perps)
                s["params"] = {**s["params"], "symbols": list(perps)}
        return doc
    return change


@pytest.mark.parametrize("venue", ["binance-usdm", "hyperliquid"])
def test_step_3_live_with_a_ccxt_venue(person, store, venue):
    historical, dry_run, trade, next_run = commands(3)
    quote = "USDT" if venue == "binance-usdm" else "USDC"
    perps = {f"{c}-{quote}-PERP": f"{c}-USDT" for c in ("BTC", "ETH")}
    with fake_market_venues() as (now, binance, yahoo):
        closes = {p: crypto_rows(spot, now)[-1][4] for p, spot in perps.items()}
        market = market_yaml(binance.base_url, yahoo.base_url)
        market["sources"]["binance"]["symbols"] = {p: f"{spot.replace('-', '/')}:USDT" for p, spot in perps.items()}
        market["symbols"] = {p: "binance" for p in perps}
        if venue == "binance-usdm":
            fake = FakeBinanceUSDM(BN_KEY, BN_SECRET, balances={"USDT": "100000"}, client_order_id_scope="open",
                                   mark_prices={p.replace("-", "").removesuffix("PERP"): f"{px:.2f}"
                                                for p, px in closes.items()})
            person.env.update(BINANCE_API_KEY=BN_KEY, BINANCE_API_SECRET=BN_SECRET)
        else:
            fake = FakeHyperliquid(HL_WALLET, usdc="100000",
                                   mark_prices={p.split("-")[0]: f"{px:.1f}" for p, px in closes.items()})
            person.env.update(HYPERLIQUID_WALLET_ADDRESS=HL_WALLET, HYPERLIQUID_PRIVATE_KEY=HL_KEY)
        with fake:
            live_config(person, venue, ("crypto_trend",), market, lambda acct: acct.update(base_url=fake.base_url))
            person.edit("strategies.yaml", crypto_trend_on(perps))

            r = person.run(historical)
            assert r.returncode == 2 and f"live broker account '{venue}' (ccxt)" in r.stderr, r.stderr

            r = person.run(dry_run)
            assert r.returncode == 0, r.stderr
            ex = read(store, paths.execution(person.last_execution), Execution)
            assert ex.dry_run and ex.status == "completed" and ex.orders_placed, ex.reason
            assert fake.orders() == []

            r = person.run(trade)
            assert r.returncode == 0, r.stderr
            placed = read(store, paths.execution(person.last_execution), Execution)
            assert placed.status == "completed" and placed.orders_placed, placed.reason
            assert all(o.status == "Filled" and o.fill_price and o.fill_price > 0 for o in placed.orders_placed)

            r = person.run(next_run)
            assert r.returncode == 0, r.stderr
            again = read(store, paths.execution(person.last_execution), Execution)
            assert again.status == "completed" and again.orders_placed == [], again
            if venue == "binance-usdm":
                held = {p: float(fake.position(p.replace("-", "").removesuffix("PERP"))["positionAmt"]) for p in perps}
            else:
                held = {p: float((fake.position(p.split("-")[0]) or {"position": {"szi": "0"}})["position"]["szi"])
                        for p in perps}
    records = [OrderLifecycle.model_validate(d) for _, d in store.list_docs(paths.ORDERS)]
    assert records and all(r.status == "filled" and r.avg_fill_price for r in records), records
    assert all(r.booked_quantity == pytest.approx(r.filled_quantity) for r in records)
    assert_books_match(store, held, strategies=("crypto_trend",))  # external stays empty
