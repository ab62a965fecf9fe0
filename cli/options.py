"""The options the commands of ``python main.py`` share, each defined once.

A command declares an option by its type and default::

    def run(as_of: AsOf = None, strategies: Strategies = None, config_dir: ConfigDir = None,
            store: Annotated[Store, store_option(Store.emulator, Store.firestore, Store.memory)] = Store.emulator,
            as_json: Json = False) -> None: ...

and receives the value parsed and checked: a :class:`~datetime.date`, a
:class:`StrategyIds` list, a folder that exists, a :class:`Store`. A bad value is
one line on stderr (``error: --as-of '16/03/2020' is not a date (YYYY-MM-DD)``)
and exit code 2, while typer parses, before the command runs: nothing is
written anywhere.

The options: ``--config`` (:data:`ConfigDir`), ``--state-dir`` (:data:`StateDir`),
``--data-dir`` (:data:`DataDirs`, repeatable), ``--as-of`` (:data:`AsOf`),
``--start`` / ``--end`` (:data:`Start`, :data:`End`), ``--strategies``
(:data:`Strategies`), ``--dry-run`` (:data:`DryRun`), ``--json`` (:data:`Json`,
or :func:`json_option` for a command's own help text) and ``--store``
(:func:`store_option`: which :class:`Store` values the command accepts).

What the options name is opened here too, with the same one-line errors:
:func:`load_config` (``--config`` -> settings), :func:`named_strategies`
(``--strategies`` -> configured strategies) and :func:`opened_store`
(``--store`` / ``--state-dir`` -> a store).
"""

from __future__ import annotations

from contextlib import contextmanager
from datetime import date
from enum import Enum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Callable, Iterator, Mapping, Optional

import typer

from cli.app import fail

if TYPE_CHECKING:
    from bus.models import StrategyConfig
    from bus.store import Store as StoreT
    from pipeline.settings import Settings


class Store(str, Enum):
    """Where the documents go: ``emulator`` (local Firestore emulator), ``firestore`` (the cloud), ``memory``."""

    emulator = "emulator"
    firestore = "firestore"
    memory = "memory"


class StrategyIds(list[str]):  # a class of its own: typer takes it as one value, not a repeated option
    """Strategy ids from ``--strategies a,b``: stripped, in order, without duplicates, never empty."""


# ---------------------------------------------------------------------------------------------- parsers
# Each takes what typer read (a string, or the declared default) and returns the value, or fails with one line.


def parse_date(opt: str) -> Callable[[Any], date]:
    """A parser for ``opt``: ``YYYY-MM-DD`` -> :class:`~datetime.date`."""

    def parse(value: Any) -> date:
        if isinstance(value, date):
            return value
        try:
            return date.fromisoformat(str(value))
        except ValueError:
            fail(f"{opt} {value!r} is not a date (YYYY-MM-DD)")

    return parse


def parse_ids(opt: str) -> Callable[[Any], StrategyIds]:
    """A parser for ``opt``: ``a, b,a`` -> ``["a", "b"]``; an empty list is an error."""

    def parse(value: Any) -> StrategyIds:
        items = value if isinstance(value, list) else str(value).split(",")
        ids = StrategyIds(dict.fromkeys(s.strip() for s in items if s.strip()))
        if not ids:
            fail(f"{opt} is empty (give comma-separated strategy ids, or leave it out for all)")
        return ids

    return parse


def parse_folder(opt: str) -> Callable[[Any], Path]:
    """A parser for ``opt``: a path that must be an existing folder."""

    def parse(value: Any) -> Path:
        path = Path(value)
        if not path.is_dir():
            fail(f"{opt} {str(value)!r} is not a folder" + ("" if path.exists() else " (it does not exist)"))
        return path

    return parse


def parse_data_dir(opt: str) -> Callable[[Any], Path]:
    """A parser for ``opt``: an existing folder whose bar files (``{venue}_{SYMBOL}_{timeframe}.csv``) can all
    be read as bars (:func:`market.history.check_bar_files`): a header-only file, a malformed timestamp or a
    line cut short is one line and exit code 2, before anything runs."""
    folder = parse_folder(opt)

    def parse(value: Any) -> Path:
        from market.history import MalformedBarFile, check_bar_files

        path = folder(value)
        try:
            check_bar_files(path)
        except MalformedBarFile as exc:
            fail(f"{opt} {str(value)!r}: {exc}")
        return path

    return parse


def parse_store(allowed: tuple[Store, ...], refused: Mapping[Store, str] | None = None) -> Callable[[Any], Store]:
    """A parser for ``--store``: one of ``allowed``; ``refused`` says why a known store is not, per store."""
    names = " | ".join(s.value for s in allowed)

    def parse(value: Any) -> Store:
        if isinstance(value, Store):
            store = value
        else:
            try:
                store = Store(str(value).strip().lower())
            except ValueError:
                fail(f"--store {value!r} is not a store: {names}")
        if store not in allowed:
            why = (refused or {}).get(store) or f"is not available here: {names}"
            fail(f"--store {store.value} {why}")
        return store

    return parse


# ---------------------------------------------------------------------------------------------- options


def store_option(*allowed: Store, refused: Mapping[Store, str] | None = None) -> Any:
    """``--store``, accepting ``allowed`` (in that order in the help); the default is the parameter's.

    Example: ``store: Annotated[Store, store_option(Store.memory, Store.emulator)] = Store.memory``.
    """
    names = "|".join(s.value for s in allowed)
    return typer.Option("--store", parser=parse_store(allowed, refused), metavar=f"[{names}]",
                        help="where the documents go")


def json_option(help: str = "print one JSON document instead of tables") -> Any:  # typer's name
    """``--json`` with a command's own help text."""
    return typer.Option("--json", help=help)


ConfigDir = Annotated[Optional[Path], typer.Option(
    "--config", parser=parse_folder("--config"), metavar="DIR", help="folder with the YAML configuration")]
StateDir = Annotated[Optional[Path], typer.Option(
    "--state-dir", metavar="DIR", help="where the emulator's state is kept")]
DataDirs = Annotated[Optional[list[Path]], typer.Option(
    "--data-dir", parser=parse_data_dir("--data-dir"), metavar="DIR",
    help="extra folder of bar CSVs (repeatable); a file named like a bundled one replaces it")]
AsOf = Annotated[Optional[date], typer.Option(
    "--as-of", parser=parse_date("--as-of"), metavar="YYYY-MM-DD",
    help="YYYY-MM-DD; default: last day of the bundled data")]
Start = Annotated[date, typer.Option(
    "--start", parser=parse_date("--start"), metavar="YYYY-MM-DD", help="first day, YYYY-MM-DD")]
End = Annotated[date, typer.Option(
    "--end", parser=parse_date("--end"), metavar="YYYY-MM-DD", help="last day, YYYY-MM-DD (inclusive)")]
Strategies = Annotated[Optional[StrategyIds], typer.Option(
    "--strategies", parser=parse_ids("--strategies"), metavar="ID,ID",
    help="comma-separated strategy ids (default: all enabled)")]
DryRun = Annotated[bool, typer.Option("--dry-run", help="decide and record, but place no order")]
Json = Annotated[bool, json_option()]


# ---------------------------------------------------------------------------------------------- opening


def load_config(config_dir: Path | None) -> "Settings":
    """``--config`` -> validated :class:`~pipeline.settings.Settings` (default: ``config/``), or fail."""
    from pipeline.settings import ConfigError, load_settings

    try:
        return load_settings(config_dir)
    except ConfigError as exc:
        fail(str(exc))


def named_strategies(settings: "Settings", ids: list[str] | None) -> list["StrategyConfig"]:
    """The configured strategies named by ``--strategies`` (all configured ones without it), or fail."""
    if ids is None:
        return list(settings.strategies)
    unknown = [i for i in ids if i not in settings.strategy_ids()]
    if unknown:
        fail(f"unknown strategy id(s) {unknown}; configured: {', '.join(settings.strategy_ids())}")
    return [s for s in settings.strategies if s.strategy_id in ids]


@contextmanager
def opened_store(store: Store | str, state_dir: Path | None = None) -> Iterator["StoreT"]:
    """:func:`pipeline.wiring.open_store`; its errors (no emulator, no project), inside the block too, fail.

    An emulator started here is exported and stopped on the way out, also on Ctrl-C.
    """
    from bus.emulator import EmulatorError
    from pipeline.wiring import RunInputError, open_store

    try:
        with open_store(Store(store).value, state_dir) as st:
            yield st
    except (EmulatorError, RunInputError) as exc:
        fail(str(exc))
