"""The system clock in the one format the payment records use (mxflow.ports.Clock)."""
from __future__ import annotations

from datetime import datetime, timezone


def utc_now() -> str:
    """ISO-8601 UTC with milliseconds, sortable as a string (the in-flight index's range key)."""
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def parse_utc(text: str) -> datetime:
    """The datetime of a `utc_now()` string."""
    return datetime.fromisoformat(text.replace("Z", "+00:00"))
