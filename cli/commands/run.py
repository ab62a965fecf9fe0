"""``python main.py run``: the pipeline once, as of one time, with a readable summary.

Bars come from the bundled files and the bar cache (``{state dir}/bars``). ``--live-data`` runs as of
now: each series a strategy or the paper broker reads is first refreshed from its ``market.yaml``
source (only bars that may have closed since the newest cached one are fetched).
"""

from __future__ import annotations

from typing import Annotated

import typer

from cli.app import EXIT_FAILED, EXIT_INTERRUPTED, EXIT_PARTIAL, EXIT_SKIPPED, app, fail
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
    strict: Annotated[bool, typer.Option(
        "--strict", help=f"exit {EXIT_SKIPPED} when the run was skipped (for cron and CI)")] = False,
) -> None:
    """Run strategies -> reconcile -> Commander once, as of one time, and print what was decided."""
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
    chosen = named_strategies(settings, strategies)
    try:
        with opened_store(store, state_dir) as st:
            apply_settings(st, settings)
            broker = make_broker(st, settings, provider)
            # The account's lease is held from before the strategies to the last write: two runs never
            # trade one account at once, and the snapshot is never older than another run's orders.
            res = run_exclusive(st, provider, broker, chosen, when, settings.trading.mode, dry_run=dry_run)
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
