"""Store round trips the durable order lifecycle adds, per run and per order (paper broker, in memory).

Counts :attr:`bus.store.Store.stats` of one reconcile + Commander run that places N orders, for several N,
with the paper account's own writes left out (they are the venue's, not the lifecycle's). The slope over N
is the cost per order; the intercept what a run pays whatever it trades.

    python bench/order_lifecycle.py
"""

from __future__ import annotations

import sys
from collections import Counter
from collections.abc import Iterable
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from brokers.sim import SimBroker
from bus.models import InstrumentSpec
from bus.store import MemoryStore
from commander.run import run_commander
from reconcile import reconcile
from tests.fakes.commander_scenario import write_scenario

T = datetime(2024, 6, 3, 21, 30, tzinfo=timezone.utc)


class CountingStore(MemoryStore):
    """Counts round trips by kind, leaving out the paper account's own documents."""

    def __init__(self) -> None:
        super().__init__()
        self.ours: Counter[str] = Counter()

    def _mine(self, paths: list[str]) -> bool:
        return not all(p.startswith("sim_accounts/") for p in paths)

    def get(self, path: str) -> dict[str, Any] | None:
        if self._mine([path]):
            self.ours["get"] += 1
        return super().get(path)

    def get_all(self, paths: Iterable[str], fields: list[str] | None = None) -> dict[str, dict[str, Any] | None]:
        paths = list(paths)
        if self._mine(paths):
            self.ours["get_all"] += 1
        return super().get_all(paths, fields)

    def set(self, path: str, data: dict[str, Any]) -> None:
        if self._mine([path]):
            self.ours["set"] += 1
        super().set(path, data)

    def write_batch(self, writes: list[tuple[str, dict[str, Any]]]) -> None:
        if self._mine([p for p, _ in writes]):
            self.ours["batch"] += 1
        super().write_batch(writes)

    def list_docs(self, collection: str) -> list[tuple[str, dict[str, Any]]]:
        if self._mine([collection]):
            self.ours["list"] += 1
        return super().list_docs(collection)

    def list_where(self, collection: str, field: str, value: Any) -> list[tuple[str, dict[str, Any]]]:
        self.ours["query"] += 1
        return super().list_where(collection, field, value)


def run(n: int) -> Counter[str]:
    symbols = [f"S{i:02d}" for i in range(n)]
    specs = {s: InstrumentSpec(symbol=s, lot_size=1, min_quantity=1, min_notional=1) for s in symbols}
    store = CountingStore()
    write_scenario(store, T, {s: 10 for s in symbols})
    broker = SimBroker(store, "acct", lambda s, t: 100.0, specs, starting_cash=1_000_000)
    store.ours.clear()
    reconcile(store, broker, T)
    ex = run_commander(store, broker, T, execution_id=f"ex-{n}")
    assert len(ex.orders_placed) == n, ex.summary
    return store.ours


def main() -> None:
    rows = {n: run(n) for n in (1, 4, 8)}
    kinds = sorted({k for c in rows.values() for k in c})
    print("orders  " + "  ".join(f"{k:>8}" for k in kinds) + "     total")
    for n, c in rows.items():
        print(f"{n:>6}  " + "  ".join(f"{c[k]:>8}" for k in kinds) + f"  {sum(c.values()):>8}")
    a, b = rows[4], rows[8]
    per = (sum(b.values()) - sum(a.values())) / 4
    print(f"per order: {per:.2f} round trips (one `set` of its orders/{{id}} record after the venue's answer); "
          f"per run whatever it trades: {sum(rows[1].values()) - per:.0f}")


if __name__ == "__main__":
    main()
