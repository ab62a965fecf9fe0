"""The pipeline's steps one at a time, as the Cloud Functions run them, and the whole
pipeline under the account's lease.

Why the lease spans reconcile and the Commander: a Commander that trades on a
snapshot taken before another Commander's fills places the same orders again.
Two runs interleaved as reconcile₁, reconcile₂, Commander₁ (trades),
Commander₂ would do exactly that, although the Commanders never overlap. So a
run takes ``locks/commander-{mode}`` **before** it snapshots the broker, under
its execution id, and the Commander re-enters the lease as the same holder
(``Store.try_lease`` lets a holder take its own lease again) and releases it.

* :func:`run_exclusive` — ``POST /orchestrator``: lease, strategies, reconcile, Commander.
* :func:`run_strategy_step` — one strategy's intent (``POST /strategy``).
* :func:`run_reconcile_step` — lease + snapshot (``POST /reconcile``); the lease
  stays held for the allocation step, which gets the execution id.
* :func:`run_allocation_step` — record failed strategies (:func:`record_missing_intents`: those
  without an intent of this as-of), then the Commander (``POST /allocation``); idempotent per execution id.
* :func:`resolve_step_as_of` — a step's as-of: a date, nothing, or the exact instant the plan
  (``GET /strategy``) resolved, which the workflow passes on so that every step of a run as of
  now sees one instant (not the date's configured run time, nor each step's own "now").

A run refused by the lease records a ``skipped`` execution whose reason starts
with :data:`commander.run.LEASE_REFUSED`, so :func:`lease_refused` is true for it.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import date, datetime, timedelta, timezone
from typing import TYPE_CHECKING, Callable

from brokers.base import AsOfRefused, Broker, BrokerError
from bus import paths, telemetry
from bus.constants import LEASE_TTL_SECONDS
from bus.ids import new_id
from bus.models import Execution, Intent, IntentSource, PortfolioSnapshot, StrategyConfig
from bus.store import Store
from commander.run import LEASE_REFUSED, lease_refused, run_commander
from market.history import HistoryProvider, MarketSource
from pipeline.run import PipelineResult, run_pipeline

if TYPE_CHECKING:
    from market.provider import MarketData
    from pipeline.settings import Settings
from reconcile import reconcile
from strategies.runner import INTENTS_PER_BATCH, compute_intent, write_intent, write_intents

log = logging.getLogger(__name__)
FAILED_STEP_CODE_VERSION = "workflow/strategy-step-failed"

__all__ = ["LEASE_TTL_SECONDS", "ReconcileOutcome", "history_provider", "lease_refused", "record_missing_intents",
           "record_strategy_failures", "resolve_step_as_of", "run_allocation_step", "run_exclusive",
           "run_reconcile_step", "run_strategy_step"]

#: How far an instant may lie after this process's clock and still be taken (clock skew between instances).
CLOCK_SKEW = timedelta(seconds=60)


def resolve_step_as_of(value: date | datetime | None, settings: "Settings", provider: "HistoryProvider | MarketData",
                       *, clock: Callable[[], datetime] | None = None) -> datetime:
    """The as-of instant of one step of a run (UTC).

    * ``None`` or a date: :func:`pipeline.wiring.resolve_as_of` (``None`` is "as of now" when
      ``market.yaml`` says ``as_of_now: true``; a date is the configured run time on it).
    * an instant (time-zone aware; what the plan resolved, passed on by the workflow): taken **as is**.
      Within the account's ``as_of_tolerance_seconds`` (900 s by default) of the clock it is this run's
      "now" (a view as of it refreshes the bars when still within the market data's now-window);
      older, it is historical: refused with a live broker, and otherwise only on a day the bundled or
      cached bars cover.

    Raises:
        pipeline.wiring.RunInputError: a naive instant, an instant more than :data:`CLOCK_SKEW` in the
            future, an old instant with a live broker or outside the bars; see ``resolve_as_of`` for dates.
    """
    from pipeline.wiring import RunInputError, data_range, live_broker, resolve_as_of

    if not isinstance(value, datetime):
        now = value is None and settings.market.as_of_now
        return resolve_as_of(value, settings, provider, now=now, clock=clock)
    if value.tzinfo is None:
        raise RunInputError(f"as-of {value.isoformat()} has no UTC offset")
    when = value.astimezone(timezone.utc)
    current = (clock or (lambda: datetime.now(timezone.utc)))()
    if when > current + CLOCK_SKEW:
        raise RunInputError(f"as-of {when.isoformat()} is in the future (now {current.isoformat(timespec='seconds')})")
    tolerance = timedelta(seconds=settings.account.as_of_tolerance_seconds)
    if current - when <= tolerance:
        return when
    live = live_broker(settings)
    if live is not None:
        raise RunInputError(f"as-of {when.isoformat()} is older than {tolerance} and the live broker account {live} "
                            "trades only the market as it is now: start a new run")
    first, _, last = data_range(provider, list(settings.instruments))
    if not first <= when.date() <= last:
        raise RunInputError(f"as-of {when.isoformat()} is outside the bundled data and the bar cache "
                            f"({first.isoformat()} .. {last.isoformat()}); a historical as-of runs only on bundled "
                            "or cached bars")
    return when


def history_provider(settings: "Settings | None" = None, store: Store | None = None,
                     bundled: HistoryProvider | None = None) -> "HistoryProvider | MarketData":
    """The market data the functions read.

    Without ``settings``: the bundled history (``market/data``), parsed lazily and cached by the
    provider. With ``settings`` and ``store``: the bundled bars (``bundled``, shared, when given)
    plus the bar cache in ``store`` (:class:`market.cache.StoreBarCache`), refreshed from the
    ``market.yaml`` sources for a run as of now (:func:`pipeline.wiring.market_data`).
    """
    if settings is None:
        return bundled or HistoryProvider()
    from market.cache import StoreBarCache
    from pipeline.wiring import market_data

    return market_data(settings, StoreBarCache(store) if store is not None else None, bundled=bundled)


def _refused_reason(mode: str, lease: dict | None) -> str:
    holder = (lease or {}).get("holder", "?")
    return f"{LEASE_REFUSED}: {paths.lock(mode)} is held by {holder} (refused before reconcile)"


def run_exclusive(store: Store, provider: MarketSource, broker: Broker, strategies: list[StrategyConfig],
                  as_of: datetime, mode: str, dry_run: bool = True, run_reconcile: bool = True,
                  trigger: str = "manual", execution_id: str | None = None) -> PipelineResult:
    """The whole pipeline holding ``locks/commander-{mode}`` from before the strategies to the end.

    Refused (another run holds the account), nothing runs but the Commander's
    refusal: a ``skipped`` execution is recorded and returned, with no intents
    or snapshot.

    Raises:
        bus.store.StoreError: the store is unreachable.
    """
    execution_id = execution_id or new_id(as_of)
    lock = paths.lock(mode)
    taken, lease = store.try_lease(lock, execution_id, LEASE_TTL_SECONDS)
    telemetry.observe_lease(taken)
    if not taken:
        ex = run_commander(store, broker, as_of, dry_run=dry_run, trigger=trigger, execution_id=execution_id,
                           skip_reason=_refused_reason(mode, lease))
        return PipelineResult(as_of=as_of, execution=ex)
    try:
        return run_pipeline(store, provider, broker, strategies, as_of, dry_run=dry_run, run_reconcile=run_reconcile,
                            trigger=trigger, execution_id=execution_id)
    finally:
        store.release_lease(lock, execution_id)


def run_strategy_step(store: Store, provider: MarketSource, config: StrategyConfig, as_of: datetime) -> Intent:
    """Compute one strategy's intent as of ``as_of`` and write it (``latest`` + immutable copy).

    A failing strategy gives an ``error`` intent (see :func:`strategies.runner.compute_intent`).

    Raises:
        bus.store.StoreError: the intent could not be written.
    """
    intent = compute_intent(config, provider.view(as_of), store=store)  # in this thread: log context holds
    write_intent(store, intent)
    return intent


@dataclass
class ReconcileOutcome:
    """What the reconcile step did.

    Attributes:
        execution_id: the lease holder; pass it to the allocation step (None when refused or failed).
        snapshot: the snapshot written, or None.
        error: why no snapshot was written (broker error); the lease was released.
        refused_by: the holder of the lease when it was refused.
    """

    execution_id: str | None
    snapshot: PortfolioSnapshot | None = None
    error: str | None = None
    refused_by: str | None = None
    conflict: str | None = None


def run_reconcile_step(store: Store, broker: Broker, as_of: datetime, mode: str) -> ReconcileOutcome:
    """Take the account's lease under a new execution id, then snapshot the broker.

    On success the lease stays held (up to :data:`LEASE_TTL_SECONDS`) for the
    allocation step. On a broker error nothing is written and the lease is released.

    Raises:
        bus.store.StoreError: the store is unreachable.
    """
    execution_id = new_id(as_of)
    lock = paths.lock(mode)
    taken, lease = store.try_lease(lock, execution_id, LEASE_TTL_SECONDS)
    telemetry.observe_lease(taken)
    if not taken:
        return ReconcileOutcome(None, refused_by=(lease or {}).get("holder", "?"))
    try:
        snap = reconcile(store, broker, as_of)
    except AsOfRefused as exc:
        store.release_lease(lock, execution_id)
        return ReconcileOutcome(None, conflict=str(exc))
    except BrokerError as exc:
        store.release_lease(lock, execution_id)
        msg = f"{type(exc).__name__}: {exc}"
        log.error("reconcile failed: %s", msg)
        return ReconcileOutcome(None, error=msg)
    except BaseException:
        store.release_lease(lock, execution_id)
        raise
    return ReconcileOutcome(execution_id, snapshot=snap)


def _error_intents(store: Store, messages: dict[str, str], as_of: datetime) -> list[Intent]:
    """Write an ``error`` intent per strategy id -> message (never over a ``latest`` of a later as-of)."""
    now = datetime.now(timezone.utc)
    intents = [Intent(intent_id=new_id(as_of), strategy_id=sid, updated_at=now, as_of=as_of, status="error",
                      error_message=msg, source=IntentSource(code_version=FAILED_STEP_CODE_VERSION))
               for sid, msg in sorted(messages.items())]
    if intents:
        write_intents(store, intents)
    return intents


def record_strategy_failures(store: Store, failures: dict[str, str], as_of: datetime) -> list[Intent]:
    """Write an ``error`` intent for each strategy whose step failed outside its own code.

    A direct caller of the allocation step names them (``strategyErrors``): the strategy then
    keeps its book and is listed as errored in the execution.

    Raises:
        bus.store.StoreError: the store is unreachable.
    """
    return _error_intents(store, {sid: f"strategy step failed: {msg}" for sid, msg in failures.items()}, as_of)


def record_missing_intents(store: Store, strategy_ids: list[str], as_of: datetime) -> list[Intent]:
    """Write an ``error`` intent for each of ``strategy_ids`` whose ``latest`` intent is older than ``as_of``
    (or absent): the caller ran them as of ``as_of``, so its step failed, timed out or was never reached.

    The workflow's strategy calls that fail after their retries are recorded this way: the workflow
    passes no list of failures (its memory and each request stay bounded), the store says which strategy
    has no intent of this run. Reads: one ``get_all`` of the ``as_of`` field per :data:`INTENTS_PER_BATCH`
    strategies. A ``latest`` of a later as-of (a run after this one) is left alone: the Commander calls it stale.

    Raises:
        bus.store.StoreError: the store is unreachable.
    """
    missing: dict[str, str] = {}
    for start in range(0, len(strategy_ids), INTENTS_PER_BATCH):
        chunk = strategy_ids[start:start + INTENTS_PER_BATCH]
        docs = store.get_all([paths.intent(sid) for sid in chunk], fields=["as_of"])
        for sid in chunk:
            seen = (docs.get(paths.intent(sid)) or {}).get("as_of")
            if not isinstance(seen, datetime) or seen < as_of:
                last = seen.isoformat() if isinstance(seen, datetime) else "none"
                missing[sid] = (f"strategy step failed: no intent as of {as_of.isoformat()} (latest: {last}); "
                                "its function failed, timed out or was not reached (see the workflow's log)")
    if missing:
        log.error("%d strategies have no intent as of %s: recorded as errored", len(missing), as_of.isoformat())
    return _error_intents(store, missing, as_of)


def run_allocation_step(store: Store, broker: Broker, as_of: datetime, *, dry_run: bool = True,
                        trigger: str = "manual", execution_id: str | None = None,
                        reconcile_error: str | None = None, strategy_errors: dict[str, str] | None = None,
                        expected: list[str] | None = None) -> tuple[Execution, bool]:
    """Record failed strategies, then run the Commander. Returns (execution, replayed).

    Idempotent per ``execution_id``: when ``executions/{execution_id}`` already
    exists (a retried call), it is returned as it is (``replayed`` True) and
    nothing runs again, so a retry can never trade twice.

    ``reconcile_error`` set, the Commander records ``skipped`` and trades
    nothing: without this run's snapshot it would trade on an older one.
    ``strategy_errors`` (id -> message) get an ``error`` intent each; so does every id of ``expected``
    without an intent as of ``as_of`` (:func:`record_missing_intents`).

    Raises:
        bus.store.StoreError: the store is unreachable.
    """
    if execution_id:
        from commander.replay import load_execution

        existing = load_execution(store, execution_id)  # its parts joined, when it was split
        if existing is not None:
            return existing, True
    if strategy_errors:
        record_strategy_failures(store, strategy_errors, as_of)
    if expected:
        record_missing_intents(store, [sid for sid in expected if sid not in (strategy_errors or {})], as_of)
    ex = run_commander(store, broker, as_of, dry_run=dry_run, trigger=trigger, execution_id=execution_id,
                       skip_reason=f"reconcile failed: {reconcile_error}" if reconcile_error else None)
    return ex, False
