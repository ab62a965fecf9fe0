"""What a run decided, as one JSON-able document and as readable tables."""

from __future__ import annotations

from typing import Any

from rich.console import Console
from rich.table import Table

from pipeline.run import PipelineResult


def summarize(res: PipelineResult) -> dict[str, Any]:
    """One JSON-able document: intents, portfolio, targets vs held, orders, execution."""
    ex = res.execution
    snap = res.snapshot
    held = {h.symbol: h.quantity for h in snap.holdings} if snap else {}
    targets = []
    if ex and ex.decision.diff:
        for d in ex.decision.diff:
            targets.append({"symbol": d.symbol, "target": d.target, "held": d.holding, "pending": d.pending,
                            "order": d.quantity, "price": d.price, "note": d.reason})
    return {
        "as_of": res.as_of.isoformat(),
        "execution_id": ex.execution_id if ex else None,
        "status": ex.status if ex else "failed",
        "dry_run": ex.dry_run if ex else None,
        "summary": ex.summary if ex else res.reconcile_error,
        "reason": ex.reason if ex else None,
        "strategies": {
            sid: {"status": i.status, "error_message": i.error_message,
                  "signal_strength": i.metadata.signal_strength,
                  "target_positions": [t.model_dump(exclude_none=True, exclude={"contract_details"})
                                       for t in i.target_positions]}
            for sid, i in sorted(res.intents.items())},
        "portfolio": None if not snap else {
            "snapshot_id": snap.snapshot_id, "net_liquidation": snap.net_liquidation, "cash": snap.cash,
            "available_funds": snap.available_funds, "holdings": held},
        "reconcile_error": res.reconcile_error,
        "allocations": ex.decision.allocations if ex else {},
        "targets": targets,
        "conflicts": [c.model_dump() for c in ex.decision.conflicts] if ex else [],
        "risk_adjustments": [r.model_dump() for r in ex.decision.risk_adjustments] if ex else [],
        "orders": [o.model_dump(exclude_none=True) for o in ex.orders_placed] if ex else [],
        "protective_exits": [r.model_dump(exclude_none=True) for r in ex.protective_exits] if ex else [],
        "unmanaged": ex.unmanaged if ex else [],
        "not_used": {} if not ex else {"missing": ex.missing_strategies, "stale": ex.stale_strategies,
                                       "errored": ex.errored_strategies, "skipped": ex.skipped_strategies},
    }


def _num(x: float | None, digits: int = 4) -> str:
    if x is None:
        return "-"
    return f"{x:,.{digits}f}".rstrip("0").rstrip(".") if x != int(x) else f"{x:,.0f}"


def _target_text(p: dict[str, Any]) -> str:
    """One target position as ``SYMBOL w=…`` (weight), ``q=…`` (quantity) or ``n=…`` (notional)."""
    size = (f"w={p['weight']:g}" if "weight" in p else
            f"q={p['quantity']:g}" if "quantity" in p else f"n={p['notional']:g}")
    return f"{p['symbol']} {size}"


def _intents_table(doc: dict[str, Any]) -> Table:
    """One row per strategy: status, signal, and its targets (or its error)."""
    t = Table(title="Strategy intents", show_lines=False)
    for c in ("strategy", "status", "signal", "targets / error"):
        t.add_column(c)
    for sid, i in doc["strategies"].items():
        if i["status"] == "success":
            what = ", ".join(_target_text(p) for p in i["target_positions"])
        else:
            what = i["error_message"] or ""
        sig = "-" if i["signal_strength"] is None else f"{i['signal_strength']:+.2f}"
        style = {"success": "green", "error": "red", "skipped": "yellow"}[i["status"]]
        t.add_row(sid, f"[{style}]{i['status']}[/]", sig, what)
    return t


def _render_account(doc: dict[str, Any], console: Console) -> None:
    """The portfolio line, a reconcile failure, and the capital per strategy."""
    p = doc["portfolio"]
    if p:
        console.print(f"Portfolio {p['snapshot_id']}: NAV {p['net_liquidation']:,.2f}  cash {p['cash']:,.2f}  "
                      f"available {p['available_funds']:,.2f}")
    if doc["reconcile_error"]:
        console.print(f"[red]Reconcile failed:[/] {doc['reconcile_error']}")
    if doc["allocations"]:
        console.print("Capital: " + ", ".join(f"{s} {v:,.0f}" for s, v in doc["allocations"].items()))


def _targets_table(doc: dict[str, Any]) -> Table:
    """Target vs held, one row per symbol."""
    t = Table(title="Target vs held")
    for c in ("symbol", "target", "held", "pending", "order", "price", "note"):
        t.add_column(c, justify="right" if c not in ("symbol", "note") else "left")
    for r in doc["targets"]:
        t.add_row(r["symbol"], _num(r["target"]), _num(r["held"]), _num(r["pending"]), _num(r["order"]),
                  _num(r["price"], 2), r["note"] or "")
    return t


def _render_adjustments(doc: dict[str, Any], console: Console) -> None:
    """One line per conflict between strategies, then one per risk adjustment."""
    for c in doc["conflicts"]:
        console.print(f"Conflict ({c['type']}) on {c['symbol']}: {c['wanted']} -> {c['policy']} = {c['outcome']:g}")
    for r in doc["risk_adjustments"]:
        who = r.get("strategy_id") or "global"
        console.print(f"Risk {r['rule']} ({who}) {r['symbol']}: {r['before']:g} -> {r['after']:g}")


def _orders_table(doc: dict[str, Any]) -> Table:
    """The orders placed (or, on a dry run, planned)."""
    t = Table(title="Orders" + (" (dry run: not placed)" if doc["dry_run"] else ""))
    for c in ("client order id", "action", "quantity", "symbol", "status", "fill", "fee"):
        t.add_column(c)
    for o in doc["orders"]:
        t.add_row(o["client_order_id"], o["action"], _num(o["totalQuantity"]), o["symbol"], o["status"],
                  _num(o.get("fill_price"), 2), _num(o.get("commission"), 2))
    return t


def _render_outcome(doc: dict[str, Any], console: Console) -> None:
    """Unmanaged holdings, intents not used, and the execution's status line."""
    if doc["unmanaged"]:
        console.print(f"Unmanaged holdings (left alone): {', '.join(doc['unmanaged'])}")
    nu = {k: v for k, v in doc["not_used"].items() if v}
    if nu:
        console.print(f"[yellow]Intents not used (strategy keeps its book):[/] {nu}")
    color = {"completed": "green", "skipped": "yellow", "partial_success": "yellow"}.get(doc["status"], "red")
    console.print(f"Execution [bold]{doc['execution_id']}[/]: [{color}]{doc['status']}[/]"
                  f"{' (dry run)' if doc['dry_run'] else ''}: {doc['summary']}")


def render(doc: dict[str, Any], console: Console) -> None:
    """Print the summary as tables."""
    console.rule(f"[bold]Intent Bus run as of {doc['as_of']}")
    console.print(_intents_table(doc))
    _render_account(doc, console)
    if doc["targets"]:
        console.print(_targets_table(doc))
    _render_adjustments(doc, console)
    if doc["orders"]:
        console.print(_orders_table(doc))
    for r in doc.get("protective_exits", []):
        console.print(f"Exit {r['action']} ({r['strategy_id']}) {r['leg']} {r['side']} {_num(r['quantity'])} "
                      f"{r['symbol']} at {_num(r.get('trigger'), 2)}: {r.get('status') or '-'}"
                      + (f" ({r['reason']})" if r.get("reason") else ""))
    _render_outcome(doc, console)
