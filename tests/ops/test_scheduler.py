"""The local scheduler: runs on its cadence, reports exit codes and missed runs, stops cleanly on Ctrl-C."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from ops.scheduler import LocalScheduler
from tests.support.processes import default_sigint

ROOT = Path(__file__).resolve().parents[2]


def test_each_run_is_a_child_and_its_exit_code_is_reported():
    lines: list[str] = []
    s = LocalScheduler([sys.executable, "-c", "import sys; sys.exit(4)"], every=1.0, max_runs=2, report=lines.append)
    s.start()
    try:
        assert s.wait(timeout=60), lines
    finally:
        s.stop()
    assert [r.exit_code for r in s.records[:2]] == [4, 4]
    assert [r.note for r in s.records[:2]] == ["skipped", "skipped"]
    assert any(line.startswith("scheduled: every 1 s; next run at") for line in lines)
    assert "scheduler stopped" in lines


def test_a_run_due_while_the_previous_one_runs_is_reported_missed(tmp_path):
    release = tmp_path / "release"
    child = f"import os, time\nwhile not os.path.exists({str(release)!r}): time.sleep(0.02)\n"
    lines: list[str] = []
    s = LocalScheduler([sys.executable, "-c", child], every=1.0, max_runs=1, report=lines.append)
    s.start()
    try:
        deadline = time.monotonic() + 60
        while not any(r.note.startswith("missed") for r in s.records) and time.monotonic() < deadline:
            s.wait(timeout=0.1)
        release.touch()
        assert s.wait(timeout=60), lines
    finally:
        release.touch()
        s.stop()
    missed = [r for r in s.records if r.exit_code is None]
    assert missed and missed[0].note == "missed: previous run still running"
    assert any("missed run at" in line and "still running" in line for line in lines)
    assert any(r.exit_code == 0 for r in s.records)


def test_nothing_to_schedule_and_a_bad_time_are_errors():
    with pytest.raises(ValueError, match="nothing to schedule"):
        LocalScheduler(["true"])
    with pytest.raises(ValueError, match="not HH:MM"):
        LocalScheduler(["true"], daily_at="25:00")


def _cli(*args: str, **kw):
    env = {k: v for k, v in os.environ.items() if k != "FIRESTORE_EMULATOR_HOST"}
    return subprocess.Popen([sys.executable, str(ROOT / "main.py"), "schedule", *args], cwd=ROOT, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, preexec_fn=default_sigint,
                            **kw)


def test_schedule_runs_the_pipeline_then_stops(tmp_path):
    p = _cli("--no-daily", "--every", "1", "--bundled-data", "--max-runs", "1", "--state-dir", str(tmp_path))
    out, err = p.communicate(timeout=240)
    assert p.returncode == 0, err
    assert "ended: exit 0 (completed)" in err
    assert "Execution" in out or "orders" in out.lower()  # the run's own summary, printed by the child


def test_ctrl_c_stops_the_schedule_cleanly(tmp_path):
    p = _cli("--at", "00:00", "--state-dir", str(tmp_path))
    assert p.stderr is not None
    seen = []
    for line in p.stderr:  # the scheduler says when it runs next once it is started
        seen.append(line)
        if "next run at" in line:
            break
    p.send_signal(signal.SIGINT)
    _, rest = p.communicate(timeout=120)
    assert p.returncode == 130, "".join(seen) + rest
    assert "scheduler stopped" in rest and "Traceback" not in rest
    assert any("daily at 00:00 UTC" in line for line in seen)
