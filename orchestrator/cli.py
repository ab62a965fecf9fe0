"""The ``python main.py …`` command line (typer). Thin: parse, validate, run, print.

Each command lives in its own module under ``orchestrator/commands/`` and
registers itself on :data:`app`; this module imports them all. Bad input is one
line on stderr and exit code 2, with nothing written to the store.
"""

from __future__ import annotations

import importlib
import logging
import pkgutil
import signal
import sys

import typer

app = typer.Typer(add_completion=False, no_args_is_help=True, help="Intent Bus: strategies declare, the Commander trades.")
EXIT_BAD_INPUT = 2
EXIT_FAILED = 1
EXIT_PARTIAL = 3


def fail(msg: str, code: int = EXIT_BAD_INPUT) -> None:
    """Print ``error: msg`` on one line to stderr and exit with ``code``."""
    typer.echo(f"error: {msg}", err=True)
    raise typer.Exit(code)


def _sigterm(*_: object) -> None:
    raise KeyboardInterrupt  # unwinds through the emulator's finally: no orphan Java


@app.callback()
def _setup(verbose: bool = typer.Option(False, "--verbose", "-v", help="log at INFO")) -> None:
    logging.basicConfig(level=logging.INFO if verbose else logging.WARNING, stream=sys.stderr,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    signal.signal(signal.SIGTERM, _sigterm)


def _register_commands() -> None:
    from orchestrator import commands

    for mod in sorted(m.name for m in pkgutil.iter_modules(commands.__path__)):
        importlib.import_module(f"orchestrator.commands.{mod}")


def main() -> None:
    """Entry point of ``python main.py``."""
    _register_commands()
    app()
