"""The OldestPendingAgeSeconds metric (template.yaml `PendingTooLongAlarm`): how long the oldest
payment has waited in PDNG for a decision, sampled by the park step and GET /health."""
from __future__ import annotations

import time

from mxflow.errors import ServiceError


class PendingAgeSampler:
    """Reads the oldest pending age at most once per `interval_seconds` per process (16 Limit-1
    queries of the in-flight index), so the metric costs next to nothing per payment."""

    def __init__(self, interval_seconds: float = 60.0):
        self.interval_seconds = interval_seconds
        self._last: float | None = None

    def sample(self, lifecycle, *, clock=None) -> float | None:
        """The age in seconds, or None when sampled within the interval or when the store failed
        (the metric is best effort: it never fails the step that samples it)."""
        now = (clock or time.monotonic)()
        if self._last is not None and now - self._last < self.interval_seconds:
            return None
        self._last = now
        try:
            return lifecycle.oldest_pending_age_seconds()
        except ServiceError:
            return None
