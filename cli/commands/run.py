"""``python main.py run``: the pipeline once, as of one time, with a readable summary.

Bars come from the bundled files and the bar cache (``{state dir}/bars``). ``--live-data`` runs as of
now: each series a strategy or the paper broker reads is first refreshed from its ``market.yaml``
source (only bars that may have closed since the newest cached one are fetched).
"""

from __future__ import annotations

import time
from typing import Annotated, Optional

import typer

from cli.app import EXIT_FAILED, EXIT_INTERRUPTED, EXIT_PARTIAL, EXIT_SKIPPED, app, fail
from cli.commands.llm import LLMMode, llm_chosen
from cli.options import (
    AsOf,
    ConfigDir,
    DataDirs,
    DryRun,
    Json,
    StateDir,
    Store,
    Strategies,
    load_config,
    named_strategies,
    opened_store,
    store_option,
)
from cli.output import print_json, stdout_console


@app.command()
def run(
    dry_run: DryRun = False,
    as_of: AsOf = None,
    strategies: Strategies = None,
    as_json: Json = False,
    config_dir: ConfigDir = None,
    state_dir: StateDir = None,
    store: Annotated[Store, store_option(Store.emulator, Store.firestore, Store.memory)] = Store.emulator,
    data_dir: DataDirs = None,
    live_data: Annotated[bool, typer.Option(
        "--live-data", help="as of now, on bars fetched from the market.yaml sources (and cached)")] = False,
    llm: Annotated[Optional[LLMMode], typer.Option(
        "--llm", help="LLM traders: 'live' asks their models, 'replay' only reuses recorded replies "
        "(default: live; with --dry-run, replay: a dry run asks a model only with --llm live)")] = None,
    strict: Annotated[bool, typer.Option(
        "--strict", help=f"exit {EXIT_SKIPPED} when the run was skipped (for cron and CI)")] = False,
) -> None:
    """Run strategies -> reconcile -> Commander once, as of one time, and print what was decided."""
    from bus import telemetry
    from pipeline.observe import after_run
    from pipeline.settings import apply_settings
    from pipeline.steps import run_exclusive
    from pipeline.summary import render, summarize
    from pipeline.wiring import RunInputError, file_cache, make_broker, market_data, resolve_as_of

    settings = load_config(config_dir)
    provider = market_data(settings, file_cache(state_dir), fetch=live_data, data_dirs=data_dir)
    try:
        when = resolve_as_of(as_of, settings, provider, now=live_data)
    except RunInputError as exc:
        fail(str(exc))
    chosen = llm_chosen(named_strategies(settings, strategies), llm or (LLMMode.replay if dry_run else None), None,
                        state_dir)
    try:
        with opened_store(store, state_dir) as st:
            apply_settings(st, settings)
            broker = make_broker(st, settings, provider)
            # The account's lease is held from before the strategies to the last write: two runs never
            # trade one account at once, and the snapshot is never older than another run's orders.
            started = time.perf_counter()
            res = run_exclusive(st, provider, broker, chosen, when, settings.trading.mode, dry_run=dry_run)
            telemetry.observe_step("pipeline", time.perf_counter() - started)
            after_run(st, res.execution, config_dir=config_dir, reconcile_error=res.reconcile_error,
                      intents=res.intents)
    except KeyboardInterrupt:
        fail("interrupted; the emulator was stopped and its state saved", EXIT_INTERRUPTED)
    doc = summarize(res)
    if as_json:
        print_json(doc)
    else:
        render(doc, stdout_console())
    if doc["status"] == "failed":
        raise typer.Exit(EXIT_FAILED)
    if doc["status"] == "partial_success":
        raise typer.Exit(EXIT_PARTIAL)
    if strict and doc["status"] == "skipped":
        raise typer.Exit(EXIT_SKIPPED)
