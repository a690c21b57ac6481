"""One cost of moto's SQS removed (speed, not semantics): a SendMessage walked the whole queue four times over.

moto's `SQSBackend.send_message` and `send_message_batch` (with `_validate_message` and `Queue.add_message`,
which they call) read one queue attribute, ContentBasedDeduplication, through `Queue.attributes`: the dict
of every attribute, three of which (ApproximateNumberOfMessages, ...Delayed, ...NotVisible) look at every
message the queue holds. A FIFO send reads it four times, so each send cost time in proportion to the
queue's length: the release queue, which nothing drains locally unless the engine simulator runs
(`mxflow engine`), made every payment's send slower than the one before (through the local runtime's
client: 1.2 ms with the queue empty, 2.4 ms with 500 messages waiting, 6.5 ms with 2,000, 17.9 ms with
5,000; 0.8-1.2 ms at each of these sizes so).

While a send or a batch of sends runs (on its thread), `Queue.attributes` is a view of the queue
(`_AttributesView`) that answers ContentBasedDeduplication from the queue's own field, as the dict has it
(FIFO queues only, a boolean written "true"/"false"), and builds moto's whole dict for any other read.
Everywhere else (the GetQueueAttributes answer, the dead-letter moves of a receive) it is moto's dict,
unchanged. tests/local/test_canary.py compares sends with and without the view.
"""
from __future__ import annotations

import threading
from collections.abc import Iterator, Mapping
from typing import Any

CONTENT_BASED_DEDUPLICATION = "ContentBasedDeduplication"
SENDS = ("send_message", "send_message_batch")   # the batch validates every entry before its sends

_SENDING = threading.local()
_INSTALL_LOCK = threading.Lock()
_ORIGINAL_ATTRIBUTES: property | None = None


class _AttributesView(Mapping):
    """moto's `Queue.attributes` for one queue: ContentBasedDeduplication read alone, the rest built once
    on the first other read (moto's own property)."""

    def __init__(self, queue):
        self._queue = queue
        self._whole: dict | None = None

    def _all(self) -> dict:
        if self._whole is None:
            self._whole = _ORIGINAL_ATTRIBUTES.fget(self._queue)
        return self._whole

    def get(self, key: str, default: Any = None) -> Any:
        if key == CONTENT_BASED_DEDUPLICATION and self._whole is None:
            if not self._queue.fifo_queue:
                return default    # moto adds the FIFO attributes for FIFO queues only
            value = self._queue.content_based_deduplication
            return str(value).lower() if isinstance(value, bool) else value
        return self._all().get(key, default)

    def __getitem__(self, key: str) -> Any:
        return self._all()[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._all())

    def __len__(self) -> int:
        return len(self._all())


def install() -> None:
    """Patch moto's SQS (once per process; see the module docstring)."""
    global _ORIGINAL_ATTRIBUTES
    from moto.sqs.models import Queue, SQSBackend

    with _INSTALL_LOCK:
        if _ORIGINAL_ATTRIBUTES is not None:
            return
        _ORIGINAL_ATTRIBUTES = Queue.__dict__["attributes"]

        def attributes(self):
            if getattr(_SENDING, "depth", 0):
                return _AttributesView(self)
            return _ORIGINAL_ATTRIBUTES.fget(self)

        Queue.attributes = property(attributes, doc=_ORIGINAL_ATTRIBUTES.__doc__)
        for name in SENDS:
            setattr(SQSBackend, name, _sending(getattr(SQSBackend, name)))


def _sending(original):
    def send(self, *args, **kwargs):
        _SENDING.depth = getattr(_SENDING, "depth", 0) + 1
        try:
            return original(self, *args, **kwargs)
        finally:
            _SENDING.depth -= 1

    send.__wrapped__ = original
    return send
