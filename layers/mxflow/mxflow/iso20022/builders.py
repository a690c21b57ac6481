"""Message builders: the ISO 20022 messages mxflow sends, built from the original message's own data.

Pure code: facts (or a parsed message) in, bytes out; no AWS. Every output is
`<Envelope xmlns="urn:swift:xsd:envelope">` holding a head.001.001.02 AppHdr then the Document, and
validates against the official XSDs (tests/iso20022/test_builders.py, test_properties.py).

- `build_status_report`: pacs.002.001.10 (FIToFIPmtStsRpt) for one transaction.
- `build_cancellation_answer`: camt.029.001.09 (RsltnOfInvstgtn): CNCL, or RJCR with a reason.
- `build_outbound_message`: the original pacs.008/pacs.009 Document under a new AppHdr.

XML is built with lxml's ElementMaker (values are escaped by lxml, never concatenated into markup);
amounts are the exact decimal strings of the original. Identifiers of generated messages are
deterministic from the payment id and the outcome, so a retried step builds the same message when
it passes the same `now`.
"""
from __future__ import annotations

import copy
import hashlib
import re
from datetime import datetime, timezone

from lxml import etree
from lxml.builder import ElementMaker

from . import codes
from .facts import Facts, agent_bic, extract_facts, scan_message
from .message import ISO_NAMESPACE_PREFIX, ParsedMessage

ENVELOPE_NAMESPACE = "urn:swift:xsd:envelope"
HEADER_MESSAGE = "head.001.001.02"
STATUS_REPORT_MESSAGE = "pacs.002.001.10"
CANCELLATION_ANSWER_MESSAGE = "camt.029.001.09"
MAX_TEXT_35 = 35
MAX_TEXT_105 = 105
MAX_ADDITIONAL_INFO = 2  # AddtlInf lines (Max105Text each) written at most


class BuildError(ValueError):
    """The inputs cannot make a valid message (unknown status or reason, no party to address)."""


def _timestamp(now: datetime | None) -> str:
    """An ISODateTime with an explicit offset and milliseconds (the form CBPR+ requires)."""
    moment = now or datetime.now(timezone.utc)
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=timezone.utc)
    return moment.astimezone(timezone.utc).isoformat(timespec="milliseconds")


def derived_identifier(prefix: str, *parts: object) -> str:
    """A Max35Text identifier: prefix + hex of SHA-256 over the parts (deterministic, no payment data)."""
    digest = hashlib.sha256("\x1f".join("" if p is None else str(p) for p in parts).encode("utf-8")).hexdigest()
    return (prefix + "-" + digest)[:MAX_TEXT_35]


def _additional_info(text: str | None) -> list[str]:
    """Free text as at most MAX_ADDITIONAL_INFO Max105Text lines (longer text is cut)."""
    if not text:
        return []
    text = " ".join(str(text).split())
    return [text[i:i + MAX_TEXT_105] for i in range(0, min(len(text), MAX_TEXT_105 * MAX_ADDITIONAL_INFO), MAX_TEXT_105)]


_BIC_PATTERN = re.compile(r"[A-Z0-9]{4}[A-Z]{2}[A-Z0-9]{2}([A-Z0-9]{3})?\Z")  # BICFIDec2014Identifier


def _check_bic(value: str | None, what: str) -> str:
    if not value:
        raise BuildError(f"no BIC for {what}")
    value = value.strip()
    if not _BIC_PATTERN.match(value):
        raise BuildError(f"the BIC for {what} is not a well-formed BIC")
    return value


def _app_header(*, sender: str, receiver: str, business_message_id: str, message_id: str,
                business_service: str | None, now: datetime | None) -> etree._Element:
    H = ElementMaker(namespace=ISO_NAMESPACE_PREFIX + HEADER_MESSAGE,
                     nsmap={None: ISO_NAMESPACE_PREFIX + HEADER_MESSAGE})
    children = [
        H.Fr(H.FIId(H.FinInstnId(H.BICFI(sender)))),
        H.To(H.FIId(H.FinInstnId(H.BICFI(receiver)))),
        H.BizMsgIdr(business_message_id),
        H.MsgDefIdr(message_id),
    ]
    if business_service:
        children.append(H.BizSvc(business_service))
    children.append(H.CreDt(_timestamp(now)))
    return H.AppHdr(*children)


def _envelope(header: etree._Element, document: etree._Element) -> bytes:
    envelope = etree.Element(f"{{{ENVELOPE_NAMESPACE}}}Envelope", nsmap={None: ENVELOPE_NAMESPACE})
    envelope.append(header)
    envelope.append(document)
    return etree.tostring(envelope, xml_declaration=True, encoding="UTF-8")


def _cbpr_service(facts: Facts) -> str | None:
    """Echo the original's business service when it is a CBPR+ one (swift.cbprplus.NN)."""
    service = facts.business_service
    return service if service and service.startswith("swift.cbprplus") else None


def _counterparty(facts: Facts) -> str:
    """Whom an answer goes to: the original sender (AppHdr From, else the instructing agent)."""
    return _check_bic(facts.sender_bic or facts.debtor_agent_bic, "the original sender (AppHdr From or InstgAgt)")


def _original_references(facts: Facts) -> dict:
    """The references of the transaction an answer is about: a camt.056's original* fields, else the
    payment's own."""
    if facts.message_family == "camt.056":
        return {
            "msg_id": facts.original_msg_id, "msg_nm_id": facts.original_msg_nm_id,
            "cre_dt_tm": facts.original_creation_date_time, "instr_id": facts.original_instr_id,
            "end_to_end_id": facts.original_end_to_end_id, "tx_id": facts.original_tx_id,
            "uetr": facts.original_uetr, "amount": facts.original_amount,
            "currency": facts.original_currency, "settlement_date": facts.original_settlement_date,
        }
    return {
        "msg_id": facts.msg_id, "msg_nm_id": facts.message_type, "cre_dt_tm": facts.creation_date_time,
        "instr_id": facts.instr_id, "end_to_end_id": facts.end_to_end_id, "tx_id": facts.tx_id,
        "uetr": facts.uetr, "amount": facts.amount, "currency": facts.currency,
        "settlement_date": facts.settlement_date,
    }


def _original_group(E, refs: dict) -> list:
    if not refs["msg_id"] or not refs["msg_nm_id"]:
        return []
    parts = [E.OrgnlMsgId(refs["msg_id"]), E.OrgnlMsgNmId(refs["msg_nm_id"])]
    if refs["cre_dt_tm"]:
        parts.append(E.OrgnlCreDtTm(refs["cre_dt_tm"]))
    return [E.OrgnlGrpInf(*parts)]


def _optional(E, name: str, value: str | None) -> list:
    return [getattr(E, name)(value)] if value else []


def build_status_report(facts: Facts, status: str, *, reason_code: str | None = None,
                        additional_info: str | None = None, operator_bic: str,
                        now: datetime | None = None) -> bytes:
    """pacs.002.001.10 reporting `status` (an ExternalPaymentTransactionStatus1Code: ACTC, ACCP, ACSP,
    ACSC, RJCT, PDNG, CANC, ...) on the message of `facts`.

    RJCT requires `reason_code` (an ExternalStatusReason1Code); any status may carry one. The AppHdr
    goes from `operator_bic` to the original sender; MsgId/BizMsgIdr derive from paymentId, status and
    reason, so a retried step builds the same message (given the same `now`).
    """
    if not codes.is_transaction_status(status):
        raise BuildError(f"{status!r} is not an ExternalPaymentTransactionStatus1Code")
    if status == "RJCT" and not reason_code:
        raise BuildError("a RJCT status report needs a reason code")
    if reason_code is not None and not codes.is_status_reason(reason_code):
        raise BuildError(f"{reason_code!r} is not an ExternalStatusReason1Code")
    operator = _check_bic(operator_bic, "the operator")
    receiver = _counterparty(facts)
    refs = _original_references(facts)
    message_id = derived_identifier("S" + status, facts.payment_id, status, reason_code)
    ns = ISO_NAMESPACE_PREFIX + STATUS_REPORT_MESSAGE
    E = ElementMaker(namespace=ns, nsmap={None: ns})
    transaction = [
        *_original_group(E, refs),
        *_optional(E, "OrgnlInstrId", refs["instr_id"]),
        *_optional(E, "OrgnlEndToEndId", refs["end_to_end_id"]),
        *_optional(E, "OrgnlTxId", refs["tx_id"]),
        *_optional(E, "OrgnlUETR", refs["uetr"]),
        E.TxSts(status),
    ]
    info = _additional_info(additional_info)
    if reason_code or info:
        reason = [E.Rsn(E.Cd(reason_code))] if reason_code else []
        transaction.append(E.StsRsnInf(*reason, *[E.AddtlInf(line) for line in info]))
    transaction += [
        E.InstgAgt(E.FinInstnId(E.BICFI(operator))),
        E.InstdAgt(E.FinInstnId(E.BICFI(receiver))),
    ]
    document = E.Document(E.FIToFIPmtStsRpt(
        E.GrpHdr(E.MsgId(message_id), E.CreDtTm(_timestamp(now))),
        E.TxInfAndSts(*transaction),
    ))
    header = _app_header(sender=operator, receiver=receiver, business_message_id=message_id,
                         message_id=STATUS_REPORT_MESSAGE, business_service=_cbpr_service(facts), now=now)
    return _envelope(header, document)


def build_cancellation_answer(facts: Facts, *, accepted: bool, reason_code: str | None = None,
                              additional_info: str | None = None, operator_bic: str,
                              case_id: str | None = None, now: datetime | None = None) -> bytes:
    """camt.029.001.09 answering a cancellation: Sts/Conf CNCL when accepted, RJCR with a
    cancellation-rejection reason (ExternalPaymentCancellationRejection1Code: LEGL, AGNT, CUST,
    NOAS, NOOR, ARDT, ...) when not.

    `facts` are those of the camt.056 (its original* references are used) or of the payment itself
    (a consumer's cancel through the API). When accepted, `reason_code` may name the cancellation
    reason (ExternalCancellationReason1Code); camt.029 has no element for it, so it is only checked.
    The case is `case_id`, else the camt.056's Case/Id, else one derived from the payment id.
    """
    if accepted:
        if reason_code is not None and not (codes.is_cancellation_reason(reason_code)
                                            or codes.is_cancellation_rejection_reason(reason_code)):
            raise BuildError(f"{reason_code!r} is not an ExternalCancellationReason1Code")
    else:
        if not reason_code:
            raise BuildError("a rejected cancellation (RJCR) needs a reason code")
        if not codes.is_cancellation_rejection_reason(reason_code):
            raise BuildError(f"{reason_code!r} is not an ExternalPaymentCancellationRejection1Code")
    operator = _check_bic(operator_bic, "the operator")
    receiver = _counterparty(facts)
    refs = _original_references(facts)
    outcome = "CNCL" if accepted else "RJCR"
    case = (case_id or facts.case_id or derived_identifier("C", facts.payment_id))[:MAX_TEXT_35]
    assignment_id = derived_identifier("A" + outcome, facts.payment_id, outcome, reason_code)
    ns = ISO_NAMESPACE_PREFIX + CANCELLATION_ANSWER_MESSAGE
    E = ElementMaker(namespace=ns, nsmap={None: ns})

    def agent(bic: str):
        return E.Agt(E.FinInstnId(E.BICFI(bic)))

    transaction = [
        *_original_group(E, refs),
        *_optional(E, "OrgnlInstrId", refs["instr_id"]),
        *_optional(E, "OrgnlEndToEndId", refs["end_to_end_id"]),
        *_optional(E, "OrgnlTxId", refs["tx_id"]),
        *_optional(E, "OrgnlUETR", refs["uetr"]),
        E.TxCxlSts("ACCR" if accepted else "RJCR"),
    ]
    info = _additional_info(additional_info)
    if (not accepted) or info:
        reason = [E.Rsn(E.Cd(reason_code))] if not accepted else []
        transaction.append(E.CxlStsRsnInf(*reason, *[E.AddtlInf(line) for line in info]))
    if refs["amount"] and refs["currency"]:
        transaction.append(E.OrgnlIntrBkSttlmAmt(refs["amount"], Ccy=refs["currency"]))
    if refs["settlement_date"]:
        transaction.append(E.OrgnlIntrBkSttlmDt(refs["settlement_date"][:10]))
    document = E.Document(E.RsltnOfInvstgtn(
        E.Assgnmt(E.Id(assignment_id), E.Assgnr(agent(operator)), E.Assgne(agent(receiver)),
                  E.CreDtTm(_timestamp(now))),
        E.RslvdCase(E.Id(case), E.Cretr(agent(receiver))),
        E.Sts(E.Conf(outcome)),
        E.CxlDtls(E.TxInfAndSts(*transaction)),
    ))
    header = _app_header(sender=operator, receiver=receiver, business_message_id=assignment_id,
                         message_id=CANCELLATION_ANSWER_MESSAGE, business_service=_cbpr_service(facts), now=now)
    return _envelope(header, document)


def build_outbound_message(parsed: ParsedMessage, *, operator_bic: str, now: datetime | None = None) -> bytes:
    """The outbound pacs.008/pacs.009: the original Document, unchanged, under a new AppHdr from the
    operator to the instructed agent (else the creditor agent), with a new BizMsgIdr (derived from
    the payment id) and MsgDefIdr = the Document's message id."""
    scan = scan_message(parsed)
    if scan.family not in ("pacs.008", "pacs.009"):
        raise BuildError(f"an outbound message is a pacs.008 or pacs.009, not {parsed.message_id}")
    facts = extract_facts(parsed)
    operator = _check_bic(operator_bic, "the operator")
    receiver = _check_bic(facts.instructed_agent_bic or facts.creditor_agent_bic
                          or agent_bic(scan.tx_children(0).get("Cdtr"), scan.ns),
                          "the next agent (InstdAgt or CdtrAgt)")
    business_message_id = derived_identifier("O", facts.payment_id, operator, receiver)
    header = _app_header(sender=operator, receiver=receiver, business_message_id=business_message_id,
                         message_id=parsed.message_id, business_service=facts.business_service, now=now)
    return _envelope(header, copy.deepcopy(parsed.document))
