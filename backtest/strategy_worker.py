"""A backtest's classic strategies, computed ahead of its main loop in one worker process.

In a backtest, a classic strategy's intent at step *t* depends only on its configuration and the
market as of *t* (cut at the backtest's horizon): not on the Commander, the books or the store
(:class:`strategies.base.StrategyContext` holds nothing else). So one child process runs
:func:`strategies.runner.compute_intent` (the same code as a live run) for steps *t+1 .. t+k*
while the main process runs step *t*'s reconcile and Commander; the main process then writes each
step's intents exactly as :func:`strategies.runner.run_strategies` would (same documents, same
``source.bars`` digests, the same ``error`` intent for a compute that raised). Kind-``llm``
strategies (they read their book and write their journal in the store), and classic ones whose
class the child cannot import by name, stay in the main process.

The child is a plain ``python`` subprocess, spawned (not forked: the parent may hold threads and
locks; and not through :mod:`multiprocessing`, whose ``spawn`` and ``forkserver`` also start a
resource-tracker process that outlives the backtest), in its own session so that a Ctrl-C at the
terminal reaches the parent only. It talks pickles over its stdin and stdout (its ``print`` goes
to stderr). Once it has imported the strategies and loaded their bars (one step computed and
dropped), it says so; until then the main loop computes the steps itself, so a short backtest
never waits for it. It computes at most :data:`AHEAD` steps past the one the parent took last
(the parent hands a credit back per step taken), and ships the log records of each step to the
parent, which emits them through its own loggers. It ends by itself after the last step, on
end-of-file on its stdin (the parent is gone), or when :meth:`StrategyWorker.close` stops it; the
parent always reaps it, so no process is left. A child that dies or answers out of step fails the
backtest with :class:`StrategyWorkerError`, one line; nothing waits on a timer.
"""

from __future__ import annotations

import importlib
import logging
import os
import pickle
import select
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import IO, Any

from bus.faults import fault_point
from bus.models import Intent, StrategyConfig
from strategies import registry

log = logging.getLogger(__name__)

#: Steps the worker may compute past the last one the main loop took.
AHEAD = 32
#: The child's byte on its stdout when it is ready; the parent's byte on the child's stdin per step taken.
READY, CREDIT = b"R", b"\x01"
#: Tests set it: the first step waits for the child to be ready, so that the child computes every step.
WAIT_READY = False
#: The child's first line: the parent's import path (a pickle on stdin), then the pickled :class:`WorkerSpec`
#: (its length, 8 bytes little-endian, then its bytes; read before the slow imports, so the parent's write of a
#: long backtest's spec never waits for them), then :func:`main`.
_BOOT = ("import pickle, sys; i = sys.stdin.buffer; sys.path[:0] = pickle.load(i); "
         "spec = i.read(int.from_bytes(i.read(8), 'little')); import backtest.strategy_worker as w; w.main(spec)")


class StrategyWorkerError(RuntimeError):
    """The strategy worker process died, or answered out of step: the backtest cannot go on."""


@dataclass(frozen=True)
class WorkerSpec:
    """What the child needs: the strategies, the market (as :class:`backtest.horizon.HorizonHistory` is built)
    and the steps.

    Attributes:
        configs: the classic strategies it computes, in the order their intents are returned.
        modules: modules to import first: they register the configs' strategy classes.
        data_dirs: bar folders; horizon: aware UTC datetime; aliases: symbol -> stand-in series.
        as_ofs: every step's as-of time (aware UTC), in order.
        ahead: steps it may compute past the last one taken; log_level: the parent's root logging level.
    """

    configs: list[StrategyConfig]
    modules: list[str]
    data_dirs: list[Path]
    horizon: datetime
    aliases: dict[str, str]
    as_ofs: list[datetime]
    ahead: int = AHEAD
    log_level: int = logging.WARNING


def runs_in_worker(config: StrategyConfig) -> bool:
    """Whether a worker process can compute ``config``: an enabled classic strategy whose registered class is
    importable by module and name (not defined in ``__main__`` nor inside a function)."""
    if not config.enabled or config.kind == "llm":
        return False
    cls = registry.implementation(config.strategy_id)
    if cls is None or cls.__module__ == "__main__":
        return False
    mod = sys.modules.get(cls.__module__)
    return mod is not None and getattr(mod, cls.__qualname__, None) is cls


#: Steps under which a backtest computes its strategies in its steps by default: the worker needs ~1-2 s (CPU)
#: to be ready, about a hundred steps of the main loop, so a shorter backtest would only pay for it.
MIN_STEPS = 120


def default_workers(steps: int) -> int:
    """1 when this process may use more than one CPU (computing ahead needs a second core) and the backtest has
    at least :data:`MIN_STEPS` steps, else 0."""
    try:
        cpus = len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        cpus = os.cpu_count() or 1
    return 1 if cpus > 1 and steps >= MIN_STEPS else 0


class StrategyWorker:
    """The parent's end of the worker: start it, take each step's intents in order, close it.

    Until the child is ready (imported, its bars loaded), :meth:`take` answers None and the caller computes
    the step itself; the step after the one where it sees the child ready is the child's first. Use as a
    context manager (or call :meth:`close`): the child is stopped and reaped on the way out.

    Attributes:
        first: index of the first step the child computes (None: not ready yet); ``waited``: wall seconds
            :meth:`take` spent waiting for (and reading) the child's answers.

    Raises:
        StrategyWorkerError: the child could not be started or fed its spec.
    """

    def __init__(self, spec: WorkerSpec) -> None:
        self.spec = spec
        self._next = 0
        self.first: int | None = None
        self.waited = 0.0
        blob = pickle.dumps(spec, protocol=pickle.HIGHEST_PROTOCOL)
        try:
            self._proc = subprocess.Popen([sys.executable, "-c", _BOOT], stdin=subprocess.PIPE,
                                          stdout=subprocess.PIPE, start_new_session=True)
        except OSError as exc:
            raise StrategyWorkerError(f"the strategy worker process could not be started: {exc}") from exc
        try:
            self._write(pickle.dumps(list(sys.path)) + len(blob).to_bytes(8, "little") + blob)
        except OSError as exc:
            self.close()
            raise StrategyWorkerError(f"the strategy worker process could not be started: {exc}") from exc

    def __enter__(self) -> "StrategyWorker":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _write(self, data: bytes) -> None:
        assert self._proc.stdin is not None
        self._proc.stdin.write(data)
        self._proc.stdin.flush()

    def _died(self, before: str, eof: bool = False) -> StrategyWorkerError:
        """Close the child and say how it ended, as one line. ``eof``: its stdout ended, so it is exiting (it
        never closes it otherwise): reaped first, for its exit code."""
        code = self._proc.wait() if eof else self._proc.poll()
        self.close()
        ended = f"ended with exit code {code}" if code is not None else "stopped answering"
        return StrategyWorkerError(f"the strategy worker process {ended} before {before}; rerun with "
                                   "--strategy-workers 0 to compute the strategies in this process")

    def _ready(self, i: int) -> bool:
        """Whether the child has said it is ready (one byte on its stdout; checked without waiting, unless
        :data:`WAIT_READY`); when it has, it is told to start at step ``i + 1`` (``i`` when waited for)."""
        assert self._proc.stdout is not None
        if not WAIT_READY and not select.select([self._proc.stdout], [], [], 0)[0]:
            return False
        got = self._proc.stdout.read(1)
        if got != READY:
            raise self._died("it was ready", eof=not got)
        self.first = i if WAIT_READY else i + 1
        try:
            self._write(pickle.dumps(self.first))
        except OSError:
            raise self._died("it was told where to start") from None
        return True

    def take(self, as_of: datetime) -> dict[str, Intent] | None:
        """The next step's intents, strategy id -> intent, once the child has computed them; None when the child
        does not compute this step (not ready yet): the caller computes it.

        Args:
            as_of: the step's as-of time; must be the next one of ``spec.as_ofs``.

        Raises:
            StrategyWorkerError: the child died or answered for another step.
            Exception: what escaped :func:`strategies.runner.compute_intent` in the child (as in-process).
        """
        i = self._next
        if i >= len(self.spec.as_ofs) or self.spec.as_ofs[i] != as_of:
            raise StrategyWorkerError(f"step {as_of.isoformat()} asked of the strategy worker out of order")
        self._next += 1
        if self.first is None:
            self._ready(i)
        if self.first is None or self.first > i:
            return None  # the caller computes this step
        assert self._proc.stdout is not None
        fault_point("backtest.strategy_worker.wait", i + 1)
        t0 = time.perf_counter()
        try:
            kind, got_as_of, payload, records = pickle.load(self._proc.stdout)
        except EOFError:
            raise self._died(f"the step as of {as_of.isoformat()}", eof=True) from None
        except (OSError, pickle.UnpicklingError):
            raise self._died(f"the step as of {as_of.isoformat()}") from None
        self.waited += time.perf_counter() - t0
        _emit(records)
        if got_as_of != as_of:
            self.close()
            raise StrategyWorkerError(f"the strategy worker answered for {got_as_of} when asked for {as_of}")
        if kind == "raise":
            self.close()
            raise payload
        try:
            self._write(CREDIT)  # one more step it may compute
        except OSError:
            pass  # a dead child shows at the next take
        return {intent.strategy_id: intent for intent in payload}

    def close(self) -> None:
        """Stop the child (SIGTERM when still running) and reap it. Idempotent."""
        proc = self._proc
        if proc.returncode is None:
            log.info("strategy worker: computed %d of %d steps taken (from step %s); waited %.2f s for them",
                     self._next - self.first if self.first is not None else 0, self._next, self.first, self.waited)
        if proc.poll() is None:
            proc.terminate()  # before the pipes close: it dies at once, with nothing to report on stderr
        proc.wait()
        for pipe in (proc.stdin, proc.stdout):
            try:
                if pipe is not None:
                    pipe.close()
            except OSError:
                pass


def _emit(records: list[logging.LogRecord]) -> None:
    """The child's log records, through this process's loggers (as if logged here)."""
    for rec in records:
        logger = logging.getLogger(rec.name)
        if logger.isEnabledFor(rec.levelno):
            logger.handle(rec)


class _Collect(logging.Handler):
    """Keeps the child's log records, made picklable, until the step's answer ships them."""

    def __init__(self) -> None:
        super().__init__()
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        record.msg, record.args, record.exc_info = record.getMessage(), None, None
        self.records.append(record)

    def drain(self) -> list[logging.LogRecord]:
        out, self.records = self.records, []
        return out


def _send(out: IO[bytes], msg: Any) -> None:
    pickle.dump(msg, out, protocol=pickle.HIGHEST_PROTOCOL)
    out.flush()


def _picklable(exc: BaseException) -> BaseException:
    """``exc`` when it survives a pickle round trip, else a :class:`StrategyWorkerError` naming it."""
    try:
        pickle.loads(pickle.dumps(exc))
        return exc
    except Exception:
        return StrategyWorkerError(f"{type(exc).__name__}: {exc}")


def main(blob: bytes) -> None:
    """The child, given the pickled :class:`WorkerSpec`: load what the strategies read (one step computed and dropped),
    send :data:`READY`, read the first step to compute, then compute and send each step from there:
    ``("ok", as_of, [Intent, ...], log records)`` or ``("raise", as_of, exception, log records)`` (then stop)."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the parent's to handle
    out = os.fdopen(os.dup(1), "wb")
    os.dup2(2, 1)  # stdout carries the answers: anything printed goes to stderr
    inp = sys.stdin.buffer
    spec: WorkerSpec = pickle.loads(blob)
    fault_point("backtest.strategy_worker.start")
    collect = _Collect()
    root = logging.getLogger()
    root.handlers[:] = [collect]
    root.setLevel(spec.log_level)
    for name in spec.modules:
        importlib.import_module(name)
    from backtest.horizon import HorizonHistory
    from strategies.runner import compute_intent

    provider = HorizonHistory(spec.data_dirs, spec.horizon, spec.aliases)
    try:
        for c in spec.configs:  # warm up: the bars every strategy reads are loaded and checked once
            compute_intent(c, provider.view(spec.as_ofs[-1]))
    except Exception:
        pass  # the step that meets it again reports it
    # what loading the bars logged (bad bars withheld) goes with the first answer; the warm-up's intents do not count
    loaded = [r for r in collect.drain() if r.name.startswith("market.")]
    try:
        out.write(READY)
        out.flush()
        first: int = pickle.load(inp)
        for k, i in enumerate(range(first, len(spec.as_ofs))):
            if k >= spec.ahead and inp.read(1) != CREDIT:
                return  # the parent closed our stdin: it is done with us
            fault_point("backtest.strategy_worker.step", i + 1)
            as_of = spec.as_ofs[i]
            try:
                market = provider.view(as_of)
                msg: tuple = ("ok", as_of, [compute_intent(c, market) for c in spec.configs], loaded + collect.drain())
            except Exception as exc:  # what would escape run_strategies in-process: the parent raises it
                _send(out, ("raise", as_of, _picklable(exc), loaded + collect.drain()))
                return
            _send(out, msg)
            loaded = []
    except (BrokenPipeError, EOFError):
        return  # the parent stopped reading, or closed our stdin


def start_worker(configs: list[StrategyConfig], as_ofs: list[datetime], data_dirs: list[Path], horizon: datetime,
                 aliases: dict[str, str]) -> StrategyWorker | None:
    """A worker for the configs :func:`runs_in_worker` accepts; None when there is none.

    Raises:
        StrategyWorkerError: the child could not be started.
    """
    mine = [c for c in configs if runs_in_worker(c)]
    if not mine or not as_ofs:
        return None
    modules = sorted({cls.__module__ for c in mine if (cls := registry.implementation(c.strategy_id)) is not None})
    spec = WorkerSpec(configs=mine, modules=modules, data_dirs=list(data_dirs), horizon=horizon,
                      aliases=dict(aliases), as_ofs=list(as_ofs), log_level=logging.getLogger().getEffectiveLevel())
    return StrategyWorker(spec)
