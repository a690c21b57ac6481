"""The ports of the payment lifecycle: what it needs from the outside world, as small Protocols.

The AWS adapters (mxflow.aws) implement them with DynamoDB, S3, Step Functions, SQS and SNS; the
lifecycle tests implement them in memory (tests/app/fakes.py). Every method raises the domain's
errors (mxflow.errors), never a client library's: ServiceError (TransientError when worth retrying)
for a failed call, and the named errors below where the contract says so.
"""
from __future__ import annotations

from typing import Any, Iterable, Mapping, Protocol

IN_FLIGHT_STATUSES = frozenset({"RCVD", "ACTC", "PDNG", "ACSP"})
TERMINAL_STATUSES = frozenset({"ACSC", "RJCT", "CANC"})


class Clock(Protocol):
    def __call__(self) -> str:
        """Now, as ISO-8601 UTC with milliseconds ("2026-11-24T10:00:00.000Z"), sortable as text."""


class PaymentStore(Protocol):
    """The payment records and their append-only history. Every status change is conditional on the
    expected status and version and writes its history event atomically with it."""

    def get(self, payment_id: str) -> dict:
        """The record (strongly consistent); PaymentNotFound when there is none."""

    def history(self, payment_id: str) -> list[dict]:
        """The history events, oldest first: {"status", "time", "version", "fromStatus"?, "reason"?, ...}."""

    def probe(self) -> None:
        """A cheap reachability check; ServiceError when the store cannot be reached."""

    def oldest_in_flight_since(self, status: str) -> str | None:
        """The earliest `statusSince` among payments now in `status` (an in-flight status), or None."""

    def create(self, record: Mapping[str, Any], *, event: Mapping[str, Any] | None = None) -> dict:
        """Write a new record at version 1 with its first history event; returns the stored record.
        DuplicatePayment (carrying the existing record) when the payment id exists."""

    def transition(self, payment_id: str, *, expected_status: str | Iterable[str], expected_version: int,
                   new_status: str, set_values: Mapping[str, Any] | None = None, remove: Iterable[str] = (),
                   reason: Mapping[str, Any] | None = None, require_no_decision: bool = False,
                   event_detail: Mapping[str, Any] | None = None) -> int:
        """Conditional status change plus its history event; returns the new version. StatusConflict
        (with the current record) when the status, version or `require_no_decision` does not hold;
        PaymentNotFound when there is no record."""

    def set_attributes(self, payment_id: str, values: Mapping[str, Any], *,
                       expected_status: str | Iterable[str] | None = None) -> None:
        """Set attributes without a status change or history event (task token, release marker),
        conditional on the record existing and, if given, on its status (else StatusConflict)."""

    def record_message(self, payment_id: str, name: str, key: str) -> None:
        """Add an archived message (name -> archive key) to the record; idempotent."""


class MessageArchive(Protocol):
    """The raw received messages and every generated message, encrypted at rest."""

    bucket: str  # where the archive lives: named in the release message so the engine can fetch it

    def put(self, key: str, data: bytes) -> str:
        """Store the bytes under `key` (overwriting the same bytes is harmless); returns the key."""

    def get(self, key: str) -> bytes:
        """The stored bytes; MessageNotFound when nothing is stored under `key`."""


class Workflow(Protocol):
    """The payment state machine: one execution per payment, named by its payment id."""

    def start(self, name: str, execution_input: Mapping[str, Any]) -> None:
        """Start the execution `name`; starting an existing name again is a no-op."""

    def send_task_success(self, task_token: str, output: Mapping[str, Any]) -> bool:
        """Resume the task waiting on `task_token`; False when that task is gone (timed out, finished)."""

    def send_task_failure(self, task_token: str, error: str, cause: str) -> bool:
        """Fail the task waiting on `task_token`; False when that task is gone."""

    def redrive(self, name: str) -> str | None:
        """Redrive the failed execution `name` from its failed step; returns the redrive time
        (ISO-8601) when the workflow gives one. NotRedrivable when it cannot be redriven."""


class ReleaseQueue(Protocol):
    """Where released payments go downstream (the payment engine reads it)."""

    def send(self, body: Mapping[str, Any], *, deduplication_id: str, group_id: str) -> str:
        """Send one message (FIFO: ordered per group, deduplicated by id); returns its message id."""


class EventPublisher(Protocol):
    """Payment events for subscribers (ids and statuses only)."""

    def publish(self, event: Mapping[str, Any], *, attributes: Mapping[str, str]) -> None: ...
