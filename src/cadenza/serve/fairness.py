"""One key's share of the model workers.

The workers (`app.Workers`) are shared: without a share per key, one client sending 100
requests at once holds every worker and fills the wait behind them, and every other key's
requests wait out `queue_timeout_s` and get 503s. So a key may have at most `limit` model
requests in flight (running, or waiting for a worker); one more is a 429 with Retry-After, at
once, and other keys are served as before. Background jobs have their own share
(`max_queued_jobs_per_key`, tasks.py).

A key's own `max_requests` (keys file) replaces the service's: a platform that sends all its
listeners' requests through one key needs more than a person's script does. A service without
keys is one user's, on loopback (settings.py), and has no share. Counts are per process: with
`processes: P`, a key may have up to P x `limit` in flight.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager

from cadenza.serve.auth import Caller
from cadenza.serve.errors import RequestError


class KeyShare:
    """At most `limit` requests of one key at once (None: no limit)."""

    def __init__(self, limit: int | None) -> None:
        self.limit = limit
        self._held: dict[str, int] = {}
        self._lock = threading.Lock()

    def cap(self, caller: Caller) -> int | None:
        """How many requests `caller`'s key may have in flight (None: no cap)."""
        if caller.open or caller.key_id is None:
            return None
        return caller.max_requests if caller.max_requests is not None else self.limit

    def held(self, caller: Caller) -> int:
        return self._held.get(caller.key_id or "", 0)

    @contextmanager
    def hold(self, caller: Caller) -> Iterator[None]:
        """Count one request of `caller`'s key while the block runs; 429 if it is over its cap."""
        cap = self.cap(caller)
        if cap is None:
            yield
            return
        key = caller.key_id
        assert key is not None
        with self._lock:
            if self._held.get(key, 0) >= cap:
                raise RequestError(429, f"this key ({caller.name}) already has {cap} model "
                                        f"request(s) in flight (max_requests_per_key, or the "
                                        "key's max_requests); retry when one has answered, or "
                                        "use a background job (POST /api/jobs/...)")  # fmt: skip
            self._held[key] = self._held.get(key, 0) + 1
        try:
            yield
        finally:
            with self._lock:
                self._held[key] -= 1
                if not self._held[key]:
                    del self._held[key]  # no entry per key ever seen: the dict stays small
