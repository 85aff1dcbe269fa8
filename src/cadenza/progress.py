"""How far a sampling loop has got, and a way to stop it: for work that runs in the background
(the service's jobs), where a client polls for progress and may cancel.

The shared sampling loops (`models/components/rnn.py`: every frame and every next-token
network) call `tick(step, steps)` once a step. Outside `tracking(...)` that is one context
variable read; inside, it records the fraction done and raises `JobCancelledError` once
`cancel()` was called, so a cancelled job stops at its next step instead of running to its end.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar


class JobCancelledError(Exception):
    """The job this loop ran for was cancelled."""


class Progress:
    """What one job has done: `fraction` in [0, 1] of its current sampling loop, and whether it
    was asked to stop. Read from another thread (the status request); written by the job."""

    def __init__(self) -> None:
        self.fraction = 0.0
        self._cancel = threading.Event()

    def cancel(self) -> None:
        self._cancel.set()

    @property
    def cancelled(self) -> bool:
        return self._cancel.is_set()

    def step(self, done: int, total: int) -> None:
        if self._cancel.is_set():
            raise JobCancelledError("cancelled")
        self.fraction = done / total if total > 0 else 1.0


_CURRENT: ContextVar[Progress | None] = ContextVar("cadenza_progress", default=None)


def tick(done: int, total: int) -> None:
    """A sampling loop's step `done` of `total` (1-based)."""
    progress = _CURRENT.get()
    if progress is not None:
        progress.step(done, total)


def stop_if_cancelled() -> None:
    """Between the pieces of work that is not a sampling loop (writing, rendering audio): a
    cancelled job stops there, its progress left where its sampling ended."""
    progress = _CURRENT.get()
    if progress is not None and progress.cancelled:
        raise JobCancelledError("cancelled")


@contextmanager
def tracking(progress: Progress) -> Iterator[Progress]:
    """Sampling loops run inside report to `progress` (and stop when it is cancelled)."""
    token = _CURRENT.set(progress)
    try:
        progress.step(0, 1)  # cancelled before it started: do not start
        yield progress
    finally:
        _CURRENT.reset(token)
