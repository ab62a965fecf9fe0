"""Scale: one pipeline run of 1,000 strategies × 50 targets over 2,000 symbols on the Firestore emulator.

Strategy intents are written in batches, reconcile snapshots the paper broker, the Commander
decides and records; the record is too large for one document, so it is a header under 64 KB
plus parts, every document under Firestore's 1 MiB, and ``replay`` reproduces the decision
from them. Prints the wall time, the store's round trips and the documents' counts and sizes.
"""

from __future__ import annotations

import time

import pytest

from bus import paths
from bus.models import Execution
from commander.record import HEADER_LIMIT, PARTS_PER_BATCH, encoded_size, part_paths
from commander.replay import load_execution, replay
from commander.state import get_all_chunked
from pipeline.run import run_pipeline
from tests.scale import scenario

MIB = 1024 * 1024


def _sizes(docs: dict[str, dict | None]) -> list[int]:
    assert all(d is not None for d in docs.values()), [p for p, d in docs.items() if d is None][:5]
    return [encoded_size(d) for d in docs.values()]


def _line(name: str, sizes: list[int]) -> str:
    return f"{name}: {len(sizes)} documents, largest {max(sizes) / 1024:.1f} KiB, total {sum(sizes) / MIB:.2f} MiB"


def run_at_scale(store, provider, n_strategies: int, n_symbols: int, per_strategy: int) -> tuple[Execution, float]:
    """One dry pipeline run; returns its execution and wall seconds."""
    strategies = scenario.configs(n_strategies, n_symbols, per_strategy)
    broker = scenario.setup(store, strategies, n_symbols)
    store.stats.clear()
    t0 = time.perf_counter()
    res = run_pipeline(store, provider, broker, strategies, scenario.AS_OF, dry_run=True, execution_id="scale-run")
    wall = time.perf_counter() - t0
    assert res.execution is not None
    return res.execution, wall


@pytest.mark.slow
def test_1000_strategies_x_50_targets_over_2000_symbols_in_one_run(store, provider):
    ex, wall = run_at_scale(store, provider, 1000, 2000, 50)
    trips = dict(sorted(store.stats.items()))
    assert ex.status == "completed", ex.reason
    assert not ex.errored_strategies and not ex.missing_strategies and not ex.stale_strategies
    assert len(ex.decision.allocations) == 1000 and len(ex.decision.final_target) > 1900
    assert sum(len(t.contributions) for t in ex.decision.aggregated_target) == 50_000

    header = store.get(paths.execution(ex.execution_id))
    assert header is not None and header["detail_parts"], "a 1,000 x 2,000 record cannot be one document"
    parts = get_all_chunked(store, part_paths(header), PARTS_PER_BATCH)
    sids = sorted(ex.context.strategy_intents_refs)
    intents = get_all_chunked(store, [paths.intent(s) for s in sids] + list(ex.context.strategy_intents_refs.values()))
    snapshot = store.get_all([paths.portfolio("paper"), ex.context.portfolio_snapshot_ref or ""])
    header_size = encoded_size(header)
    part_sizes, intent_sizes, snapshot_sizes = _sizes(parts), _sizes(intents), _sizes(snapshot)
    assert header_size < HEADER_LIMIT
    assert max(part_sizes + intent_sizes + snapshot_sizes) < MIB

    again = load_execution(store, ex.execution_id)
    assert again is not None and again.decision == ex.decision and again.context == ex.context
    t0 = time.perf_counter()
    result = replay(store, ex.execution_id)
    replay_wall = time.perf_counter() - t0
    assert result.replayable and result.identical, result.differences[:5]

    print(f"\n1,000 strategies x 50 targets over 2,000 symbols, one dry pipeline run: {wall:.1f} s wall; "
          f"replay {replay_wall:.1f} s (identical)")
    print(f"store round trips of the run: {trips}")
    print(f"execution header: {header_size / 1024:.1f} KiB; parts by field: {header['detail_parts']}")
    for name, sizes in (("execution parts", part_sizes), ("intents (latest + immutable)", intent_sizes),
                        ("portfolio snapshots", snapshot_sizes)):
        print(_line(name, sizes))
