"""``python main.py journal TRADER_ID [--last N]``: an LLM trader's latest decisions, readably.

``python main.py journal replay DECISION_ID``: the stored reply of that decision parsed and checked
again against today's checks (:mod:`strategies.llm.replay`); exit 1 when today's verdict differs.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Optional

import typer
from rich.console import Console

from cli.app import EXIT_FAILED, app, fail
from cli.options import ConfigDir, StateDir, Store, json_option, load_config, opened_store, store_option
from cli.output import num, print_json, stdout_console, table


def render_entry(e: Any, console: Console, full: bool = False) -> None:
    """Print one :class:`bus.journal.JournalEntry`: header, attempts, decisions with their fate, targets."""
    color = {"success": "green", "skipped": "yellow", "error": "red"}[e.status]
    console.rule(f"[bold]{e.decision_id}[/]  as of {e.as_of.isoformat()}  [{color}]{e.status}[/]")
    cost = f"{e.cost_usd:.6f} USD"
    console.print(f"model {e.model or '-'} ({e.model_name or '-'})  invocation {e.invocation}  "
                  f"prompt v{e.prompt_version} {e.templates.get('system', '')}  digest {e.prompt_digest[:16]}  "
                  f"tokens {e.prompt_tokens}+{e.completion_tokens}  cost {cost}  model time {e.latency_ms:.0f} ms"
                  + ("  [cyan]cache hit[/]" if e.cache_hit else ""))
    if e.error_message:
        console.print(f"[{color}]{e.error_message}[/]")
    if e.budget and (e.budget.alert or e.budget.note):
        console.print(f"[yellow]budget {e.budget.deployment} {e.budget.day}: {e.budget.tokens_used} tokens, "
                      f"{e.budget.cost_used_usd:.4f} USD; {e.budget.note or ''}[/]")
    if any(a.outcome not in ("ok",) for a in e.attempts):
        for a in e.attempts:
            console.print(f"  attempt {a.model}: {a.outcome}" + (f" - {a.error}" if a.error else "")
                          + (" (usage estimated)" if a.usage_estimated else ""))
            if a.refusal and full:
                console.print(f"  refusal: {a.refusal}", markup=False)
    if e.decisions:
        rejected = {r.index: r for r in e.rejections}
        t = table(("symbol", "action", "notional", "qty", "lev", "stop", "target", "conf", "result", "reasoning"),
                  justify="left", overflow="fold")
        for i, d in enumerate(e.decisions):
            r = rejected.get(i)
            result = f"[red]rejected: {r.rule}[/] {r.reason}" if r else "[green]accepted[/]"
            reasoning = d.get("reasoning") or ""
            t.add_row(d.get("symbol", ""), d.get("action", ""), num(d.get("notional"), ".6g"),
                      num(d.get("quantity"), ".6g"), num(d.get("leverage"), ".6g"), num(d.get("stop_loss"), ".6g"),
                      num(d.get("take_profit"), ".6g"), num(d.get("confidence"), ".3g"), result,
                      reasoning if full else reasoning[:120])
        console.print(t)
    if e.status == "success":
        targets = ", ".join(f"{p.symbol} " + (f"n={p.notional:g}" if p.notional is not None else f"q={p.quantity:g}")
                            for p in e.target_positions) or "none (flat)"
        console.print(f"target book: {targets}")
    unavailable = [f"{m.symbol} ({m.unavailable})" for m in e.market_refs if m.unavailable]
    if unavailable:
        console.print(f"[yellow]not tradable: {'; '.join(unavailable)}[/]")
    if full:
        console.print("[bold]system prompt[/]")
        console.print(e.system_prompt, markup=False)
        console.print("[bold]user prompt[/]")
        console.print(e.user_prompt, markup=False)
        console.print("[bold]raw response[/]")
        console.print(e.raw_response or "-", markup=False)


def replay_decision(decision_id: str, config_dir: Path | None, state_dir: Path | None, store: Store) -> None:
    """``journal replay DECISION_ID``: print today's verdict on a stored reply; exit 1 when it differs."""
    from strategies.llm.replay import find_entry, revalidate

    settings = load_config(config_dir)
    traders = {s.strategy_id: s for s in settings.strategies if s.kind == "llm"}
    with opened_store(store, state_dir) as st:
        entry = find_entry(st, decision_id, list(traders))
    if entry is None:
        fail(f"no journal entry {decision_id!r} for the configured LLM traders ({', '.join(traders) or 'none'})")
    res = revalidate(entry, traders[entry.strategy_id])
    typer.echo(f"{decision_id} ({entry.strategy_id}, as of {entry.as_of.isoformat()}, recorded {entry.status}):")
    if res.error:
        typer.echo(f"  the stored reply does not validate today: {res.error}")
    else:
        typer.echo(f"  accepted today: {res.accepted} (recorded {sorted(entry.accepted)})")
        for r in res.rejections:
            typer.echo(f"  rejected today: #{r.index} {r.symbol} {r.action}: {r.rule}: {r.reason}")
    typer.echo("  same verdict as recorded" if res.same else "  DIFFERENT from the recorded verdict")
    if not res.same:
        raise typer.Exit(EXIT_FAILED)


@app.command()
def journal(
    trader_id: Annotated[str, typer.Argument(help="the LLM trader's strategy id, or 'replay'")],
    decision_id: Annotated[Optional[str], typer.Argument(help="with 'replay': the decision id to check again")] = None,
    config_dir: ConfigDir = None,
    last: Annotated[int, typer.Option("--last", "-n", min=1, max=200, help="how many of the latest decisions")] = 5,
    full: Annotated[bool, typer.Option("--full", help="also print the prompts and the raw response")] = False,
    as_json: Annotated[bool, json_option("print the entries as JSON")] = False,
    state_dir: StateDir = None,
    store: Annotated[Store, store_option(Store.emulator, Store.firestore, refused={
        Store.memory: "keeps nothing: there is no journal to show"})] = Store.emulator,
) -> None:
    """Show an LLM trader's latest journal entries: model, tokens, cost, decisions and why any was rejected;
    ``journal replay DECISION_ID`` checks a stored reply again against today's checks."""
    if trader_id == "replay" and decision_id:
        replay_decision(decision_id, config_dir, state_dir, store)
        return
    if decision_id:
        fail("a second argument is only for 'journal replay DECISION_ID'")
    from strategies.llm.journal import read_recent

    with opened_store(store, state_dir) as st:
        entries = read_recent(st, trader_id, last)
    if not entries:
        fail(f"no journal for trader {trader_id!r} (is it an LLM trader that has decided at least once?)")
    if as_json:
        print_json([e.model_dump(mode="json") for e in entries])
        return
    console = stdout_console(160)
    for e in entries:
        render_entry(e, console, full)
