"""The payment lifecycle: what the Lambda handlers call (receive, validate, park, decide, time out,
send, settle, confirm a release, redrive), the read model of GET /payments/{id} and the in-flight
sample behind the alarms. docs/flow.md describes the flow these steps make.

Pure domain: it talks to the outside world only through the ports of mxflow.ports (store, archive,
workflow, release queue, event publisher, clock) and raises the errors of mxflow.errors. It imports
no AWS library; mxflow.service composes it with the AWS adapters (mxflow.aws), the tests with
in-memory fakes. Every ISO 20022 concern (parsing, validation, facts, messages, codes) is the
library's (mxflow.iso20022); this module never reads XML itself.

Statuses are ISO ExternalPaymentTransactionStatus1Code values: RCVD, ACTC, PDNG, ACSP, ACSC, RJCT, CANC.
Every status change is one conditional write (expected status and version; for workflow steps the
fence too) that also appends its history event, and a terminal status is written together with its
ISO answer (pacs.002 or camt.029). Steps run by Step Functions are idempotent: a retried, duplicated
(Express starts are at least once) or redriven step finds its own earlier writes and neither
repeats a side effect nor fails on them; the release is claimed before it is sent, and sent at most
once (`send`).

The return leg lives in its own modules, which this one calls: recalls (a camt.056 applied to its
payment, mxflow/recalls.py: `self.recalls`) and the payment engine's answers (mxflow/engine.py:
`self.engine`). With ReleaseConfirmation=engine a sent payment stays ACSP until the engine's pacs.002.
"""
from __future__ import annotations

import base64
import functools
import json
import zlib
from dataclasses import replace
from datetime import datetime
from decimal import Decimal, InvalidOperation
from typing import TYPE_CHECKING, Any, Mapping

from mxflow import iso20022
from mxflow.clock import format_utc, parse_utc, seconds_between, utc_now
from mxflow.errors import (
    Conflict,
    DuplicateIdentity,
    DuplicatePayment,
    InvalidRequest,
    InvalidState,
    MessageNotFound,
    MessageTooLarge,
    NotOwner,
    NotRedrivable,
    PaymentNotFound,
    RegionUnavailable,
    ReleaseOutcomeUnknown,
    SendRefused,
    ServiceError,
    StatusConflict,
    TransientError,
    UnknownReasonCode,
    UnsupportedMessage,
)
from mxflow.iso20022 import codes as iso_codes
from mxflow.openapi import confirm_release_schema, decision_request_schemas
from mxflow.ports import (
    IN_FLIGHT_STATUSES,
    TERMINAL_STATUSES,
    Clock,
    EventPublisher,
    Fence,
    MessageArchive,
    MessageStore,
    PaymentStore,
    ReleaseQueue,
    Workflow,
)
from mxflow.queries import amount_and_currency
from mxflow.recalls import is_recall
from mxflow.settings import Settings

if TYPE_CHECKING:
    from mxflow.json_schema import SchemaCheck

SUPPORTED_MESSAGES = ("pacs.008", "pacs.009", "camt.056")
DECISION_STATUS = {"approve": "ACSP", "reject": "RJCT", "cancel": "CANC"}
TIMEOUT_REASON = "AB06"  # ExternalStatusReason1Code AB06: time-out at the instructed agent
DUPLICATE_REASON = "AM05"  # ExternalStatusReason1Code AM05: duplication
AUTO_APPROVER = "policy:auto-approve"
RECEIVED_MESSAGE = "received"
STATUS_REPORT = "pacs.002"
CANCELLATION_ANSWER = "camt.029"
OUTBOUND_MESSAGE = "outbound"
MAX_ADDITIONAL_INFO = 105  # pacs.002 AddtlInf is Max105Text
# Messages up to this size travel inline: in the PaymentFlow input (Step Functions allows 256 KiB) and
# in the release queue's body (SQS bills per 64 KiB chunk); larger ones by their archive key.
INLINE_MESSAGE_BYTES = 60_000
# A generated message is kept in the payment's item when it compresses to this size (DynamoDB bills
# writes per KB of the whole item); a larger one is archived and named by its key.
STORED_MESSAGE_BYTES = 16 * 1024
# The release window W (docs/flow.md, "At most once"): within W of the window's first attempt a
# new attempt may send again, because SQS FIFO deduplicates a MessageDeduplicationId for 300 s from
# the first send it accepted, which happened after the window opened. W plus the Send function's
# Timeout (30 s, template.yaml) plus clock skew stays under those 300 s. Past W an attempt whose
# predecessors' outcome is unknown must not send: the payment is suspended instead.
RELEASE_WINDOW_SECONDS = 240
SUSPENDED_UNKNOWN_OUTCOME = "release outcome unknown"
STAGE_FAILED = "StageFailed"  # the error a PaymentFlow hands to its anchor (statemachines/payment.asl.json)
SAMPLE_PER_SHARD = 100  # in-flight payments read per index shard by the sampler
# The message id Send hands Settle for a release another Region armed before a takeover and whose outcome
# no definitive failure contradicts: that Region sent it; it is settled, never sent again (docs/regions.md).
RELEASED_ELSEWHERE = "released-by:"

# The decision bodies' JSON Schemas are the published ones: components.schemas of the API's OpenAPI
# document (mxflow/openapi.json), whose additionalInfo maxLength is MAX_ADDITIONAL_INFO.
DECISION_REQUEST_SCHEMAS: dict[str, dict] = decision_request_schemas()
CONFIRM_RELEASE_SCHEMA: dict = confirm_release_schema()
CONFIRM_RELEASE = "confirmRelease"  # the release confirmation's body, beside the decisions' (_body_check)
_BODY_SCHEMAS: dict[str, dict] = {**DECISION_REQUEST_SCHEMAS, CONFIRM_RELEASE: CONFIRM_RELEASE_SCHEMA}


def received_key(payment_id: str, content_sha256: str) -> str:
    """Where the archive keeps a received message (one key per distinct content)."""
    return f"received/{payment_id}/{content_sha256}.xml"


def _received_key(record: Mapping[str, Any]) -> str:
    return received_key(record["paymentId"], record["contentSha256"])


def generated_key(payment_id: str, name: str) -> str:
    """Where the archive keeps a generated message too large to keep with the payment."""
    return f"generated/{payment_id}/{name}.xml"


def decision_output(decision: Mapping[str, Any]) -> dict:
    """The four keys of a decision a consumer is answered with (null where not applicable)."""
    return {key: decision.get(key) for key in ("action", "reasonCode", "additionalInfo", "decidedBy")}


def counterparty(facts: Mapping[str, Any], payment_id: str) -> str:
    """The release queue's message group: the creditor agent (or the next agent) BIC, so ordering
    holds per counterparty and payments to different counterparties flow in parallel; the payment
    itself when the message names no agent."""
    for key in ("creditorAgentBic", "creditorAgent", "instructedAgentBic", "instructedAgent",
                "receiverBic", "receiver"):
        value = facts.get(key)
        if isinstance(value, str) and value:
            return value
    return payment_id


def short_info(text: str | None) -> str | None:
    if not text:
        return None
    return text if len(text) <= MAX_ADDITIONAL_INFO else text[: MAX_ADDITIONAL_INFO - 1] + "…"


# Facts the record does not keep (the item is billed by its size): its own keys (paymentId, messageType)
# and what no answer and no read needs, the parties' names first (the archived message has them all).
_FACTS_NOT_KEPT = frozenset({"paymentId", "messageType", "debtorName", "creditorName", "chargeBearer",
                             "numberOfTransactions", "headerTo", "businessMessageId"})


def facts_summary(facts) -> dict:
    """The facts the record keeps: no empty values, nothing kept elsewhere on the record."""
    if facts is None:
        return {}
    return {k: v for k, v in facts.to_dict().items() if v is not None and k not in _FACTS_NOT_KEPT}


def flow_input(payment_id: str, stage: str, *, message: str | None = None, **extra: Any) -> dict:
    """A PaymentFlow execution's input (statemachines/payment_flow.asl.json): `message` is always there
    (null when the flow does not carry the received bytes), the rest only when given."""
    return {"paymentId": payment_id, "stage": stage, "message": message,
            **{k: v for k, v in extra.items() if v is not None}}


def is_current_anchor(record: Mapping[str, Any], anchor: str | None) -> bool:
    """Whether the anchor execution named `anchor` is the payment's: the one named by its payment id, or
    the one a takeover started (`anchorName`, mxflow.regions.anchor_name). None (a caller that does not
    say) is taken as current."""
    return anchor is None or anchor == (record.get("anchorName") or record["paymentId"])


class PaymentLifecycle:
    """The domain service every function calls."""

    def __init__(self, *, store: PaymentStore, archive: MessageArchive, workflow: Workflow,
                 release_queue: ReleaseQueue, events: EventPublisher | None, settings: Settings,
                 registry=None, clock: Clock = utc_now, messages: MessageStore | None = None, gate=None,
                 at_region=None):
        self.store = store
        self.messages = messages  # messages with several transactions (mxflow.bulk); None: not configured
        self._bulk = None
        self.archive = archive
        self.workflow = workflow
        self.release_queue = release_queue
        self.events = events  # None: no event topic configured, nothing is published
        self.settings = settings
        self.clock = clock
        self._registry = registry
        # Two Regions (docs/regions.md): `gate` says whether this Region may act (its lease) and at which
        # epoch new payments start (mxflow.regions.RegionGate; None: one Region); `at_region(region)` is
        # this lifecycle on another Region's replica and services, where a payment that Region owns is
        # written (None: no other Region).
        self.gate = gate
        self.at_region = at_region
        self._recalls = None
        self._engine = None

    @property
    def recalls(self):
        """The recall part of the lifecycle (mxflow/recalls.py)."""
        from mxflow.recalls import Recalls

        if self._recalls is None:
            self._recalls = Recalls(self)
        return self._recalls

    @property
    def engine(self):
        """The payment engine's answers and the suspense list (mxflow/engine.py)."""
        from mxflow.engine import EngineAnswers

        if self._engine is None:
            self._engine = EngineAnswers(self)
        return self._engine

    @property
    def bulk(self):
        """Messages with several transactions (mxflow.bulk), on this lifecycle's ports."""
        if self._bulk is None:
            from mxflow.bulk import BulkMessages

            if self.messages is None:
                raise InvalidState("no message store is configured for messages with several transactions")
            self._bulk = BulkMessages(self, self.messages)
        return self._bulk

    @property
    def registry(self):
        if self._registry is None:
            # One per process and MXFLOW_SCHEMA_DIR value: operators' XSDs first, then the built-in set.
            self._registry = iso20022.default_registry()
        return self._registry

    # -- receive (API) ---------------------------------------------------------------------------

    def receive(self, client_id: str, data: bytes) -> tuple[bool, dict]:
        """Accept a submitted message: archive the bytes as received, create the payment (RCVD), start
        its PaymentFlow. Returns (created, receipt): created False for an identical resubmission
        (same client, same identity, same bytes), whose receipt is the same.

        Raises MessageTooLarge, UnsupportedMessage (with the ISO reason), DuplicateIdentity (AM05)
        for the same identity with other bytes or from another client.
        """
        limit = self.settings.max_message_bytes
        if len(data) > limit:
            raise MessageTooLarge(f"the message has {len(data)} bytes; the limit is {limit}")
        try:
            parsed = self._parse(data)
            if parsed.business_area not in SUPPORTED_MESSAGES:
                raise UnsupportedMessage(
                    f"{parsed.message_id} is not accepted here; accepted: {', '.join(SUPPORTED_MESSAGES)}",
                    code="FF01")
            parsed_facts = iso20022.extract_facts(parsed)
            iso20022.answer_addressee(parsed_facts)   # every outcome is answered: the sender must be addressable
            from mxflow.bulk import is_bulk

            several = is_bulk(parsed, self.settings.profile)
            summary = facts_summary(parsed_facts)
        except iso20022.MessageError as error:
            raise UnsupportedMessage(error.issue.message, code=error.issue.code) from None
        except iso20022.BuildError as error:
            raise UnsupportedMessage(f"the message cannot be answered: {error}", code="FF01") from None
        if self.gate is not None:
            self.gate.check()   # a Region that does not hold its lease accepts nothing (503)
        if several:  # one payment per transaction (mxflow.bulk)
            return self.bulk.receive(client_id, data, parsed)
        payment_id = parsed_facts.payment_id
        sha256 = iso20022.content_hash(data)
        archive_key = received_key(payment_id, sha256)
        received_at = self.clock()
        # The raw bytes are durable before the payment exists (and before the 202), with what a restore
        # rebuilds the record from when no journal line names it (mxflow.restore).
        self.archive.put(archive_key, data, metadata=self.received_metadata(client_id, received_at))
        record = {
            "paymentId": payment_id,
            "clientId": client_id,
            "status": "RCVD",
            "messageType": parsed.message_id,
            "contentSha256": sha256,   # names the received message in the archive (received_key)
            "receivedAt": received_at,
            "facts": summary,
            "messages": {},            # the generated ones; the received message is always there
        }
        if self.gate is not None and self.gate.enabled:
            record["epoch"] = self.gate.epoch()   # the routing epoch: a takeover moves it to a later one
        if parsed.business_area == "camt.056":
            # a recall names the payment it applies to (mxflow/recalls.py); null when none is known
            record["originalPaymentId"] = self.recalls.match_original(parsed_facts, client_id)
        elif parsed_facts.reference_key():
            # how a recall or an engine answer finds this payment (the ByReference index, written once)
            record["matchKey"] = parsed_facts.reference_key()
        created = True
        try:
            record = self.store.create(record, event={"actor": client_id})
        except DuplicatePayment as duplicate:
            existing = duplicate.existing
            if existing.get("clientId") != client_id or existing.get("contentSha256") != sha256:
                raise DuplicateIdentity(
                    "a payment with the same identity (sender, message id, end-to-end id, UETR) and "
                    "different content exists (DUPL)", code=DUPLICATE_REASON) from None
            record, created = existing, False
            if record["status"] != "RCVD":
                return False, self._receipt(record)
        # New, or an identical resubmission of one still RCVD (its start may have failed): the flow's
        # steps are idempotent, so a second start is harmless.
        self.workflow.start_flow(flow_input(
            payment_id, "validate", decisionTimeoutSeconds=int(self.settings.decision_timeout_seconds),
            message=inline_message(data)))
        return created, self._receipt(record)

    def received_metadata(self, client_id: str, received_at: str) -> dict:
        """The metadata a received message is archived with: ids and a time, no payment data."""
        from mxflow.restore import CLIENT_METADATA, REGION_METADATA, TIME_METADATA

        return {CLIENT_METADATA: client_id, TIME_METADATA: received_at, REGION_METADATA: self.settings.region}

    @staticmethod
    def _receipt(record: Mapping[str, Any]) -> dict:
        # the status of the submission; GET /payments/{id} gives the current one
        receipt = {"paymentId": record["paymentId"], "status": "RCVD", "receivedAt": record["receivedAt"]}
        if str(record.get("messageType") or "").startswith("camt.056"):
            receipt["originalPaymentId"] = record.get("originalPaymentId")
        return receipt

    def _parse(self, data: bytes):
        return iso20022.parse_message(data, limits=iso20022.ParseLimits(max_bytes=self.settings.max_message_bytes))

    # -- PaymentFlow: Validate --------------------------------------------------------------------

    def validate(self, payment_id: str, message: bytes | None = None) -> dict:
        """RCVD -> ACTC (facts), RCVD -> RJCT with its pacs.002 (first issue's code), or with the
        auto-decision policy RCVD -> ACSP (history ACTC, ACSP), each in one conditional write.
        `message`: the received bytes when the flow carries them (else read from the archive).
        Returns {"outcome": "invalid"|"await"|"auto-approve", "status", "decisionTimeoutSeconds"}."""
        record = self.store.get(payment_id)
        if record["status"] != "RCVD":
            self._check_owner(record)   # a repeated step of a Region that no longer owns it does nothing
            return self._validation_outcome(record, repeated=True)
        fence = self._fence(record)
        data = self._received_bytes(record, message)
        result = iso20022.validate_message(data, profile=self.settings.profile, registry=self.registry)
        try:
            if result.valid:
                record = self._accept(record, result.facts, fence)
            else:
                record = self._reject_invalid(record, result, fence)
        except StatusConflict as conflict:  # a duplicate of this step won the write
            if conflict.current_status in (None, "RCVD"):
                raise
            return self._validation_outcome(conflict.current, repeated=True)
        return self._validation_outcome(record)

    def _accept(self, record: dict, facts, fence: Fence) -> dict:
        payment_id = record["paymentId"]
        summary = facts_summary(facts) or record.get("facts", {})
        if self._auto_approves(summary) and not is_recall(record):
            decision = {"action": "approve", "decidedBy": AUTO_APPROVER, "decidedAt": self.clock()}
            version = self.store.transition(payment_id, expected_status="RCVD", expected_version=record["version"],
                                            new_status="ACSP", passed_through=("ACTC",),
                                            set_values={"facts": summary, "decision": decision},
                                            require_no_decision=True,
                                            event_detail={"actor": AUTO_APPROVER, "state": "Validate"},
                                            fence=fence)
            return {**record, "status": "ACSP", "version": version, "facts": summary, "decision": decision}
        version = self.store.transition(payment_id, expected_status="RCVD", expected_version=record["version"],
                                        new_status="ACTC", set_values={"facts": summary},
                                        event_detail={"state": "Validate"}, fence=fence)
        return {**record, "status": "ACTC", "version": version, "facts": summary}

    def _auto_approves(self, facts: Mapping[str, Any]) -> bool:
        limit = self.settings.auto_approve_max_amount
        if limit is None:
            return False
        try:
            return Decimal(str(facts.get("amount"))) <= limit
        except (InvalidOperation, ValueError):
            return False

    def _reject_invalid(self, record: dict, result, fence: Fence) -> dict:
        payment_id = record["paymentId"]
        issue = result.errors[0] if result.errors else None
        reason = {"code": issue.code if issue else "FF01",
                  "additionalInfo": short_info(issue.message if issue else "invalid message")}
        values: dict[str, Any] = {"validationErrors": [e.to_dict() for e in result.errors[:20]]}
        messages = {}
        if result.facts is not None:
            values["facts"] = facts_summary(result.facts)
            report = self._generated(iso20022.build_status_report(
                result.facts, "RJCT", reason_code=reason["code"], additional_info=reason["additionalInfo"],
                operator_bic=self.settings.operator_bic, versions=self.settings.message_versions))
            messages[STATUS_REPORT] = self._stored(payment_id, STATUS_REPORT, report)
        version = self.store.transition(payment_id, expected_status="RCVD", expected_version=record["version"],
                                        new_status="RJCT", reason=reason, set_values=values,
                                        messages=messages, event_detail={"state": "Validate"}, fence=fence)
        record = {**record, **values, "status": "RJCT", "version": version, "reason": reason}
        self._publish("payment.rejected", record)
        return record

    def _validation_outcome(self, record: Mapping[str, Any], *, repeated: bool = False) -> dict:
        status = record["status"]
        decision = record.get("decision") or {}
        if status == "RJCT" and not decision:
            outcome = "invalid"
            if repeated:  # a retried or duplicated step: the event again (at least once, same eventId)
                self._publish("payment.rejected", record)
        elif is_recall(record) and status != "RJCT":
            outcome = "recall"  # applied to its payment by PaymentFlow's Recall step (mxflow/recalls.py)
        elif status in ("ACSP", "ACSC") and decision.get("decidedBy") == AUTO_APPROVER:
            outcome = "auto-approve"
        else:
            outcome = "await"
        return {"outcome": outcome, "status": status,
                "decisionTimeoutSeconds": int(self.settings.decision_timeout_seconds)}

    # -- the anchor: AwaitOutcome (Park) ----------------------------------------------------------

    def park(self, payment_id: str, task_token: str, resume: Mapping[str, Any] | None = None,
             anchor: str | None = None) -> dict:
        """What the anchor's wait does with its task token, by what the payment needs:
        - `resume` (a failed stage handed over): start PaymentFlow at that stage with the token;
        - RCVD: start PaymentFlow at validate with the token;
        - ACTC, or PDNG (a retried wait): ACTC -> PDNG keeping the token (refreshed), event;
        - ACSP (approved, not settled): start PaymentFlow at send (settle once sent) with the token;
        - terminal: answer the token at once.
        - owned by another Region (taken over after a failover), or `anchor` (the calling execution's name)
          no longer the payment's (taken over into a new anchor, this Region's own at a reconciliation):
          answer the token at once, nothing else.
        Returns {"paymentId", "status", "action": "resumed"|"parked"|"answered"|"relinquished", "stage"?}."""
        for _ in range(3):  # a decision may land between the read and the write: look again
            record = self.store.get(payment_id)
            status = record["status"]
            if self._left_by(record, anchor):
                self.workflow.send_task_success(task_token, {"paymentId": payment_id, "status": status})
                return {"paymentId": payment_id, "status": status, "action": "relinquished"}
            if resume:
                return self._resume_with(payment_id, task_token, resume["stage"], resume.get("carried"), None)
            if status == "RCVD":
                return self._resume_with(payment_id, task_token, "validate", None, status)
            if status == "ACTC" and is_recall(record):
                return self._resume_with(payment_id, task_token, "recall", None, status)
            if status == "ACSP":
                stage = "settle" if (record.get("release") or {}).get("sentAt") else "send"
                return self._resume_with(payment_id, task_token, stage, None, status)
            if status in TERMINAL_STATUSES or status == "PDCR":  # a recall with the engine: nothing to wait for
                self.workflow.send_task_success(task_token, {"paymentId": payment_id, "status": status})
                return {"paymentId": payment_id, "status": status, "action": "answered"}
            fence = self._fence(record)
            token = {"taskToken": task_token}
            if self.settings.two_regions:
                token["tokenRegion"] = self.settings.region   # whose Step Functions the token belongs to
            try:
                if status == "ACTC":
                    self.store.transition(payment_id, expected_status="ACTC", expected_version=record["version"],
                                          new_status="PDNG", set_values=token,
                                          require_no_decision=True, event_detail={"state": "AwaitOutcome"},
                                          fence=fence)
                else:  # PDNG: a retried or repeated wait brings a new token
                    self.store.set_attributes(payment_id, token, expected_status="PDNG",
                                              require_no_decision=True, fence=fence)
            except StatusConflict:
                continue
            self._publish("payment.pending", {**record, "status": "PDNG"})
            return {"paymentId": payment_id, "status": "PDNG", "action": "parked"}
        raise TransientError(f"payment {payment_id} kept changing while its wait was parked")

    def _resume_with(self, payment_id: str, token: str, stage: str, carried, status: str | None) -> dict:
        self.workflow.start_flow(flow_input(payment_id, stage, taskToken=token, mode="anchored",
                                            carried=carried or None))
        return {"paymentId": payment_id, "status": status, "action": "resumed", "stage": stage}

    # -- decisions (API) -------------------------------------------------------------------------

    def decide(self, client_id: str, payment_id: str, action: str, request: Any, *, actor: str | None = None) -> dict:
        """Approve, reject or cancel a PDNG payment. One conditional write claims the decision (PDNG
        and no decision yet): approve -> ACSP, then PaymentFlow sends it; reject -> RJCT with its
        pacs.002, cancel -> CANC with its camt.029 (the answer in the same write), then the anchor's
        wait is answered. The 200 says the decision was taken. `actor`: who decided, when not the
        client itself (a person signed in to the console for that client). Raises InvalidRequest,
        UnknownReasonCode, PaymentNotFound, Conflict."""
        if action not in DECISION_STATUS:
            raise InvalidRequest(f"unknown action {action}")
        request = {} if request is None else request
        _check(request, action)
        code = request.get("reasonCode")
        if action == "reject" and not iso_codes.is_status_reason(code):
            raise UnknownReasonCode(f"{code!r} is not an ISO ExternalStatusReason1Code")
        if action == "cancel" and not iso_codes.is_cancellation_reason(code):
            raise UnknownReasonCode(f"{code!r} is not an ISO cancellation reason code")
        record = self._owned(client_id, payment_id)
        owner = self._owner_elsewhere(record)
        if owner is not None:
            return self._at_owner(owner, lambda there: there.decide(client_id, payment_id, action, request))
        if record["status"] != "PDNG" or record.get("decision"):
            raise Conflict(f"payment {payment_id} is {record['status']}"
                           + (" and already decided" if record.get("decision") else "")
                           + f"; {action} needs PDNG")
        decision = {"action": action, "reasonCode": code, "additionalInfo": request.get("additionalInfo"),
                    "decidedBy": actor or client_id, "decidedAt": self.clock()}
        decision = {k: v for k, v in decision.items() if v is not None}
        new_status = DECISION_STATUS[action]
        reason = None if action == "approve" else {"code": code, "additionalInfo": request.get("additionalInfo")}
        messages = {} if action == "approve" else self._terminal_answer(record, new_status, reason)
        try:
            self.store.transition(payment_id, expected_status="PDNG", expected_version=record["version"],
                                  new_status=new_status, set_values={"decision": decision},
                                  remove=("taskToken",), reason=reason, messages=messages,
                                  require_no_decision=True, event_detail={"actor": actor or client_id},
                                  fence=self._owner_fence(record))
        except StatusConflict as conflict:
            if conflict.current.get("ownerRegion", self.settings.region) != self.settings.region:
                raise RegionUnavailable(f"payment {payment_id} was taken over by {conflict.current['ownerRegion']} "
                                        "meanwhile; send the decision again") from None
            raise Conflict(f"payment {payment_id} was decided or changed meanwhile "
                           f"(now {conflict.current_status})") from None
        token = record.get("taskToken")
        if record.get("tokenRegion", self.settings.region) != self.settings.region:
            token = None   # another Region's wait: not this Region's to answer
        if action == "approve":
            self._release_after_approval(payment_id, token)
        else:
            if token:
                self._answer_quietly(token, {"paymentId": payment_id, "status": new_status})
            self._publish("payment.cancelled" if new_status == "CANC" else "payment.rejected",
                          {**record, "status": new_status, "reason": reason})
        return {"paymentId": payment_id, "status": new_status, "decision": decision_output(decision)}

    def _release_after_approval(self, payment_id: str, token: str | None) -> None:
        """Start PaymentFlow at send with the anchor's token. If that start fails, fail the anchor's
        wait so its Resume sends; if that fails too the anchor's timeout finds the claimed approval
        and resumes then (the decision stays taken either way)."""
        try:
            self.workflow.start_flow(flow_input(payment_id, "send", taskToken=token, mode="anchored"))
            return
        except ServiceError:
            if not token:
                raise
        try:
            self.workflow.send_task_failure(token, STAGE_FAILED, json.dumps({"stage": "send"}))
        except ServiceError:
            pass

    def _answer_quietly(self, token: str, output: Mapping[str, Any]) -> None:
        """Answer the anchor's wait; a gone task or a failed call is no error: the anchor's timeout
        finds the terminal status and ends."""
        try:
            self.workflow.send_task_success(token, output)
        except ServiceError:
            pass

    def _terminal_answer(self, record: Mapping[str, Any], status: str, reason: Mapping[str, Any] | None) -> dict:
        """The ISO answer written with a terminal RJCT or CANC: pacs.002 RJCT with the reason, or
        camt.029 CNCL."""
        facts = self._facts_of(record)
        if status == "CANC":
            answer = self._generated(iso20022.build_cancellation_answer(
                facts, accepted=True, operator_bic=self.settings.operator_bic, case_id=record["paymentId"],
                versions=self.settings.message_versions))
            return {CANCELLATION_ANSWER: self._stored(record["paymentId"], CANCELLATION_ANSWER, answer)}
        report = self._generated(iso20022.build_status_report(
            facts, "RJCT", reason_code=(reason or {}).get("code"),
            additional_info=short_info((reason or {}).get("additionalInfo")), operator_bic=self.settings.operator_bic,
            versions=self.settings.message_versions))
        return {STATUS_REPORT: self._stored(record["paymentId"], STATUS_REPORT, report)}

    # -- the anchor: DecisionTimedOut -------------------------------------------------------------

    def decision_timeout(self, payment_id: str, anchor: str | None = None) -> dict:
        """The anchor's wait timed out. ACTC/PDNG with no decision: -> RJCT AB06 with its pacs.002 (one
        conditional write, which a consumer's decision claimed first wins). An approval claimed and
        not settled, or a payment never validated: resume that stage. An anchor the payment has left
        (`anchor`, the calling execution's name, is not the payment's: see park) does nothing. Returns
        {"action": "resume"|"done", "resume": {"stage"} or None, "status"}."""
        for _ in range(3):
            record = self.store.get(payment_id)
            status = record["status"]
            if self._left_by(record, anchor):
                return {"action": "done", "resume": None, "status": status}   # taken over: another anchor's now
            if status == "RCVD":
                return {"action": "resume", "resume": {"stage": "validate", "carried": {}}, "status": status}
            if status == "ACTC" and is_recall(record):
                return {"action": "resume", "resume": {"stage": "recall", "carried": {}}, "status": status}
            if status == "ACSP":
                stage = "settle" if (record.get("release") or {}).get("sentAt") else "send"
                return {"action": "resume", "resume": {"stage": stage, "carried": {}}, "status": status}
            if status in TERMINAL_STATUSES or status == "PDCR":
                return {"action": "done", "resume": None, "status": status}
            fence = self._fence(record)
            info = f"No decision within {int(self.settings.decision_timeout_seconds)} seconds"
            reason = {"code": TIMEOUT_REASON, "additionalInfo": info}
            decision = {"action": "timeout", "reasonCode": TIMEOUT_REASON, "additionalInfo": info,
                        "decidedBy": "timeout", "decidedAt": self.clock()}
            try:
                self.store.transition(payment_id, expected_status=("PDNG", "ACTC"), expected_version=record["version"],
                                      new_status="RJCT", set_values={"decision": decision}, remove=("taskToken",),
                                      reason=reason, messages=self._terminal_answer(record, "RJCT", reason),
                                      require_no_decision=True,
                                      event_detail={"actor": "timeout", "state": "DecisionTimedOut"}, fence=fence)
            except StatusConflict:
                continue  # a decision won the race: look again
            self._publish("payment.rejected", {**record, "status": "RJCT", "reason": reason})
            return {"action": "done", "resume": None, "status": "RJCT"}
        raise TransientError(f"payment {payment_id} kept changing while its timeout was claimed")

    # -- PaymentFlow: Send (the release claim) ----------------------------------------------------

    def send(self, payment_id: str, message: bytes | None = None) -> dict:
        """Claim the release, then send it once (docs/flow.md, "At most once"):
        1. the claim: a conditional write of `release` (attempts + 1) on status ACSP, no send
           recorded, the fence and the claim as read. A new attempt may send only within the
           release window of its first attempt (the queue deduplicates a resend there), or when
           every earlier attempt failed definitively (a new window opens). Otherwise the outcome of an
           earlier attempt is unknown: the payment is suspended and ReleaseOutcomeUnknown raised,
           without a send.
        2. the send: SQS FIFO, deduplication id = payment id, group = counterparty; the body names
           the payment id and the UETR (the engine's idempotency key).
        3. a refused send (definitive) is counted on the claim, then retried as TransientError; any
           other failure leaves the outcome unknown and is retried as it is.
        Everything that can fail without sending (the outbound message built and checked against its
        schema, the schemas of Settle's pacs.002 present, a large message archived) happens before the
        claim is written, so such a failure never counts as an attempt of unknown outcome.
        Returns {"messageId", "outbound"} (the outbound message as sent, base64, when it travels inline;
        "alreadySent": true when a send was recorded before)."""
        record = self.store.get(payment_id)
        release = record.get("release") or {}
        self._check_owner(record)
        if release.get("sentAt") or record["status"] == "ACSC":
            return {"messageId": release.get("messageId"), "outbound": None, "alreadySent": True}
        if record["status"] != "ACSP":
            raise InvalidState(f"payment {payment_id} is {record['status']}; send expects ACSP")
        fence = self._fence(record)
        claim = self._next_claim(record, fence)
        if claim is None:   # armed by the Region that owned it before a takeover: sent there, never here
            return {"messageId": f"{RELEASED_ELSEWHERE}{release['region']}", "outbound": None,
                    "releasedElsewhere": release["region"]}
        data = self._received_bytes(record, message)
        outbound = self._generated(iso20022.build_outbound_message(
            self._parse(data), operator_bic=self.settings.operator_bic, now=parse_utc(claim["windowAt"]),
            versions=self.settings.message_versions))
        versions = self.settings.message_versions
        for message_id in (versions.status_report, versions.app_header):  # Settle's pacs.002 ACSC
            if not self.registry.has_schema(message_id):
                raise iso20022.SchemaNotInstalled(message_id)
        facts = record.get("facts") or {}
        body = {"paymentId": payment_id, "uetr": facts.get("uetr"), "endToEndId": facts.get("endToEndId"),
                "messageType": record.get("messageType")}
        if len(outbound) <= INLINE_MESSAGE_BYTES:
            body["message"] = outbound.decode("utf-8")
        else:
            body.update(bucket=self.archive.bucket,
                        key=self.archive.put(generated_key(payment_id, OUTBOUND_MESSAGE), outbound))
        self._write_claim(record, claim, fence)
        if self.gate is not None:
            self._claim_landed_in_lease(payment_id, claim, fence)
        try:
            message_id = self.release_queue.send({k: v for k, v in body.items() if v is not None},
                                                 deduplication_id=payment_id,
                                                 group_id=counterparty(facts, payment_id))
        except SendRefused as refused:
            failed = {**claim, "definitiveFailures": claim["definitiveFailures"] + 1}
            try:   # recorded even late (no `until`): without it the next owner would take the claim as sent
                self.store.update_release(payment_id, failed, expected_attempts=claim["attempts"],
                                          fence=replace(fence, until=None))
            except StatusConflict:
                pass  # a later attempt moved on: this failure stays uncounted (the safe side)
            raise TransientError(f"the release queue refused the send ({refused.detail})") from None
        return {"messageId": message_id, "outbound": inline_message(outbound)}

    def _claim_landed_in_lease(self, payment_id: str, claim: Mapping[str, Any], fence: Fence) -> None:
        """Two Regions (docs/regions.md): send only if this Region still holds its lease now that the claim
        is written. A claim that landed in the lease replicates before a takeover reads it (the takeover
        waits the settle interval after the lease ends), so the new owner settles it as released here and
        never sends it again. A claim written too late (a slow step) is followed by no send: it is recorded
        as a definitive failure (nothing was sent), so whoever owns the payment next sends it once."""
        self.gate.forget()
        try:
            self.gate.check()
        except RegionUnavailable:
            failed = {**claim, "definitiveFailures": claim["definitiveFailures"] + 1}
            try:   # recorded although the lease ended (no `until`): nothing was sent, the next owner sends once
                self.store.update_release(payment_id, failed, expected_attempts=claim["attempts"],
                                          fence=replace(fence, until=None))
            except StatusConflict:
                pass
            raise

    def _next_claim(self, record: Mapping[str, Any], fence: Fence) -> dict | None:
        """The claim this attempt would write, by the window rule; past the window with an attempt of
        unknown outcome: suspend, ReleaseOutcomeUnknown. A claim another Region armed (before a takeover,
        docs/regions.md) never opens a resend here -- that Region's queue deduplicated for its own sends
        only: when all its attempts failed definitively a new window opens here; else (suspended: still
        suspended) its send happened and None is returned: settle it as released by that Region."""
        payment_id = record["paymentId"]
        now = self.clock()
        release = record.get("release")
        if release and release.get("region", fence.region) != fence.region:
            if release["definitiveFailures"] >= release["attempts"]:
                return {**release, "region": fence.region, "epoch": fence.epoch,
                        "attempts": release["attempts"] + 1, "windowAt": now}
            if not record.get("suspense"):
                return None
            self._suspend(record, release, fence, now)
            raise ReleaseOutcomeUnknown(
                f"payment {payment_id}: suspended in {release['region']} (an earlier release attempt's outcome is "
                "unknown); an operator confirms whether it was sent")
        if not release:
            claim = {"region": fence.region, "epoch": fence.epoch, "attempts": 1, "windowAt": now,
                     "definitiveFailures": 0}
        elif seconds_between(release["windowAt"], now) <= RELEASE_WINDOW_SECONDS:
            claim = {**release, "attempts": release["attempts"] + 1}
        elif release["definitiveFailures"] >= release["attempts"]:
            claim = {**release, "attempts": release["attempts"] + 1, "windowAt": now}
        else:
            self._suspend(record, release, fence, now)
            raise ReleaseOutcomeUnknown(
                f"payment {payment_id}: the outcome of an earlier release attempt is unknown and its "
                f"deduplication window is over; it is suspended until an operator confirms whether it was sent")
        return claim

    def _write_claim(self, record: Mapping[str, Any], claim: Mapping[str, Any], fence: Fence) -> None:
        """The claim's conditional write: the release as read (attempts), ACSP, no send recorded, the fence."""
        release = record.get("release")
        try:
            self.store.update_release(record["paymentId"], claim,
                                      expected_attempts=release["attempts"] if release else None, fence=fence)
        except StatusConflict as conflict:
            raise TransientError(f"payment {record['paymentId']}: the release claim changed meanwhile "
                                 f"(now {conflict.current_status})") from None

    def _suspend(self, record: Mapping[str, Any], release: Mapping[str, Any], fence: Fence, now: str) -> None:
        if record.get("suspense"):
            return
        suspense = {"reason": SUSPENDED_UNKNOWN_OUTCOME, "since": now, "attempts": release["attempts"]}
        try:
            self.store.update_release(record["paymentId"], release, expected_attempts=release["attempts"],
                                      fence=fence, suspense=suspense)
        except StatusConflict:
            raise TransientError(f"payment {record['paymentId']} changed while it was suspended") from None
        self._publish("payment.suspended", {**record, "suspense": suspense})

    # -- PaymentFlow: Settle ----------------------------------------------------------------------

    def settle(self, payment_id: str, message_id: str | None = None, message: bytes | None = None,
               outbound: bytes | None = None) -> dict:
        """ACSP -> ACSC after the send, in one conditional write with the pacs.002 ACSC, the outbound
        message as sent and the send (release.sentAt, messageId); then the event. Idempotent: a
        settled payment answers at once. `outbound`: the message as the Send step sent it (the flow
        carries it); else it is built again, byte for byte, from the received message and the
        release window it was sent in."""
        record = self.store.get(payment_id)
        if record["status"] == "ACSC":
            self._check_owner(record)   # a Region that no longer owns it publishes nothing
        release = record.get("release") or {}
        engine_confirms = self.settings.engine_confirms
        if record["status"] == "ACSC" or (engine_confirms and record["status"] == "ACSP"
                                          and OUTBOUND_MESSAGE in (record.get("messages") or {})):
            self._publish("payment.released", record)  # a repeated step: the event again (at least once)
            self._forward_recall(record)
            return {"paymentId": payment_id, "status": record["status"]}
        if record["status"] in ("RJCT", "CANC") and release.get("attempts", 0) >= 1:
            # the payment engine answered (mxflow/engine.py) before this step recorded the send
            return {"paymentId": payment_id, "status": record["status"]}
        if record["status"] != "ACSP" or release.get("attempts", 0) < 1:
            raise InvalidState(f"payment {payment_id} is {record['status']} with no release claimed; "
                               "settle follows a send")
        fence = self._fence(record)
        message_id = message_id or release.get("messageId")
        if not message_id:
            raise InvalidState(f"payment {payment_id}: settle needs the id of the message sent")
        now = self.clock()
        if outbound is None:
            outbound = self._outbound(record, message)
        if len(outbound) <= INLINE_MESSAGE_BYTES:
            stored_outbound = self._stored(payment_id, OUTBOUND_MESSAGE, outbound)
        else:  # the Send step archived it, and the release message names that key
            stored_outbound = {"key": generated_key(payment_id, OUTBOUND_MESSAGE)}
        sent = {**release, "sentAt": release.get("sentAt") or now, "messageId": message_id}
        messages = {OUTBOUND_MESSAGE: stored_outbound}
        if engine_confirms:  # ACSP until the engine's pacs.002 (mxflow/engine.py): the send recorded
            new_status, event = "ACSP", {"actor": "release", "event": "sent", "state": "Settle"}
        else:
            report = self._generated(iso20022.build_status_report(
                self._facts_of(record), "ACSC", operator_bic=self.settings.operator_bic,
                versions=self.settings.message_versions))
            messages[STATUS_REPORT] = self._stored(payment_id, STATUS_REPORT, report)
            new_status, event = "ACSC", {"actor": "release", "state": "Settle"}
        if message_id.startswith(RELEASED_ELSEWHERE):
            event["note"] = (f"released by {release.get('region')} before its payments were taken over; "
                             "settled here, not sent again")
        try:
            self.store.transition(payment_id, expected_status="ACSP", expected_version=record["version"],
                                  new_status=new_status, set_values={"release": sent},
                                  remove=("taskToken", "suspense", "suspendedIn", "suspendedAt"),
                                  messages=messages, event_detail=event, fence=fence)
        except StatusConflict as conflict:
            current = conflict.current
            done = current.get("status") in ("ACSC", "RJCT", "CANC") or (
                engine_confirms and OUTBOUND_MESSAGE in (current.get("messages") or {}))
            if not done:
                raise TransientError(f"payment {payment_id} changed while it was settled "
                                     f"(now {conflict.current_status})") from None
            return {"paymentId": payment_id, "status": current.get("status")}
        self._publish("payment.released", {**record, "status": new_status})
        self._forward_recall(record)
        return {"paymentId": payment_id, "status": new_status}

    def _forward_recall(self, record: Mapping[str, Any]) -> None:
        """A recall recorded on the payment before its send was recorded follows it now (mxflow/recalls.py);
        nothing is read for a payment without one."""
        if (record.get("recall") or {}).get("status") == "PDCR" and not record["recall"].get("forwardedAt"):
            self.recalls.forward_pending(self.store.get(record["paymentId"]))

    def _outbound(self, record: Mapping[str, Any], message: bytes | None = None) -> bytes:
        """The outbound message of a claimed release, built again byte for byte: the received message
        (`message`, else the archive's), the operator, the release window's time."""
        return self._generated(iso20022.build_outbound_message(
            self._parse(self._received_bytes(record, message)), operator_bic=self.settings.operator_bic,
            now=parse_utc(record["release"]["windowAt"]), versions=self.settings.message_versions))

    # -- operations (API) ------------------------------------------------------------------------

    def confirm_release(self, client_id: str, payment_id: str, request: Any, *, actor: str | None = None) -> dict:
        """An operator's answer for a suspended payment (the outcome of a release attempt was unknown):
        {"sent": true} records the earlier send (a redrive then settles it without sending);
        {"sent": false} records that no earlier attempt reached the queue (a redrive then sends in a
        new window). Conflict when the payment is not suspended."""
        _check(request if request is not None else {}, CONFIRM_RELEASE)
        record = self._owned(client_id, payment_id)
        owner = self._owner_elsewhere(record)
        if owner is not None:
            return self._at_owner(owner, lambda there: there.confirm_release(client_id, payment_id, request))
        release = record.get("release") or {}
        if record["status"] != "ACSP" or not record.get("suspense"):
            raise Conflict(f"payment {payment_id} is {record['status']} and not suspended; nothing to confirm")
        if request["sent"]:
            confirmed = {**release, "sentAt": self.clock(), "confirmedBy": actor or client_id,
                         "messageId": request.get("messageId") or f"confirmed-by:{client_id}"}
        else:
            confirmed = {**release, "definitiveFailures": release["attempts"], "confirmedBy": actor or client_id}
        try:
            self.store.update_release(payment_id, confirmed, expected_attempts=release["attempts"],
                                      fence=Fence(record["ownerRegion"], record["epoch"]), clear_suspense=True)
        except StatusConflict as conflict:
            raise Conflict(f"payment {payment_id} changed meanwhile (now {conflict.current_status})") from None
        return {"paymentId": payment_id, "status": "ACSP", "sent": request["sent"],
                "next": f"POST /payments/{payment_id}/redrive"}

    def redrive(self, client_id: str, payment_id: str) -> dict:
        """Redrive the payment's anchor execution from its failed state; Conflict when the workflow
        says it is not redrivable (a payment that never failed has no anchor, or one still running)."""
        record = self._owned(client_id, payment_id)
        owner = self._owner_elsewhere(record)
        if owner is not None:
            return self._at_owner(owner, lambda there: there.redrive(client_id, payment_id))
        try:
            # a taken-over payment's anchor is named with its epoch (mxflow.regions.anchor_name)
            redriven_at = self.workflow.redrive(record.get("anchorName") or payment_id)
        except NotRedrivable as refused:
            raise Conflict(f"the execution of payment {payment_id} is not redrivable ({refused.reason})") from None
        return {"paymentId": payment_id, "status": record["status"], "redriveDate": redriven_at}

    def health(self) -> dict:
        try:
            self.store.probe()
            status = "ok"
        except ServiceError:
            status = "unhealthy"
        # which source serves each message id (built-in package@version, added, schema layer): no payment data
        return {"status": status, "region": self.settings.region, "schemas": self.registry.sources()}

    def sample(self, now: datetime | None = None) -> dict:
        """What the scheduled sampler publishes (template.yaml alarms): the age of the oldest PDNG
        payment, the oldest age in each other in-flight status (a payment stuck there is visible),
        and how many payments are suspended; the return leg's oldest unconfirmed age (a payment sent and
        not yet confirmed by the engine under ReleaseConfirmation=engine, or a recall awaiting the
        engine's answer). Among the oldest payments by receipt (SAMPLE_PER_SHARD per index shard)."""
        region = self.settings.region
        moment = now or parse_utc(self.clock())
        oldest: dict[str, float] = {status: 0.0 for status in sorted(IN_FLIGHT_STATUSES)}
        unconfirmed = 0.0  # the return leg: a send or a recall the payment engine has not answered yet
        sampled = self.store.in_flight(region, per_shard=SAMPLE_PER_SHARD)
        for item in sampled:
            since = item.get("statusSince") or item.get("receivedAt")
            status = item.get("status")
            if status == "ACSP" and item.get("sentAt") and self.settings.engine_confirms:
                unconfirmed = max(unconfirmed, max(0.0, (moment - parse_utc(item["sentAt"])).total_seconds()))
                continue
            if since and status in oldest:
                age = max(0.0, (moment - parse_utc(since)).total_seconds())
                oldest[status] = max(oldest[status], age)
                if status == "PDCR":
                    unconfirmed = max(unconfirmed, age)
        return {"oldestPendingAgeSeconds": oldest["PDNG"],
                "oldestInFlightAgeSeconds": max(oldest["RCVD"], oldest["ACTC"], oldest["ACSP"]),
                "oldestUnconfirmedAgeSeconds": unconfirmed,
                "oldestAgeSecondsByStatus": oldest, "sampled": len(sampled),
                "suspendedPayments": len(self.store.suspended(region)),
                # what the console's counters are made of (mxflow.queries.save_summary): certainly every
                # in-flight payment when fewer than one shard's worth were sampled
                "items": sampled, "complete": len(sampled) < SAMPLE_PER_SHARD, "sampledAt": format_utc(moment)}

    # -- read model (API) ------------------------------------------------------------------------

    def get_payment(self, client_id: str, payment_id: str) -> dict:
        record = self._owned(client_id, payment_id)
        facts = record.get("facts") or {}
        amount, currency = amount_and_currency(facts)
        view = {
            "paymentId": payment_id,
            "status": record["status"],
            "messageType": record.get("messageType"),
            "uetr": facts.get("uetr"),
            "amount": amount,
            "currency": currency,
            "receivedAt": record.get("receivedAt"),
            "updatedAt": record.get("statusSince"),
            "contentSha256": record.get("contentSha256"),
            "endToEndId": facts.get("endToEndId"),
            "ownerRegion": record.get("ownerRegion"),
            "facts": facts,
            "history": [
                {k: v for k, v in (("status", e.get("status")), ("time", e.get("time")),
                                   ("reason", e.get("reason")), ("actor", e.get("actor")),
                                   ("state", e.get("state")), ("event", e.get("event")),
                                   ("message", e.get("message"))) if v is not None}
                for e in record.get("history") or []
            ],
            "messages": sorted([RECEIVED_MESSAGE, *(record.get("messages") or {})]),
        }
        if is_recall(record):
            view["originalPaymentId"] = record.get("originalPaymentId")
        if record.get("recall"):
            view["recall"] = {k: record["recall"][k] for k in ("recallId", "status", "reasonCode")
                              if record["recall"].get(k)}
        if record.get("returned"):
            returned = record["returned"]
            view["returned"] = {k: returned[k] for k in ("amount", "currency", "reason", "at", "message")
                                if returned.get(k)}
        if record["status"] in ("RJCT", "CANC", "RJCR") and record.get("reason"):
            view["reason"] = {k: v for k, v in record["reason"].items() if v is not None}
        if record.get("validationErrors"):
            view["errors"] = record["validationErrors"]
        if record.get("suspense"):
            view["suspense"] = record["suspense"]
        if record.get("messageId"):  # a transaction of a message with several (GET /messages/{messageId})
            view["messageId"] = record["messageId"]
        if record.get("decision"):
            view["decision"] = decision_output(record["decision"])
        return view

    def get_message(self, client_id: str, payment_id: str, name: str) -> bytes:
        record = self._owned(client_id, payment_id)
        if name == RECEIVED_MESSAGE and record.get("messageId") and record.get("tx"):
            return self.bulk.transaction_message(record)   # its transaction message (mxflow.bulk)
        entry = {"key": _received_key(record)} if name == RECEIVED_MESSAGE else (record.get("messages") or {}).get(name)
        if not entry:
            raise MessageNotFound(f"payment {payment_id} has no message {name!r}")
        try:
            return self._message_bytes(entry)
        except MessageNotFound:
            raise MessageNotFound(f"message {name!r} of payment {payment_id} is not archived (yet)") from None

    def _owned(self, client_id: str, payment_id: str) -> dict:
        record = self.store.get(payment_id)
        if record.get("clientId") != client_id:
            raise PaymentNotFound(payment_id)  # another client's payment: not found either
        return record

    # -- internals -------------------------------------------------------------------------------

    def _fence(self, record: Mapping[str, Any]) -> Fence:
        """The fence of a workflow step's writes; NotOwner when this Region does not own the payment,
        RegionUnavailable when it does but may not act now (its lease lapsed: docs/regions.md)."""
        self._check_owner(record)
        until = self.gate.check() if self.gate is not None else None
        return Fence(self.settings.region, int(record.get("epoch", 1)), until=until)

    def _left_by(self, record: Mapping[str, Any], anchor: str | None) -> bool:
        """Whether the payment has left the anchor execution `anchor` of this Region: owned by another
        Region (taken over after a failover), or taken over into a new anchor, in this Region too (a
        reconciliation). Such an anchor must do nothing (docs/regions.md)."""
        return (record.get("ownerRegion", self.settings.region) != self.settings.region
                or not is_current_anchor(record, anchor))

    def _check_owner(self, record: Mapping[str, Any]) -> None:
        if record.get("ownerRegion") != self.settings.region:
            raise NotOwner(f"payment {record['paymentId']} is owned by {record.get('ownerRegion')}, "
                           f"not {self.settings.region}")

    # -- two Regions: where a write goes (docs/regions.md) -----------------------------------------------

    def _owner_elsewhere(self, record: Mapping[str, Any]) -> str | None:
        """The payment's owner Region when it is not this one (two Regions only), else None."""
        owner = record.get("ownerRegion")
        if not self.settings.two_regions or not owner or owner == self.settings.region:
            return None
        return owner

    def _owner_fence(self, record: Mapping[str, Any]) -> Fence | None:
        """An API write's fence with two Regions: this Region still owns it at the epoch read (a takeover
        in between makes the write fail). None with one Region, as before."""
        if not self.settings.two_regions:
            return None
        until = self.gate.check() if self.gate is not None else None   # no lease: nothing written (503)
        return Fence(self.settings.region, int(record.get("epoch", 1)), until=until)

    def _at_owner(self, owner: str, call):
        """Run an API write in the payment's owner Region: its replica (where that Region's conditional
        writes are checked) and its state machines (its task tokens). RegionUnavailable (503) when the
        owner is being failed over or cannot be reached; the takeover then moves the payment here."""
        if self.at_region is None:
            raise RegionUnavailable(f"the payment's owner moved to {owner} meanwhile; send the request again")
        if self.gate is not None:
            self.gate.owner_reachable(owner)
        there = self.at_region(owner)
        try:
            return call(there)
        except RegionUnavailable:
            raise
        except ServiceError as error:
            raise RegionUnavailable(f"Region {owner}, which owns the payment, cannot be reached "
                                    f"({error.detail}); retry shortly") from None

    def _received_bytes(self, record: Mapping[str, Any], message: bytes | None) -> bytes:
        """The received message: as the flow carries it (checked against its SHA-256 on the record),
        else from the archive."""
        if message is None:
            if record.get("messageId") and record.get("tx"):  # a transaction of a message with several
                return self.bulk.transaction_message(record)
            return self.archive.get(_received_key(record))
        if iso20022.content_hash(message) != record.get("contentSha256"):
            raise InvalidState(f"the message carried for payment {record['paymentId']} is not the one received")
        return message

    def generated_message(self, message: bytes) -> bytes:
        """A generated message checked against its installed schemas (mxflow.bulk builds them too)."""
        return self._generated(message)

    def stored_message(self, key_id: str, name: str, data: bytes) -> dict:
        """How a record keeps a generated message (compressed, or by archive key when large)."""
        return self._stored(key_id, name, data)

    def message_bytes(self, entry: Mapping[str, Any]) -> bytes:
        """The bytes of a kept message entry ({"z"} or {"key"})."""
        return self._message_bytes(entry)

    def _generated(self, message: bytes) -> bytes:
        """A generated message, once its AppHdr and Document validate against the installed schemas
        (SchemaNotInstalled / GeneratedMessageInvalid otherwise: the step fails, nothing is kept or sent)."""
        return iso20022.check_generated(message, self.registry)

    def _stored(self, payment_id: str, name: str, data: bytes) -> dict:
        """How the payment's item keeps a generated message: compressed, or by archive key when large."""
        packed = zlib.compress(data, 9)
        if len(packed) <= STORED_MESSAGE_BYTES:
            return {"z": packed}
        return {"key": self.archive.put(generated_key(payment_id, name), data)}

    def _message_bytes(self, entry: Mapping[str, Any]) -> bytes:
        if "z" in entry:
            return zlib.decompress(entry["z"])
        return self.archive.get(entry["key"])

    def _facts_of(self, record: Mapping[str, Any]):
        """The Facts of a payment: from the record once validated, else from the archived message."""
        if record.get("facts"):
            return iso20022.Facts.from_dict({**record["facts"], "paymentId": record["paymentId"],
                                             "messageType": record.get("messageType")})
        return iso20022.extract_facts(self._parse(self.archive.get(_received_key(record))))

    def _publish(self, event_type: str, record: Mapping[str, Any], *, event_id: str | None = None) -> None:
        """An event for subscribers: ids and status only (details through the API). `event_id`: for an
        event that is not a status change (default: <paymentId>:<status>)."""
        if self.events is None:
            return
        payment_id = record["paymentId"]
        status = record["status"]
        event = {"type": event_type, "eventId": f"{payment_id}:{status}", "paymentId": payment_id,
                 "status": status, "messageType": record.get("messageType"), "time": self.clock()}
        reason = record.get("reason")
        if status in ("RJCT", "CANC", "RJCR") and reason:
            event["reasonCode"] = reason.get("code")
        if event_type == "payment.suspended":
            event["eventId"] = f"{payment_id}:suspended"
        if event_id:
            event["eventId"] = event_id
        self.events.publish(event, attributes={"eventType": event_type, "status": status})


def inline_message(data: bytes) -> str | None:
    """The received bytes as the flow carries them (base64), when small enough to travel inline."""
    return base64.b64encode(data).decode("ascii") if len(data) <= INLINE_MESSAGE_BYTES else None


@functools.cache
def _body_check(body: str) -> SchemaCheck:
    """The JSON Schema of a request body (a decision's action, or CONFIRM_RELEASE), compiled once per
    environment. mxflow.json_schema is imported here: only the routes that take a body load it."""
    from mxflow.json_schema import SchemaCheck

    return SchemaCheck(_BODY_SCHEMAS[body])


def _check(request: Any, body: str) -> None:
    problem = _body_check(body).problem(request, "body")
    if problem is not None:
        raise InvalidRequest(problem)
