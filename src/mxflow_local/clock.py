"""The local runtime's one clock: the time the functions read (mxflow.clock), the local release queue's
deduplication window (moto's SQS) and the state machines' Retry backoff all follow it.

By default it is the wall clock. `advance(seconds)` moves it forward without waiting, so a test can
step past the release queue's 5-minute deduplication window, or a release window, without sleeping;
`virtual_sleeps` (a test's choice) makes Retry backoff and injected Lambda timeouts advance it instead
of sleeping too. Process-wide, like the in-process moto it patches: every runtime of the process reads
the same clock.
"""
from __future__ import annotations

import threading
import time
from datetime import datetime, timedelta, timezone


class LocalClock:
    def __init__(self):
        self._lock = threading.Lock()
        self._offset = 0.0
        self.virtual_sleeps = False

    @property
    def offset_seconds(self) -> float:
        return self._offset

    def time(self) -> float:
        """Seconds since the epoch, as time.time() would say on this clock."""
        return time.time() + self._offset

    def now(self) -> datetime:
        return datetime.now(timezone.utc) + timedelta(seconds=self._offset)

    def advance(self, seconds: float) -> None:
        if seconds < 0:
            raise ValueError("the clock only moves forward")
        with self._lock:
            self._offset += seconds

    def sleep(self, seconds: float) -> None:
        """Wait `seconds` on this clock: really, or (virtual_sleeps) by advancing it at once."""
        if seconds <= 0:
            return
        if self.virtual_sleeps:
            self.advance(seconds)
        else:
            time.sleep(seconds)

    def reset(self) -> None:
        """Back to the wall clock (the offset only matters while something reads it)."""
        with self._lock:
            self._offset = 0.0
        self.virtual_sleeps = False


CLOCK = LocalClock()
_INSTALLED = False
_INSTALL_LOCK = threading.Lock()


def install() -> LocalClock:
    """Point the layer's clock (mxflow.clock.now_source) and moto's SQS time at CLOCK (once per process).
    The state machines' Retry backoff is patched in mxflow_local.stepfunctions (patch_retry_clock)."""
    global _INSTALLED
    with _INSTALL_LOCK:
        if not _INSTALLED:
            import mxflow.clock
            import moto.sqs.models as sqs_models

            mxflow.clock.now_source = CLOCK.now
            # moto's SQS stamps messages (SentTimestamp, the FIFO deduplication window, visibility)
            # with this function.
            sqs_models.unix_time_millis = lambda *args: CLOCK.time() * 1000
            _INSTALLED = True
    return CLOCK
