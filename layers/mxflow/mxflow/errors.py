"""What can go wrong with a payment, in the domain's words. No HTTP status, no AWS: the API handler
maps these to problem documents (functions/api/app.py) and the state machine retries TransientError
by its class name (statemachines/payment_flow.asl.json, statemachines/payment.asl.json).

Every error carries `detail` (a sentence for a person, never payment data beyond ids) and, where an
ISO ExternalStatusReason1Code applies, `code`.
"""
from __future__ import annotations

from typing import Any, Iterable, Mapping


class PaymentError(Exception):
    """Base of the domain's named errors."""

    def __init__(self, detail: str, *, code: str | None = None):
        super().__init__(detail)
        self.detail = detail
        self.code = code

    @property
    def extensions(self) -> dict:
        """Members the API adds to the problem document beside type, title, status, detail and code."""
        return {}


# -- a request the lifecycle refuses ----------------------------------------------------------------

class UnsupportedMessage(PaymentError):
    """The submitted bytes are not a message this service accepts (not XML, hostile, wrong type)."""


class MessageTooLarge(PaymentError):
    """The submitted message is over the configured size limit."""


class InvalidRequest(PaymentError):
    """A decision request whose body does not match its schema."""


class UnknownReasonCode(PaymentError):
    """A reject or cancel reason that is not an ISO code of the right set."""


class PaymentNotFound(PaymentError):
    """No such payment, or not one of the calling client's (the same answer for both)."""

    def __init__(self, payment_id: str):
        super().__init__(f"payment {payment_id} not found")
        self.payment_id = payment_id


class MessageNotFound(PaymentError):
    """The payment has no message of that name, or it is not archived (yet)."""


class BulkMessageNotFound(PaymentError):
    """No message with several transactions of that id, or not the calling client's (the same answer)."""

    def __init__(self, message_id: str):
        super().__init__(f"message {message_id} not found")
        self.message_id = message_id


class Conflict(PaymentError):
    """The request does not fit the payment's current status (decided already, not pending, ...)."""


class DuplicateIdentity(Conflict):
    """The same identity (sender, MsgId, EndToEndId, UETR) with other bytes or from another client."""


class AnswerSuspended(PaymentError):
    """An answer of the payment engine that could not be applied (malformed, invalid, about no known
    payment, or contradicting the payment's state): kept in the suspense list (GET /engine/suspense)
    under `suspense_id`, never dropped; `code` is the ISO reason."""

    def __init__(self, detail: str, *, code: str, suspense_id: str, payment_id: str | None = None):
        super().__init__(detail, code=code)
        self.suspense_id = suspense_id
        self.payment_id = payment_id

    @property
    def extensions(self) -> dict:
        return {"suspenseId": self.suspense_id, **({"paymentId": self.payment_id} if self.payment_id else {})}


# -- a step of the flow -----------------------------------------------------------------------------

class InvalidState(PaymentError):
    """A step found the payment in a status its flow never leads to (a defect: fail the execution)."""


class ServiceError(PaymentError):
    """A service the lifecycle depends on (store, archive, workflow, queue, topic) failed the call."""


class TransientError(ServiceError):
    """A failure worth retrying (throttling, 5xx, connection); the state machine retries it by name."""


class SendRefused(ServiceError):
    """ReleaseQueue.send: the queue refused the request (a 4xx answer), so nothing was sent: a
    definitive failure of that attempt (docs/flow.md, "At most once")."""


class ReleaseOutcomeUnknown(PaymentError):
    """The Send step may not send: an earlier attempt's outcome is unknown and the queue's
    deduplication window is over. The payment is suspended until an operator confirms whether the
    earlier send happened (POST /payments/{id}/release/confirm); never a second send."""


class NotOwner(PaymentError):
    """A workflow step of a Region that does not own the payment (or at an older epoch): it must
    not write it (the fence, docs/flow.md)."""


# -- two Regions (docs/regions.md) ------------------------------------------------------------------

class RegionUnavailable(TransientError):
    """This Region may not act now (its lease lapsed: failed over, or back and not caught up yet), or
    the Region that owns the payment cannot be reached or is being failed over. Retried by the state
    machines; the API answers 503 until the takeover or the rejoin."""


class RegionConflict(Conflict):
    """A Region operation that does not fit the Regions' state: a recovery into an unhealthy Region, a
    traffic claim that lost its race (the routing epoch moved)."""


class UnknownRegion(PaymentError):
    """A Region this deployment does not run in."""

    def __init__(self, region: str):
        super().__init__(f"region {region} is not one of this deployment's Regions")
        self.region = region


# -- what the ports answer (mxflow.ports) -----------------------------------------------------------

class DuplicatePayment(PaymentError):
    """PaymentStore.create: a record with this payment id exists; `existing` is that record."""

    def __init__(self, existing: Mapping[str, Any]):
        super().__init__(f"payment {existing.get('paymentId')} already exists")
        self.existing = dict(existing)


class DuplicateMessage(PaymentError):
    """MessageStore.create_message: a message record with this id exists; `existing` is that record."""

    def __init__(self, existing: Mapping[str, Any]):
        super().__init__(f"message {existing.get('messageId')} already exists")
        self.existing = dict(existing)


class StatusConflict(PaymentError):
    """A conditional write failed: the payment is not in the expected status/version any more;
    `current` is the record as it is now."""

    def __init__(self, payment_id: str, expected: str | Iterable[str], current: Mapping[str, Any] | None):
        self.payment_id = payment_id
        self.expected = expected if isinstance(expected, str) else "|".join(sorted(expected))
        self.current = dict(current or {})
        super().__init__(f"payment {payment_id} is {self.current.get('status')}, expected {self.expected}")

    @property
    def current_status(self) -> str | None:
        return self.current.get("status")


class NotRedrivable(PaymentError):
    """Workflow.redrive: the execution cannot be redriven (running, succeeded, or never started);
    `reason` is the workflow's word for why."""

    def __init__(self, execution_name: str, reason: str):
        super().__init__(f"execution {execution_name} is not redrivable ({reason})")
        self.reason = reason
