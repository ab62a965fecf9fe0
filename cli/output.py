"""What the commands of ``python main.py`` print: number formats, rich consoles and tables, JSON.

Tables go to stdout through :func:`stdout_console` (the terminal's width, or a
fixed width when stdout is a pipe, so captured output does not wrap at 80
columns); progress and notes go to stderr through :func:`stderr_console`; a
``--json`` document is :func:`print_json` (stdout, indented, nothing else).
Missing numbers print as ``-``.
"""

from __future__ import annotations

import json
import sys
from typing import Any, Iterable

import typer
from rich.console import Console, JustifyMethod
from rich.table import Table

#: Width of tables when stdout is not a terminal.
PIPE_WIDTH = 140


def pct(x: float | None) -> str:
    """A fraction as a signed percentage: ``0.0123`` -> ``+1.23%``."""
    return "-" if x is None else f"{x:+.2%}"


def num(x: float | None, spec: str = ".2f") -> str:
    """A number in the format ``spec`` (``.2f`` by default; ``.6g`` for prices and sizes)."""
    return "-" if x is None else format(x, spec)


def money(x: float | None, decimals: int = 0) -> str:
    """An amount with thousands separators: ``12345.6`` -> ``12,346``."""
    return "-" if x is None else f"{x:,.{decimals}f}"


def stdout_console(width: int = PIPE_WIDTH) -> Console:
    """The console for tables on stdout: the terminal's width, or ``width`` columns into a pipe."""
    return Console(width=None if sys.stdout.isatty() else width)


def stderr_console() -> Console:
    """The console for progress bars and notes (stderr, so stdout stays the command's result)."""
    return Console(stderr=True)


def table(columns: Iterable[str], *, title: str | None = None, left: Iterable[str] = (),
          justify: JustifyMethod = "right", **column: Any) -> Table:
    """A rich table with ``columns``: names in ``left`` left-aligned, the others ``justify``-aligned.

    ``column`` keyword arguments (e.g. ``overflow="fold"``) go to every column.
    """
    keep_left = set(left)
    t = Table(title=title)
    for c in columns:
        t.add_column(c, justify="left" if c in keep_left else justify, **column)
    return t


def print_json(doc: Any) -> None:
    """``doc`` as indented JSON on stdout (dates and other objects as their ``str``)."""
    typer.echo(json.dumps(doc, indent=2, default=str))
