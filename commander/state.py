"""What the Commander reads from the store, and the account state it rolls forward (no broker I/O)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

from pydantic import ValidationError

from bus import paths
from bus.constants import QTY_EPS
from bus.lent import read, read_all, read_collection, read_where
from bus.metrics import curve_sharpe
from bus.models import (
    AccountState,
    Book,
    Execution,
    InstrumentSpec,
    Intent,
    IntentSource,
    PortfolioSnapshot,
    StrategyConfig,
    TradingConfig,
)
from bus.orders import OrderLifecycle
from bus.store import Store
from commander.attribute import EXTERNAL, lot_of, split_fill
from commander.decide import ARRAY_MIN_TARGETS, CommanderInputs
from commander.orders import LateFill
from commander.targets import parse_intent_columns

#: Documents per ``get_all`` when loading the state: 1,000 intents in one stream can outlast the client's deadline.
READS_PER_GET_ALL = 200


def get_all_chunked(store: Store, wanted: list[str], per_call: int = READS_PER_GET_ALL, *, lent: bool = False
                    ) -> dict[str, dict[str, Any] | None]:
    """``store.get_all(wanted)`` in round trips of at most ``per_call`` documents (path -> document or None).
    ``lent``: the documents are only read, never changed (:func:`bus.lent.read_all`: in memory the stored
    documents themselves, no copies).

    Raises:
        bus.store.StoreError: the store is unreachable.
    """
    docs: dict[str, dict[str, Any] | None] = {}
    for start in range(0, len(wanted), per_call):
        chunk = wanted[start:start + per_call]
        docs.update(read_all(store, chunk) if lent else store.get_all(chunk))
    return docs


@dataclass
class LoadedState:
    """What the Commander read from the store."""

    config: TradingConfig
    strategies: dict[str, StrategyConfig]
    intents: dict[str, Intent | None]
    books: dict[str, Book]
    snapshot: PortfolioSnapshot | None
    account: AccountState | None
    previous: Execution | None = None
    open_orders: list[OrderLifecycle] = field(default_factory=list)

    @property
    def must_snapshot_after(self) -> datetime | None:
        """The latest of the last fills and the last write-ahead: a snapshot taken before it is refused."""
        if self.account is None:
            return None
        times = [t for t in (self.account.last_trade_at, self.account.orders_planned_at) if t is not None]
        return max(times) if times else None


#: ``source.code_version`` of the stand-in for an intent document that does not validate.
INVALID_INTENT = "invalid-intent-document"


def _validation_message(exc: ValidationError) -> str:
    """A validation error on one line: each bad field with its reason."""
    parts = []
    for e in exc.errors()[:5]:
        loc = ".".join(str(x) for x in e.get("loc", ())) or "document"
        parts.append(f"{loc}: {e.get('msg')}")
    more = f" (+{exc.error_count() - 5} more)" if exc.error_count() > 5 else ""
    return "; ".join(parts) + more


def parse_intent(strategy_id: str, doc: dict | None) -> Intent | None:
    """The latest intent of ``strategy_id``, validated on its own.

    A document that does not validate, or that names another strategy, becomes an
    ``error`` stand-in carrying the validation message (its strategy is ``errored`` and
    keeps its book; the other strategies trade). None when there is no document.
    """
    if doc is None:
        return None
    try:
        intent = Intent.model_validate(doc)
    except ValidationError as exc:
        return _invalid(strategy_id, f"invalid intent document: {_validation_message(exc)}")
    if intent.strategy_id != strategy_id:
        return _invalid(strategy_id, f"invalid intent document: strategy_id {intent.strategy_id!r} does not match "
                                     f"its path strategies/{strategy_id}")
    return intent


def _invalid(strategy_id: str, message: str) -> Intent:
    epoch = datetime(1970, 1, 1, tzinfo=timezone.utc)
    return Intent(intent_id="invalid", strategy_id=strategy_id, updated_at=epoch, as_of=epoch, status="error",
                  error_message=message, source=IntentSource(code_version=INVALID_INTENT))


def load_state(store: Store, execution_id: str | None = None) -> LoadedState:
    """Read config, enabled strategies, then in one ``get_all`` their latest intents and books,
    the ``external`` book, the latest snapshot and the account state; and in one query the
    account's orders that still need the venue or the books (``orders/*`` with ``open``).

    Raises:
        RuntimeError: ``config/trading`` is missing.
    """
    raw_cfg = read(store, paths.TRADING_CONFIG)  # lent documents (bus.lent): validated at once, never changed
    if raw_cfg is None:
        raise RuntimeError("config/trading is missing: apply the configuration first")
    config = TradingConfig.model_validate(raw_cfg)
    strategies = {}
    for sid, data in read_collection(store, "strategies"):
        cfg = StrategyConfig.model_validate(data)
        if cfg.enabled:
            strategies[sid] = cfg
    want = [paths.intent(s) for s in strategies] + [paths.book(s) for s in [*strategies, EXTERNAL]]
    want += [paths.portfolio(config.mode), paths.account_state(config.mode)]
    if execution_id:
        want.append(paths.execution(execution_id))
    docs = get_all_chunked(store, want, lent=True)
    # From ARRAY_MIN_TARGETS targets on, kept as columns (commander.targets) for the array path: 2,000,000
    # targets as objects alone would take 1.6 GiB. Below it, objects: the per-book path (bit-identical, see
    # tests/commander/test_decide_arrays.py) is faster at a few dozen targets (the backtest: ~1.4 ms a step).
    raw = [docs[paths.intent(s)] for s in strategies]
    n_targets = sum(len(d.get("target_positions") or ()) for d in raw if isinstance(d, dict))
    parse = parse_intent_columns if n_targets >= ARRAY_MIN_TARGETS else parse_intent
    intents = {s: parse(s, docs[paths.intent(s)]) for s in strategies}
    books = {s: Book.model_validate(docs[paths.book(s)]) for s in [*strategies, EXTERNAL] if docs[paths.book(s)]}
    snap_doc = docs[paths.portfolio(config.mode)]
    acct_doc = docs[paths.account_state(config.mode)]
    done = docs.get(paths.execution(execution_id)) if execution_id else None
    orders = [OrderLifecycle.model_validate(d) for _, d in read_where(store, paths.ORDERS, "open", True)]
    return LoadedState(config, strategies, intents, books,
                       PortfolioSnapshot.model_validate(snap_doc) if snap_doc else None,
                       AccountState.model_validate(acct_doc) if acct_doc else None,
                       Execution.model_validate(done) if done else None,
                       [o for o in orders if o.mode == config.mode])


def prev_close_nav(account: AccountState | None, as_of: datetime) -> float | None:
    """The NAV the daily-loss halt compares against: the last NAV of an earlier day."""
    if account is None:
        return None
    today = as_of.date().isoformat()
    return account.last_nav if account.last_date < today else account.prev_close_nav


def next_account_state(account: AccountState | None, mode: str, as_of: datetime, nav: float) -> AccountState:
    """Roll the account state forward to this run's NAV."""
    today = as_of.date().isoformat()
    if account is None:
        return AccountState(mode=mode, updated_at=as_of, last_date=today, last_nav=nav)
    if account.last_date < today:
        return AccountState(mode=mode, updated_at=as_of, last_date=today, last_nav=nav,
                            prev_close_date=account.last_date, prev_close_nav=account.last_nav,
                            last_trade_at=account.last_trade_at, funding_seen=account.funding_seen,
                            orders_planned_at=account.orders_planned_at)
    return account.model_copy(update={"updated_at": as_of, "last_nav": nav})


def late_cash(late: Sequence[LateFill], specs: dict[str, InstrumentSpec]) -> dict[str, float]:
    """Strategy id -> the cash its book pays (< 0) or receives for this run's late fills (base currency):
    −units × price × multiplier − its commission share, split as :func:`commander.attribute.update_books`
    books them (pro rata to the order's recorded shares, commission by |units|)."""
    out: dict[str, float] = {}
    for f in late:
        shares = split_fill(f.quantity, f.order.shares, lot_of(specs, f.order.symbol))
        booked = sum(abs(q) for q in shares.values())
        mult = specs[f.order.symbol].multiplier if f.order.symbol in specs else 1.0
        for sid, q in shares.items():
            fee = f.commission * abs(q) / booked if booked else 0.0
            out[sid] = out.get(sid, 0.0) - q * f.price * mult - fee
    return out


def inputs_from_state(st: LoadedState, execution_id: str, as_of: datetime, prices: dict[str, float],
                      specs: dict[str, InstrumentSpec],
                      late_units: dict[str, dict[str, float]] | None = None,
                      late_cash: dict[str, float] | None = None) -> CommanderInputs:
    """The pure decision's inputs, derived from what was read (and recorded in the execution).

    ``late_units`` (strategy id -> symbol -> signed units) and ``late_cash`` (strategy id ->
    base currency, :func:`late_cash`) are fills of earlier orders this run books before
    deciding: the decision sees each book, units and cash, as it will be once they are booked,
    so each strategy is sized on its book's equity after them. Funding since the last run is
    charged after the decision (it moves the next run's equity).
    """
    p = st.config.performance
    books = {s: b for s, b in st.books.items() if s in st.strategies}
    sharpes = {s: (curve_sharpe(books[s].equity_curve, p.lookback_days, p.min_history_days, p.periods_per_year)
                   if s in books else None) for s in st.strategies} \
        if st.config.allocation_method == "performance_based" else {}
    assert st.snapshot is not None
    units = {s: b.quantities() for s, b in books.items()}
    for sid, per in (late_units or {}).items():
        if sid not in st.strategies:
            continue
        mine = units.setdefault(sid, {})
        for sym, q in per.items():
            mine[sym] = mine.get(sym, 0.0) + q
        units[sid] = {sym: q for sym, q in mine.items() if abs(q) > QTY_EPS}
    capital = {s: b.capital() for s, b in books.items()}
    for sid, c in (late_cash or {}).items():
        if sid in capital:
            capital[sid] = capital[sid].model_copy(update={"cash": capital[sid].cash + c})
    return CommanderInputs(execution_id, as_of, st.config, st.strategies, st.intents,
                           units, st.snapshot, prices, specs,
                           drawdowns={s: b.drawdown for s, b in books.items()}, sharpes=sharpes,
                           prev_close_nav=prev_close_nav(st.account, as_of), book_capital=capital)
