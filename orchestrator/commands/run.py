"""``python main.py run``: the pipeline once, as of one time, with a readable summary."""

from __future__ import annotations

import json
import sys
from datetime import date
from enum import Enum
from pathlib import Path
from typing import Optional

import typer
from rich.console import Console

from orchestrator.cli import EXIT_FAILED, EXIT_PARTIAL, app, fail


class StoreChoice(str, Enum):
    emulator = "emulator"
    firestore = "firestore"
    memory = "memory"


@app.command()
def run(
    dry_run: bool = typer.Option(False, "--dry-run", help="decide and record, but place no order"),
    as_of: Optional[str] = typer.Option(None, "--as-of", help="YYYY-MM-DD; default: last day of the bundled data"),
    strategies: Optional[str] = typer.Option(None, "--strategies", help="comma-separated strategy ids to run"),
    as_json: bool = typer.Option(False, "--json", help="print one JSON document instead of tables"),
    config_dir: Optional[Path] = typer.Option(None, "--config", help="folder with the YAML configuration"),
    state_dir: Optional[Path] = typer.Option(None, "--state-dir", help="where the emulator's state is kept"),
    store: StoreChoice = typer.Option(StoreChoice.emulator, "--store", help="emulator | firestore | memory"),
    data_dir: Optional[list[Path]] = typer.Option(None, "--data-dir", help="extra folder of bar CSVs"),
) -> None:
    """Run strategies -> reconcile -> Commander once, as of one time, and print what was decided."""
    from bus.emulator import EmulatorError
    from market.history import BUNDLED_DIR, HistoryProvider
    from orchestrator.config import ConfigError, apply_settings, load_settings
    from orchestrator.local import RunInputError, make_broker, open_store, resolve_as_of
    from orchestrator.pipeline import run_pipeline
    from orchestrator.summary import render, summarize

    try:
        settings = load_settings(config_dir)
        provider = HistoryProvider([BUNDLED_DIR, *(data_dir or [])])
        day = None
        if as_of:
            try:
                day = date.fromisoformat(as_of)
            except ValueError:
                raise RunInputError(f"--as-of {as_of!r} is not a date (YYYY-MM-DD)") from None
        when = resolve_as_of(day, settings, provider)
        chosen = settings.strategies
        if strategies:
            ids = [s.strip() for s in strategies.split(",") if s.strip()]
            unknown = [i for i in ids if i not in settings.strategy_ids()]
            if unknown or not ids:
                raise RunInputError(f"unknown strategy id(s) {unknown or ids}; configured: {', '.join(settings.strategy_ids())}")
            chosen = [s for s in settings.strategies if s.strategy_id in ids]
    except (ConfigError, RunInputError) as exc:
        fail(str(exc))
    try:
        with open_store(store.value, state_dir) as st:
            apply_settings(st, settings)
            broker = make_broker(st, settings, provider)
            res = run_pipeline(st, provider, broker, chosen, when, dry_run=dry_run)
    except (EmulatorError, RunInputError) as exc:
        fail(str(exc))
    except KeyboardInterrupt:
        fail("interrupted; the emulator was stopped and its state saved", 130)
    doc = summarize(res)
    if as_json:
        typer.echo(json.dumps(doc, indent=2, default=str))
    else:
        render(doc, Console(width=None if sys.stdout.isatty() else 140))
    status = doc["status"]
    if status == "failed":
        raise typer.Exit(EXIT_FAILED)
    if status == "partial_success":
        raise typer.Exit(EXIT_PARTIAL)


