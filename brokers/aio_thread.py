"""An asyncio event loop on its own daemon thread, for clients that are asyncio inside (``ib_async``).

The broker's callers are synchronous and may run on any thread (or inside another
event loop); every coroutine of the client runs on this one loop, so the client's
state is only ever touched from one thread.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import threading
from typing import Any, Awaitable, Callable, TypeVar

T = TypeVar("T")


class LoopThread:
    """A running event loop on a daemon thread named ``name``."""

    def __init__(self, name: str) -> None:
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        asyncio.set_event_loop(self.loop)
        self.loop.run_forever()

    def call(self, fn: Callable[[], Awaitable[T]], timeout: float) -> T:
        """Run the coroutine ``fn()`` on the loop and wait for it.

        Raises:
            TimeoutError: it took longer than ``timeout`` seconds (it is cancelled).
            Whatever the coroutine raised.
        """
        if threading.current_thread() is self._thread:
            raise RuntimeError("LoopThread.call from its own thread would deadlock")

        async def guarded() -> Any:
            return await asyncio.wait_for(fn(), timeout)

        fut = asyncio.run_coroutine_threadsafe(guarded(), self.loop)
        try:
            return fut.result(timeout + 1.0)
        except concurrent.futures.TimeoutError as exc:
            fut.cancel()
            raise TimeoutError(f"no answer within {timeout:g} s") from exc
        except asyncio.TimeoutError as exc:
            raise TimeoutError(f"no answer within {timeout:g} s") from exc

    def close(self) -> None:
        """Stop the loop and join the thread."""
        if self.loop.is_running():
            self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(timeout=5)
        if not self.loop.is_running():
            self.loop.close()
