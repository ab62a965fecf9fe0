"""The as-of a step of the workflow gets: the plan's exact instant (``asOf`` as an ISO instant), taken as it
is, so every step of a run as of now sees one instant; dates keep meaning the configured run time."""

from __future__ import annotations

from dataclasses import replace
from datetime import date, datetime, timedelta, timezone

import pytest
from pydantic import ValidationError

from brokers.config import IBAccount
from functions.bodies import AllocationBody, PlanQuery, ReconcileBody, StrategyBody
from pipeline.steps import CLOCK_SKEW, resolve_step_as_of
from pipeline.wiring import RunInputError

NOW = datetime(2026, 12, 2, 12, 35, 1, 123456, tzinfo=timezone.utc)


def clock() -> datetime:
    return NOW


@pytest.mark.parametrize("body", [PlanQuery, StrategyBody, ReconcileBody, AllocationBody])
def test_every_step_body_takes_the_plans_instant(body):
    assert body(asOf=NOW.isoformat()).asOf == NOW
    assert body(asOf="2026-12-02T12:35:01Z").asOf == NOW.replace(microsecond=0)
    assert body(asOf="2020-03-16").asOf == date(2020, 3, 16)
    with pytest.raises(ValidationError, match="is not a date YYYY-MM-DD or an instant"):
        body(asOf="2026-12-02T12:35:01")  # no offset: which instant it means is unknown


def test_an_instant_within_the_tolerance_is_this_runs_now_as_it_is(settings, provider):
    plan = NOW - timedelta(minutes=7)  # the plan resolved "now" seven minutes ago
    assert resolve_step_as_of(plan, settings, provider, clock=clock) == plan
    live = replace(settings, account=IBAccount(account="ib"))
    assert resolve_step_as_of(plan, live, provider, clock=clock) == plan
    later = NOW + CLOCK_SKEW / 2  # another instance's clock a little ahead
    assert resolve_step_as_of(later, settings, provider, clock=clock) == later


def test_a_date_still_means_the_run_time_and_an_old_instant_is_historical(settings, provider):
    assert resolve_step_as_of(date(2020, 3, 16), settings, provider, clock=clock) == datetime(
        2020, 3, 16, 21, 30, tzinfo=timezone.utc)
    old = datetime(2020, 3, 16, 14, 5, 3, tzinfo=timezone.utc)
    assert resolve_step_as_of(old, settings, provider, clock=clock) == old  # paper, within the bundled bars
    with pytest.raises(RunInputError, match="live broker account 'ib'"):
        resolve_step_as_of(old, replace(settings, account=IBAccount(account="ib")), provider, clock=clock)
    with pytest.raises(RunInputError, match="outside the bundled data and the bar cache"):
        resolve_step_as_of(datetime(1980, 1, 4, tzinfo=timezone.utc), settings, provider, clock=clock)


def test_an_instant_in_the_future_or_without_offset_is_refused(settings, provider):
    with pytest.raises(RunInputError, match="is in the future"):
        resolve_step_as_of(NOW + 2 * CLOCK_SKEW, settings, provider, clock=clock)
    with pytest.raises(RunInputError, match="has no UTC offset"):
        resolve_step_as_of(NOW.replace(tzinfo=None), settings, provider, clock=clock)
