"""Crash a Commander at a named fault point in a child process, for the crash-point matrix.

The child is forked from a forkserver that has already imported the pipeline, so a crash
costs milliseconds, not an interpreter start. It runs reconcile (optionally) and the real
Commander against the same Firestore emulator project and the same venue as the test
(the paper account lives in the store; a fake venue listens on loopback in the test
process), with ``$INTENT_BUS_FAULTS`` set, and dies by ``os._exit`` at the point
(:mod:`bus.faults`): no ``finally``, no cleanup, as ``kill -9`` would leave it.
"""

from __future__ import annotations

import multiprocessing
import os
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from bus.faults import FAULTS_ENV
from bus.models import InstrumentSpec

PRICES = {"SPY": 500.0, "QQQ": 400.0, "VIXY": 15.0}
#: Binance USD-M perpetuals of the fake venue (BTCUSDT, ETHUSDT, SOLUSDT).
PERPS = ("BTC-USDT-PERP", "ETH-USDT-PERP", "SOL-USDT-PERP")
SPECS = {s: InstrumentSpec(symbol=s, lot_size=1, min_quantity=1, min_notional=1) for s in PRICES}


def sim_price(symbol: str, as_of: datetime) -> float:
    """The paper account's price: fixed per symbol."""
    return PRICES[symbol]


@dataclass(frozen=True)
class VenueSpec:
    """How to build the broker in a process: ``kind`` sim / ib / binance, and the fake's address and keys."""

    kind: str
    host: str = "127.0.0.1"
    port: int = 0
    client_id: int = 0
    key: str = ""
    secret: str = ""

    def build(self, store: Any) -> Any:
        """The broker on ``store`` (the paper account keeps its state there)."""
        if self.kind == "sim":
            from brokers.sim import SimBroker

            return SimBroker(store, "acct", sim_price, SPECS, starting_cash=100_000, slippage_bps=0.0,
                             fill_at="close")  # fills at once: the matrix is about crashes, not fill timing
        if self.kind == "ib":
            from brokers.ib import IBBroker

            return IBBroker(self.host, self.port, client_id=self.client_id, mode="paper",
                            instruments={s: InstrumentSpec(symbol=s) for s in PRICES}, connect_timeout=3,
                            request_timeout=3, order_wait=2, reconnect_attempts=3, reconnect_wait=0.05)
        if self.kind == "binance":
            from brokers.config import CcxtAccount
            from brokers.factory import build_broker

            os.environ["T_CRASH_BN_KEY"], os.environ["T_CRASH_BN_SECRET"] = self.key, self.secret
            cfg = CcxtAccount(exchange="binanceusdm", account="bn-crash", api_key_env="T_CRASH_BN_KEY",
                              secret_env="T_CRASH_BN_SECRET", leverage={s: 5 for s in PERPS}, retries=1,
                              enable_rate_limit=False, timeout_ms=3000,
                              base_url=f"http://{self.host}:{self.port}/")
            return build_broker(cfg, "paper", instruments={})
        raise ValueError(f"unknown venue kind {self.kind}")


def _child(project: str, emulator_host: str, venue: VenueSpec, as_of: datetime, execution_id: str,
           reconcile_first: bool, faults: str) -> None:
    os.environ["FIRESTORE_EMULATOR_HOST"] = emulator_host
    os.environ[FAULTS_ENV] = faults
    from bus.store import FirestoreStore
    from commander.run import run_commander
    from reconcile import reconcile

    store = FirestoreStore(project)
    broker = venue.build(store)
    if reconcile_first:
        reconcile(store, broker, as_of)
    run_commander(store, broker, as_of, execution_id=execution_id)
    os._exit(0)


_CTX: Any = None


def context() -> Any:
    """A forkserver context with the pipeline preloaded (made once per test session)."""
    global _CTX
    if _CTX is None:
        _CTX = multiprocessing.get_context("forkserver")
        _CTX.set_forkserver_preload(["tests.support.crash"])
    return _CTX


def crash(project: str, emulator_host: str, venue: VenueSpec, as_of: datetime, execution_id: str, faults: str,
          reconcile_first: bool = False, timeout: float = 120.0) -> int:
    """Run the Commander in a child that dies at ``faults``; returns the child's exit code (137 when it crashed).

    Raises:
        TimeoutError: the child did not end within ``timeout`` seconds (it is killed).
    """
    ctx = context()
    proc = ctx.Process(target=_child, args=(project, emulator_host, venue, as_of, execution_id, reconcile_first,
                                            faults))
    proc.start()
    proc.join(timeout)
    if proc.is_alive():
        proc.kill()
        proc.join()
        raise TimeoutError(f"crash child for {faults} did not end within {timeout} s")
    return proc.exitcode
