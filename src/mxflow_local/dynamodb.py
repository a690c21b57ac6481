"""Gap filled: DynamoDB applies the writes to one item one at a time; moto's in-process backend does not.

moto checks a write's condition and then applies it in Python, and `transact_write_items` undoes a
failed transaction by putting back the items as they were before it started. Two threads can therefore
interleave: a failing transaction can restore an item over a concurrent winner's committed write, and
two conditional writes can both pass their check. Handlers run on threads in the local runtime, so
without this, two concurrent decisions on one payment could both "win" locally where AWS lets exactly
one. One process-wide lock around moto's DynamoDB item operations restores the service's behaviour;
the conditions are still what decides who wins.

The lock covers moto's response handlers too (`DynamoHandler`): a read returns the live item, which the
handler serialises after the backend call; an update in another thread meanwhile made that fail with
"dictionary changed size during iteration" (an HTTP 500 locally, never in AWS).
"""
from __future__ import annotations

import threading

# Every backend operation that reads or writes items (reads too: a rolled-back transaction must not be seen).
ITEM_OPERATIONS = ("put_item", "update_item", "delete_item", "transact_write_items", "batch_write_item",
                   "get_item", "transact_get_items", "query", "scan")

# The response handlers of those operations: each calls the backend, then serialises what it returned.
HANDLER_OPERATIONS = ITEM_OPERATIONS + ("batch_get_item",)

LOCK = threading.RLock()
_INSTALLED = False


def _serialise(cls, names) -> None:
    for name in names:
        original = getattr(cls, name, None)
        if original is None:
            continue

        def serialised(self, *args, __original=original, **kwargs):
            with LOCK:
                return __original(self, *args, **kwargs)

        serialised.__wrapped__ = original
        setattr(cls, name, serialised)


def install() -> threading.RLock:
    """Serialise moto's DynamoDB item operations and their responses (once per process); returns the lock."""
    global _INSTALLED
    from moto.dynamodb.models import DynamoDBBackend
    from moto.dynamodb.responses import DynamoHandler

    with LOCK:
        if not _INSTALLED:
            _serialise(DynamoDBBackend, ITEM_OPERATIONS)
            _serialise(DynamoHandler, HANDLER_OPERATIONS)
            _INSTALLED = True
    return LOCK
