"""``python main.py replay EXECUTION_ID``: decide again from the recorded inputs and compare."""

from __future__ import annotations

import re
from typing import Annotated

import typer

from cli.app import EXIT_FAILED, app, fail
from cli.options import StateDir, opened_store

#: A Firestore document id as the pipeline makes them (``bus.ids.new_id``), and no path.
ID_PATTERN = re.compile(r"(?!\.\.?$)[A-Za-z0-9_.\-]{1,200}")


@app.command()
def replay(
    execution_id: Annotated[str, typer.Argument(help="the id of an executions/{id} document")],
    state_dir: StateDir = None,
) -> None:
    """Replay an execution's decision without placing orders; exit 1 and print each difference if it differs."""
    from commander.replay import ReplayError
    from commander.replay import replay as do_replay

    if not ID_PATTERN.fullmatch(execution_id):
        fail(f"{execution_id!r} is not an execution id (letters, digits, '-', '_', '.'; no '/')")
    with opened_store("emulator", state_dir) as store:
        try:
            res = do_replay(store, execution_id)
        except ReplayError as exc:
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
