"""Searches off the UI thread, newest request wins.

The kiosk submits a request after every debounced stroke. One background
thread runs them; while it is busy, a newer request of the same kind
("sketch", "text", "similar", ...) replaces the older pending one, and every
result carries the kind and generation it was asked with, so the UI drops a
result that a newer request has made stale.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Reply:
    """Attributes: kind and generation the request was made with; value (result) or error."""

    kind: str
    generation: int
    value: Any = None
    error: BaseException | None = None


class SearchWorker:
    """Runs ``job()`` callables on one daemon thread; ``deliver(reply)`` is called
    on that thread (the app hops back to the UI with ``Clock.schedule_once``)."""

    def __init__(self, deliver: Callable[[Reply], None]):
        self._deliver = deliver
        self._pending: dict[str, tuple[int, Callable[[], Any]]] = {}
        self._cond = threading.Condition()
        self._stopped = False
        self._running = False
        self._thread = threading.Thread(target=self._loop, name="vitrina-search", daemon=True)
        self._thread.start()

    def submit(self, kind: str, generation: int, job: Callable[[], Any]) -> None:
        """Queue ``job``, replacing any request of the same kind not yet started."""
        with self._cond:
            self._pending.pop(kind, None)
            self._pending[kind] = (generation, job)
            self._cond.notify()

    def _loop(self) -> None:
        while True:
            with self._cond:
                while not self._pending and not self._stopped:
                    self._cond.wait()
                if self._stopped:
                    return
                kind = next(iter(self._pending))
                generation, job = self._pending.pop(kind)
                self._running = True
            try:
                reply = Reply(kind, generation, value=job())
            except Exception as exc:  # noqa: BLE001 - handed to the UI, which shows it
                reply = Reply(kind, generation, error=exc)
            self._deliver(reply)
            with self._cond:
                self._running = False

    def idle(self) -> bool:
        """True when no request is running or waiting."""
        with self._cond:
            return not self._pending and not self._running

    def stop(self, timeout: float = 2.0) -> None:
        """Stop the thread: pending requests are dropped; waits up to ``timeout`` s for a running one."""
        with self._cond:
            self._stopped = True
            self._cond.notify()
        self._thread.join(timeout)
