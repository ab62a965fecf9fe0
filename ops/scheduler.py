"""The local twin of Cloud Scheduler → Workflows: the daily pipeline at ``run_time_utc`` (APScheduler).

:class:`LocalScheduler` runs one command line (by default ``python main.py run --live-data``) at
the daily time in UTC, and optionally every ``every`` seconds (an intraday cadence). Each run is
a child process, so a failing run never stops the schedule, and its exit code is reported
(0 completed, 1 failed, 3 partial, 4 skipped with ``--strict``; see the README's exit codes).

A run that could not start on time is reported, never silently dropped:

* the previous run is still going when the next is due (APScheduler ``EVENT_JOB_MAX_INSTANCES``):
  "missed run at T: the previous run is still running";
* the process was suspended or busy past the grace time (``EVENT_JOB_MISSED``): "missed run at T".

Stop it with Ctrl-C (or SIGTERM): the scheduler shuts down, a run in progress is interrupted
(SIGINT, which the CLI turns into a clean stop of its emulator) and waited for.
"""

from __future__ import annotations

import logging
import signal
import subprocess
import threading
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Callable

from apscheduler.events import (
    EVENT_JOB_ERROR,
    EVENT_JOB_EXECUTED,
    EVENT_JOB_MAX_INSTANCES,
    EVENT_JOB_MISSED,
    JobEvent,
    JobExecutionEvent,
    JobSubmissionEvent,
)
from apscheduler.schedulers.background import BackgroundScheduler
from apscheduler.triggers.cron import CronTrigger
from apscheduler.triggers.interval import IntervalTrigger

log = logging.getLogger(__name__)

#: Seconds a due run may still start late before it counts as missed.
MISFIRE_GRACE_SECONDS = 300


@dataclass
class RunRecord:
    """One scheduled run: when it was due, when it ended, its exit code (None: missed), and a note."""

    due: datetime
    ended: datetime | None = None
    exit_code: int | None = None
    note: str = ""


@dataclass
class LocalScheduler:
    """Run ``command`` daily at ``daily_at`` (``HH:MM`` UTC) and/or every ``every`` seconds.

    Args:
        command: the argv of one run.
        daily_at: ``HH:MM`` in UTC, or None for no daily run.
        every: seconds between intraday runs, or None.
        max_runs: stop after this many runs ended (missed runs are reported, not counted; None: until stopped).
        report: called with each line to show the user (default: ``log.warning``).

    Raises:
        ValueError: neither ``daily_at`` nor ``every`` is given, or ``daily_at`` is not ``HH:MM``.
    """

    command: list[str]
    daily_at: str | None = None
    every: float | None = None
    max_runs: int | None = None
    report: Callable[[str], None] = log.warning
    records: list[RunRecord] = field(default_factory=list)

    def __post_init__(self) -> None:
        if self.daily_at is None and self.every is None:
            raise ValueError("nothing to schedule: give a daily time or an interval")
        self._done = threading.Event()
        self._child: subprocess.Popen[bytes] | None = None
        self._lock = threading.Lock()
        self._sched = BackgroundScheduler(timezone=timezone.utc,
                                          job_defaults={"coalesce": True, "max_instances": 1,
                                                        "misfire_grace_time": MISFIRE_GRACE_SECONDS})
        if self.daily_at is not None:
            hh, _, mm = self.daily_at.partition(":")
            if not (hh.isdigit() and mm.isdigit() and int(hh) < 24 and int(mm) < 60):
                raise ValueError(f"daily time {self.daily_at!r} is not HH:MM")
            self._sched.add_job(self._run_once, CronTrigger(hour=int(hh), minute=int(mm), timezone=timezone.utc),
                                id="daily", name=f"daily at {self.daily_at} UTC")
        if self.every is not None:
            self._sched.add_job(self._run_once, IntervalTrigger(seconds=self.every, timezone=timezone.utc),
                                id="intraday", name=f"every {self.every:g} s")
        self._sched.add_listener(self._on_event, EVENT_JOB_MISSED | EVENT_JOB_MAX_INSTANCES | EVENT_JOB_ERROR
                                 | EVENT_JOB_EXECUTED)

    def _run_once(self) -> None:
        rec = RunRecord(due=datetime.now(timezone.utc))
        self.report(f"run started at {rec.due.isoformat(timespec='seconds')}: {' '.join(self.command[1:])}")
        with self._lock:
            self._child = subprocess.Popen(self.command)
        rec.exit_code = self._child.wait()
        with self._lock:
            self._child = None
        rec.ended = datetime.now(timezone.utc)
        rec.note = {0: "completed", 1: "failed", 2: "bad input", 3: "partial success", 4: "skipped",
                    130: "interrupted"}.get(rec.exit_code, "ended")
        self.report(f"run due {rec.due.isoformat(timespec='seconds')} ended: exit {rec.exit_code} ({rec.note})")
        self._record(rec)

    def _record(self, rec: RunRecord) -> None:
        with self._lock:
            self.records.append(rec)
            ended = sum(r.exit_code is not None for r in self.records)
            if self.max_runs is not None and ended >= self.max_runs:
                self._done.set()

    def _on_event(self, event: JobEvent) -> None:
        if event.code == EVENT_JOB_MAX_INSTANCES and isinstance(event, JobSubmissionEvent):
            due = event.scheduled_run_times[0] if event.scheduled_run_times else datetime.now(timezone.utc)
            self.report(f"missed run at {due.isoformat(timespec='seconds')}: the previous run is still running")
            self._record(RunRecord(due=due, note="missed: previous run still running"))
        elif event.code == EVENT_JOB_MISSED and isinstance(event, JobExecutionEvent):
            self.report(f"missed run at {event.scheduled_run_time.isoformat(timespec='seconds')}: "
                        f"not started within {MISFIRE_GRACE_SECONDS} s (was the machine asleep?)")
            self._record(RunRecord(due=event.scheduled_run_time, note="missed"))
        elif event.code == EVENT_JOB_ERROR and isinstance(event, JobExecutionEvent):
            self.report(f"run due {event.scheduled_run_time.isoformat(timespec='seconds')} could not start: "
                        f"{type(event.exception).__name__}: {event.exception}")
            self._record(RunRecord(due=event.scheduled_run_time, note=f"error: {event.exception}"))

    def next_runs(self) -> list[tuple[str, datetime]]:
        """(job name, next due time) of each job, soonest first (after :meth:`start`)."""
        return sorted(((j.name, j.next_run_time) for j in self._sched.get_jobs() if j.next_run_time),
                      key=lambda x: x[1])

    def start(self) -> None:
        """Start the schedule in a background thread and say when each job runs next."""
        self._sched.start()
        for name, when in self.next_runs():
            self.report(f"scheduled: {name}; next run at {when.isoformat(timespec='seconds')}")

    def wait(self, timeout: float | None = None) -> bool:
        """Block until ``max_runs`` runs have ended (True) or ``timeout`` seconds pass (False)."""
        return self._done.wait(timeout)

    def stop(self) -> None:
        """Stop scheduling; interrupt a run in progress (SIGINT) and wait for it to end."""
        with self._lock:
            child = self._child
        if child is not None and child.poll() is None:
            self.report("stopping: interrupting the run in progress")
            child.send_signal(signal.SIGINT)
        if self._sched.running:
            self._sched.shutdown(wait=True)
        self.report("scheduler stopped")
