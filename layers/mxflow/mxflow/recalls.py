"""Recalls: a camt.056 posted to POST /payments, applied to the payment it asks to cancel (issue 12).

A recall is an item of its own (its own payment id, messageType camt.056), received and validated like
every message; it names its original (`originalPaymentId`) and takes the statuses of its camt.029 answer:

    RCVD -> ACTC (valid) -> CNCL (the original was cancelled)
                         -> RJCR (refused: NOOR no such original, ARJT already rejected, NARR already
                                  cancelled, ARDT already returned, ARPL another recall is pending)
                         -> PDCR (the original was released: the recall is forwarded to the payment engine,
                                  whose camt.029 or pacs.004 then ends it CNCL or RJCR: mxflow/engine.py)

Matching (`match_original`): first the payment id the recall's own facts compute (facts.original_payment_id:
one GetItem, no index), else the payment table's ByReference index by its reference key (the original
UETR, else the original message, end-to-end and instruction ids); a candidate is the original only when
it is a pacs.008/pacs.009 of the same client whose UETR (else those three ids) the recall names.

Applying (`apply`, PaymentFlow's Recall step, idempotent: a retried or duplicated step finds its own
writes and completes what is missing):
- the original waits for a decision (RCVD, ACTC, PDNG, no decision): one conditional write cancels it
  (CANC, its camt.029 CNCL, the decision claimed as `recall:<id>`, so a consumer's decision or the
  decision timeout racing it gets exactly one outcome), its anchor's wait is answered; the recall ends
  CNCL with the same camt.029;
- the original is approved or released (ACSP, ACSC): the recall is recorded on it (`recall` map, a
  history event, the camt.029 PDCR on both items) in a conditional write, then forwarded
  (`forward_pending`) once the release is recorded as sent -- now, or by the Settle step that records
  it, so the engine never gets a recall before the payment it names;
- anything else: camt.029 RJCR with its reason, nothing else changes.

Forwarding: a camt.056 built from the payment's own references (case = the recall's id, created by the
requester), on the release queue in the payment's message group after the payment's own message
(deduplication id = the recall id: the engine's idempotency key for it, as the payment id is for the
payment), then recorded on the payment (`recall.forwardedAt`, message `camt.056`).
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Any, Mapping

from mxflow import iso20022
from mxflow.clock import parse_utc
from mxflow.errors import InvalidState, PaymentNotFound, SendRefused, StatusConflict, TransientError
from mxflow.iso20022 import codes as iso_codes

if TYPE_CHECKING:
    from mxflow.lifecycle import PaymentLifecycle

RECALL_FAMILY = "camt.056"
RECALL_ANSWER = "camt.029"              # the final answer (CNCL or RJCR), on the recall and the original
RECALL_PENDING = "camt.029.pending"     # the PDCR answer, on both items
FORWARDED_RECALL = "camt.056"           # the recall as forwarded to the engine, on the original
RECALL_STATUSES = frozenset({"PDCR", "CNCL", "RJCR"})
RELEASED = frozenset({"ACSP", "ACSC"})
CANCELLABLE = ("RCVD", "ACTC", "PDNG")
# camt.029 RJCR reasons (ExternalPaymentCancellationRejection1Code)
NO_ORIGINAL = "NOOR"          # original transaction never received
ALREADY_REJECTED = "ARJT"     # underlying transaction already rejected
ALREADY_RETURNED = "ARDT"     # already returned
AWAITING_REPLY = "ARPL"       # an earlier recall is still with the engine
NARRATIVE = "NARR"            # the reason in AddtlInf
PENDING_INFO = "Forwarded to the payment engine; its answer follows"
WAITING_INFO = "The payment is being released; the recall follows it to the payment engine"


def is_recall(record: Mapping[str, Any]) -> bool:
    return str(record.get("messageType") or "").startswith(RECALL_FAMILY)


def _same(a: str | None, b: str | None) -> bool:
    return (a or None) == (b or None)


class Recalls:
    """The recall part of the lifecycle (it uses the lifecycle's ports, settings and helpers)."""

    def __init__(self, lifecycle: "PaymentLifecycle"):
        self.lc = lifecycle
        self.store = lifecycle.store

    # -- matching -------------------------------------------------------------------------------------

    def match_original(self, facts, client_id: str) -> str | None:
        """The id of the payment a camt.056 (its Facts) recalls, among `client_id`'s, or None."""
        tried: set[str] = set()
        candidates = [facts.original_payment_id] if facts.original_payment_id else []
        for candidate in candidates:
            tried.add(candidate)
            if self._refers_to(candidate, facts, client_id):
                return candidate
        key = facts.reference_key()
        if key:
            for candidate in self.store.find_by_reference(key):
                if candidate not in tried and self._refers_to(candidate, facts, client_id):
                    return candidate
        return None

    def _refers_to(self, payment_id: str, facts, client_id: str) -> bool:
        try:
            record = self.store.get(payment_id)
        except PaymentNotFound:
            return False
        if record.get("clientId") != client_id or str(record.get("messageType", ""))[:8] not in ("pacs.008", "pacs.009"):
            return False
        own = record.get("facts") or {}
        if facts.original_uetr:
            return own.get("uetr") == facts.original_uetr
        return (bool(facts.original_msg_id) and _same(own.get("msgId"), facts.original_msg_id)
                and _same(own.get("endToEndId"), facts.original_end_to_end_id)
                and (facts.original_instr_id is None or _same(own.get("instrId"), facts.original_instr_id)))

    # -- PaymentFlow: Recall --------------------------------------------------------------------------

    def apply(self, recall_id: str) -> dict:
        """Apply a validated recall to its original (see the module notes). Returns {"paymentId",
        "status", "originalPaymentId"}."""
        record = self.store.get(recall_id)
        if not is_recall(record):
            raise InvalidState(f"payment {recall_id} is a {record.get('messageType')}, not a recall")
        if record["status"] in RECALL_STATUSES:
            return self._outcome(record)
        if record["status"] != "ACTC":
            raise InvalidState(f"recall {recall_id} is {record['status']}; the Recall step follows validation")
        self.lc._fence(record)
        facts = self.lc._facts_of(record)
        original_id = record.get("originalPaymentId") or self.match_original(facts, record["clientId"])
        if original_id is None:
            return self._refuse(record, NO_ORIGINAL, "No payment with the recalled references was received")
        for _ in range(3):  # the original may change between the read and the write: look again
            original = self.store.get(original_id)
            status = original["status"]
            decision = original.get("decision") or {}
            if status == "CANC" and decision.get("decidedBy") == self._decider(recall_id):
                return self._finish(record, original, "CNCL", RECALL_ANSWER)  # cancelled by this recall
            if status in CANCELLABLE and not decision:
                try:
                    self._cancel_original(record, facts, original)
                except StatusConflict:
                    continue
                return self._finish(record, self.store.get(original_id), "CNCL", RECALL_ANSWER)
            if status == "RJCT":
                return self._refuse(record, ALREADY_REJECTED, "The payment was rejected", original_id)
            if status == "CANC":
                return self._refuse(record, NARRATIVE, "The payment was already cancelled", original_id)
            if original.get("returned"):
                return self._refuse(record, ALREADY_RETURNED, "The payment was already returned", original_id)
            if status not in RELEASED:
                raise TransientError(f"payment {original_id} is {status}: a decision is being taken; look again")
            current = original.get("recall") or {}
            if current.get("recallId") != recall_id:
                if current.get("status") == "PDCR":
                    return self._refuse(record, AWAITING_REPLY, "An earlier recall of this payment awaits "
                                        "the payment engine's answer", original_id)
                if current.get("status") == "CNCL":
                    return self._refuse(record, NARRATIVE, "An earlier recall of this payment was accepted",
                                        original_id)
                try:
                    self._record_on_original(record, facts, original)
                except StatusConflict:
                    continue
                original = self.store.get(original_id)
            self.forward_pending(original)
            return self._finish(record, original, "PDCR", RECALL_PENDING)
        raise TransientError(f"payment {original_id} kept changing while recall {recall_id} was applied")

    @staticmethod
    def _decider(recall_id: str) -> str:
        return f"recall:{recall_id}"

    def _outcome(self, record: Mapping[str, Any]) -> dict:
        return {"paymentId": record["paymentId"], "status": record["status"],
                "originalPaymentId": record.get("originalPaymentId")}

    def _answer(self, recall: Mapping[str, Any], facts, *, accepted: bool = False, pending: bool = False,
                reason_code: str | None = None, info: str | None = None) -> bytes:
        """The camt.029 answering a recall (to its requester, naming the recalled payment and the case)."""
        settings = self.lc.settings
        return self.lc._generated(iso20022.build_cancellation_answer(
            facts, accepted=accepted, pending=pending, reason_code=reason_code, additional_info=info,
            operator_bic=settings.operator_bic, case_id=facts.case_id or recall["paymentId"],
            versions=settings.message_versions))

    def _cancel_original(self, recall: Mapping[str, Any], facts, original: Mapping[str, Any]) -> None:
        """One conditional write: the waiting original -> CANC with the camt.029 CNCL, the decision claimed
        by the recall; then its anchor's wait is answered and the event published."""
        recall_id, original_id = recall["paymentId"], original["paymentId"]
        answer = self._answer(recall, facts, accepted=True)
        code = facts.cancellation_reason if iso_codes.is_cancellation_reason(facts.cancellation_reason) else None
        reason = {"code": code, "additionalInfo": f"Recalled by {recall_id}"}
        decision = {"action": "cancel", "reasonCode": code, "additionalInfo": reason["additionalInfo"],
                    "decidedBy": self._decider(recall_id), "decidedAt": self.lc.clock()}
        self.store.transition(original_id, expected_status=original["status"], expected_version=original["version"],
                              new_status="CANC", set_values={"decision": {k: v for k, v in decision.items() if v}},
                              remove=("taskToken",), reason=reason, require_no_decision=True,
                              messages={RECALL_ANSWER: self.lc._stored(original_id, RECALL_ANSWER, answer)},
                              event_detail={"actor": self._decider(recall_id), "event": "recall",
                                            "message": RECALL_ANSWER})
        token = original.get("taskToken")
        if token:
            self.lc._answer_quietly(token, {"paymentId": original_id, "status": "CANC"})
        self.lc._publish("payment.cancelled", {**original, "status": "CANC", "reason": reason})

    def _record_on_original(self, recall: Mapping[str, Any], facts, original: Mapping[str, Any]) -> None:
        """One conditional write on the approved or released original: the recall pending (`recall`), its
        camt.029 PDCR, a history event; the status does not change."""
        original_id = original["paymentId"]
        sent = original["status"] == "ACSC" or (original.get("release") or {}).get("sentAt")
        answer = self._answer(recall, facts, pending=True, info=PENDING_INFO if sent else WAITING_INFO)
        pending = {"recallId": recall["paymentId"], "status": "PDCR", "at": self.lc.clock()}
        if iso_codes.is_cancellation_reason(facts.cancellation_reason):
            pending["reasonCode"] = facts.cancellation_reason
        self.store.transition(original_id, expected_status=original["status"], expected_version=original["version"],
                              new_status=original["status"], set_values={"recall": pending},
                              messages={RECALL_PENDING: self.lc._stored(original_id, RECALL_PENDING, answer)},
                              event_detail={"actor": self._decider(recall["paymentId"]), "event": "recall",
                                            "message": RECALL_PENDING})

    def _finish(self, recall: Mapping[str, Any], original: Mapping[str, Any], status: str, name: str) -> dict:
        """The recall -> `status` with the answer the original holds under `name` (one stored message,
        listed on both items)."""
        recall_id = recall["paymentId"]
        entry = (original.get("messages") or {}).get(name)
        if entry is None:
            raise InvalidState(f"payment {original['paymentId']} holds no {name} for recall {recall_id}")
        try:
            self.store.transition(recall_id, expected_status="ACTC", expected_version=recall["version"],
                                  new_status=status, set_values={"originalPaymentId": original["paymentId"]},
                                  messages={name: entry}, fence=self.lc._fence(recall),
                                  event_detail={"actor": "recall", "message": name})
        except StatusConflict as conflict:
            if conflict.current_status not in RECALL_STATUSES:
                raise TransientError(f"recall {recall_id} changed meanwhile (now {conflict.current_status})") from None
            return self._outcome(conflict.current)
        self.lc._publish("recall.answered", {**recall, "status": status})
        return {"paymentId": recall_id, "status": status, "originalPaymentId": original["paymentId"]}

    def _refuse(self, recall: Mapping[str, Any], code: str, info: str, original_id: str | None = None) -> dict:
        """The recall -> RJCR with its camt.029 RJCR; nothing else changes."""
        recall_id = recall["paymentId"]
        answer = self._answer(recall, self.lc._facts_of(recall), reason_code=code, info=info)
        reason = {"code": code, "additionalInfo": info}
        values = {"originalPaymentId": original_id} if original_id else {}
        try:
            self.store.transition(recall_id, expected_status="ACTC", expected_version=recall["version"],
                                  new_status="RJCR", reason=reason, set_values=values, fence=self.lc._fence(recall),
                                  messages={RECALL_ANSWER: self.lc._stored(recall_id, RECALL_ANSWER, answer)},
                                  event_detail={"actor": "recall", "message": RECALL_ANSWER})
        except StatusConflict as conflict:
            if conflict.current_status not in RECALL_STATUSES:
                raise TransientError(f"recall {recall_id} changed meanwhile (now {conflict.current_status})") from None
            return self._outcome(conflict.current)
        self.lc._publish("recall.answered", {**recall, "status": "RJCR", "reason": reason})
        return {"paymentId": recall_id, "status": "RJCR", "originalPaymentId": original_id}

    # -- forwarding to the engine ---------------------------------------------------------------------

    def forward_pending(self, original: Mapping[str, Any]) -> bool:
        """Forward the recall pending on `original` to the payment engine once its release is recorded as
        sent (ACSC, or release.sentAt); True when it was forwarded now. A payment rejected before its
        recall could be forwarded ends the recall RJCR ARJT. Idempotent (deduplication id = recall id;
        `recall.forwardedAt` recorded after the send)."""
        pending = original.get("recall") or {}
        if pending.get("status") != "PDCR" or pending.get("forwardedAt"):
            return False
        status = original["status"]
        if status in ("RJCT", "CANC"):
            self.resolve(original, accepted=False, code=ALREADY_REJECTED, info="The payment was rejected")
            return False
        if not (status == "ACSC" or (original.get("release") or {}).get("sentAt")):
            return False  # not sent yet: the step that records the send forwards it
        lc, settings = self.lc, self.lc.settings
        original_id, recall_id = original["paymentId"], pending["recallId"]
        requester = lc._facts_of(self.store.get(recall_id))
        facts = lc._facts_of(original)
        message = lc._generated(iso20022.build_cancellation_request(
            facts, case_id=recall_id, case_creator_bic=iso20022.answer_addressee(requester),
            operator_bic=settings.operator_bic, reason_code=pending.get("reasonCode"),
            now=parse_utc(pending["at"]), versions=settings.message_versions))
        body = {"paymentId": original_id, "recallId": recall_id, "uetr": facts.uetr, "endToEndId": facts.end_to_end_id,
                "messageType": settings.message_versions.cancellation_request, "message": message.decode("utf-8")}
        from mxflow.lifecycle import counterparty

        try:
            lc.release_queue.send({k: v for k, v in body.items() if v is not None}, deduplication_id=recall_id,
                                  group_id=counterparty(original.get("facts") or {}, original_id))
        except SendRefused as refused:
            raise TransientError(f"the release queue refused the recall ({refused.detail})") from None
        for _ in range(3):
            try:
                self.store.transition(original_id, expected_status=original["status"],
                                      expected_version=original["version"], new_status=original["status"],
                                      set_values={"recall": {**pending, "forwardedAt": lc.clock()}},
                                      messages={FORWARDED_RECALL: lc._stored(original_id, FORWARDED_RECALL, message)},
                                      event_detail={"actor": "recall", "event": "recall-forwarded",
                                                    "message": FORWARDED_RECALL})
                return True
            except StatusConflict as conflict:
                original = conflict.current
                if (original.get("recall") or {}).get("forwardedAt") or \
                        (original.get("recall") or {}).get("recallId") != recall_id:
                    return True  # another run recorded it
        raise TransientError(f"payment {original_id} kept changing while its recall was forwarded")

    # -- the engine's answer --------------------------------------------------------------------------

    def resolve(self, original: Mapping[str, Any], *, accepted: bool, code: str | None = None,
                info: str | None = None, status: str | None = None, extra_messages: Mapping[str, Any] | None = None,
                event: Mapping[str, Any] | None = None, extra_values: Mapping[str, Any] | None = None) -> dict:
        """End the recall pending on `original`: CNCL (`accepted`) or RJCR with `code`: mxflow's camt.029 to
        the requester on both items, the original's `recall` updated (and its status set to `status` when
        given, e.g. CANC for a payment cancelled before settlement), `extra_messages` and `event` (the
        engine's own answer) recorded on the original in the same write. Returns the original's new record
        state {"paymentId", "status"}. Idempotent: a recall already answered is completed, not answered again."""
        pending = original.get("recall") or {}
        recall_id = pending.get("recallId")
        if not recall_id:
            raise InvalidState(f"payment {original['paymentId']} has no recall")
        recall = self.store.get(recall_id)
        outcome = "CNCL" if accepted else "RJCR"
        original_id = original["paymentId"]
        if pending.get("status") in ("CNCL", "RJCR"):
            self._complete_recall_item(recall, original)
            return {"paymentId": original_id, "status": original["status"]}
        facts = self.lc._facts_of(recall)
        if not accepted and not iso_codes.is_cancellation_rejection_reason(code):
            code, info = NARRATIVE, info or "Refused by the payment engine"
        answer = self._answer(recall, facts, accepted=accepted, reason_code=None if accepted else code, info=info)
        new_status = status or original["status"]
        values: dict[str, Any] = {**(extra_values or {}),
                                  "recall": {**pending, "status": outcome, "answeredAt": self.lc.clock(),
                                             **({"reasonCode": code} if not accepted else {})}}
        reason = None
        if new_status == "CANC" and original["status"] != "CANC":
            reason = {"code": pending.get("reasonCode"), "additionalInfo": f"Recalled by {recall_id}"}
            values["decision"] = {**(original.get("decision") or {}), "cancelledBy": self._decider(recall_id)}
        messages = {RECALL_ANSWER: self.lc._stored(original_id, RECALL_ANSWER, answer), **(extra_messages or {})}
        self.store.transition(original_id, expected_status=original["status"], expected_version=original["version"],
                              new_status=new_status, set_values=values, reason=reason, messages=messages,
                              remove=("taskToken",), event_detail={"actor": "engine", "event": f"recall-{outcome}",
                                                                    **(event or {})})
        updated = self.store.get(original_id)
        self._complete_recall_item(recall, updated)
        return {"paymentId": original_id, "status": new_status}

    def follow_up(self, original: Mapping[str, Any]) -> None:
        """What a write on `original` may have left undone when its step stopped right after it: the
        pending recall forwarded, the answered recall's item ended. Idempotent, cheap when nothing is due."""
        pending = original.get("recall") or {}
        if pending.get("status") == "PDCR":
            self.forward_pending(original)
        elif pending.get("status") in ("CNCL", "RJCR"):
            try:
                recall = self.store.get(pending["recallId"])
            except PaymentNotFound:
                return
            self._complete_recall_item(recall, original)

    def _complete_recall_item(self, recall: Mapping[str, Any], original: Mapping[str, Any]) -> None:
        """The recall item PDCR -> its outcome, with the camt.029 the original holds (idempotent)."""
        outcome = (original.get("recall") or {}).get("status")
        if recall["status"] != "PDCR" or outcome not in ("CNCL", "RJCR"):
            return
        entry = (original.get("messages") or {}).get(RECALL_ANSWER)
        pending = original.get("recall") or {}
        reason = None if outcome == "CNCL" else {"code": pending.get("reasonCode")}
        try:
            self.store.transition(recall["paymentId"], expected_status="PDCR", expected_version=recall["version"],
                                  new_status=outcome, reason=reason, messages={RECALL_ANSWER: entry},
                                  event_detail={"actor": "engine", "message": RECALL_ANSWER})
        except StatusConflict as conflict:
            if conflict.current_status == "PDCR":
                raise TransientError(f"recall {recall['paymentId']} changed meanwhile") from None
            return
        self.lc._publish("recall.answered", {**recall, "status": outcome, "reason": reason})
