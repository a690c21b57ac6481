"""The system clock in the one format the payment records use (mxflow.ports.Clock).

`utc_now()` reads the time through `now_source`, the system clock. The embedded local runtime points
it at its own clock (src/mxflow_local/clock.py), which tests advance instead of sleeping, so that the
Send step's deduplication window and the local queue's deduplication read the same time.
"""
from __future__ import annotations

from datetime import datetime, timezone
from typing import Callable


def system_now() -> datetime:
    return datetime.now(timezone.utc)


now_source: Callable[[], datetime] = system_now


def utc_now() -> str:
    """ISO-8601 UTC with milliseconds, sortable as a string (the in-flight index's range key)."""
    return format_utc(now_source())


def format_utc(moment: datetime) -> str:
    return moment.astimezone(timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def parse_utc(text: str) -> datetime:
    """The datetime of a `utc_now()` string."""
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def seconds_between(earlier: str, later: str) -> float:
    """Seconds from one `utc_now()` string to another (negative when `later` is earlier)."""
    return (parse_utc(later) - parse_utc(earlier)).total_seconds()
