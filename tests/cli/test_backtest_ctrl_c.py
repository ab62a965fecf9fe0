"""What each Ctrl-C does to ``python main.py backtest`` (cli.commands.backtest.CtrlC), decided in-process.

The handler is called as Python calls a signal handler, with the interrupted frame; "a day runs" is
simulated by calling it from inside a function whose code stands for the engine's day
(``pipeline.run.run_pipeline`` in the real command). The subprocess tests with real signals are in
tests/backtest/test_engine.py.
"""

from __future__ import annotations

import signal
import sys
import threading

import pytest

from cli.commands.backtest import CtrlC


def a_day(handler: CtrlC) -> None:
    """Stands for the engine running one day: the handler sees this frame on the interrupted stack."""
    handler(signal.SIGINT, sys._getframe())


def outside(handler: CtrlC) -> None:
    handler(signal.SIGINT, sys._getframe())


@pytest.fixture
def handler() -> CtrlC:
    return CtrlC(threading.Event(), day_code=a_day.__code__)


def test_first_ctrl_c_after_a_day_stops_the_loop_and_a_second_abandons_the_running_day(handler):
    handler.day_done(1)
    a_day(handler)
    assert handler.stop.is_set() and handler.interrupted
    with pytest.raises(KeyboardInterrupt):
        a_day(handler)


def test_first_ctrl_c_before_any_day_lets_the_first_day_finish(handler):
    outside(handler)
    assert not handler.stop.is_set()  # the engine runs day 1 ...
    handler.day_done(1)
    assert handler.stop.is_set()  # ... and stops there: a one-day partial report


def test_a_second_ctrl_c_outside_a_day_never_raises(handler):
    outside(handler)
    outside(handler)  # e.g. while the emulator starts or the engine sets up: no day will start
    assert handler.stop.is_set() and handler.count == 2


def test_after_the_days_every_ctrl_c_is_deferred(handler):
    handler.day_done(3)
    a_day(handler)
    handler.phase = "after"  # the emulator stops, the report is written
    for _ in range(3):
        a_day(handler)  # even a frame that looks like a day: nothing raises
        outside(handler)
    assert handler.count == 7 and handler.interrupted
