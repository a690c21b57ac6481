"""The payment lifecycle: what the Lambda handlers call (receive, validate, park, decide, time out,
finalise, release, redrive) and the read model of GET /payments/{id}.

Testable without Lambda: every AWS access goes through `PaymentStore`/`MessageArchive` (mxflow.store)
or the Step Functions, SQS and SNS clients given to `PaymentLifecycle` (created once per process
otherwise). Every ISO 20022 concern (parsing, validation, facts, messages, codes) is the library's
(`mxflow.iso20022`); this module never reads XML itself.

Statuses are ISO ExternalPaymentTransactionStatus1Code values: RCVD, ACTC, PDNG, ACSP, ACSC, RJCT, CANC.
Every status change is conditional (expected status and version) and appends a history event.
Steps run by Step Functions are idempotent: a retried or redriven step finds its own earlier writes
and neither repeats a side effect (the release is sent once) nor fails on them.
"""
from __future__ import annotations

import functools
import json
import os
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from decimal import Decimal, InvalidOperation
from typing import Any, Mapping

import jsonschema
from botocore.exceptions import BotoCoreError, ClientError, ConnectionError as BotoConnectionError

from mxflow import iso20022
from mxflow.iso20022 import codes as iso_codes
from mxflow.store import (
    DuplicatePayment,
    MessageArchive,
    MessageNotFound,
    PaymentNotFound,
    PaymentStore,
    StatusConflict,
    aws_client,
    current_region,
    utc_now,
)

SUPPORTED_MESSAGES = ("pacs.008", "pacs.009", "camt.056")
DECISION_STATUS = {"approve": "ACSP", "reject": "RJCT", "cancel": "CANC"}
TIMEOUT_REASON = "AB06"  # ExternalStatusReason1Code AB06: time-out at the instructed agent
DUPLICATE_REASON = "AM05"  # ExternalStatusReason1Code AM05: duplication
RECEIVED_MESSAGE = "received"
STATUS_REPORT = "pacs.002"
CANCELLATION_ANSWER = "camt.029"
OUTBOUND_MESSAGE = "outbound"
MAX_ADDITIONAL_INFO = 105  # pacs.002 AddtlInf is Max105Text
MAX_INLINE_RELEASE_BYTES = 200 * 1024  # SQS allows 256 KiB; larger messages go by S3 key only

_INFO = {"type": "string", "minLength": 1, "maxLength": MAX_ADDITIONAL_INFO}
_CODE = {"type": "string", "minLength": 1, "maxLength": 35}
DECISION_REQUEST_SCHEMAS: dict[str, dict] = {
    "approve": {"type": "object", "properties": {"additionalInfo": _INFO},
                "additionalProperties": False},
    "reject": {"type": "object", "required": ["reasonCode"],
               "properties": {"reasonCode": _CODE, "additionalInfo": _INFO},
               "additionalProperties": False},
    "cancel": {"type": "object", "required": ["reasonCode"],
               "properties": {"reasonCode": _CODE, "additionalInfo": _INFO},
               "additionalProperties": False},
}
_TRANSIENT_CODES = {
    "ThrottlingException", "Throttling", "ThrottledException", "RequestLimitExceeded",
    "ProvisionedThroughputExceededException", "RequestThrottled", "SlowDown", "ServiceUnavailable",
    "InternalError", "InternalServerError", "InternalFailure", "ServiceException",
    "KMSThrottlingException", "TransactionInProgressException", "RequestTimeout",
}


# -- errors ----------------------------------------------------------------------------------------

class PaymentError(Exception):
    """A request the lifecycle refuses; carries what an HTTP problem needs."""

    status = 400
    title = "Bad request"

    def __init__(self, detail: str, *, code: str | None = None):
        super().__init__(detail)
        self.detail = detail
        self.code = code


class UnsupportedMessage(PaymentError):
    title = "Malformed or unsupported message"


class MessageTooLarge(PaymentError):
    status = 413
    title = "Message too large"


class InvalidRequest(PaymentError):
    title = "Invalid request body"


class NotFound(PaymentError):
    status = 404
    title = "Not found"


class Conflict(PaymentError):
    status = 409
    title = "Conflict"


class UnknownReasonCode(PaymentError):
    status = 422
    title = "Unknown reason code"


class TransientError(Exception):
    """A technical failure worth retrying; the state machine retries it by this class name."""


class InvalidState(Exception):
    """A step found the payment in a status its flow never leads to (a defect: fail the execution)."""


def transient_aws_errors(method):
    """Turn throttling, 5xx and connection failures of AWS calls into TransientError (retried by the
    state machine); every other error propagates unchanged."""

    @functools.wraps(method)
    def wrapper(*args, **kwargs):
        try:
            return method(*args, **kwargs)
        except ClientError as error:
            code = error.response.get("Error", {}).get("Code", "")
            http = error.response.get("ResponseMetadata", {}).get("HTTPStatusCode") or 0
            if code in _TRANSIENT_CODES or http >= 500:
                raise TransientError(f"{method.__name__}: {code or http}") from error
            raise
        except BotoConnectionError as error:
            raise TransientError(f"{method.__name__}: {type(error).__name__}") from error

    return wrapper


# -- settings --------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Settings:
    """The functions' configuration (template Globals), read once per process."""

    operator_bic: str = "MXFLGB2LXXX"
    profile: str = "iso"
    decision_timeout_seconds: int = 86400
    auto_approve_max_amount: Decimal | None = None
    max_message_bytes: int = 1048576
    state_machine_arn: str | None = None
    release_queue_url: str | None = None
    events_topic_arn: str | None = None
    message_versions: iso20022.MessageVersions = iso20022.CBPR_PLUS_VERSIONS  # what the builders emit

    @classmethod
    def from_environ(cls, env: Mapping[str, str] = os.environ) -> "Settings":
        auto = (env.get("AUTO_APPROVE_MAX_AMOUNT") or "").strip()
        try:
            auto_amount = Decimal(auto) if auto else None
        except InvalidOperation:
            raise ValueError("AUTO_APPROVE_MAX_AMOUNT must be empty or a decimal amount") from None
        return cls(
            operator_bic=env.get("OPERATOR_BIC") or cls.operator_bic,
            profile=env.get("VALIDATION_PROFILE") or cls.profile,
            decision_timeout_seconds=int(env.get("DECISION_TIMEOUT_SECONDS") or cls.decision_timeout_seconds),
            auto_approve_max_amount=auto_amount,
            max_message_bytes=int(env.get("MAX_MESSAGE_BYTES") or cls.max_message_bytes),
            state_machine_arn=env.get("STATE_MACHINE_ARN") or None,
            release_queue_url=env.get("RELEASE_QUEUE_URL") or None,
            events_topic_arn=env.get("EVENTS_TOPIC_ARN") or None,
            message_versions=iso20022.MessageVersions.from_environ(env),
        )


def execution_arn(state_machine_arn: str, name: str) -> str:
    """arn:...:stateMachine:Name -> arn:...:execution:Name:<name> (the ARN Step Functions gives)."""
    head, sep, machine = state_machine_arn.rpartition(":stateMachine:")
    if not sep:
        raise ValueError("not a state machine ARN")
    return f"{head}:execution:{machine}:{name}"


def _decision_output(decision: Mapping[str, Any]) -> dict:
    """The four keys the state machine reads from a decision (null where not applicable)."""
    return {key: decision.get(key) for key in ("action", "reasonCode", "additionalInfo", "decidedBy")}


def _short(text: str | None) -> str | None:
    if not text:
        return None
    return text if len(text) <= MAX_ADDITIONAL_INFO else text[: MAX_ADDITIONAL_INFO - 1] + "…"


def _text(value: Any) -> str | None:
    return None if value is None else str(value)


def _facts_dict(facts) -> dict:
    return facts.to_dict() if facts is not None else {}


def counterparty(facts: Mapping[str, Any], payment_id: str) -> str:
    """The SQS FIFO message group: the creditor agent (or the next agent) BIC, so ordering holds per
    counterparty and payments to different counterparties flow in parallel; the payment itself when
    the message names no agent."""
    for key in ("creditorAgentBic", "creditorAgent", "instructedAgentBic", "instructedAgent",
                "receiverBic", "receiver"):
        value = facts.get(key)
        if isinstance(value, str) and value:
            return value
    return payment_id


# -- the lifecycle ---------------------------------------------------------------------------------

class PaymentLifecycle:
    """The domain service every function calls."""

    def __init__(self, store: PaymentStore | None = None, archive: MessageArchive | None = None,
                 settings: Settings | None = None, *, stepfunctions=None, sqs=None, sns=None,
                 registry=None):
        self.store = store or PaymentStore()
        self.archive = archive or MessageArchive()
        self.settings = settings or Settings.from_environ()
        self._stepfunctions = stepfunctions
        self._sqs = sqs
        self._sns = sns
        self._registry = registry

    @property
    def stepfunctions(self):
        if self._stepfunctions is None:
            self._stepfunctions = aws_client("stepfunctions")
        return self._stepfunctions

    @property
    def sqs(self):
        if self._sqs is None:
            self._sqs = aws_client("sqs")
        return self._sqs

    @property
    def sns(self):
        if self._sns is None:
            self._sns = aws_client("sns")
        return self._sns

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

        Raises MessageTooLarge, UnsupportedMessage (with the ISO reason), Conflict (AM05) for the
        same identity with other bytes or from another client.
        """
        limit = self.settings.max_message_bytes
        if len(data) > limit:
            raise MessageTooLarge(f"the message has {len(data)} bytes; the limit is {limit}")
        try:
            parsed = iso20022.parse_message(data, limits=iso20022.ParseLimits(max_bytes=limit))
            if parsed.business_area not in SUPPORTED_MESSAGES:
                raise UnsupportedMessage(
                    f"{parsed.message_id} is not accepted here; accepted: {', '.join(SUPPORTED_MESSAGES)}",
                    code="FF01")
            facts = iso20022.extract_facts(parsed)
        except iso20022.MessageError as error:
            raise UnsupportedMessage(error.issue.message, code=error.issue.code) from None
        summary = _facts_dict(facts)
        payment_id = summary["paymentId"]
        content_hash = iso20022.content_hash(data)
        archive_key = self.archive.received_key(payment_id, content_hash)
        record = {
            "paymentId": payment_id,
            "clientId": client_id,
            "status": "RCVD",
            "messageType": parsed.message_id,
            "contentHash": content_hash,
            "archiveKey": archive_key,
            "receivedAt": utc_now(),
            "facts": summary,
            "messages": {RECEIVED_MESSAGE: archive_key},
        }
        created = True
        try:
            record = self.store.create(record, event={"actor": client_id})
        except DuplicatePayment as duplicate:
            existing = duplicate.existing
            if existing.get("clientId") != client_id or existing.get("contentHash") != content_hash:
                raise Conflict(
                    "a payment with the same identity (sender, message id, end-to-end id, UETR) and "
                    "different content exists (DUPL)", code=DUPLICATE_REASON) from None
            record, created = existing, False
            if record["status"] != "RCVD":
                return False, self._receipt(record)
        # New, or an identical resubmission of one whose start may not have completed: archiving the
        # same bytes under the same key and starting the same execution name are both idempotent.
        self.archive.put(archive_key, data)
        self._start(record)
        return created, self._receipt(record)

    def _start(self, record: Mapping[str, Any]) -> None:
        execution_input = {"paymentId": record["paymentId"], "archiveKey": record["archiveKey"],
                           "receivedAt": record["receivedAt"]}
        try:
            self.stepfunctions.start_execution(
                stateMachineArn=self.settings.state_machine_arn, name=record["paymentId"],
                input=json.dumps(execution_input, sort_keys=True))
        except ClientError as error:
            if error.response.get("Error", {}).get("Code") != "ExecutionAlreadyExists":
                raise

    @staticmethod
    def _receipt(record: Mapping[str, Any]) -> dict:
        payment_id = record["paymentId"]
        base = f"/payments/{payment_id}"
        return {
            "paymentId": payment_id,
            "status": "RCVD",  # the status of the submission; GET /payments/{id} gives the current one
            "receivedAt": record["receivedAt"],
            "links": {"self": base, "messages": f"{base}/messages/{RECEIVED_MESSAGE}",
                      "approve": f"{base}/approve", "reject": f"{base}/reject",
                      "cancel": f"{base}/cancel"},
        }

    # -- ValidateAndPersist ----------------------------------------------------------------------

    @transient_aws_errors
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
                        "decidedBy": "policy:auto-approve", "decidedAt": utc_now()}
            version = self.store.transition(payment_id, expected_status="ACTC", expected_version=version,
                                            new_status="ACSP", set_values={"decision": decision},
                                            require_no_decision=True,
                                            event_detail={"actor": "policy:auto-approve"})
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
                self.archive.generated_key(payment_id, STATUS_REPORT), report)
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
        elif status in ("ACSP", "ACSC") and decision.get("decidedBy") == "policy:auto-approve":
            outcome = "auto-approve"
        else:
            outcome = "await"
        return {"outcome": outcome, "status": status,
                "decisionTimeoutSeconds": int(self.settings.decision_timeout_seconds)}

    # -- AwaitDecision (Park) --------------------------------------------------------------------

    @transient_aws_errors
    def park(self, payment_id: str, task_token: str) -> dict:
        """ACTC -> PDNG storing the task token, then the "payment.pending" event. A retried park
        refreshes the token; if a decision was claimed meanwhile it is delivered at once."""
        record = self.store.get(payment_id)
        if record.get("decision"):
            self._deliver(task_token, record["decision"])
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

    def _deliver(self, task_token: str, decision: Mapping[str, Any]) -> bool:
        """SendTaskSuccess with the decision; False when the task is gone (timed out or finished):
        the timeout path then reads the claimed decision and honours it."""
        try:
            self.stepfunctions.send_task_success(taskToken=task_token,
                                                 output=json.dumps(_decision_output(decision)))
            return True
        except ClientError as error:
            if error.response.get("Error", {}).get("Code") in ("TaskTimedOut", "InvalidToken",
                                                               "TaskDoesNotExist"):
                return False
            raise

    # -- decisions (API) -------------------------------------------------------------------------

    def decide(self, client_id: str, payment_id: str, action: str, request: Any) -> dict:
        """Approve, reject or cancel a PDNG payment: one conditional write claims the decision
        (PDNG and no decision yet -> ACSP/RJCT/CANC, history event), then SendTaskSuccess.
        Raises InvalidRequest, UnknownReasonCode (422), NotFound, Conflict (409)."""
        if action not in DECISION_STATUS:
            raise NotFound(f"unknown action {action}")
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
                    "decidedBy": client_id, "decidedAt": utc_now()}
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
            self._deliver(token, decision)
        return {"paymentId": payment_id, "status": new_status, "decision": _decision_output(decision)}

    # -- DecisionTimedOut ------------------------------------------------------------------------

    @transient_aws_errors
    def decision_timeout(self, payment_id: str) -> dict:
        """Claim the timeout (-> RJCT AB06) unless a decision was claimed first; returns the winning
        decision as {action, reasonCode, additionalInfo, decidedBy}."""
        record = self.store.get(payment_id)
        if record.get("decision"):
            return _decision_output(record["decision"])
        if record["status"] not in ("PDNG", "ACTC"):
            raise InvalidState(f"payment {payment_id} is {record['status']}; nothing awaits a decision")
        info = f"No decision within {int(self.settings.decision_timeout_seconds)} seconds"
        decision = {"action": "timeout", "reasonCode": TIMEOUT_REASON, "additionalInfo": info,
                    "decidedBy": "timeout", "decidedAt": utc_now()}
        try:
            self.store.transition(payment_id, expected_status=("PDNG", "ACTC"),
                                  expected_version=record["version"], new_status="RJCT",
                                  set_values={"decision": decision}, remove=("taskToken",),
                                  reason={"code": TIMEOUT_REASON, "additionalInfo": info},
                                  require_no_decision=True, event_detail={"actor": "timeout"})
        except StatusConflict as conflict:
            if conflict.current.get("decision"):
                return _decision_output(conflict.current["decision"])
            raise
        return _decision_output(decision)

    # -- Finalise --------------------------------------------------------------------------------

    @transient_aws_errors
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
            key = self.archive.put(self.archive.generated_key(payment_id, name), message)
            self.store.record_message(payment_id, name, key)
        self._publish("payment.cancelled" if status == "CANC" else "payment.rejected", record)
        return {"paymentId": payment_id, "status": status, "message": name}

    # -- Release ---------------------------------------------------------------------------------

    @transient_aws_errors
    def release(self, payment_id: str) -> dict:
        """ACSP -> ACSC: outbound message archived, sent once to the release queue (FIFO, dedup id =
        paymentId, group = counterparty), pacs.002 ACSC archived, event published. A retried or
        redriven release skips what is already done (the send is marked on the record)."""
        record = self.store.get(payment_id)
        if record["status"] == "ACSC":
            return {"paymentId": payment_id, "status": "ACSC"}
        if record["status"] != "ACSP":
            raise InvalidState(f"payment {payment_id} is {record['status']}; release expects ACSP")
        messages = dict(record.get("messages") or {})
        parsed = iso20022.parse_message(self.archive.get(record["archiveKey"]),
                                        limits=iso20022.ParseLimits(max_bytes=self.settings.max_message_bytes))
        facts = iso20022.extract_facts(parsed)
        summary = _facts_dict(facts)
        outbound = None
        if OUTBOUND_MESSAGE not in messages:
            outbound = iso20022.check_generated(iso20022.build_outbound_message(
                parsed, operator_bic=self.settings.operator_bic, versions=self.settings.message_versions),
                self.registry)
            key = self.archive.put(self.archive.generated_key(payment_id, OUTBOUND_MESSAGE), outbound)
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
            sent = self.sqs.send_message(
                QueueUrl=self.settings.release_queue_url, MessageBody=json.dumps(body),
                MessageDeduplicationId=payment_id, MessageGroupId=counterparty(summary, payment_id))
            self.store.set_attributes(payment_id, {"releaseMessageId": sent["MessageId"],
                                                   "releasedAt": utc_now()}, expected_status="ACSP")
        if report is not None:
            key = self.archive.put(self.archive.generated_key(payment_id, STATUS_REPORT), report)
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
        """RedriveExecution of the payment's execution from its failed step; Conflict (409) when
        Step Functions says it is not redrivable."""
        record = self._owned(client_id, payment_id)
        arn = execution_arn(self.settings.state_machine_arn, payment_id)
        try:
            response = self.stepfunctions.redrive_execution(executionArn=arn)
        except ClientError as error:
            code = error.response.get("Error", {}).get("Code")
            if code in ("ExecutionNotRedrivable", "ExecutionDoesNotExist"):
                raise Conflict(f"the execution of payment {payment_id} is not redrivable ({code})") from None
            raise
        redriven_at = response.get("redriveDate")
        if isinstance(redriven_at, datetime):
            redriven_at = redriven_at.astimezone(timezone.utc).isoformat()
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
            raise NotFound(f"payment {payment_id} has no message {name!r}")
        try:
            return self.archive.get(key)
        except MessageNotFound:
            raise NotFound(f"message {name!r} of payment {payment_id} is not archived (yet)") from None

    def _owned(self, client_id: str, payment_id: str) -> dict:
        try:
            record = self.store.get(payment_id)
        except PaymentNotFound:
            raise NotFound(f"payment {payment_id} not found") from None
        if record.get("clientId") != client_id:
            raise NotFound(f"payment {payment_id} not found")  # another client's payment: 404
        return record

    # -- operations ------------------------------------------------------------------------------

    def health(self) -> dict:
        try:
            self.store.probe()
            status = "ok"
        except (ClientError, BotoCoreError):
            status = "unhealthy"
        # which source serves each message id (built-in package@version, added, schema layer): no payment data
        return {"status": status, "region": current_region(), "schemas": self.registry.sources()}

    def oldest_pending_age_seconds(self, now: datetime | None = None) -> float:
        """Age of the oldest PDNG payment (0 when none): the pending-age alarm's metric."""
        since = self.store.oldest_in_flight_since("PDNG")
        if since is None:
            return 0.0
        now = now or datetime.now(timezone.utc)
        started = datetime.fromisoformat(since.replace("Z", "+00:00"))
        return max(0.0, (now - started).total_seconds())

    # -- internals -------------------------------------------------------------------------------

    def _facts_of(self, record: Mapping[str, Any]):
        """The Facts of a payment: from the record once validated, else from the archived message."""
        if (record.get("facts") or {}).get("paymentId"):
            return iso20022.Facts.from_dict(record["facts"])
        parsed = iso20022.parse_message(self.archive.get(record["archiveKey"]),
                                        limits=iso20022.ParseLimits(max_bytes=self.settings.max_message_bytes))
        return iso20022.extract_facts(parsed)

    def _publish(self, event_type: str, record: Mapping[str, Any]) -> None:
        """An event for subscribers: ids and status only (details through the API)."""
        if not self.settings.events_topic_arn:
            return
        payment_id = record["paymentId"]
        status = record["status"]
        event = {"type": event_type, "eventId": f"{payment_id}:{status}", "paymentId": payment_id,
                 "status": status, "messageType": record.get("messageType"), "time": utc_now()}
        reason = record.get("reason")
        if status in ("RJCT", "CANC") and reason:
            event["reasonCode"] = reason.get("code")
        self.sns.publish(TopicArn=self.settings.events_topic_arn, Message=json.dumps(event),
                         MessageAttributes={"eventType": {"DataType": "String", "StringValue": event_type},
                                            "status": {"DataType": "String", "StringValue": status}})


# -- what the handlers share -----------------------------------------------------------------------

_ID = {"type": "string", "minLength": 1, "maxLength": 80}
_DECISION = {"type": "object", "required": ["action"],
             "properties": {"action": {"enum": ["approve", "reject", "cancel", "timeout"]}}}
TASK_EVENT_SCHEMAS: dict[str, dict] = {
    "validate": {"type": "object", "required": ["paymentId"], "properties": {"paymentId": _ID}},
    "park": {"type": "object", "required": ["paymentId", "taskToken"],
             "properties": {"paymentId": _ID, "taskToken": {"type": "string", "minLength": 1}}},
    "decision_timeout": {"type": "object", "required": ["paymentId"], "properties": {"paymentId": _ID}},
    "finalise": {"type": "object", "required": ["paymentId", "decision"],
                 "properties": {"paymentId": _ID, "decision": _DECISION}},
    "release": {"type": "object", "required": ["paymentId"], "properties": {"paymentId": _ID}},
}


class InvalidTaskEvent(Exception):
    """A function was invoked with an event its task never sends (fails the execution clearly)."""


def task_event(kind: str, event: Any) -> dict:
    """The event of a state-machine task, checked against its JSON Schema."""
    try:
        jsonschema.validate(event, TASK_EVENT_SCHEMAS[kind])
    except jsonschema.ValidationError as error:
        where = "/".join(str(p) for p in error.absolute_path) or "event"
        raise InvalidTaskEvent(f"{kind} event: {where}: {error.message}") from None
    return event


_lifecycles: dict[tuple, PaymentLifecycle] = {}


def default_lifecycle() -> PaymentLifecycle:
    """The lifecycle service for the environment this invocation runs in, created on first use.

    In AWS a process has one function's environment, so this is one service per process. The embedded
    local runtime runs every function (and possibly two Regions) in one process, each invocation with its
    own environment: keying by the configuration gives each function and Region its own service instead
    of whichever ran first."""
    settings = Settings.from_environ()
    key = (settings, current_region(), os.environ.get("PAYMENT_TABLE"), os.environ.get("ARCHIVE_BUCKET"),
           os.environ.get("ARCHIVE_KMS_KEY_ID"))
    lifecycle = _lifecycles.get(key)
    if lifecycle is None:
        lifecycle = _lifecycles.setdefault(key, PaymentLifecycle(settings=settings))
    return lifecycle


default_lifecycle.cache_clear = _lifecycles.clear  # forget the services (tests switching mocked environments)


class PendingAgeSampler:
    """Reads the oldest pending age at most once per `interval_seconds` per process (16 Limit-1
    queries of the InFlightByStatus index), so the metric costs next to nothing per payment."""

    def __init__(self, interval_seconds: float = 60.0):
        self.interval_seconds = interval_seconds
        self._last: float | None = None

    def sample(self, lifecycle: PaymentLifecycle, *, clock=None) -> float | None:
        now = (clock or time.monotonic)()
        if self._last is not None and now - self._last < self.interval_seconds:
            return None
        self._last = now
        try:
            return lifecycle.oldest_pending_age_seconds()
        except (ClientError, BotoCoreError):
            return None  # the metric is best effort: it never fails the step that samples it
