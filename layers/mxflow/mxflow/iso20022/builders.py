"""Message builders: the ISO 20022 messages mxflow sends, built from the original message's own data.

Pure code: facts (or a parsed message) in, bytes out; no AWS. Every output is
`<Envelope xmlns="urn:swift:xsd:envelope">` holding an AppHdr then the Document, and validates against
the official XSDs (tests/iso20022/test_builders.py, test_properties.py).

- `build_status_report`: pacs.002 (FIToFIPmtStsRpt) for one transaction.
- `build_group_status_report`: pacs.002 for a message with several transactions (group status and one
  status per transaction).
- `build_cancellation_answer`: camt.029 (RsltnOfInvstgtn): CNCL, RJCR with a reason, or PDCR (pending).
- `build_outbound_message`: the original pacs.008/pacs.009 Document under a new AppHdr.
- `build_cancellation_request`: camt.056 (FIToFIPmtCxlReq): a recall forwarded to the payment engine,
  from the payment's own references.
- `build_payment_return`: pacs.004 (PmtRtr): the funds of a settled payment returned (what a payment
  engine sends; mxflow's engine simulator builds it).
- `check_generated`: a generated message against the schemas installed for it, before it is kept or
  sent; raises SchemaNotInstalled or GeneratedMessageInvalid (named errors: in AWS the step fails and
  the execution can be redriven once the schema is added).

Versions (`MessageVersions`: a setting, CBPR+'s by default: pacs.002.001.10, camt.029.001.09,
head.001.001.02, camt.056.001.08). Every version a builder offers takes the same elements in the same
order, compared in the official XSDs: pacs.002.001.10-.15 only add optional elements (GrpHdr/OrgnlBizQry,
TxInfAndSts/PrcgDt and CdtSttlmKey) to what is built here (.02-.09 lack OrgnlUETR or TxInfAndSts);
camt.029.001.09-.14 differ only in top-level blocks not built here (.10 on drop ModDtls, ClmNonRctDtls,
StmtDtls and CrrctnTx; .08 and earlier lack OrgnlUETR); head.001.001.02-.04 take this AppHdr unchanged
(head.001.001.01's CreDt must be in UTC with Z); camt.056.001.08-.12 share Assgnmt, Case and
Undrlyg/TxInf as built here (.07 and earlier lack OrgnlUETR); pacs.004.001.09-.11, .13 and .14 share GrpHdr
(MsgId, CreDtTm, NbOfTxs, SttlmInf) and TxInf as built here (.14 adds optional PmtTpInf and SttlmTmReq).

XML is built with lxml's ElementMaker (values are escaped by lxml, never concatenated into markup);
amounts are the exact decimal strings of the original. Identifiers of generated messages are
deterministic from the payment id and the outcome, so a retried step builds the same message when
it passes the same `now`.
"""
from __future__ import annotations

import copy
import dataclasses
import hashlib
import re
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Mapping

from lxml import etree
from lxml.builder import ElementMaker

from . import codes
from .facts import Facts, agent_bic, extract_facts, scan_message
from .message import ISO_NAMESPACE_PREFIX, UETR_PATTERN, MessageError, ParsedMessage

ENVELOPE_NAMESPACE = "urn:swift:xsd:envelope"
HEADER_MESSAGE = "head.001.001.02"
STATUS_REPORT_MESSAGE = "pacs.002.001.10"
CANCELLATION_ANSWER_MESSAGE = "camt.029.001.09"
CANCELLATION_REQUEST_MESSAGE = "camt.056.001.08"
# The versions the builders can build (see the module notes).
HEADER_VERSIONS = tuple(f"head.001.001.{v:02d}" for v in range(2, 5))
STATUS_REPORT_VERSIONS = tuple(f"pacs.002.001.{v:02d}" for v in range(10, 16))
CANCELLATION_ANSWER_VERSIONS = tuple(f"camt.029.001.{v:02d}" for v in range(9, 15))
CANCELLATION_REQUEST_VERSIONS = tuple(f"camt.056.001.{v:02d}" for v in range(8, 13))
# pacs.004 is built by a payment engine (mxflow's simulator), never by mxflow itself: no setting.
# pacs.004.001.12 is left out: no official copy of it was at hand to compare.
PAYMENT_RETURN_VERSIONS = ("pacs.004.001.09", "pacs.004.001.10", "pacs.004.001.11", "pacs.004.001.13",
                           "pacs.004.001.14")
MAX_TEXT_35 = 35
MAX_TEXT_105 = 105
MAX_ADDITIONAL_INFO = 2  # AddtlInf lines (Max105Text each) written at most


class BuildError(ValueError):
    """The inputs cannot make a valid message (unknown status or reason, no party to address)."""


@dataclass(frozen=True)
class MessageVersions:
    """The message versions mxflow generates: the pacs.002 status report, the camt.029 answer, the
    head.001 AppHdr of every generated message and the camt.056 of a recall forwarded to the payment
    engine. Defaults: CBPR+'s. Each must be one the builders can build (ValueError otherwise)."""

    status_report: str = STATUS_REPORT_MESSAGE
    cancellation_answer: str = CANCELLATION_ANSWER_MESSAGE
    app_header: str = HEADER_MESSAGE
    cancellation_request: str = CANCELLATION_REQUEST_MESSAGE

    SETTINGS = (  # (field, environment variable, template parameter, versions the builders can build)
        ("status_report", "MXFLOW_STATUS_REPORT_VERSION", "StatusReportVersion", STATUS_REPORT_VERSIONS),
        ("cancellation_answer", "MXFLOW_CANCELLATION_ANSWER_VERSION", "CancellationAnswerVersion",
         CANCELLATION_ANSWER_VERSIONS),
        ("app_header", "MXFLOW_APP_HEADER_VERSION", "AppHeaderVersion", HEADER_VERSIONS),
        ("cancellation_request", "MXFLOW_CANCELLATION_REQUEST_VERSION", "CancellationRequestVersion",
         CANCELLATION_REQUEST_VERSIONS),
    )

    def __post_init__(self):
        for name, variable, _parameter, supported in self.SETTINGS:
            value = getattr(self, name)
            if value not in supported:
                raise ValueError(f"{variable}={value!r}: mxflow builds {', '.join(supported)}")

    @classmethod
    def from_environ(cls, env: Mapping[str, str]) -> "MessageVersions":
        """From MXFLOW_STATUS_REPORT_VERSION, MXFLOW_CANCELLATION_ANSWER_VERSION,
        MXFLOW_APP_HEADER_VERSION and MXFLOW_CANCELLATION_REQUEST_VERSION (empty or absent: the default)."""
        return cls(**{name: env[variable] for name, variable, _p, _s in cls.SETTINGS if env.get(variable)})

    def with_version(self, message_id: str) -> "MessageVersions":
        """These versions with the one of `message_id`'s family set to it (ValueError if it is none
        the builders build)."""
        for name, variable, _parameter, supported in self.SETTINGS:
            if message_id[:8] == supported[0][:8]:
                return dataclasses.replace(self, **{name: message_id})
        families = ", ".join(s[0][:8] for _n, _v, _p, s in self.SETTINGS)
        raise ValueError(f"{message_id!r} is not a version of a message mxflow generates ({families})")

    def message_ids(self) -> tuple[str, ...]:
        return tuple(getattr(self, name) for name, _v, _p, _s in self.SETTINGS)

    def missing(self, registry) -> list[str]:
        """The configured versions `registry` has no schema for."""
        return [m for m in self.message_ids() if not registry.has_schema(m)]

    def installed(self, registry) -> tuple["MessageVersions", dict[str, str]]:
        """These versions, with each one `registry` has no schema for replaced by the newest version of
        its family that it has; also {configured: chosen}. ValueError when a family has none."""
        chosen, changes = self, {}
        for name, variable, _parameter, supported in self.SETTINGS:
            current = getattr(self, name)
            if registry.has_schema(current):
                continue
            available = [m for m in supported if registry.has_schema(m)]
            if not available:
                raise ValueError(f"no schema for any {current[:8]} version mxflow builds "
                                 f"({', '.join(supported)}): add one with `mxflow schemas add PATH`")
            chosen = dataclasses.replace(chosen, **{name: available[-1]})
            changes[current] = available[-1]
        return chosen, changes


CBPR_PLUS_VERSIONS = MessageVersions()


class GeneratedMessageError(Exception):
    """A generated message that must not be kept or sent: it could not be checked against its schema."""


class SchemaNotInstalled(GeneratedMessageError):
    """No schema is installed for a part of a generated message (add it, then redrive)."""

    def __init__(self, message_id: str):
        super().__init__(f"no schema is installed for {message_id}, a version mxflow is configured to generate: "
                         f"add it (mxflow schemas add, or the SchemaLayerArn layer) and redrive, or configure "
                         f"a version that has one")
        self.message_id = message_id


class GeneratedMessageInvalid(GeneratedMessageError):
    """A generated message fails its schema (a defect: nothing is kept or sent)."""


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
                business_service: str | None, now: datetime | None, version: str) -> etree._Element:
    H = ElementMaker(namespace=ISO_NAMESPACE_PREFIX + version, nsmap={None: ISO_NAMESPACE_PREFIX + version})
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


def answer_addressee(facts: Facts) -> str:
    """Whom every answer to a message goes to: the original sender (AppHdr From, else the instructing
    agent), a well-formed BIC. Raises BuildError when the message names none: such a message can get no
    pacs.002 or camt.029, so it is refused where it arrives instead of being accepted unanswerable."""
    return _check_bic(facts.sender_bic or facts.debtor_agent_bic, "the original sender (AppHdr From or InstgAgt)")


_ISO_DATE_TIME = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?(Z|[+-]\d\d:\d\d)?\Z")


def _echoable(key: str, value: str | None) -> str | None:
    """An original reference as an answer may echo it: of its schema type (Max35Text, UUIDv4Identifier,
    ISODateTime), else not echoed at all. A message refused for a malformed reference (say a UETR that
    breaks its pattern) still gets its pacs.002 RJCT, without the reference it got wrong, never with the
    reference altered. Every echoed element is optional in pacs.002 TxInfAndSts and camt.029 TxInfAndSts."""
    if not value:
        return None
    if key == "uetr":
        return value if UETR_PATTERN.match(value) else None
    if key == "cre_dt_tm":
        return value if _ISO_DATE_TIME.match(value) else None
    if key in ("msg_id", "msg_nm_id", "instr_id", "end_to_end_id", "tx_id"):
        return value if len(value) <= MAX_TEXT_35 else None
    return value


def _original_references(facts: Facts) -> dict:
    """The references of the transaction an answer is about (a camt.056's original* fields, else the
    payment's own), each only when it can be echoed as its schema type."""
    return {key: _echoable(key, value) for key, value in _raw_original_references(facts).items()}


def _raw_original_references(facts: Facts) -> dict:
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
                        now: datetime | None = None, versions: MessageVersions = CBPR_PLUS_VERSIONS) -> bytes:
    """pacs.002 (`versions.status_report`, under a `versions.app_header` AppHdr) reporting `status` (an ExternalPaymentTransactionStatus1Code: ACTC, ACCP, ACSP,
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
    receiver = answer_addressee(facts)
    refs = _original_references(facts)
    message_id = derived_identifier("S" + status, facts.payment_id, status, reason_code)
    ns = ISO_NAMESPACE_PREFIX + versions.status_report
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
    return _status_report(E, [E.TxInfAndSts(*transaction)], facts=facts, message_id=message_id, operator=operator,
                          receiver=receiver, now=now, versions=versions)


def _status_report(E, parts: list, *, facts: Facts, message_id: str, operator: str, receiver: str,
                   now: datetime | None, versions: MessageVersions) -> bytes:
    """A pacs.002 of `parts` (after its group header) in its envelope, as the operator's answer."""
    document = E.Document(E.FIToFIPmtStsRpt(E.GrpHdr(E.MsgId(message_id), E.CreDtTm(_timestamp(now))), *parts))
    header = _app_header(sender=operator, receiver=receiver, business_message_id=message_id,
                         message_id=versions.status_report, business_service=_cbpr_service(facts), now=now,
                         version=versions.app_header)
    return _envelope(header, document)


GROUP_STATUSES = ("ACSC", "PART", "RJCT")
GROUP_STATUS_CODES = "ExternalPaymentGroupStatus1Code"


def build_group_status_report(facts: Facts, group_status: str, transactions: list[Mapping], *,
                              number_of_transactions: int, reason_code: str | None = None,
                              additional_info: str | None = None, operator_bic: str, message_key: str,
                              now: datetime | None = None,
                              versions: MessageVersions = CBPR_PLUS_VERSIONS) -> bytes:
    """The pacs.002 of a message with several transactions: OrgnlGrpInfAndSts with the group status
    (ExternalPaymentGroupStatus1Code: ACSC every transaction settled, PART some, RJCT none or the message
    rejected whole) and the number of transactions per status, then one TxInfAndSts per transaction
    (`transactions`: {"status", "reasonCode"?, "instrId"?, "endToEndId"?, "txId"?, "uetr"?}). A message
    rejected whole (`reason_code`, no transactions) carries the reason at group level. `facts`: the
    message's (its MsgId, type, creation time, sender); `message_key` (the message id) makes the report's
    MsgId deterministic."""
    if group_status not in GROUP_STATUSES or group_status not in codes.code_set(GROUP_STATUS_CODES):
        raise BuildError(f"{group_status!r} is not a group status mxflow reports ({', '.join(GROUP_STATUSES)})")
    if group_status == "RJCT" and not transactions and not reason_code:
        raise BuildError("a message rejected whole needs a reason code")
    for code in [reason_code] + [t.get("reasonCode") for t in transactions]:
        if code is not None and not codes.is_status_reason(code):
            raise BuildError(f"{code!r} is not an ExternalStatusReason1Code")
    for transaction in transactions:
        if not codes.is_transaction_status(transaction.get("status")):
            raise BuildError(f"{transaction.get('status')!r} is not an ExternalPaymentTransactionStatus1Code")
    operator = _check_bic(operator_bic, "the operator")
    receiver = answer_addressee(facts)
    message_id = derived_identifier("G" + group_status, message_key, group_status, reason_code)
    ns = ISO_NAMESPACE_PREFIX + versions.status_report
    E = ElementMaker(namespace=ns, nsmap={None: ns})
    group = [E.OrgnlMsgId(_echoable("msg_id", facts.msg_id) or "NOTPROVIDED"), E.OrgnlMsgNmId(facts.message_type)]
    if _echoable("cre_dt_tm", facts.creation_date_time):
        group.append(E.OrgnlCreDtTm(facts.creation_date_time))
    group += [E.OrgnlNbOfTxs(str(number_of_transactions)), E.GrpSts(group_status)]
    info = _additional_info(additional_info)
    if reason_code or info:
        group.append(E.StsRsnInf(*([E.Rsn(E.Cd(reason_code))] if reason_code else []),
                                 *[E.AddtlInf(line) for line in info]))
    per_status: dict[str, int] = {}
    for transaction in transactions:
        per_status[transaction["status"]] = per_status.get(transaction["status"], 0) + 1
    group += [E.NbOfTxsPerSts(E.DtldNbOfTxs(str(count)), E.DtldSts(status)) for status, count in sorted(per_status.items())]
    entries = []
    for transaction in transactions:
        entry = [*_optional(E, "OrgnlInstrId", _echoable("instr_id", transaction.get("instrId"))),
                 *_optional(E, "OrgnlEndToEndId", _echoable("end_to_end_id", transaction.get("endToEndId"))),
                 *_optional(E, "OrgnlTxId", _echoable("tx_id", transaction.get("txId"))),
                 *_optional(E, "OrgnlUETR", _echoable("uetr", transaction.get("uetr"))),
                 E.TxSts(transaction["status"])]
        if transaction.get("reasonCode"):
            entry.append(E.StsRsnInf(E.Rsn(E.Cd(transaction["reasonCode"]))))
        entries.append(E.TxInfAndSts(*entry))
    return _status_report(E, [E.OrgnlGrpInfAndSts(*group), *entries], facts=facts, message_id=message_id,
                          operator=operator, receiver=receiver, now=now, versions=versions)


def build_cancellation_answer(facts: Facts, *, accepted: bool, reason_code: str | None = None,
                              additional_info: str | None = None, operator_bic: str,
                              case_id: str | None = None, now: datetime | None = None,
                              versions: MessageVersions = CBPR_PLUS_VERSIONS, pending: bool = False) -> bytes:
    """camt.029 (`versions.cancellation_answer`, under a `versions.app_header` AppHdr) answering a
    cancellation: Sts/Conf CNCL when accepted, RJCR with a
    cancellation-rejection reason (ExternalPaymentCancellationRejection1Code: LEGL, AGNT, CUST,
    NOAS, NOOR, ARDT, ...) when not, PDCR (TxCxlSts PDCR) when `pending`: the request was passed on and
    its outcome is not known yet (a reason code is optional then, of the same code set).

    `facts` are those of the camt.056 (its original* references are used) or of the payment itself
    (a consumer's cancel through the API). When accepted, `reason_code` may name the cancellation
    reason (ExternalCancellationReason1Code); camt.029 has no element for it, so it is only checked.
    The case is `case_id`, else the camt.056's Case/Id, else one derived from the payment id.
    """
    if pending:
        if accepted:
            raise BuildError("a cancellation answer is accepted or pending, not both")
        if reason_code is not None and not codes.is_cancellation_rejection_reason(reason_code):
            raise BuildError(f"{reason_code!r} is not an ExternalPaymentCancellationRejection1Code")
    elif accepted:
        if reason_code is not None and not (codes.is_cancellation_reason(reason_code)
                                            or codes.is_cancellation_rejection_reason(reason_code)):
            raise BuildError(f"{reason_code!r} is not an ExternalCancellationReason1Code")
    else:
        if not reason_code:
            raise BuildError("a rejected cancellation (RJCR) needs a reason code")
        if not codes.is_cancellation_rejection_reason(reason_code):
            raise BuildError(f"{reason_code!r} is not an ExternalPaymentCancellationRejection1Code")
    operator = _check_bic(operator_bic, "the operator")
    receiver = answer_addressee(facts)
    refs = _original_references(facts)
    outcome = "PDCR" if pending else "CNCL" if accepted else "RJCR"
    case = (case_id or facts.case_id or derived_identifier("C", facts.payment_id))[:MAX_TEXT_35]
    assignment_id = derived_identifier("A" + outcome, facts.payment_id, outcome, reason_code)
    ns = ISO_NAMESPACE_PREFIX + versions.cancellation_answer
    E = ElementMaker(namespace=ns, nsmap={None: ns})

    def agent(bic: str):
        return E.Agt(E.FinInstnId(E.BICFI(bic)))

    transaction = [
        *_original_group(E, refs),
        *_optional(E, "OrgnlInstrId", refs["instr_id"]),
        *_optional(E, "OrgnlEndToEndId", refs["end_to_end_id"]),
        *_optional(E, "OrgnlTxId", refs["tx_id"]),
        *_optional(E, "OrgnlUETR", refs["uetr"]),
        E.TxCxlSts("PDCR" if pending else "ACCR" if accepted else "RJCR"),
    ]
    info = _additional_info(additional_info)
    reason = [E.Rsn(E.Cd(reason_code))] if reason_code and not accepted else []
    if reason or info:
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
                         message_id=versions.cancellation_answer, business_service=_cbpr_service(facts),
                         now=now, version=versions.app_header)
    return _envelope(header, document)


def build_outbound_message(parsed: ParsedMessage, *, operator_bic: str, now: datetime | None = None,
                           versions: MessageVersions = CBPR_PLUS_VERSIONS) -> bytes:
    """The outbound pacs.008/pacs.009: the original Document, unchanged, under a new AppHdr
    (`versions.app_header`) from the
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
                         message_id=parsed.message_id, business_service=facts.business_service, now=now,
                         version=versions.app_header)
    return _envelope(header, copy.deepcopy(parsed.document))


def next_agent(facts: Facts) -> str:
    """Whom a released payment goes to: its instructed agent, else its creditor agent (the addressee of
    the outbound message and of a recall forwarded after it)."""
    return _check_bic(facts.instructed_agent_bic or facts.creditor_agent_bic, "the next agent (InstdAgt or CdtrAgt)")


def build_cancellation_request(facts: Facts, *, case_id: str, case_creator_bic: str, operator_bic: str,
                               reason_code: str | None = None, additional_info: str | None = None,
                               assignee_bic: str | None = None, now: datetime | None = None,
                               versions: MessageVersions = CBPR_PLUS_VERSIONS) -> bytes:
    """camt.056 (`versions.cancellation_request`) recalling the payment of `facts` (a pacs.008 or pacs.009's
    own facts) from the agent it was released to: the operator assigns the case to `assignee_bic`
    (default: `next_agent(facts)`), the case is `case_id` (created by `case_creator_bic`, the party that
    asked for the recall), the transaction is named by the payment's own references (OrgnlGrpInf, InstrId,
    EndToEndId, TxId, UETR, amount and settlement date) and the reason is `reason_code`
    (ExternalCancellationReason1Code). The assignment id derives from the payment id and the case, so a
    retried step builds the same message (given the same `now`)."""
    if facts.message_family not in ("pacs.008", "pacs.009"):
        raise BuildError(f"a recall names a pacs.008 or pacs.009, not {facts.message_type}")
    if reason_code is not None and not codes.is_cancellation_reason(reason_code):
        raise BuildError(f"{reason_code!r} is not an ExternalCancellationReason1Code")
    operator = _check_bic(operator_bic, "the operator")
    assignee = _check_bic(assignee_bic, "the assignee") if assignee_bic else next_agent(facts)
    creator = _check_bic(case_creator_bic, "the case creator")
    refs = _original_references(facts)
    if len(case_id) > MAX_TEXT_35:
        raise BuildError("the case id is longer than 35 characters")
    assignment_id = derived_identifier("R", facts.payment_id, case_id)
    ns = ISO_NAMESPACE_PREFIX + versions.cancellation_request
    E = ElementMaker(namespace=ns, nsmap={None: ns})

    def agent(bic: str):
        return E.Agt(E.FinInstnId(E.BICFI(bic)))

    transaction = [
        *_original_group(E, refs),
        *_optional(E, "OrgnlInstrId", refs["instr_id"]),
        *_optional(E, "OrgnlEndToEndId", refs["end_to_end_id"]),
        *_optional(E, "OrgnlTxId", refs["tx_id"]),
        *_optional(E, "OrgnlUETR", refs["uetr"]),
    ]
    if refs["amount"] and refs["currency"]:
        transaction.append(E.OrgnlIntrBkSttlmAmt(refs["amount"], Ccy=refs["currency"]))
    if refs["settlement_date"]:
        transaction.append(E.OrgnlIntrBkSttlmDt(refs["settlement_date"][:10]))
    info = _additional_info(additional_info)
    if reason_code or info:
        reason = [E.Rsn(E.Cd(reason_code))] if reason_code else []
        transaction.append(E.CxlRsnInf(*reason, *[E.AddtlInf(line) for line in info]))
    document = E.Document(E.FIToFIPmtCxlReq(
        E.Assgnmt(E.Id(assignment_id), E.Assgnr(agent(operator)), E.Assgne(agent(assignee)),
                  E.CreDtTm(_timestamp(now))),
        E.Case(E.Id(case_id), E.Cretr(agent(creator))),
        E.Undrlyg(E.TxInf(*transaction)),
    ))
    header = _app_header(sender=operator, receiver=assignee, business_message_id=assignment_id,
                         message_id=versions.cancellation_request, business_service=_cbpr_service(facts),
                         now=now, version=versions.app_header)
    return _envelope(header, document)


def build_payment_return(facts: Facts, *, reason_code: str, operator_bic: str, amount: str | None = None,
                         additional_info: str | None = None, version: str = PAYMENT_RETURN_VERSIONS[0],
                         app_header: str = HEADER_MESSAGE, now: datetime | None = None) -> bytes:
    """pacs.004 (`version`) returning the funds of the payment of `facts` (the pacs.008 or pacs.009 as
    its sender, the addressee of this return, sent it) from `operator_bic` (the agent returning it): the
    returned amount (`amount`, default the whole settlement amount, in its currency) with a return reason
    (`reason_code`, ExternalReturnReason1Code), the payment named by its own references. MsgId and RtrId
    derive from the payment id and the reason."""
    if version not in PAYMENT_RETURN_VERSIONS:
        raise BuildError(f"pacs.004 {version!r}: the builder builds {', '.join(PAYMENT_RETURN_VERSIONS)}")
    if facts.message_family not in ("pacs.008", "pacs.009"):
        raise BuildError(f"a return names a pacs.008 or pacs.009, not {facts.message_type}")
    if not codes.is_return_reason(reason_code):
        raise BuildError(f"{reason_code!r} is not an ExternalReturnReason1Code")
    refs = _original_references(facts)
    returned = amount or refs["amount"]
    if not returned or not refs["currency"]:
        raise BuildError("a return needs the amount and currency of the payment")
    operator = _check_bic(operator_bic, "the returning agent")
    receiver = answer_addressee(facts)
    message_id = derived_identifier("RT", facts.payment_id, reason_code, returned)
    ns = ISO_NAMESPACE_PREFIX + version
    E = ElementMaker(namespace=ns, nsmap={None: ns})
    moment = _timestamp(now)
    transaction = [
        E.RtrId(message_id),
        *_original_group(E, refs),
        *_optional(E, "OrgnlInstrId", refs["instr_id"]),
        *_optional(E, "OrgnlEndToEndId", refs["end_to_end_id"]),
        *_optional(E, "OrgnlTxId", refs["tx_id"]),
        *_optional(E, "OrgnlUETR", refs["uetr"]),
        E.OrgnlIntrBkSttlmAmt(refs["amount"], Ccy=refs["currency"]) if refs["amount"] else None,
        E.RtrdIntrBkSttlmAmt(returned, Ccy=refs["currency"]),
        E.IntrBkSttlmDt(moment[:10]),
        E.InstgAgt(E.FinInstnId(E.BICFI(operator))),
        E.InstdAgt(E.FinInstnId(E.BICFI(receiver))),
        E.RtrRsnInf(E.Rsn(E.Cd(reason_code)), *[E.AddtlInf(line) for line in _additional_info(additional_info)]),
    ]
    document = E.Document(E.PmtRtr(
        E.GrpHdr(E.MsgId(message_id), E.CreDtTm(moment), E.NbOfTxs("1"), E.SttlmInf(E.SttlmMtd("INDA"))),
        E.TxInf(*[part for part in transaction if part is not None]),
    ))
    header = _app_header(sender=operator, receiver=receiver, business_message_id=message_id, message_id=version,
                         business_service=_cbpr_service(facts), now=now, version=app_header)
    return _envelope(header, document)


def check_generated(message: bytes, registry) -> bytes:
    """`message` (a generated message) when its AppHdr and Document validate against the schemas
    installed in `registry` for their exact namespaces; SchemaNotInstalled when one of them has none,
    GeneratedMessageInvalid when it does not validate. Call it before a generated message is kept or
    sent: nothing leaves unchecked."""
    from .parsing import ParseLimits, parse_message
    from .validation import validate_schema

    try:
        parsed = parse_message(message, limits=ParseLimits(max_bytes=max(len(message), 1)))
    except MessageError as error:
        raise GeneratedMessageInvalid(f"a generated message cannot be parsed: {error}") from None
    parts = [parsed.message_id]
    if parsed.app_header is not None:
        parts.insert(0, parsed.header_namespace.rpartition(":")[2])
    for message_id in parts:
        if not registry.has_schema(message_id):
            raise SchemaNotInstalled(message_id)
    issues = validate_schema(parsed, registry)
    if issues:
        raise GeneratedMessageInvalid(f"a generated {parsed.message_id} fails its schema: "
                                      + "; ".join(f"{i.path}: {i.message}" for i in issues[:3]))
    return message
