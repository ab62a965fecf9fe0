"""Named fault points, for tests that kill or interrupt a real process at an exact place.

Product code marks the places where a crash or a signal matters with
``fault_point("commander.after_order", n)``. Nothing happens unless the
environment variable :data:`FAULTS_ENV` names that point, so production pays one
dictionary look-up. A test runs ``python main.py …`` in a subprocess with, e.g.::

    INTENT_BUS_FAULTS="commander.after_order#2=exit"        # os._exit(137) after the 2nd order
    INTENT_BUS_FAULTS="backtest.report=sigint"              # SIGINT to itself while the report is written
    INTENT_BUS_FAULTS="commander.before_orders=exit,books.write=exit"

Grammar: comma-separated ``NAME[#COUNT]=ACTION``. ``COUNT`` (1-based) fires the
action only on that call of the point with that ``n`` (or the COUNT-th call when
the point passes no ``n``). Actions:

* ``exit``: ``os._exit(137)``, no cleanup, no ``finally``: a crash, as ``kill -9`` would leave it;
* ``kill``: SIGKILL to this process (``kill -9`` itself: the parent sees death by signal 9);
* ``sigint`` / ``sigterm``: the signal to this process (the handlers run as for a real Ctrl-C / kill);
* ``raise``: :class:`FaultInjected` (an exception the code under test may not expect);
* ``delay:SECONDS``: a slow dependency (a broker read that takes SECONDS), then go on.

This replaces sleeping in tests: the fault happens at the point, not after a guess of time.
"""

from __future__ import annotations

import os
import signal
import threading
import time

#: Environment variable naming the fault points to fire.
FAULTS_ENV = "INTENT_BUS_FAULTS"
#: Exit code of the ``exit`` action (as a process killed by SIGKILL reports it in a shell).
CRASH_EXIT_CODE = 137

_calls: dict[str, int] = {}
_lock = threading.Lock()


class FaultInjected(RuntimeError):
    """Raised by a fault point whose action is ``raise``."""


def _parse(spec: str) -> dict[str, tuple[int | None, str]]:
    out: dict[str, tuple[int | None, str]] = {}
    for part in filter(None, (p.strip() for p in spec.split(","))):
        name, _, action = part.partition("=")
        name, _, count = name.partition("#")
        out[name.strip()] = (int(count) if count else None, action.strip() or "exit")
    return out


def fault_point(name: str, n: int | None = None) -> None:
    """Fire the fault configured for ``name`` in ``$INTENT_BUS_FAULTS``, if any.

    Args:
        name: the point's dotted name, e.g. ``"commander.after_order"``.
        n: which occurrence this is (1-based), when the caller counts; otherwise
            calls are counted here per name.

    Raises:
        FaultInjected: the configured action is ``raise``.
        ValueError: the configured action is unknown.
    """
    spec = os.environ.get(FAULTS_ENV)
    if not spec:
        return
    rule = _parse(spec).get(name)
    if rule is None:
        return
    count, action = rule
    if n is None:
        with _lock:
            _calls[name] = n = _calls.get(name, 0) + 1
    if count is not None and n != count:
        return
    if action == "exit":
        os._exit(CRASH_EXIT_CODE)
    elif action == "kill":
        os.kill(os.getpid(), signal.SIGKILL)
    elif action == "sigint":
        os.kill(os.getpid(), signal.SIGINT)
    elif action == "sigterm":
        os.kill(os.getpid(), signal.SIGTERM)
    elif action == "raise":
        raise FaultInjected(f"fault injected at {name} #{n}")
    elif action.startswith("delay:"):
        time.sleep(float(action.split(":", 1)[1]))
    else:
        raise ValueError(f"{FAULTS_ENV}: unknown action {action!r} for {name} "
                         "(exit, kill, sigint, sigterm, raise, delay:S)")
