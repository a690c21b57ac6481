"""The payment lifecycle: what the Lambda handlers call (receive, validate, park, decide, time out,
finalise, release, redrive) and the read model of GET /payments/{id}.

Pure domain: it talks to the outside world only through the ports of mxflow.ports (store, archive,
workflow, release queue, event publisher, clock) and raises the errors of mxflow.errors. It imports
no AWS library; mxflow.service composes it with the AWS adapters (mxflow.aws), the tests with
in-memory fakes. Every ISO 20022 concern (parsing, validation, facts, messages, codes) is the
library's (mxflow.iso20022); this module never reads XML itself.

Statuses are ISO ExternalPaymentTransactionStatus1Code values: RCVD, ACTC, PDNG, ACSP, ACSC, RJCT, CANC.
Every status change is conditional (expected status and version) and appends a history event.
Steps run by Step Functions are idempotent: a retried or redriven step finds its own earlier writes
and neither repeats a side effect (the release is sent once) nor fails on them.
"""
from __future__ import annotations

from datetime import datetime
from decimal import Decimal, InvalidOperation
from typing import Any, Mapping

import jsonschema

from mxflow import iso20022
from mxflow.clock import parse_utc, utc_now
from mxflow.errors import (
    Conflict,
    DuplicateIdentity,
    DuplicatePayment,
    InvalidRequest,
    InvalidState,
    MessageNotFound,
    MessageTooLarge,
    NotRedrivable,
    PaymentNotFound,
    ServiceError,
    StatusConflict,
    UnknownReasonCode,
    UnsupportedMessage,
)
from mxflow.iso20022 import codes as iso_codes
from mxflow.openapi import decision_request_schemas
from mxflow.ports import Clock, EventPublisher, MessageArchive, PaymentStore, ReleaseQueue, Workflow
from mxflow.settings import Settings

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
MAX_INLINE_RELEASE_BYTES = 200 * 1024  # SQS allows 256 KiB; larger messages go by archive key only

# The decision bodies' JSON Schemas are the published ones: components.schemas of the API's OpenAPI
# document (mxflow/openapi.json), whose additionalInfo maxLength is MAX_ADDITIONAL_INFO.
DECISION_REQUEST_SCHEMAS: dict[str, dict] = decision_request_schemas()


def received_key(payment_id: str, content_hash: str) -> str:
    """Where the archive keeps a received message (one key per distinct content)."""
    return f"received/{payment_id}/{content_hash}.xml"


def generated_key(payment_id: str, name: str) -> str:
    """Where the archive keeps a message generated for the payment (pacs.002, camt.029, outbound)."""
    return f"generated/{payment_id}/{name}.xml"


def decision_output(decision: Mapping[str, Any]) -> dict:
    """The four keys the state machine reads from a decision (null where not applicable)."""
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


def _short(text: str | None) -> str | None:
    if not text:
        return None
    return text if len(text) <= MAX_ADDITIONAL_INFO else text[: MAX_ADDITIONAL_INFO - 1] + "…"


def _text(value: Any) -> str | None:
    return None if value is None else str(value)


def _facts_dict(facts) -> dict:
    return facts.to_dict() if facts is not None else {}


class PaymentLifecycle:
    """The domain service every function calls."""

    def __init__(self, *, store: PaymentStore, archive: MessageArchive, workflow: Workflow,
                 release_queue: ReleaseQueue, events: EventPublisher | None, settings: Settings,
                 registry=None, clock: Clock = utc_now):
        self.store = store
        self.archive = archive
        self.workflow = workflow
        self.release_queue = release_queue
        self.events = events  # None: no event topic configured, nothing is published
        self.settings = settings
        self.clock = clock
        self._registry = registry

    @property
    def registry(self):
        if self._registry is None:
            # One per process and MXFLOW_SCHEMA_DIR value: operators' XSDs first, then the built-in set.
            self._registry = iso20022.default_registry()
        return self._registry

    # -- receive (API) ---------------------------------------------------------------------------

    def receive(self, client_id: str, data: bytes) -> tuple[bool, dict]:
        """Accept a submitted message. Returns (created, receipt): created False for an identical
        resubmission (same client, same identity, same bytes), whose receipt is the same.

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
            summary = _facts_dict(iso20022.extract_facts(parsed))
        except iso20022.MessageError as error:
            raise UnsupportedMessage(error.issue.message, code=error.issue.code) from None
        payment_id = summary["paymentId"]
        content_hash = iso20022.content_hash(data)
        archive_key = received_key(payment_id, content_hash)
        record = {
            "paymentId": payment_id,
            "clientId": client_id,
            "status": "RCVD",
            "messageType": parsed.message_id,
            "contentHash": content_hash,
            "archiveKey": archive_key,
            "receivedAt": self.clock(),
            "facts": summary,
            "messages": {RECEIVED_MESSAGE: archive_key},
        }
        created = True
        try:
            record = self.store.create(record, event={"actor": client_id})
        except DuplicatePayment as duplicate:
            existing = duplicate.existing
            if existing.get("clientId") != client_id or existing.get("contentHash") != content_hash:
                raise DuplicateIdentity(
                    "a payment with the same identity (sender, message id, end-to-end id, UETR) and "
                    "different content exists (DUPL)", code=DUPLICATE_REASON) from None
            record, created = existing, False
            if record["status"] != "RCVD":
                return False, self._receipt(record)
        # New, or an identical resubmission of one whose start may not have completed: archiving the
        # same bytes under the same key and starting the same execution name are both idempotent.
        self.archive.put(archive_key, data)
        self.workflow.start(record["paymentId"], {"paymentId": record["paymentId"],
                                                  "archiveKey": record["archiveKey"],
                                                  "receivedAt": record["receivedAt"]})
        return created, self._receipt(record)

    @staticmethod
    def _receipt(record: Mapping[str, Any]) -> dict:
        # the status of the submission; GET /payments/{id} gives the current one
        return {"paymentId": record["paymentId"], "status": "RCVD", "receivedAt": record["receivedAt"]}

    def _parse(self, data: bytes):
        return iso20022.parse_message(data, limits=iso20022.ParseLimits(max_bytes=self.settings.max_message_bytes))

    # -- ValidateAndPersist ----------------------------------------------------------------------

    def validate_and_persist(self, payment_id: str) -> dict:
        """RCVD -> ACTC (facts) or RCVD -> RJCT (first issue's code, pacs.002 RJCT archived); with the
        auto-decision policy, ACTC -> ACSP for amounts up to AUTO_APPROVE_MAX_AMOUNT.
        Returns {"outcome": "invalid"|"await"|"auto-approve", "status", "decisionTimeoutSeconds"}."""
        record = self.store.get(payment_id)
        if record["status"] == "RCVD":
            data = self.archive.get(record["archiveKey"])
            result = iso20022.validate_message(data, profile=self.settings.profile,
                                               registry=self.registry)
            if result.valid:
                record = self._accept(record, result.facts)
            else:
                record = self._reject_invalid(record, result)
        return self._validation_outcome(record)

    def _accept(self, record: dict, facts) -> dict:
        payment_id = record["paymentId"]
        summary = _facts_dict(facts) or record.get("facts", {})
        version = self.store.transition(payment_id, expected_status="RCVD",
                                        expected_version=record["version"], new_status="ACTC",
                                        set_values={"facts": summary})
        record = {**record, "status": "ACTC", "version": version, "facts": summary}
        if self._auto_approves(summary):
            decision = {"action": "approve", "reasonCode": None, "additionalInfo": None,
                        "decidedBy": AUTO_APPROVER, "decidedAt": self.clock()}
            version = self.store.transition(payment_id, expected_status="ACTC", expected_version=version,
                                            new_status="ACSP", set_values={"decision": decision},
                                            require_no_decision=True,
                                            event_detail={"actor": AUTO_APPROVER})
            record = {**record, "status": "ACSP", "version": version, "decision": decision}
        return record

    def _auto_approves(self, facts: Mapping[str, Any]) -> bool:
        limit = self.settings.auto_approve_max_amount
        if limit is None:
            return False
        try:
            return Decimal(str(facts.get("amount"))) <= limit
        except (InvalidOperation, ValueError):
            return False

    def _reject_invalid(self, record: dict, result) -> dict:
        payment_id = record["paymentId"]
        issue = result.errors[0] if result.errors else None
        reason = {"code": issue.code if issue else "FF01",
                  "additionalInfo": _short(issue.message if issue else "invalid message")}
        messages = dict(record.get("messages") or {})
        if result.facts is not None:
            report = iso20022.check_generated(iso20022.build_status_report(
                result.facts, "RJCT", reason_code=reason["code"], additional_info=reason["additionalInfo"],
                operator_bic=self.settings.operator_bic, versions=self.settings.message_versions), self.registry)
            messages[STATUS_REPORT] = self.archive.put(
                generated_key(payment_id, STATUS_REPORT), report)
        values = {"messages": messages,
                  "validationErrors": [e.to_dict() for e in result.errors[:20]]}
        if result.facts is not None:
            values["facts"] = _facts_dict(result.facts)
        version = self.store.transition(payment_id, expected_status="RCVD",
                                        expected_version=record["version"], new_status="RJCT",
                                        reason=reason, set_values=values)
        record = {**record, **values, "status": "RJCT", "version": version, "reason": reason}
        self._publish("payment.rejected", record)
        return record

    def _validation_outcome(self, record: Mapping[str, Any]) -> dict:
        status = record["status"]
        decision = record.get("decision") or {}
        if status == "RJCT" and not decision:
            outcome = "invalid"
        elif status in ("ACSP", "ACSC") and decision.get("decidedBy") == AUTO_APPROVER:
            outcome = "auto-approve"
        else:
            outcome = "await"
        return {"outcome": outcome, "status": status,
                "decisionTimeoutSeconds": int(self.settings.decision_timeout_seconds)}

    # -- AwaitDecision (Park) --------------------------------------------------------------------

    def park(self, payment_id: str, task_token: str) -> dict:
        """ACTC -> PDNG storing the task token, then the "payment.pending" event. A retried park
        refreshes the token; if a decision was claimed meanwhile it is delivered at once."""
        record = self.store.get(payment_id)
        if record.get("decision"):
            self.workflow.send_task_success(task_token, decision_output(record["decision"]))
            return {"paymentId": payment_id, "status": record["status"]}
        if record["status"] == "ACTC":
            self.store.transition(payment_id, expected_status="ACTC", expected_version=record["version"],
                                  new_status="PDNG", set_values={"taskToken": task_token})
        elif record["status"] == "PDNG":
            self.store.set_attributes(payment_id, {"taskToken": task_token}, expected_status="PDNG")
        else:
            raise InvalidState(f"payment {payment_id} is {record['status']}; park expects ACTC")
        self._publish("payment.pending", {**record, "status": "PDNG"})
        return {"paymentId": payment_id, "status": "PDNG"}

    # -- decisions (API) -------------------------------------------------------------------------

    def decide(self, client_id: str, payment_id: str, action: str, request: Any) -> dict:
        """Approve, reject or cancel a PDNG payment: one conditional write claims the decision
        (PDNG and no decision yet -> ACSP/RJCT/CANC, history event), then the task token is resumed.
        Raises InvalidRequest, UnknownReasonCode, PaymentNotFound, Conflict. A token whose task is
        gone (timed out meanwhile) is not an error: the timeout path honours the claimed decision."""
        if action not in DECISION_STATUS:
            raise InvalidRequest(f"unknown action {action}")
        request = {} if request is None else request
        try:
            jsonschema.validate(request, DECISION_REQUEST_SCHEMAS[action])
        except jsonschema.ValidationError as error:
            where = "/".join(str(p) for p in error.absolute_path) or "body"
            raise InvalidRequest(f"{where}: {error.message}") from None
        code = request.get("reasonCode")
        if action == "reject" and not iso_codes.is_status_reason(code):
            raise UnknownReasonCode(f"{code!r} is not an ISO ExternalStatusReason1Code")
        if action == "cancel" and not iso_codes.is_cancellation_reason(code):
            raise UnknownReasonCode(f"{code!r} is not an ISO cancellation reason code")
        record = self._owned(client_id, payment_id)
        if record["status"] != "PDNG" or record.get("decision"):
            raise Conflict(f"payment {payment_id} is {record['status']}"
                           + (" and already decided" if record.get("decision") else "")
                           + f"; {action} needs PDNG")
        decision = {"action": action, "reasonCode": code, "additionalInfo": request.get("additionalInfo"),
                    "decidedBy": client_id, "decidedAt": self.clock()}
        new_status = DECISION_STATUS[action]
        reason = None if action == "approve" else {"code": code,
                                                   "additionalInfo": request.get("additionalInfo")}
        try:
            self.store.transition(payment_id, expected_status="PDNG", expected_version=record["version"],
                                  new_status=new_status, set_values={"decision": decision},
                                  remove=("taskToken",), reason=reason, require_no_decision=True,
                                  event_detail={"actor": client_id})
        except StatusConflict as conflict:
            raise Conflict(f"payment {payment_id} was decided or changed meanwhile "
                           f"(now {conflict.current_status})") from None
        token = record.get("taskToken")
        if token:
            self.workflow.send_task_success(token, decision_output(decision))
        return {"paymentId": payment_id, "status": new_status, "decision": decision_output(decision)}

    # -- DecisionTimedOut ------------------------------------------------------------------------

    def decision_timeout(self, payment_id: str) -> dict:
        """Claim the timeout (-> RJCT AB06) unless a decision was claimed first; returns the winning
        decision as {action, reasonCode, additionalInfo, decidedBy}."""
        record = self.store.get(payment_id)
        if record.get("decision"):
            return decision_output(record["decision"])
        if record["status"] not in ("PDNG", "ACTC"):
            raise InvalidState(f"payment {payment_id} is {record['status']}; nothing awaits a decision")
        info = f"No decision within {int(self.settings.decision_timeout_seconds)} seconds"
        decision = {"action": "timeout", "reasonCode": TIMEOUT_REASON, "additionalInfo": info,
                    "decidedBy": "timeout", "decidedAt": self.clock()}
        try:
            self.store.transition(payment_id, expected_status=("PDNG", "ACTC"),
                                  expected_version=record["version"], new_status="RJCT",
                                  set_values={"decision": decision}, remove=("taskToken",),
                                  reason={"code": TIMEOUT_REASON, "additionalInfo": info},
                                  require_no_decision=True, event_detail={"actor": "timeout"})
        except StatusConflict as conflict:
            if conflict.current.get("decision"):
                return decision_output(conflict.current["decision"])
            raise
        return decision_output(decision)

    # -- Finalise --------------------------------------------------------------------------------

    def finalise(self, payment_id: str, decision: Mapping[str, Any] | None = None) -> dict:
        """The ISO answer of a terminal decision: pacs.002 RJCT with the reason (reject, timeout) or
        camt.029 CNCL (cancel), archived and added to the record, then an event. Idempotent."""
        record = self.store.get(payment_id)
        status = record["status"]
        if status not in ("RJCT", "CANC"):
            raise InvalidState(f"payment {payment_id} is {status}; finalise expects RJCT or CANC")
        name = CANCELLATION_ANSWER if status == "CANC" else STATUS_REPORT
        if name not in (record.get("messages") or {}):
            facts = self._facts_of(record)
            reason = record.get("reason") or {}
            if status == "CANC":
                message = iso20022.build_cancellation_answer(
                    facts, accepted=True, operator_bic=self.settings.operator_bic, case_id=payment_id,
                    versions=self.settings.message_versions)
            else:
                message = iso20022.build_status_report(
                    facts, "RJCT", reason_code=reason.get("code"),
                    additional_info=_short(reason.get("additionalInfo")),
                    operator_bic=self.settings.operator_bic, versions=self.settings.message_versions)
            iso20022.check_generated(message, self.registry)
            key = self.archive.put(generated_key(payment_id, name), message)
            self.store.record_message(payment_id, name, key)
        self._publish("payment.cancelled" if status == "CANC" else "payment.rejected", record)
        return {"paymentId": payment_id, "status": status, "message": name}

    # -- Release ---------------------------------------------------------------------------------

    def release(self, payment_id: str) -> dict:
        """ACSP -> ACSC: outbound message archived, sent once to the release queue (deduplication id =
        paymentId, group = counterparty), pacs.002 ACSC archived, event published. A retried or
        redriven release skips what is already done (the send is marked on the record)."""
        record = self.store.get(payment_id)
        if record["status"] == "ACSC":
            return {"paymentId": payment_id, "status": "ACSC"}
        if record["status"] != "ACSP":
            raise InvalidState(f"payment {payment_id} is {record['status']}; release expects ACSP")
        messages = dict(record.get("messages") or {})
        parsed = self._parse(self.archive.get(record["archiveKey"]))
        facts = iso20022.extract_facts(parsed)
        summary = _facts_dict(facts)
        outbound = None
        if OUTBOUND_MESSAGE not in messages:
            outbound = iso20022.check_generated(iso20022.build_outbound_message(
                parsed, operator_bic=self.settings.operator_bic, versions=self.settings.message_versions),
                self.registry)
            key = self.archive.put(generated_key(payment_id, OUTBOUND_MESSAGE), outbound)
            self.store.record_message(payment_id, OUTBOUND_MESSAGE, key)
            messages[OUTBOUND_MESSAGE] = key
        report = None
        if STATUS_REPORT not in messages:  # built and checked before the send: nothing leaves without it
            report = iso20022.check_generated(iso20022.build_status_report(
                facts, "ACSC", operator_bic=self.settings.operator_bic, versions=self.settings.message_versions),
                self.registry)
        if not record.get("releaseMessageId"):
            if outbound is None:
                outbound = self.archive.get(messages[OUTBOUND_MESSAGE])
            body = {"paymentId": payment_id, "messageType": record.get("messageType"),
                    "uetr": summary.get("uetr"), "bucket": self.archive.bucket,
                    "key": messages[OUTBOUND_MESSAGE]}
            if len(outbound) <= MAX_INLINE_RELEASE_BYTES:
                body["message"] = outbound.decode("utf-8")
            message_id = self.release_queue.send(body, deduplication_id=payment_id,
                                                 group_id=counterparty(summary, payment_id))
            self.store.set_attributes(payment_id, {"releaseMessageId": message_id,
                                                   "releasedAt": self.clock()}, expected_status="ACSP")
        if report is not None:
            key = self.archive.put(generated_key(payment_id, STATUS_REPORT), report)
            self.store.record_message(payment_id, STATUS_REPORT, key)
        try:
            self.store.transition(payment_id, expected_status="ACSP", expected_version=record["version"],
                                  new_status="ACSC", event_detail={"actor": "release"})
        except StatusConflict as conflict:
            if conflict.current_status != "ACSC":
                raise
        self._publish("payment.released", {**record, "status": "ACSC"})
        return {"paymentId": payment_id, "status": "ACSC"}

    # -- redrive (API) ---------------------------------------------------------------------------

    def redrive(self, client_id: str, payment_id: str) -> dict:
        """Redrive the payment's execution from its failed step; Conflict when the workflow says it
        is not redrivable."""
        record = self._owned(client_id, payment_id)
        try:
            redriven_at = self.workflow.redrive(payment_id)
        except NotRedrivable as refused:
            raise Conflict(f"the execution of payment {payment_id} is not redrivable ({refused.reason})") from None
        return {"paymentId": payment_id, "status": record["status"], "redriveDate": redriven_at}

    # -- read model (API) ------------------------------------------------------------------------

    def get_payment(self, client_id: str, payment_id: str) -> dict:
        record = self._owned(client_id, payment_id)
        facts = record.get("facts") or {}
        view = {
            "paymentId": payment_id,
            "status": record["status"],
            "messageType": record.get("messageType"),
            "uetr": facts.get("uetr"),
            "amount": _text(facts.get("amount") or facts.get("originalAmount")),
            "currency": facts.get("currency") or facts.get("originalCurrency"),
            "receivedAt": record.get("receivedAt"),
            "updatedAt": record.get("updatedAt"),
            "history": [
                {k: v for k, v in (("status", e.get("status")), ("time", e.get("time")),
                                   ("reason", e.get("reason"))) if v is not None}
                for e in self.store.history(payment_id)
            ],
            "messages": sorted((record.get("messages") or {}).keys()),
        }
        if record["status"] in ("RJCT", "CANC") and record.get("reason"):
            view["reason"] = {k: v for k, v in record["reason"].items() if v is not None}
        if record.get("validationErrors"):
            view["errors"] = record["validationErrors"]
        return view

    def get_message(self, client_id: str, payment_id: str, name: str) -> bytes:
        record = self._owned(client_id, payment_id)
        key = (record.get("messages") or {}).get(name)
        if not key:
            raise MessageNotFound(f"payment {payment_id} has no message {name!r}")
        try:
            return self.archive.get(key)
        except MessageNotFound:
            raise MessageNotFound(f"message {name!r} of payment {payment_id} is not archived (yet)") from None

    def _owned(self, client_id: str, payment_id: str) -> dict:
        record = self.store.get(payment_id)
        if record.get("clientId") != client_id:
            raise PaymentNotFound(payment_id)  # another client's payment: not found either
        return record

    # -- operations ------------------------------------------------------------------------------

    def health(self) -> dict:
        try:
            self.store.probe()
            status = "ok"
        except ServiceError:
            status = "unhealthy"
        # which source serves each message id (built-in package@version, added, schema layer): no payment data
        return {"status": status, "region": self.settings.region, "schemas": self.registry.sources()}

    def oldest_pending_age_seconds(self, now: datetime | None = None) -> float:
        """Age of the oldest PDNG payment (0 when none): the pending-age alarm's metric."""
        since = self.store.oldest_in_flight_since("PDNG")
        if since is None:
            return 0.0
        return max(0.0, ((now or parse_utc(self.clock())) - parse_utc(since)).total_seconds())

    # -- internals -------------------------------------------------------------------------------

    def _facts_of(self, record: Mapping[str, Any]):
        """The Facts of a payment: from the record once validated, else from the archived message."""
        if (record.get("facts") or {}).get("paymentId"):
            return iso20022.Facts.from_dict(record["facts"])
        return iso20022.extract_facts(self._parse(self.archive.get(record["archiveKey"])))

    def _publish(self, event_type: str, record: Mapping[str, Any]) -> None:
        """An event for subscribers: ids and status only (details through the API)."""
        if self.events is None:
            return
        payment_id = record["paymentId"]
        status = record["status"]
        event = {"type": event_type, "eventId": f"{payment_id}:{status}", "paymentId": payment_id,
                 "status": status, "messageType": record.get("messageType"), "time": self.clock()}
        reason = record.get("reason")
        if status in ("RJCT", "CANC") and reason:
            event["reasonCode"] = reason.get("code")
        self.events.publish(event, attributes={"eventType": event_type, "status": status})
