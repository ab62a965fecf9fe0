"""``python main.py llm``: the LLM traders' prompt preview and pause switch; the ``--llm`` mode of other commands.

* ``llm render TRADER_ID [--as-of DAY]``: print the prompt the trader would send (system, then
  user), built from the store's book, state and memory and the bars as of that day, without
  asking a model and without writing anything.
* ``llm resume TRADER_ID``: clear a pause set when the trader's failure rate passed its limit.

:class:`LLMMode` and :func:`llm_chosen` give ``backtest --llm live|replay`` and ``run --llm``
their meaning: ``replay`` reuses recorded replies only (never a model request; a missing one is
reported in the trader's ``skipped`` intent), ``live`` asks the models for anything not recorded.
Both read and write the reply archive (``backtest --replies DIR``; else ``$INTENT_BUS_LLM_REPLIES``;
else ``{state dir}/llm_replies``, default ``.state/llm_replies``), which is shared by every run and
store on the machine.
"""

from __future__ import annotations

import os
from enum import Enum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from cli.app import app, fail
from cli.options import AsOf, ConfigDir, DataDirs, StateDir, Store, load_config, opened_store, store_option

if TYPE_CHECKING:
    from bus.models import StrategyConfig
    from pipeline.settings import Settings

DEFAULT_REPLIES = Path(".state") / "llm_replies"
REPLIES_ENV = "INTENT_BUS_LLM_REPLIES"

llm_app = typer.Typer(no_args_is_help=True, help="LLM traders: preview a prompt, resume a paused trader.")
app.add_typer(llm_app, name="llm")


class LLMMode(str, Enum):
    """How kind-``llm`` strategies get their replies: ``live`` (models asked) or ``replay`` (recorded only)."""

    live = "live"
    replay = "replay"


def replies_folder(replies_dir: Path | None = None, state_dir: Path | None = None) -> Path:
    """The reply archive: ``replies_dir``, else ``$INTENT_BUS_LLM_REPLIES``, else ``{state_dir}/llm_replies``,
    else :data:`DEFAULT_REPLIES`."""
    if replies_dir:
        return replies_dir
    if os.environ.get(REPLIES_ENV):
        return Path(os.environ[REPLIES_ENV])
    return state_dir / "llm_replies" if state_dir else DEFAULT_REPLIES


def llm_chosen(configs: list["StrategyConfig"], mode: LLMMode | None, replies_dir: Path | None,
               state_dir: Path | None = None) -> list["StrategyConfig"]:
    """``configs`` with the LLM traders set to ``mode`` and the reply archive (unchanged without a mode)."""
    from strategies.llm.config import with_llm_mode

    if mode is None:
        return configs
    return with_llm_mode(configs, mode.value, str(replies_folder(replies_dir, state_dir)))


def _trader(settings: "Settings", trader_id: str) -> "StrategyConfig":
    found = [s for s in settings.strategies if s.strategy_id == trader_id]
    if not found or found[0].kind != "llm":
        names = sorted(s.strategy_id for s in settings.strategies if s.kind == "llm")
        fail(f"{trader_id!r} is not a configured LLM trader (configured: {', '.join(names) or 'none'})")
    return found[0]


@llm_app.command("render")
def render(
    trader_id: Annotated[str, typer.Argument(help="the LLM trader's strategy id")],
    as_of: AsOf = None,
    config_dir: ConfigDir = None,
    state_dir: StateDir = None,
    data_dir: DataDirs = None,
    store: Annotated[Store, store_option(Store.emulator, Store.firestore, Store.memory)] = Store.emulator,
) -> None:
    """Print the trader's prompt as of a day (default: the latest run time with bars), without calling a model."""
    from pipeline.wiring import RunInputError, file_cache, market_data, resolve_as_of
    from strategies.llm.trader import LLMTraderError, render_only

    settings = load_config(config_dir)
    cfg = _trader(settings, trader_id)
    provider = market_data(settings, file_cache(state_dir), fetch=False, data_dirs=data_dir)
    try:
        when = resolve_as_of(as_of, settings, provider)
    except RunInputError as exc:
        fail(str(exc))
    with opened_store(store, state_dir) as st:
        try:
            prompt = render_only(cfg, provider.view(when), st)
        except LLMTraderError as exc:
            fail(str(exc))
    typer.echo(f"# {trader_id} as of {when.isoformat()}: prompt v{prompt.version} "
               f"({prompt.templates['system']} + {prompt.templates['user']}), digest {prompt.digest}")
    typer.echo("## system")
    typer.echo(prompt.system)
    typer.echo("## user")
    typer.echo(prompt.user)


@llm_app.command("resume")
def resume(
    trader_id: Annotated[str, typer.Argument(help="the paused LLM trader's strategy id")],
    state_dir: StateDir = None,
    store: Annotated[Store, store_option(Store.emulator, Store.firestore)] = Store.emulator,
) -> None:
    """Resume a trader paused for its failure rate (its failure window starts afresh)."""
    from strategies.llm.trader import LLMTraderError
    from strategies.llm.trader import resume as do_resume

    with opened_store(store, state_dir) as st:
        try:
            why = do_resume(st, trader_id)
        except LLMTraderError as exc:
            fail(str(exc))
    typer.echo(f"{trader_id}: resumed (was paused: {why})" if why else f"{trader_id}: was not paused")

