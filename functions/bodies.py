"""Request bodies of the functions, validated with pydantic: unknown fields are refused, types are strict.

Field names are the HTTP API's camelCase (``dryRun``, ``asOf``). Booleans must
be JSON booleans (``"true"`` and ``1`` are refused). ``asOf`` is a ``YYYY-MM-DD``
string (the run's as-of is the configured run time on that date, UTC) or an ISO 8601
instant with its UTC offset (``2026-12-02T12:35:01.5+00:00``): the exact as-of that
``GET /strategy`` resolved, which the workflow passes to the later steps so that every
step of a run as of now sees the same instant.

``dryRun`` defaults to **true** everywhere: a request that does not say
``"dryRun": false`` never places an order.
"""

from __future__ import annotations

import re
from datetime import date, datetime
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field, StrictBool, StringConstraints

StrategyId = Annotated[str, StringConstraints(strict=True, pattern=r"^[a-z0-9_\-]+$", min_length=1, max_length=64)]
ExecutionId = Annotated[str, StringConstraints(strict=True, pattern=r"^[0-9]{8}T[0-9]{6}Z-[0-9a-f]{8}$")]
Message = Annotated[str, StringConstraints(strict=True, max_length=2000)]


def _iso_date(value: Any) -> Any:
    if value is None or value == "":
        return None
    if isinstance(value, str) and re.fullmatch(r"\d{4}-\d{2}-\d{2}", value):
        try:
            return date.fromisoformat(value)
        except ValueError:
            pass
    if isinstance(value, str) and re.fullmatch(r"\d{4}-\d{2}-\d{2}T[0-9:.]+(Z|[+-]\d{2}:\d{2})", value):
        try:
            return datetime.fromisoformat(value)
        except ValueError:
            pass
    raise ValueError(f"{value!r} is not a date YYYY-MM-DD or an instant YYYY-MM-DDTHH:MM:SS+00:00")


def _empty_is_none(value: Any) -> Any:
    return None if value == "" else value


def _unique(ids: list[str] | None) -> list[str] | None:
    if ids is not None and len(set(ids)) != len(ids):
        dup = sorted({i for i in ids if ids.count(i) > 1})
        raise ValueError(f"duplicate strategy ids {dup}")
    return ids


AsOf = Annotated[datetime | date | None, BeforeValidator(_iso_date)]
Trigger = Literal["manual", "scheduled"]


class Body(BaseModel):
    """Base of all bodies: unknown fields are refused."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class OrchestratorBody(Body):
    """``POST /orchestrator``: run the whole pipeline (or start the workflow).

    Attributes:
        strategies: ids to run; default every enabled strategy. At least one,
            no duplicates; each must exist in ``strategies/`` (else 404) and be enabled.
        dryRun: decide and record, place nothing (default true).
        runReconcile: snapshot the broker first (default true); false uses the latest snapshot if fresh.
        asOf: ``YYYY-MM-DD`` or an instant with its offset; default as of now when ``market.yaml`` says
            ``as_of_now: true``, else the last day of the bundled data.
        trigger: recorded on the execution.
    """

    strategies: Annotated[list[StrategyId] | None, Field(min_length=1, max_length=100),
                          AfterValidator(_unique)] = None
    dryRun: StrictBool = True
    runReconcile: StrictBool = True
    asOf: AsOf = None
    trigger: Trigger = "manual"


class StrategyBody(Body):
    """``POST /strategy`` (or ``POST /strategy/{id}`` with the id in the path): one strategy's step."""

    strategy: StrategyId | None = None
    asOf: AsOf = None


class ReconcileBody(Body):
    """``POST /reconcile``: take the account's lease and snapshot the broker."""

    asOf: AsOf = None


class AllocationBody(Body):
    """``POST /allocation``: the Commander.

    Attributes:
        executionId: the id ``/reconcile`` returned (it holds the lease); empty for a fresh one.
        reconcileError: why reconcile failed; set, the Commander records ``skipped`` and trades nothing.
        strategyErrors: strategy id -> why its step failed; each gets an ``error`` intent first (at most
            100: for a direct caller; the workflow leaves failures in the store, see ``checkIntents``).
        checkIntents: the caller ran ``strategies`` (empty: every enabled strategy) as of ``asOf``: each one
            whose latest intent is older than this as-of (its step failed, timed out or was never reached) gets
            an ``error`` intent first, so the Commander lists it as errored instead of using an earlier intent.
        strategies: the ids ``checkIntents`` checks (at most 100, no duplicates); empty: every enabled strategy.
    """

    dryRun: StrictBool = True
    asOf: AsOf = None
    trigger: Trigger = "manual"
    executionId: Annotated[ExecutionId | None, BeforeValidator(_empty_is_none)] = None
    reconcileError: Annotated[Message | None, BeforeValidator(_empty_is_none)] = None
    strategyErrors: Annotated[dict[StrategyId, Message], Field(max_length=100)] = Field(default_factory=dict)
    checkIntents: StrictBool = False
    strategies: Annotated[list[StrategyId], Field(max_length=100), AfterValidator(_unique)] = Field(
        default_factory=list)


#: Strategy ids per page of ``GET /strategy`` (one batch of the workflow's fan-out): 100 ids of at most
#: 64 characters keep the answer under 7 KB.
MAX_PAGE = 100


class PlanQuery(Body):
    """``GET /strategy?asOf=YYYY-MM-DD&after=ID&limit=N``: one page of the enabled strategies (by id, after
    the cursor ``after``), and the resolved as-of (the date ``asOf`` and the exact instant ``as_of``).

    Attributes:
        after: the cursor: the ``next`` of the previous page; empty or absent: the first page.
        limit: strategy documents read for this page, 1..:data:`MAX_PAGE` (default 25).
    """

    asOf: AsOf = None
    after: Annotated[StrategyId | None, BeforeValidator(_empty_is_none)] = None
    limit: Annotated[int, Field(ge=1, le=MAX_PAGE)] = 25
