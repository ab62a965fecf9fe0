"""``python main.py replay EXECUTION_ID``: decide again from the recorded inputs and compare."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from orchestrator.cli import EXIT_FAILED, app, fail


@app.command()
def replay(
    execution_id: str = typer.Argument(..., help="the id of an executions/{id} document"),
    state_dir: Optional[Path] = typer.Option(None, "--state-dir", help="where the emulator's state is kept"),
) -> None:
    """Replay an execution's decision without placing orders; exit 1 and print each difference if it differs."""
    from bus.emulator import EmulatorError
    from commander.replay import ReplayError
    from commander.replay import replay as do_replay
    from orchestrator.local import RunInputError, open_store

    try:
        with open_store("emulator", state_dir) as store:
            res = do_replay(store, execution_id)
    except (EmulatorError, RunInputError, ReplayError) as exc:
        fail(str(exc))
    if not res.replayable:
        typer.echo(f"{execution_id}: {res.note}")
        return
    if res.identical:
        typer.echo(f"{execution_id}: identical (decision and orders reproduced exactly)")
        return
    typer.echo(f"{execution_id}: DIFFERENT in {len(res.differences)} fields (recorded != replayed):")
    for d in res.differences:
        typer.echo(f"  {d}")
    raise typer.Exit(EXIT_FAILED)
