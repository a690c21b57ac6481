"""Gap filled: DynamoDB applies the writes to one item one at a time; moto's in-process backend does not.

moto checks a write's condition and then applies it in Python, and `transact_write_items` undoes a
failed transaction by putting back the items as they were before it started. Two threads can therefore
interleave: a failing transaction can restore an item over a concurrent winner's committed write, and
two conditional writes can both pass their check. Handlers run on threads in the local runtime, so
without this, two concurrent decisions on one payment could both "win" locally where AWS lets exactly
one. One process-wide lock around moto's DynamoDB item operations restores the service's behaviour;
the conditions are still what decides who wins.
"""
from __future__ import annotations

import threading

# Every backend operation that reads or writes items (reads too: a rolled-back transaction must not be seen).
ITEM_OPERATIONS = ("put_item", "update_item", "delete_item", "transact_write_items", "batch_write_item",
                   "get_item", "transact_get_items", "query", "scan")

LOCK = threading.RLock()
_INSTALLED = False


def install() -> threading.RLock:
    """Serialise moto's DynamoDB item operations (once per process); returns the lock."""
    global _INSTALLED
    from moto.dynamodb.models import DynamoDBBackend

    with LOCK:
        if not _INSTALLED:
            for name in ITEM_OPERATIONS:
                original = getattr(DynamoDBBackend, name, None)
                if original is None:
                    continue

                def serialised(self, *args, __original=original, **kwargs):
                    with LOCK:
                        return __original(self, *args, **kwargs)

                serialised.__wrapped__ = original
                setattr(DynamoDBBackend, name, serialised)
            _INSTALLED = True
    return LOCK
