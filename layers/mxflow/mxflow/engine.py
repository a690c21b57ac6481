"""The payment engine's answers (issue 12): pacs.002, camt.029 and pacs.004 about payments mxflow
released, from the inbound FIFO queue (EngineAnswersFunction) and from POST /engine/messages (the API),
both through `EngineAnswers.receive`.

Each answer is parsed (hardened), validated (official XSD of its namespace, then the business rules:
its status and reason codes), read (iso20022.read_answer), matched to its payment and applied with one
conditional write that appends its history event and keeps the engine's message on the payment
(`engine.pacs.002`, `engine.camt.029`, `engine.pacs.004`):

- pacs.002 ACSC (or ACCC, ACWC): a payment released and not yet confirmed (ReleaseConfirmation=engine:
  ACSP with its send recorded) -> ACSC with mxflow's pacs.002 ACSC to the original sender; a payment
  whose release outcome is unknown (suspended) -> its send recorded as confirmed by the engine and ACSC
  (docs/flow.md); a payment already ACSC (ReleaseConfirmation=queue) -> the confirmation recorded.
- pacs.002 RJCT: a released payment -> RJCT with the engine's reason and mxflow's pacs.002 RJCT (the
  earlier pacs.002 ACSC, under ReleaseConfirmation=queue, is kept as `pacs.002.ACSC`).
- pacs.002 with any other status (ACSP, PDNG, ...): recorded on the history, the status unchanged.
- camt.029 for a forwarded recall (matched by RslvdCase/Id = the recall's id, else the references):
  CNCL -> the recall CNCL (a payment not yet settled is CANC), RJCR -> the recall RJCR with the engine's
  reason; mxflow's camt.029 to the requester on both items (mxflow/recalls.py).
- pacs.004 for a settled payment -> `returned` {amount, currency, reason} and a history event listing the
  message; a recall pending on it is thereby accepted (CNCL).

Idempotent: an answer's id is the SHA-256 of its bytes; one already on the payment's history changes
nothing (the same answer from the queue an hour later, or posted twice). Anything that cannot be applied
-- malformed, invalid, about several transactions, matching no payment, contradicting the payment's
state, another answer with the same effect -- is kept whole in the suspense list (an item of its own,
GET /engine/suspense, the EngineAnswersSuspended metric's alarm) and raises AnswerSuspended with its ISO
reason; nothing is dropped.
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Any, Mapping

from mxflow import iso20022
from mxflow.errors import AnswerSuspended, InvalidRequest, PaymentNotFound, StatusConflict, TransientError
from mxflow.iso20022 import codes as iso_codes
from mxflow.recalls import is_recall

if TYPE_CHECKING:
    from mxflow.lifecycle import PaymentLifecycle

ENGINE_MESSAGE = "engine.{family}"
SETTLED = frozenset({"ACSC", "ACCC", "ACWC"})
REJECTED = "RJCT"
# ISO reasons (ExternalStatusReason1Code) of an answer kept in suspense
MALFORMED = "FF01"            # not a readable answer
SEVERAL = "AM18"              # about several transactions
NO_PAYMENT = "AG09"           # original payment never received
DUPLICATE = "DUPL"            # another answer with the same effect was applied
CONTRADICTS = "NARR"          # contradicts the payment's state (detail says how)
SUSPENSE_LIMIT_MAX = 100


def answer_id(data: bytes) -> str:
    """An answer's identity: its bytes (the same answer again is the same id)."""
    return "a-" + iso20022.content_hash(data)[:32]


class EngineAnswers:
    """Applies the engine's answers and keeps the suspense list (it uses the lifecycle's ports and helpers)."""

    def __init__(self, lifecycle: "PaymentLifecycle"):
        self.lc = lifecycle
        self.store = lifecycle.store

    # -- receiving -----------------------------------------------------------------------------------

    def receive(self, data: bytes, *, source: str) -> dict:
        """Validate, match and apply one answer (`source`: "api" or "queue"). Returns {"answerId",
        "messageType", "paymentId", "status", "outcome": "applied"|"unchanged"}; raises AnswerSuspended
        after keeping it in the suspense list."""
        ident = answer_id(data)
        limit = self.lc.settings.max_message_bytes
        if len(data) > limit:
            self._suspend(data, source, None, MALFORMED, f"the answer has {len(data)} bytes; the limit is {limit}")
        try:
            parsed = self.lc._parse(data)
        except iso20022.MessageError as error:
            self._suspend(data, source, None, error.issue.code or MALFORMED, f"malformed: {error.issue.message}")
        if iso20022.answer_family(parsed) is None:
            self._suspend(data, source, parsed.message_id, MALFORMED,
                          f"{parsed.message_id} is not an engine answer (pacs.002, camt.029 or pacs.004)")
        result = iso20022.validate_message(data, profile=self.lc.settings.profile, registry=self.lc.registry)
        if not result.valid:
            first = result.errors[0]
            self._suspend(data, source, result.message_type, first.code or MALFORMED,
                          f"invalid: {first.message}" + (f" ({first.path})" if first.path else ""))
        answer = iso20022.read_answer(result.parsed)
        if answer.transactions != 1:
            self._suspend(data, source, answer.message_type, SEVERAL,
                          f"the answer is about {answer.transactions} transactions; one per answer is applied")
        payment = self._match(answer)
        if payment is None:
            self._suspend(data, source, answer.message_type, NO_PAYMENT,
                          "the answer matches no payment released here (UETR, else message, end-to-end and "
                          "instruction ids" + (", case id" if answer.family == "camt.029" else "") + ")")
        for _ in range(3):
            if any(event.get("answerId") == ident for event in payment.get("history") or []):
                # applied before (the queue's redelivery, a second post): only what may have been left
                # undone after that write -- the recall forwarded, the recall item answered -- is done now
                self.lc.recalls.follow_up(payment)
                return self._result(ident, answer, payment, "unchanged")
            try:
                apply = {"pacs.002": self._status_report, "camt.029": self._resolution,
                         "pacs.004": self._payment_return}[answer.family]
                return apply(data, ident, answer, payment, source)
            except StatusConflict:
                payment = self.store.get(payment["paymentId"])  # a concurrent write: look again
        raise TransientError(f"payment {payment['paymentId']} kept changing while an answer was applied")

    @staticmethod
    def _result(ident: str, answer, payment: Mapping[str, Any], outcome: str, status: str | None = None) -> dict:
        return {"answerId": ident, "messageType": answer.message_type, "paymentId": payment["paymentId"],
                "status": status or payment["status"], "outcome": outcome}

    def _match(self, answer) -> dict | None:
        """The payment the answer is about: a camt.029's case (the recall mxflow forwarded), else the
        reference key (ByReference), each candidate checked against the answer's references."""
        if answer.family == "camt.029" and answer.case_id:
            try:
                recall = self.store.get(answer.case_id)
            except PaymentNotFound:
                recall = None
            if recall and is_recall(recall) and recall.get("originalPaymentId"):
                try:
                    return self.store.get(recall["originalPaymentId"])
                except PaymentNotFound:
                    return None
        key = answer.original.key
        for candidate in self.store.find_by_reference(key) if key else []:
            try:
                payment = self.store.get(candidate)
            except PaymentNotFound:
                continue
            if self._refers_to(payment, answer.original):
                return payment
        return None

    @staticmethod
    def _refers_to(payment: Mapping[str, Any], original) -> bool:
        own = payment.get("facts") or {}
        if original.uetr:
            return own.get("uetr") == original.uetr
        return (own.get("msgId") == original.msg_id and own.get("endToEndId") == original.end_to_end_id
                and (original.instr_id is None or own.get("instrId") == original.instr_id))

    # -- the suspense list ----------------------------------------------------------------------------

    def _suspend(self, data: bytes, source: str, message_type: str | None, code: str, reason: str,
                 payment_id: str | None = None):
        """Keep the answer in the suspense list (once per content) and raise AnswerSuspended."""
        suspense_id = "s-" + iso20022.content_hash(data)[:32]
        entry = {"suspenseId": suspense_id, "receivedAt": self.lc.clock(), "region": self.lc.settings.region,
                 "messageType": message_type, "reason": reason[:300], "code": code, "paymentId": payment_id,
                 "source": source, "contentSha256": iso20022.content_hash(data),
                 "message": self.lc._stored(suspense_id, "answer", data)}
        self.store.add_suspense_entry({k: v for k, v in entry.items() if v is not None})
        raise AnswerSuspended(f"kept in suspense: {reason}", code=code, suspense_id=suspense_id, payment_id=payment_id)

    def suspense(self, limit: Any = None, cursor: str | None = None) -> dict:
        """GET /engine/suspense: {"entries": [...], "nextCursor"} of this Region, newest first."""
        try:
            size = 25 if limit in (None, "") else int(limit)
        except (TypeError, ValueError):
            raise InvalidRequest("limit: an integer from 1 to 100") from None
        if not 1 <= size <= SUSPENSE_LIMIT_MAX:
            raise InvalidRequest("limit: an integer from 1 to 100")
        entries, next_cursor = self.store.suspense_entries(self.lc.settings.region, limit=size, cursor=cursor or None)
        return {"entries": entries, "nextCursor": next_cursor}

    # -- applying --------------------------------------------------------------------------------------

    def _message_name(self, payment: Mapping[str, Any], family: str) -> str:
        """engine.<family>, numbered from the second one on (engine.camt.029.2, ...)."""
        name, taken, n = ENGINE_MESSAGE.format(family=family), set(payment.get("messages") or {}), 1
        candidate = name
        while candidate in taken:
            n += 1
            candidate = f"{name}.{n}"
        return candidate

    def _event(self, ident: str, name: str, answer, **extra) -> dict:
        return {"actor": "engine", "answerId": ident, "message": name, **extra}

    def _status_report(self, data: bytes, ident: str, answer, payment: dict, source: str) -> dict:
        lc = self.lc
        payment_id, status = payment["paymentId"], payment["status"]
        release = payment.get("release") or {}
        name = self._message_name(payment, "pacs.002")
        stored = {name: lc._stored(payment_id, name, data)}
        confirmed = any(e.get("event") == "engine-confirmed" for e in payment.get("history") or [])
        if answer.status in SETTLED or answer.status == REJECTED:
            if status in ("RJCT", "CANC") or payment.get("returned"):
                self._suspend(data, source, answer.message_type, CONTRADICTS,
                              f"a pacs.002 {answer.status} for a payment that is {status}", payment_id)
            if status not in ("ACSP", "ACSC") or (status == "ACSP" and not release):
                self._suspend(data, source, answer.message_type, NO_PAYMENT,
                              f"a pacs.002 {answer.status} for a payment that was not released (it is {status})",
                              payment_id)
            if confirmed:
                self._suspend(data, source, answer.message_type,
                              DUPLICATE if answer.status in SETTLED else CONTRADICTS,
                              f"a pacs.002 {answer.status} for a payment the engine has confirmed already", payment_id)
        if answer.status in SETTLED:
            if status == "ACSC":
                lc.store.transition(payment_id, expected_status="ACSC", expected_version=payment["version"],
                                    new_status="ACSC", messages=stored,
                                    event_detail=self._event(ident, name, answer, event="engine-confirmed"))
                return self._result(ident, answer, payment, "applied", "ACSC")
            return self._settle(data, ident, answer, payment, name, stored)
        if answer.status == REJECTED:
            return self._reject(ident, answer, payment, name, stored)
        lc.store.transition(payment_id, expected_status=status, expected_version=payment["version"],
                            new_status=status, messages=stored,
                            event_detail=self._event(ident, name, answer, event=f"engine-{answer.status or 'status'}"))
        return self._result(ident, answer, payment, "applied")

    def _settle(self, data, ident: str, answer, payment: dict, name: str, stored: dict) -> dict:
        """ACSP -> ACSC on the engine's word, with mxflow's pacs.002 ACSC; a suspended payment's send
        recorded as confirmed by the engine (and its outbound message, built again byte for byte)."""
        lc = self.lc
        payment_id = payment["paymentId"]
        release = dict(payment.get("release") or {})
        messages = dict(stored)
        if not release.get("sentAt"):  # the outcome of its release was unknown: the engine has it
            release.update(sentAt=lc.clock(), confirmedBy="engine", messageId=release.get("messageId") or ident)
            from mxflow.lifecycle import OUTBOUND_MESSAGE

            if OUTBOUND_MESSAGE not in (payment.get("messages") or {}):
                messages[OUTBOUND_MESSAGE] = lc._stored(payment_id, OUTBOUND_MESSAGE, lc._outbound(payment))
        report = lc._generated(iso20022.build_status_report(
            lc._facts_of(payment), "ACSC", operator_bic=lc.settings.operator_bic,
            versions=lc.settings.message_versions))
        messages["pacs.002"] = lc._stored(payment_id, "pacs.002", report)
        lc.store.transition(payment_id, expected_status="ACSP", expected_version=payment["version"],
                            new_status="ACSC", set_values={"release": release},
                            remove=("taskToken", "suspense", "suspendedIn", "suspendedAt"), messages=messages,
                            event_detail=self._event(ident, name, answer, event="engine-confirmed"))
        settled = {**payment, "status": "ACSC", "release": release}
        lc._publish("payment.released", settled)
        lc.recalls.forward_pending(lc.store.get(payment_id))
        return self._result(ident, answer, payment, "applied", "ACSC")

    def _reject(self, ident: str, answer, payment: dict, name: str, stored: dict) -> dict:
        """A released payment -> RJCT with the engine's reason and mxflow's pacs.002 RJCT."""
        lc = self.lc
        payment_id = payment["paymentId"]
        code = answer.reason_code if iso_codes.is_status_reason(answer.reason_code) else "NARR"
        info = answer.additional_info or ("Rejected by the payment engine" if code == "NARR" else None)
        reason = {"code": code, "additionalInfo": _short(info)}
        report = lc._generated(iso20022.build_status_report(
            lc._facts_of(payment), "RJCT", reason_code=code, additional_info=_short(info),
            operator_bic=lc.settings.operator_bic, versions=lc.settings.message_versions))
        messages = {**stored, "pacs.002": lc._stored(payment_id, "pacs.002", report)}
        earlier = (payment.get("messages") or {}).get("pacs.002")
        if earlier is not None:
            messages["pacs.002.ACSC"] = earlier  # the report of the release, kept under its status
        lc.store.transition(payment_id, expected_status=payment["status"], expected_version=payment["version"],
                            new_status="RJCT", reason=reason, messages=messages,
                            remove=("taskToken", "suspense", "suspendedIn", "suspendedAt"),
                            event_detail=self._event(ident, name, answer, event="engine-rejected"))
        lc._publish("payment.rejected", {**payment, "status": "RJCT", "reason": reason})
        lc.recalls.forward_pending(lc.store.get(payment_id))  # a recall not forwarded yet ends RJCR ARJT
        return self._result(ident, answer, payment, "applied", "RJCT")

    def _resolution(self, data: bytes, ident: str, answer, payment: dict, source: str) -> dict:
        """camt.029 for the recall forwarded for `payment`."""
        lc = self.lc
        payment_id = payment["paymentId"]
        pending = payment.get("recall") or {}
        if pending.get("status") != "PDCR" or not pending.get("forwardedAt"):
            self._suspend(data, source, answer.message_type, NO_PAYMENT,
                          "a camt.029 for a payment with no recall awaiting the engine's answer", payment_id)
        if answer.case_id and answer.case_id != pending.get("recallId"):
            self._suspend(data, source, answer.message_type, NO_PAYMENT,
                          "the camt.029 resolves another case than the recall awaiting an answer", payment_id)
        name = self._message_name(payment, "camt.029")
        stored = {name: lc._stored(payment_id, name, data)}
        event = self._event(ident, name, answer)
        confirmation = answer.status if answer.status in ("CNCL", "RJCR") else answer.cancellation_status
        if confirmation in ("CNCL", "ACCR"):
            status = "CANC" if payment["status"] == "ACSP" else None  # not settled yet: it is cancelled
            state = lc.recalls.resolve(payment, accepted=True, status=status, extra_messages=stored, event=event)
            if status:
                lc._publish("payment.cancelled", {**payment, "status": "CANC"})
            return self._result(ident, answer, payment, "applied", state["status"])
        if confirmation == "RJCR":
            state = lc.recalls.resolve(payment, accepted=False, code=answer.reason_code,
                                       info=answer.additional_info, extra_messages=stored, event=event)
            return self._result(ident, answer, payment, "applied", state["status"])
        lc.store.transition(payment_id, expected_status=payment["status"], expected_version=payment["version"],
                            new_status=payment["status"], messages=stored,
                            event_detail={**event, "event": f"recall-{answer.status or 'status'}"})
        return self._result(ident, answer, payment, "applied")

    def _payment_return(self, data: bytes, ident: str, answer, payment: dict, source: str) -> dict:
        """pacs.004 for a settled payment: returned, the message on the history; a pending recall accepted."""
        lc = self.lc
        payment_id = payment["paymentId"]
        if payment["status"] != "ACSC":
            self._suspend(data, source, answer.message_type, CONTRADICTS if payment["status"] in ("RJCT", "CANC")
                          else NO_PAYMENT, f"a pacs.004 for a payment that is {payment['status']}, not settled",
                          payment_id)
        if payment.get("returned"):
            self._suspend(data, source, answer.message_type, DUPLICATE, "the payment was returned already", payment_id)
        name = self._message_name(payment, "pacs.004")
        reason = {"code": answer.reason_code, "additionalInfo": _short(answer.additional_info)}
        returned = {"amount": answer.returned_amount, "currency": answer.returned_currency,
                    "reason": {k: v for k, v in reason.items() if v}, "at": lc.clock(), "message": name,
                    **({"returnId": answer.return_id} if answer.return_id else {})}
        stored = {name: lc._stored(payment_id, name, data)}
        event = self._event(ident, name, answer, event="returned", reason=returned["reason"])
        pending = payment.get("recall") or {}
        if pending.get("status") == "PDCR" and pending.get("forwardedAt"):
            # the funds came back: the recall was accepted (its camt.029 may follow, or never come); one
            # write records both
            lc.recalls.resolve(payment, accepted=True, extra_messages=stored, event=event,
                               extra_values={"returned": returned})
        else:
            lc.store.transition(payment_id, expected_status="ACSC", expected_version=payment["version"],
                                new_status="ACSC", set_values={"returned": returned}, messages=stored,
                                event_detail=event)
        lc._publish("payment.returned", {**payment, "status": "ACSC"}, event_id=f"{payment_id}:returned")
        return self._result(ident, answer, payment, "applied", "ACSC")


def _short(text: str | None) -> str | None:
    from mxflow.lifecycle import short_info

    return short_info(text)
