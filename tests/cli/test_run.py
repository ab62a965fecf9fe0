"""``python main.py run`` as a person runs it: exit codes, one-line errors, nothing written on bad input."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from bus.store import FirestoreStore
from pipeline.settings import load_settings

ROOT = Path(__file__).resolve().parents[2]


def cli(args, env_extra=None, drop=()):
    env = {k: v for k, v in os.environ.items() if k not in drop}
    env.update(env_extra or {})
    return subprocess.run([sys.executable, "main.py", *args], cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=240)


def collections(project):
    return [c.id for c in FirestoreStore(project).client.collections()]


@pytest.fixture
def on_emulator(emulator, project):
    return {"GOOGLE_CLOUD_PROJECT": project, "FIRESTORE_EMULATOR_HOST": emulator.host}


def bad_config(tmp_path, name, text):
    d = tmp_path / "cfg"
    shutil.copytree(ROOT / "config", d)
    (d / name).write_text(text)
    return d


def test_json_run_then_dry_run_on_an_existing_emulator(on_emulator, project):
    r = cli(["run", "--json", "--as-of", "2020-03-16"], on_emulator)
    assert r.returncode == 0, r.stderr
    doc = json.loads(r.stdout)
    assert doc["status"] == "completed" and doc["orders"] and doc["portfolio"]["net_liquidation"] == 100_000
    assert set(doc["strategies"]) == set(load_settings().strategy_ids())
    assert all(i["status"] == ("success" if not sid.startswith("llm_") else "skipped")
               for sid, i in doc["strategies"].items())
    r = cli(["run", "--json", "--dry-run", "--as-of", "2020-03-17"], on_emulator)
    dry = json.loads(r.stdout)
    assert r.returncode == 0 and dry["dry_run"] is True
    assert all(o["status"] == "DryRun" for o in dry["orders"])


@pytest.mark.parametrize("args, message", [
    (["--strategies", "spy_macd_vixy,nope"], "unknown strategy id(s) ['nope']"),
    (["--as-of", "2031-01-01"], "as-of 2031-01-01 is outside the bundled data"),
    (["--as-of", "1980-01-01"], "as-of 1980-01-01 is outside the bundled data"),
    (["--as-of", "16/03/2020"], "is not a date"),
])
def test_bad_input_is_one_line_nonzero_and_writes_nothing(on_emulator, project, args, message):
    r = cli(["run", *args], on_emulator)
    assert r.returncode == 2
    assert r.stderr.strip().count("\n") == 0 and message in r.stderr
    assert collections(project) == []


@pytest.mark.parametrize("name, text, message", [
    ("trading.yaml", "tradingEnabled: [unclosed\n", "malformed YAML"),
    ("trading.yaml", "reserve_fraction: 2\n", "reserve_fraction"),
    ("strategies.yaml", (ROOT / "config" / "strategies.yaml").read_text().replace("capital_allocation: 0.1",
                                                                                   "capital_allocation: 0.6"),
     "past 1 - reserve = 0.95 ("),
])
def test_bad_config_is_one_line_nonzero_and_writes_nothing(on_emulator, project, tmp_path, name, text, message):
    r = cli(["run", "--config", str(bad_config(tmp_path, name, text))], on_emulator)
    assert r.returncode == 2 and r.stderr.strip().count("\n") == 0 and message in r.stderr, r.stderr
    if name == "strategies.yaml":
        assert "test_signal_generator=0.6" in r.stderr and "spy_macd_vixy=" in r.stderr
    assert collections(project) == []


def test_missing_emulator_binary_says_how_to_install(tmp_path):
    r = cli(["run", "--state-dir", str(tmp_path)], {"FIRESTORE_EMULATOR_BIN": str(tmp_path / "nope")},
            drop=("FIRESTORE_EMULATOR_HOST",))
    assert r.returncode == 2 and r.stderr.strip().count("\n") == 0
    assert "google-cloud-cli-firestore-emulator" in r.stderr and "FIRESTORE_EMULATOR_BIN" in r.stderr


def java_emulators():
    out = subprocess.run(["ps", "-eo", "args"], capture_output=True, text=True).stdout
    return [line for line in out.splitlines() if "cloud-firestore-emulator" in line and "java" in line]


def test_embedded_emulator_persists_state_and_leaves_no_process(tmp_path, emulator):
    before = len(java_emulators())  # the session's own emulator
    env = {"GOOGLE_CLOUD_PROJECT": "intent-bus-local"}
    r1 = cli(["run", "--json", "--state-dir", str(tmp_path)], env, drop=("FIRESTORE_EMULATOR_HOST",))
    assert r1.returncode == 0, r1.stderr
    first = json.loads(r1.stdout)
    assert first["orders"] and (tmp_path / "CURRENT").is_file()
    assert len(java_emulators()) == before
    r2 = cli(["run", "--json", "--state-dir", str(tmp_path)], env, drop=("FIRESTORE_EMULATOR_HOST",))
    second = json.loads(r2.stdout)
    assert r2.returncode == 0 and second["orders"] == []
    assert second["portfolio"]["holdings"] == pytest.approx(
        {o["symbol"]: (o["totalQuantity"] if o["action"] == "BUY" else -o["totalQuantity"]) for o in first["orders"]})
    assert len(java_emulators()) == before


@pytest.mark.parametrize("point", ["commander.after_order#1", "commander.before_audit"])
def test_a_killed_run_leaves_no_emulator_and_its_rerun_repeats_no_order(tmp_path, emulator, point):
    """``os._exit`` (as ``kill -9``) after orders went out: the embedded emulator dies with the process, the
    state saved at each commit point holds the orders, and the rerun books them instead of sending them again."""
    from bus.emulator import FirestoreEmulator
    from bus.orders import OrderLifecycle

    before = len(java_emulators())
    env = {"GOOGLE_CLOUD_PROJECT": "intent-bus-local"}
    args = ["run", "--json", "--as-of", "2020-03-16", "--state-dir", str(tmp_path)]
    crashed = cli(args, {**env, "INTENT_BUS_FAULTS": f"{point}=exit"}, drop=("FIRESTORE_EMULATOR_HOST",))
    assert crashed.returncode == 137, crashed.stderr
    assert len(java_emulators()) == before  # the emulator died with its parent
    again = cli(args, env, drop=("FIRESTORE_EMULATOR_HOST",))
    assert again.returncode == 0, again.stderr
    assert len(java_emulators()) == before
    rerun = json.loads(again.stdout)
    with FirestoreEmulator("intent-bus-local", state_dir=tmp_path) as emu:
        import os as _os

        old = _os.environ.get("FIRESTORE_EMULATOR_HOST")
        _os.environ["FIRESTORE_EMULATOR_HOST"] = emu.host
        try:
            st = FirestoreStore("intent-bus-local")
            records = [OrderLifecycle.model_validate(d) for _, d in st.list_docs("orders")]
            sim_orders = [d for _, d in st.list_docs("sim_accounts/sim-paper/orders")]
        finally:
            if old is None:
                _os.environ.pop("FIRESTORE_EMULATOR_HOST", None)
            else:
                _os.environ["FIRESTORE_EMULATOR_HOST"] = old
    sent = [r for r in records if r.status != "cancelled"]
    assert sent and len({r.symbol for r in sent}) == len(sent)  # one order per symbol: none repeated
    by_crashed = {r.symbol for r in sent if r.execution_id != rerun["execution_id"]}
    assert by_crashed  # the crashed run's orders were saved with it (the state is exported at each commit point)
    assert not by_crashed & {o["symbol"] for o in rerun["orders"]}  # and the rerun sent none of them again
    assert {o["client_order_id"] for o in sim_orders} == {r.client_order_id for r in sent}  # all on record
    assert all(not r.open and r.booked_quantity == r.filled_quantity for r in records)  # all booked


def test_strict_makes_a_skipped_run_exit_4(tmp_path, emulator, project):
    env = {"GOOGLE_CLOUD_PROJECT": project, "FIRESTORE_EMULATOR_HOST": emulator.host}
    store = FirestoreStore(project)
    taken, _ = store.try_lease("locks/commander-paper", "another-run", 600)  # another run holds the account
    assert taken
    plain = cli(["run", "--json", "--as-of", "2020-03-16"], env)
    assert plain.returncode == 0 and json.loads(plain.stdout)["status"] == "skipped"
    strict = cli(["run", "--json", "--strict", "--as-of", "2020-03-16"], env)
    assert strict.returncode == 4 and json.loads(strict.stdout)["status"] == "skipped"


@pytest.mark.parametrize("args, message", [
    (["replay", "../config/trading"], "is not an execution id"),
])
def test_more_bad_input_is_one_line_and_exit_2(args, message):
    r = cli(args, {})
    assert r.returncode == 2 and r.stderr.strip().count("\n") == 0 and message in r.stderr, r.stderr


def test_a_binary_trading_yaml_is_one_line_and_exit_2(tmp_path):
    cfg = tmp_path / "cfg"
    shutil.copytree(ROOT / "config", cfg)
    (cfg / "trading.yaml").write_bytes(bytes(range(128, 256)))
    r = cli(["run", "--config", str(cfg), "--store", "memory"], {})
    assert r.returncode == 2 and r.stderr.strip().count("\n") == 0 and "not a text file" in r.stderr, r.stderr
