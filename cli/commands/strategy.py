"""``python main.py strategy pause|resume|isolate|retire ID --reason ...``: a strategy's lifecycle, on record."""

from __future__ import annotations

import getpass
import os
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from cli.app import app, fail
from cli.options import StateDir, Store, opened_store, store_option
from cli.output import print_json

if TYPE_CHECKING:
    from pipeline.lifecycle import Action

strategy_app = typer.Typer(no_args_is_help=True, help="Pause, resume, isolate or retire a strategy (recorded).")
app.add_typer(strategy_app, name="strategy")

Reason = Annotated[str, typer.Option("--reason", help="why (recorded with who and when)")]
By = Annotated[str | None, typer.Option("--by", help="who (default: $INTENT_BUS_OPERATOR, else the login name)")]
StoreOpt = Annotated[Store, store_option(Store.emulator, Store.firestore)]


def _change(action: "Action", strategy_id: str, reason: str, by: str | None, store: Store,
            state_dir: Path | None) -> None:
    from pipeline.lifecycle import LifecycleError, change_state

    who = by or os.environ.get("INTENT_BUS_OPERATOR") or getpass.getuser()
    with opened_store(store, state_dir) as st:
        try:
            change = change_state(st, strategy_id, action, who, reason)
        except LifecycleError as exc:
            fail(str(exc))
    typer.echo(f"{strategy_id}: {change.before} -> {change.after} by {change.by} ({change.reason}); "
               f"recorded as {change.change_id}")


@strategy_app.command()
def pause(strategy_id: str, reason: Reason, by: By = None, store: StoreOpt = Store.emulator,
          state_dir: StateDir = None) -> None:
    """Hold the strategy's book as it is; its intents are not used until it is resumed."""
    _change("pause", strategy_id, reason, by, store, state_dir)


@strategy_app.command()
def resume(strategy_id: str, reason: Reason, by: By = None, store: StoreOpt = Store.emulator,
           state_dir: StateDir = None) -> None:
    """Use the strategy's intents again (also re-enables a retired strategy)."""
    _change("resume", strategy_id, reason, by, store, state_dir)


@strategy_app.command()
def isolate(strategy_id: str, reason: Reason, by: By = None, store: StoreOpt = Store.emulator,
            state_dir: StateDir = None) -> None:
    """Reduce only: the strategy's positions may shrink, never grow or flip."""
    _change("isolate", strategy_id, reason, by, store, state_dir)


@strategy_app.command()
def retire(strategy_id: str, reason: Reason, by: By = None, store: StoreOpt = Store.emulator,
           state_dir: StateDir = None) -> None:
    """Flatten the strategy's book at the next run, then disable it."""
    _change("retire", strategy_id, reason, by, store, state_dir)


@strategy_app.command("history")
def history(strategy_id: str, store: StoreOpt = Store.emulator, state_dir: StateDir = None) -> None:
    """The strategy's recorded state changes as JSON: who, when, why, before and after."""
    from pipeline.lifecycle import state_changes

    with opened_store(store, state_dir) as st:
        print_json([c.to_store() for c in state_changes(st, strategy_id)])
