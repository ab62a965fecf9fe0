"""The store goes away in the middle of a run: the CLI says so in one line and exits 1 within seconds."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

from bus import paths
from bus.emulator import FirestoreEmulator
from bus.store import FirestoreStore

ROOT = Path(__file__).resolve().parents[2]


def test_emulator_killed_mid_run_is_one_line_and_exit_1_within_30_s(tmp_path):
    project = "outage-test"
    with FirestoreEmulator(project, state_dir=tmp_path) as emu:
        env = {**os.environ, "GOOGLE_CLOUD_PROJECT": project, "FIRESTORE_EMULATOR_HOST": emu.host,
               "INTENT_BUS_FAULTS": "reconcile.read=delay:4"}  # a slow broker read: the store dies meanwhile
        proc = subprocess.Popen([sys.executable, "main.py", "run", "--as-of", "2020-03-16"], cwd=ROOT, env=env,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        old = os.environ.get("FIRESTORE_EMULATOR_HOST")
        os.environ["FIRESTORE_EMULATOR_HOST"] = emu.host
        try:
            store = FirestoreStore(project)
            deadline = time.monotonic() + 120
            while store.get(paths.lock("paper")) is None:  # the run holds the lease: it is mid-run
                assert time.monotonic() < deadline and proc.poll() is None, proc.communicate()
                time.sleep(0.05)
        finally:
            if old is None:
                os.environ.pop("FIRESTORE_EMULATOR_HOST", None)
            else:
                os.environ["FIRESTORE_EMULATOR_HOST"] = old
        emu.stop()
        killed = time.monotonic()
        out, err = proc.communicate(timeout=120)
        took = time.monotonic() - killed
    print(f"CLI exited {took:.1f} s after the emulator was killed")
    assert proc.returncode == 1, err
    assert took < 30, took
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: the store failed"), err
