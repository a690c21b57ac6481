"""What a payment engine answers about a payment mxflow released: pacs.002 (FIToFIPmtStsRpt), camt.029
(RsltnOfInvstgtn) answering a forwarded recall, pacs.004 (PmtRtr) returning the funds.

Pure code: a parsed message in, an `EngineAnswer` out; no AWS. `read_answer` reads the first transaction
of each (the answer is about one payment; `transactions` says how many there are, and the return leg
refuses an answer about several). The references name the payment the answer is about: its UETR, else
its message id, end-to-end id and instruction id (`reference_key`); a camt.029 also names the case it
resolves (RslvdCase/Id: the id of the recall mxflow forwarded).

Versions: pacs.002.001.03 on, camt.029.001.08 on, pacs.004.001.03 on read the same way (the element
names read here are the same in each; a version that lacks one, OrgnlUETR before pacs.002.001.08 for
example, gives None).
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field

from .facts import agent_bic, child, children_by_name, reference_key, scan_message, text_of
from .message import ParsedMessage

# Document body element -> message family, for the answers read here.
ANSWER_BODIES = {"FIToFIPmtStsRpt": "pacs.002", "RsltnOfInvstgtn": "camt.029", "PmtRtr": "pacs.004"}
ANSWER_FAMILIES = tuple(ANSWER_BODIES.values())
RETURNED = "RTRN"  # the status mxflow records for a pacs.004 (an ExternalPaymentTransactionStatus1Code-like word)


class NotAnAnswer(ValueError):
    """The message is none of the answers a payment engine sends (pacs.002, camt.029, pacs.004)."""


@dataclass(frozen=True)
class OriginalReferences:
    """What an answer says of the transaction it is about (each None when absent)."""

    msg_id: str | None = None
    msg_nm_id: str | None = None
    creation_date_time: str | None = None
    instr_id: str | None = None
    end_to_end_id: str | None = None
    tx_id: str | None = None
    uetr: str | None = None

    @property
    def key(self) -> str | None:
        """The payment table's reference key of the transaction (facts.reference_key)."""
        return reference_key(uetr=self.uetr, msg_id=self.msg_id, end_to_end_id=self.end_to_end_id,
                             instr_id=self.instr_id)


@dataclass(frozen=True)
class EngineAnswer:
    """One answer of a payment engine.

    family: "pacs.002", "camt.029" or "pacs.004"; message_type: the exact message id.
    message_id: GrpHdr/MsgId (camt.029: Assgnmt/Id). sender_bic: AppHdr From, else the instructing
    agent (camt.029: the assigner).
    status: pacs.002 TxSts (the group status when the transaction has none); camt.029 Sts/Conf (CNCL,
    RJCR, PDCR, ...); pacs.004 RETURNED.
    cancellation_status: camt.029 TxCxlSts (ACCR, RJCR, PDCR) when given.
    reason_code / additional_info: StsRsnInf, CxlStsRsnInf or RtrRsnInf (Rsn/Cd, AddtlInf lines joined).
    case_id: camt.029 RslvdCase/Id (the transaction's, else the message's).
    returned_amount / returned_currency / return_id: pacs.004 RtrdIntrBkSttlmAmt and RtrId.
    transactions: how many transactions the answer is about.
    """

    family: str
    message_type: str
    message_id: str | None = None
    sender_bic: str | None = None
    status: str | None = None
    cancellation_status: str | None = None
    reason_code: str | None = None
    additional_info: str | None = None
    case_id: str | None = None
    returned_amount: str | None = None
    returned_currency: str | None = None
    return_id: str | None = None
    transactions: int = 0
    original: OriginalReferences = field(default_factory=OriginalReferences)

    def to_dict(self) -> dict:
        return asdict(self)


def answer_family(parsed: ParsedMessage) -> str | None:
    """The answer family of a parsed message ("pacs.002", "camt.029", "pacs.004"), None for any other."""
    scan = scan_message(parsed)
    if scan.body is None:
        return None
    return ANSWER_BODIES.get(scan.body.tag[len(scan.ns):])


def read_answer(parsed: ParsedMessage) -> EngineAnswer:
    """The answer a parsed message carries; NotAnAnswer for any other message."""
    family = answer_family(parsed)
    if family is None:
        raise NotAnAnswer(f"{parsed.message_id} is not a pacs.002, camt.029 or pacs.004")
    scan = scan_message(parsed)
    ns, n = scan.ns, len(scan.ns)
    body = children_by_name(scan.body, n)
    header_from = text_of(scan.header.from_bic) if scan.header is not None else None
    if family == "pacs.002":
        return _status_report(parsed, body, ns, n, header_from)
    if family == "camt.029":
        return _resolution(parsed, body, ns, n, header_from)
    return _payment_return(parsed, body, ns, n, header_from)


def _original(tx: dict, ns: str, n: int, group: dict | None = None) -> OriginalReferences:
    """The Orgnl* references of a transaction (OrgnlGrpInf, else the message's original group)."""
    original_group = children_by_name(tx.get("OrgnlGrpInf"), n) or group or {}
    return OriginalReferences(
        msg_id=text_of(original_group.get("OrgnlMsgId")), msg_nm_id=text_of(original_group.get("OrgnlMsgNmId")),
        creation_date_time=text_of(original_group.get("OrgnlCreDtTm")),
        instr_id=text_of(tx.get("OrgnlInstrId")), end_to_end_id=text_of(tx.get("OrgnlEndToEndId")),
        tx_id=text_of(tx.get("OrgnlTxId")), uetr=text_of(tx.get("OrgnlUETR")))


def _reason(information, ns: str) -> tuple[str | None, str | None]:
    """(Rsn/Cd, the AddtlInf lines joined) of a StsRsnInf / CxlStsRsnInf / RtrRsnInf element."""
    if information is None:
        return None, None
    code = text_of(child(child(information, ns + "Rsn"), ns + "Cd"))
    lines = [text_of(e) for e in information if e.tag == ns + "AddtlInf"]
    text = " ".join(line for line in lines if line) or None
    return code, text


def _status_report(parsed, body: dict, ns: str, n: int, header_from) -> EngineAnswer:
    group = children_by_name(body.get("GrpHdr"), n)
    transactions = [e for e in parsed.document.iter(ns + "TxInfAndSts")]
    original_group = children_by_name(body.get("OrgnlGrpInfAndSts"), n)
    tx = children_by_name(transactions[0], n) if transactions else {}
    status = text_of(tx.get("TxSts")) or text_of(original_group.get("GrpSts"))
    code, info = _reason(tx.get("StsRsnInf") if tx else original_group.get("StsRsnInf"), ns)
    sender = header_from or agent_bic(tx.get("InstgAgt"), ns) or agent_bic(group.get("InstgAgt"), ns)
    return EngineAnswer(family="pacs.002", message_type=parsed.message_id, message_id=text_of(group.get("MsgId")),
                        sender_bic=sender, status=status, reason_code=code, additional_info=info,
                        transactions=len(transactions), original=_original(tx, ns, n, original_group))


def _resolution(parsed, body: dict, ns: str, n: int, header_from) -> EngineAnswer:
    assignment = children_by_name(body.get("Assgnmt"), n)
    transactions = [e for e in parsed.document.iter(ns + "TxInfAndSts")]
    tx = children_by_name(transactions[0], n) if transactions else {}
    details = children_by_name(body.get("CxlDtls"), n)
    group = children_by_name(details.get("OrgnlGrpInfAndSts"), n)
    code, info = _reason(tx.get("CxlStsRsnInf"), ns)
    case = tx.get("RslvdCase")
    if case is None:
        case = body.get("RslvdCase")
    sender = header_from or agent_bic(child(assignment.get("Assgnr"), ns + "Agt"), ns)
    return EngineAnswer(family="camt.029", message_type=parsed.message_id, message_id=text_of(assignment.get("Id")),
                        sender_bic=sender, status=text_of(child(body.get("Sts"), ns + "Conf")),
                        cancellation_status=text_of(tx.get("TxCxlSts")), reason_code=code, additional_info=info,
                        case_id=text_of(child(case, ns + "Id")), transactions=len(transactions),
                        original=_original(tx, ns, n, group))


def _payment_return(parsed, body: dict, ns: str, n: int, header_from) -> EngineAnswer:
    group = children_by_name(body.get("GrpHdr"), n)
    transactions = [e for e in scan_message(parsed).body if e.tag == ns + "TxInf"]
    tx = children_by_name(transactions[0], n) if transactions else {}
    original_group = children_by_name(body.get("OrgnlGrpInf"), n)
    code, info = _reason(tx.get("RtrRsnInf"), ns)
    amount = tx.get("RtrdIntrBkSttlmAmt")
    sender = header_from or agent_bic(tx.get("InstgAgt"), ns) or agent_bic(group.get("InstgAgt"), ns)
    return EngineAnswer(family="pacs.004", message_type=parsed.message_id, message_id=text_of(group.get("MsgId")),
                        sender_bic=sender, status=RETURNED, reason_code=code, additional_info=info,
                        returned_amount=text_of(amount), returned_currency=None if amount is None else amount.get("Ccy"),
                        return_id=text_of(tx.get("RtrId")), transactions=len(transactions),
                        original=_original(tx, ns, n, original_group))
