"""The ports of the payment lifecycle: what it needs from the outside world, as small Protocols.

The AWS adapters (mxflow.aws) implement them with DynamoDB, S3, Step Functions, SQS and SNS; the
lifecycle tests implement them in memory (tests/app/fakes.py). Every method raises the domain's
errors (mxflow.errors), never a client library's: ServiceError (TransientError when worth retrying)
for a failed call, and the named errors below where the contract says so.

The payment is ONE record (docs/flow.md, "One item per payment"): its history is a list inside it,
appended by the same conditional write that changes the status; generated messages are kept in it
(compressed) or named by their archive key; the release claim (`release`) and a suspense entry
(`suspense`) are maps on it.
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import Any, Iterable, Mapping, Protocol

# A recall (a camt.056 item of its own, mxflow/recalls.py) takes the statuses of its camt.029 answer:
# PDCR while the payment engine decides (in flight), CNCL or RJCR once answered (terminal).
IN_FLIGHT_STATUSES = frozenset({"RCVD", "ACTC", "PDNG", "ACSP", "PDCR"})
TERMINAL_STATUSES = frozenset({"ACSC", "RJCT", "CANC", "CNCL", "RJCR"})
INFLIGHT_SHARDS = 16


def inflight_key(payment_id: str, region: str) -> str:
    """The InFlight index's hash key of an in-flight payment: its owner Region plus a stable shard 00-15
    of its id (no hot partition). The store writes it at creation; a restore recomputes it."""
    shard = int(hashlib.sha256(payment_id.encode()).hexdigest()[:8], 16) % INFLIGHT_SHARDS
    return f"{region}#{shard:02d}"


@dataclass(frozen=True)
class Fence:
    """Who may write a payment from a workflow step: the Region that owns it, at its epoch. A step's
    write is conditional on both (the two-Region takeover raises the epoch; a Region that comes back
    finds it no longer owns the payment and its writes fail).

    `until` (two Regions): the time after which the write must not be sent, the writer's lease end less
    the gate's margin. The owner and epoch are checked by the replica that takes the write (with MREC,
    only the writer's own): a write sent after the lease ended could land after the peer's takeover was
    read and, replicated, undo it. The store refuses it at the write (RegionUnavailable, retried), not only
    at the step's start, so a slow step (a long validation on a loaded host) cannot send it late."""

    region: str
    epoch: int
    until: str | None = field(default=None, compare=False)

    def check_in_time(self, now: str) -> None:
        """RegionUnavailable when this write would be sent after `until`."""
        from mxflow.clock import seconds_between
        from mxflow.errors import RegionUnavailable

        if self.until is not None and seconds_between(now, self.until) <= 0:
            raise RegionUnavailable(f"Region {self.region}'s lease ended before this write could be sent; "
                                    "it does not act on payments now")


class Clock(Protocol):
    def __call__(self) -> str:
        """Now, as ISO-8601 UTC with milliseconds ("2026-11-24T10:00:00.000Z"), sortable as text."""


class PaymentStore(Protocol):
    """The payment records. Every status change is conditional on the expected status and version
    (and, for workflow steps, the fence) and appends its history event in the same write."""

    def get(self, payment_id: str) -> dict:
        """The record (strongly consistent); PaymentNotFound when there is none. `history` is the list
        of events, oldest first: {"status", "time", "actor"?, "reason"?}."""

    def probe(self) -> None:
        """A cheap reachability check; ServiceError when the store cannot be reached."""

    def create(self, record: Mapping[str, Any], *, event: Mapping[str, Any] | None = None) -> dict:
        """Write a new record at version 1 with its first history event, owned by this Region at
        epoch 1 and listed in flight; returns the stored record. DuplicatePayment (carrying the
        existing record) when the payment id exists."""

    def transition(self, payment_id: str, *, expected_status: str | Iterable[str], expected_version: int,
                   new_status: str, set_values: Mapping[str, Any] | None = None, remove: Iterable[str] = (),
                   messages: Mapping[str, Any] | None = None, reason: Mapping[str, Any] | None = None,
                   require_no_decision: bool = False, passed_through: Iterable[str] = (),
                   event_detail: Mapping[str, Any] | None = None, fence: Fence | None = None) -> int:
        """Conditional status change plus its history event (one per status in `passed_through`, then
        `new_status`, all at one time); `messages` adds named messages to the record's `messages`.
        Returns the new version. StatusConflict (with the current record) when the status, version,
        fence or `require_no_decision` does not hold; PaymentNotFound when there is no record.
        A terminal `new_status` takes the payment out of the in-flight index."""

    def set_attributes(self, payment_id: str, values: Mapping[str, Any], *,
                       expected_status: str | Iterable[str] | None = None,
                       require_no_decision: bool = False, fence: Fence | None = None) -> None:
        """Set attributes without a status change or history event (the task token), conditional on
        the record existing and, if given, on its status, on carrying no decision and on the fence
        (else StatusConflict)."""

    def update_release(self, payment_id: str, release: Mapping[str, Any], *, expected_attempts: int | None,
                       fence: Fence, suspense: Mapping[str, Any] | None = None,
                       clear_suspense: bool = False) -> None:
        """Replace the release claim (docs/flow.md, "At most once"), conditional on: status ACSP, no
        send recorded yet (release.sentAt absent), the fence, and the claim as read (no claim when
        `expected_attempts` is None, else release.attempts == expected_attempts). `suspense` also
        lists the payment as suspended; `clear_suspense` takes it off that list. StatusConflict when
        a condition does not hold."""

    def in_flight(self, region: str, *, per_shard: int) -> list[dict]:
        """The oldest in-flight payments this Region owns (by receipt, at most `per_shard` of each
        in-flight index shard): [{"paymentId", "status", "statusSince", "receivedAt", "clientId",
        "suspended", "sentAt"}] (sentAt: the release's, None when none was recorded)."""

    def suspended(self, region: str) -> list[str]:
        """The ids of the payments this Region lists as suspended."""

    def client_page(self, client_id: str, *, received_after: str | None, received_before: str | None,
                    start: tuple[str, str] | None, limit: int) -> tuple[list[dict], bool]:
        """One page of a client's payments, newest first (the ByClient index), received within the
        bounds (inclusive), after `start` (receivedAt, paymentId) when given: (at most `limit` records,
        whether the index may hold more). The records are read eventually consistent."""

    def client_search(self, client_id: str, reference: str) -> list[dict]:
        """The client's payments whose UETR or end-to-end id is exactly `reference` (ByReference, ByEndToEndId),
        in no order; eventually consistent."""

    def get_summary(self, region: str) -> dict | None:
        """The sampler's last summary of this Region's in-flight payments (mxflow.queries), or None."""

    def put_summary(self, region: str, summary: Mapping[str, Any]) -> None:
        """Replace this Region's summary (one item, written by the sampler only)."""

    def in_flight_page(self, region: str, shard: str, *, cursor: Any = None, limit: int = 25) -> tuple[list[str], Any]:
        """One page of the in-flight payments `region` owns in one shard of the in-flight index, oldest
        first: (payment ids, the cursor of the next page or None). For the takeover (docs/regions.md)."""

    def take_over(self, payment_id: str, *, expected_status: str, expected_version: int, owner: Fence,
                  new_owner: Fence, anchor: str, event_detail: Mapping[str, Any], suspended: bool = False) -> None:
        """Move the payment to `new_owner` (its Region and epoch), conditional on `owner` (the owner Region
        and epoch as read), the status and the version: the version is raised, the in-flight and suspense
        index keys follow the new owner, the task token of the old Region's anchor is removed, `anchor`
        (the new anchor's name) is recorded and a history event with the same status is appended;
        `suspended`: the payment is listed as suspended, now in the new owner's list. StatusConflict when a condition does not hold."""

    # -- the return leg (mxflow/recalls.py, mxflow/engine.py) -------------------------------------

    def find_by_reference(self, reference_key: str) -> list[str]:
        """The ids of the payments created with this reference key (iso20022.reference_key: UETR, else
        message id, end-to-end id and instruction id), oldest first; eventually consistent."""

    def add_suspense_entry(self, entry: Mapping[str, Any]) -> bool:
        """Keep an engine answer that could not be applied (`entry`: suspenseId, receivedAt, region,
        messageType, reason, code, paymentId?, source, contentSha256, message); False when an entry with
        that suspenseId exists already (the same answer again: kept once)."""

    def suspense_entries(self, region: str, *, limit: int, cursor: str | None = None) -> tuple[list[dict], str | None]:
        """The suspense list of a Region, newest first: ([{"suspenseId", "receivedAt", "messageType",
        "reason", "code", "paymentId"?}], the cursor of the next page or None). InvalidRequest for a
        cursor this store did not hand out."""


class RegionStore(Protocol):
    """The Regions' records in the payment table (docs/regions.md): one health record per Region, written
    by that Region's health function only, and one routing item (the traffic owner and the epoch)."""

    def region_state(self, region: str) -> dict | None:
        """The health record of `region` as this replica has it, or None."""

    def put_region_state(self, region: str, state: Mapping[str, Any]) -> bool:
        """Write this Region's own health record, unless the record there is of a later probe, or holds a
        later lease (`superseded`: False, nothing written). Scheduled probes may overlap (a slow probe
        is not waited for by the next), and their writes may land out of order: the record never goes
        back, and a lease never shrinks (RegionGate keeps a lease end on that assumption)."""

    def routing(self) -> dict | None:
        """The routing item: {"trafficOwner", "epoch", "mode", "consistency", "since", "failedOver"?,
        "history"?}, or None before the first one."""

    def init_routing(self, routing: Mapping[str, Any]) -> dict:
        """Create the routing item unless one exists; returns the one that exists after the call."""

    def claim_traffic(self, *, to_region: str, expected_epoch: int, at: str,
                      failed_over: Mapping[str, Any] | None, seen_epoch: int = 0) -> dict:
        """Make `to_region` the traffic owner at epoch max(`expected_epoch`, `seen_epoch`) + 1, conditional
        on the epoch being `expected_epoch` (RegionConflict when it moved); `seen_epoch`: a later epoch read
        elsewhere (the failed Region's own replica). `failed_over` ({"region", "leaseUntil"}) records the
        takeover of that Region's payments at the new epoch. Returns the new routing item."""

    def mark_recovered(self, region: str, epoch: int, at: str) -> None:
        """Record that the takeover of `region` at `epoch` finished (completedAt)."""


class HealthProbes(Protocol):
    """What a payment needs in this Region, exercised for real and timed: a state machine start (a probe
    execution that must succeed), a table write and read, a queue send, an archive write."""

    def probe(self) -> list:
        """One mxflow.regions.DependencyResult per dependency; never raises for a failing dependency."""


class RecoveryWorkflow(Protocol):
    """The recovery state machine of a Region and the anchors a takeover starts there."""

    def start_recovery(self, name: str, recovery_input: Mapping[str, Any]) -> str | None:
        """Start the recovery workflow (a run of this name that exists already is fine); its ARN."""

    def start_anchor(self, name: str, anchor_input: Mapping[str, Any]) -> None:
        """Start a payment's anchor under `name` (idempotent: one that exists already is fine)."""


class MessageArchive(Protocol):
    """The raw received messages (and generated messages too large to keep with the payment),
    encrypted at rest."""

    bucket: str  # where the archive lives: named in the release message so the engine can fetch it

    def put(self, key: str, data: bytes, *, content_type: str = "application/xml",
            metadata: Mapping[str, str] | None = None) -> str:
        """Store the bytes under `key` (overwriting the same bytes is harmless), with `metadata` (ids and
        times, never payment data: what a restore rebuilds a record from); returns the key."""

    def get(self, key: str) -> bytes:
        """The stored bytes; MessageNotFound when nothing is stored under `key`."""

    def get_range(self, key: str, start: int, end: int) -> bytes:
        """Bytes start..end-1 of the object under `key` (one transaction of a message with several);
        MessageNotFound when nothing is stored under `key`."""

    def list_keys(self, prefix: str, *, start_after: str | None = None) -> Iterable[str]:
        """The keys under `prefix`, in order (after `start_after` when given): the restore's listing."""

    def metadata(self, key: str) -> dict[str, str]:
        """The metadata an object was stored with (MessageNotFound when there is none)."""


class Workflow(Protocol):
    """The two state machines (docs/flow.md): PaymentFlow (EXPRESS) runs the automated steps of a
    payment; PaymentStateMachine (STANDARD) is the anchor of a payment that waits, one execution per
    payment, named by its payment id."""

    def start_flow(self, flow_input: Mapping[str, Any]) -> None:
        """Start a PaymentFlow execution (asynchronous; Express starts are not named)."""

    def send_task_success(self, task_token: str, output: Mapping[str, Any]) -> bool:
        """Resume the task waiting on `task_token`; False when that task is gone (timed out, finished)."""

    def send_task_failure(self, task_token: str, error: str, cause: str) -> bool:
        """Fail the task waiting on `task_token`; False when that task is gone."""

    def redrive(self, name: str) -> str | None:
        """Redrive the failed anchor execution `name` from its failed state; returns the redrive time
        (ISO-8601) when the workflow gives one. NotRedrivable when it cannot be redriven."""

    def start_split(self, message_id: str) -> None:
        """Start the split of a message with several transactions (BulkSplitStateMachine, STANDARD,
        execution name = message id: a second start of the same message is no second split)."""

    def anchor_execution(self, name: str) -> dict | None:
        """The anchor execution `name` as Step Functions keeps it, None when the payment has none:
        {"executionArn", "status", "redrivable", "redriveCount", "startedAt", "stoppedAt"?, "error"?,
        "cause"?, "events": [{"type", "time", "state"?, "error"?, "cause"?}]} (its history events in
        order, without execution data)."""


class ReleaseQueue(Protocol):
    """Where released payments go downstream (the payment engine reads it)."""

    def send(self, body: Mapping[str, Any], *, deduplication_id: str, group_id: str) -> str:
        """Send one message (FIFO: ordered per group, deduplicated by id); returns its message id.
        SendRefused when the queue refused the request (nothing was sent); any other failure
        (TransientError, ServiceError) leaves the outcome unknown."""


class EventPublisher(Protocol):
    """Payment events for subscribers (ids and statuses only)."""

    def publish(self, event: Mapping[str, Any], *, attributes: Mapping[str, str]) -> None: ...


class MessageStore(Protocol):
    """Messages with several transactions (docs/flow.md, "Messages with several transactions"), in the
    payment table beside their payments: one record per message (the message id, `sk` MESSAGE: status,
    version, client, the group's facts, the layout its transaction messages are made with, the group
    pacs.002, a history) and one part per batch of its transactions (`sk` PART#<first index>: the
    payment ids of that batch, in order, written once by the split)."""

    def create_message(self, record: Mapping[str, Any], *, event: Mapping[str, Any] | None = None) -> dict:
        """Write a new message record at version 1 with its first history event; DuplicateMessage
        (carrying the existing record) when the message id exists."""

    def get_message(self, message_id: str) -> dict:
        """The message record; BulkMessageNotFound when there is none."""

    def update_message(self, message_id: str, *, expected_status: str, expected_version: int, new_status: str,
                       set_values: Mapping[str, Any] | None = None, messages: Mapping[str, Any] | None = None,
                       event_detail: Mapping[str, Any] | None = None) -> int:
        """Conditional status change of a message record plus its history event; the new version.
        StatusConflict (with the current record) when the status or version does not hold."""

    def put_part(self, message_id: str, first: int, payment_ids: list[str],
                 conflicts: Mapping[str, Any] | None = None) -> None:
        """The payment ids of the transactions first.. (in order), once: a part that exists is left as
        it is. `conflicts`: {index: references} of transactions whose payment id another payment holds."""

    def parts(self, message_id: str) -> list[dict]:
        """The message's parts in order: [{"first", "paymentIds", "conflicts"}] (strongly consistent)."""

    def summaries(self, payment_ids: list[str]) -> dict[str, dict]:
        """{payment id: {"status", "reason", "facts", "clientId", "messageId"}} of the payments that exist
        (eventually consistent reads, 100 per request)."""
