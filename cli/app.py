"""The ``python main.py …`` command line (typer). Thin: parse, validate, run, print.

Each command lives in its own module under ``cli/commands/`` and
registers itself on :data:`app`; this module imports them all. The options the
commands share are defined once in :mod:`cli.options`, what they print is
formatted by :mod:`cli.output`. Bad input is one line on stderr and exit code
2, with nothing written to the store. A Ctrl-C that a command does not handle
itself ends the process with exit code 130, not by the raw signal.
"""

from __future__ import annotations

import functools
import importlib
import logging
import pkgutil
import signal
import sys
from typing import Annotated, Any, Callable, NoReturn

import typer

app = typer.Typer(add_completion=False, no_args_is_help=True,
                  help="Intent Bus: strategies declare, the Commander trades.")
EXIT_BAD_INPUT = 2
EXIT_FAILED = 1
EXIT_PARTIAL = 3
EXIT_SKIPPED = 4  # only with ``run --strict``: nothing traded, the reason is in the execution
EXIT_INTERRUPTED = 130  # 128 + SIGINT, as a shell reports a process ended by Ctrl-C


def fail(msg: str, code: int = EXIT_BAD_INPUT) -> NoReturn:
    """Print ``error: msg`` on one line to stderr and exit with ``code``."""
    typer.echo(f"error: {msg}", err=True)
    raise typer.Exit(code)


def _sigterm(*_: object) -> None:
    raise KeyboardInterrupt  # unwinds through the emulator's finally: no orphan Java


@app.callback()
def _setup(verbose: Annotated[bool, typer.Option("--verbose", "-v", help="log at INFO")] = False) -> None:
    logging.basicConfig(level=logging.INFO if verbose else logging.WARNING, stream=sys.stderr,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    signal.signal(signal.SIGTERM, _sigterm)


def _one_line_on_store_failure(callback: Callable[..., Any]) -> Callable[..., Any]:
    """``callback`` with an unreachable store reported as one line and exit code 1, and a bar file that cannot be
    read as bars (:class:`market.history.MalformedBarFile`) as one line and exit code 2 (not a traceback)."""

    @functools.wraps(callback)
    def run(*args: Any, **kwargs: Any) -> Any:
        from bus.store import StoreError

        try:
            return callback(*args, **kwargs)
        except StoreError as exc:
            fail(f"the store failed; nothing more was done: {str(exc).splitlines()[0][:300]}", EXIT_FAILED)
        except LookupError as exc:  # a MalformedBarFile is one: market.history is imported by then
            from market.history import MalformedBarFile

            if isinstance(exc, MalformedBarFile):
                fail(f"a bar file cannot be read: {exc}")
            raise

    return run


def _guard(typer_app: typer.Typer) -> None:
    for info in typer_app.registered_commands:
        if info.callback is not None:
            info.callback = _one_line_on_store_failure(info.callback)
    for group in typer_app.registered_groups:
        if group.typer_instance is not None:
            _guard(group.typer_instance)


def _register_commands() -> None:
    from cli import commands

    for mod in sorted(m.name for m in pkgutil.iter_modules(commands.__path__)):
        importlib.import_module(f"cli.commands.{mod}")
    _guard(app)


def main() -> None:
    """Entry point of ``python main.py``.

    typer turns a ``KeyboardInterrupt`` inside a command into exit code 130; one
    raised outside it (while the commands are imported, or after the command
    returned) ends the process with 130 too, instead of Python's death by SIGINT.
    """
    try:
        _register_commands()
        app()
    except KeyboardInterrupt:
        sys.exit(EXIT_INTERRUPTED)
