"""``python main.py schedule``: run the daily pipeline at ``run_time_utc`` until Ctrl-C (a local Cloud Scheduler)."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated, Optional

import typer

from cli.app import EXIT_INTERRUPTED, app, fail
from cli.options import ConfigDir, StateDir, load_config

MAIN = Path(__file__).resolve().parents[2] / "main.py"


@app.command()
def schedule(
    at: Annotated[Optional[str], typer.Option(
        "--at", metavar="HH:MM", help="daily run time in UTC (default: run_time_utc of trading.yaml)")] = None,
    every: Annotated[Optional[float], typer.Option(
        "--every", metavar="SECONDS", min=1.0, help="also run every SECONDS (an intraday cadence)")] = None,
    no_daily: Annotated[bool, typer.Option("--no-daily", help="only the --every cadence")] = False,
    live_data: Annotated[bool, typer.Option(
        "--live-data/--bundled-data", help="each run as of now on fetched bars (default), or on bundled bars")] = True,
    max_runs: Annotated[Optional[int], typer.Option(
        "--max-runs", min=1, help="stop after N runs have ended")] = None,
    config_dir: ConfigDir = None,
    state_dir: StateDir = None,
) -> None:
    """Run ``python main.py run`` daily at the configured time (UTC), and optionally every N seconds.

    Each run is a child process with the same ``--config`` and ``--state-dir``; its exit code is
    reported, and a run that could not start on time is reported as missed. Ctrl-C stops cleanly.
    """
    from ops.scheduler import LocalScheduler

    settings = load_config(config_dir)
    daily = None if no_daily else (at or settings.trading.run_time_utc)
    cmd = [sys.executable, str(MAIN), "run", "--strict"]
    cmd += ["--live-data"] if live_data else []
    cmd += ["--config", str(config_dir)] if config_dir else []
    cmd += ["--state-dir", str(state_dir)] if state_dir else []
    try:
        sched = LocalScheduler(cmd, daily_at=daily, every=every, max_runs=max_runs,
                               report=lambda line: typer.echo(f"schedule: {line}", err=True))
    except ValueError as exc:
        fail(str(exc))
    try:
        sched.start()
        while not sched.wait(timeout=1.0):
            pass
    except KeyboardInterrupt:
        sched.stop()
        raise typer.Exit(EXIT_INTERRUPTED) from None
    sched.stop()
