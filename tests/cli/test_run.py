"""``python main.py run`` as a person runs it: exit codes, one-line errors, nothing written on bad input."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from bus.store import FirestoreStore
from pipeline.settings import load_settings
from tests.support.processes import cli, emulators_using

ROOT = Path(__file__).resolve().parents[2]


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


def test_embedded_emulator_persists_state_and_leaves_no_process(tmp_path, emulator):
    env = {"GOOGLE_CLOUD_PROJECT": "intent-bus-local"}
    r1 = cli(["run", "--json", "--state-dir", str(tmp_path)], env, drop=("FIRESTORE_EMULATOR_HOST",))
    assert r1.returncode == 0, r1.stderr
    first = json.loads(r1.stdout)
    assert first["orders"] and (tmp_path / "CURRENT").is_file()
    assert emulators_using(tmp_path) == []  # the embedded emulator stopped
    r2 = cli(["run", "--json", "--state-dir", str(tmp_path)], env, drop=("FIRESTORE_EMULATOR_HOST",))
    second = json.loads(r2.stdout)
    # The shipped paper account fills at the next open (fill_at: next_open): the first run's market orders rest
    # in the persisted paper account; the second run, at the same as-of, counts them as pending and places
    # nothing (it would place them again had the state not persisted), and nothing has filled yet.
    assert all(o["status"] == "Submitted" for o in first["orders"])
    assert r2.returncode == 0 and second["orders"] == []
    assert not second["portfolio"]["holdings"]
    assert emulators_using(tmp_path) == []  # the embedded emulator stopped


def test_strict_makes_a_skipped_run_exit_4(tmp_path, emulator, project):
    env = {"GOOGLE_CLOUD_PROJECT": project, "FIRESTORE_EMULATOR_HOST": emulator.host}
    store = FirestoreStore(project)
    taken, _ = store.try_lease("locks/commander-paper", "another-run", 600)  # another run holds the account
    assert taken
    plain = cli(["run", "--json", "--as-of", "2020-03-16"], env)
    assert plain.returncode == 0 and json.loads(plain.stdout)["status"] == "skipped"
    strict = cli(["run", "--json", "--strict", "--as-of", "2020-03-16"], env)
    assert strict.returncode == 4 and json.loads(strict.stdout)["status"] == "skipped"
