"""Example ISO 20022 messages for the demo, the end-to-end tests and the bench.

A CBPR+-shaped pacs.008.001.08 customer credit transfer with a head.001.001.02 AppHdr in the SWIFT envelope,
built with lxml from the values given (every call with default identifiers gives a new payment: fresh MsgId,
EndToEndId and UETR). The output validates against the official XSDs; the default parties use structurally
valid BICs and IBANs with correct check digits, so it also passes the business rules.

`bulk_credit_transfer` builds the same message with several transactions (profile `iso`: one payment per
transaction), the group header's NbOfTxs and TtlIntrBkSttlmAmt computed (or given, to break them).
"""
from __future__ import annotations

import uuid
from datetime import datetime, timezone
from decimal import Decimal

from lxml import etree

ENVELOPE_NS = "urn:swift:xsd:envelope"
HEAD_NS = "urn:iso:std:iso:20022:tech:xsd:head.001.001.02"
PACS008_NS = "urn:iso:std:iso:20022:tech:xsd:pacs.008.001.08"

DEFAULT_OPERATOR_BIC = "MXFLGB2LXXX"


def _sub(parent, ns, name, text=None, **attrs):
    element = etree.SubElement(parent, f"{{{ns}}}{name}", **attrs)
    if text is not None:
        element.text = text
    return element


def _nested(parent, ns, names, text):
    """parent/names[0]/.../names[-1] with text on the innermost element."""
    for name in names[:-1]:
        parent = _sub(parent, ns, name)
    return _sub(parent, ns, names[-1], text)


def _party(tx, role: str, name: str, town: str, country: str) -> None:
    """The debtor or creditor (`role` Dbtr / Cdtr): name and postal address."""
    party = _sub(tx, PACS008_NS, role)
    _sub(party, PACS008_NS, "Nm", name)
    address = _sub(party, PACS008_NS, "PstlAdr")
    _sub(address, PACS008_NS, "TwnNm", town)
    _sub(address, PACS008_NS, "Ctry", country)


def _agent(parent, ns, name, bic):
    _nested(parent, ns, [name, "FinInstnId", "BICFI"], bic)


def _pacs008_head(sender_bic: str, operator_bic: str, msg_id: str, stamp: str, business_service: str | None = None):
    """The envelope with its AppHdr (from the sender to the operator) and the pacs.008.001.08 up to the group
    header's MsgId and CreDtTm: (envelope, FIToFICstmrCdtTrf, GrpHdr) for the caller to go on with."""
    envelope = etree.Element(f"{{{ENVELOPE_NS}}}Envelope", nsmap={None: ENVELOPE_NS})
    header = _sub(envelope, HEAD_NS, "AppHdr", nsmap={None: HEAD_NS})
    _nested(header, HEAD_NS, ["Fr", "FIId", "FinInstnId", "BICFI"], sender_bic)
    _nested(header, HEAD_NS, ["To", "FIId", "FinInstnId", "BICFI"], operator_bic)
    _sub(header, HEAD_NS, "BizMsgIdr", msg_id)
    _sub(header, HEAD_NS, "MsgDefIdr", "pacs.008.001.08")
    if business_service:
        _sub(header, HEAD_NS, "BizSvc", business_service)
    _sub(header, HEAD_NS, "CreDt", stamp)
    document = _sub(envelope, PACS008_NS, "Document", nsmap={None: PACS008_NS})
    transfer = _sub(document, PACS008_NS, "FIToFICstmrCdtTrf")
    group = _sub(transfer, PACS008_NS, "GrpHdr")
    _sub(group, PACS008_NS, "MsgId", msg_id)
    _sub(group, PACS008_NS, "CreDtTm", stamp)
    return envelope, transfer, group


def credit_transfer(
    *,
    amount: str | Decimal = "1250.00",
    currency: str = "EUR",
    sender_bic: str = "DEUTDEFFXXX",
    operator_bic: str = DEFAULT_OPERATOR_BIC,
    creditor_agent_bic: str = "BNPAFRPPXXX",
    debtor_name: str = "Muster Maschinenbau GmbH",
    debtor_iban: str = "DE89370400440532013000",
    creditor_name: str = "Dupont Fournitures SARL",
    creditor_iban: str = "FR1420041010050500013M02606",
    msg_id: str | None = None,
    end_to_end_id: str | None = None,
    uetr: str | None = None,
    created: datetime | None = None,
    remittance: str = "Invoice 2026-1147",
) -> bytes:
    """A pacs.008.001.08 from `sender_bic` (instructing agent, debtor agent) to `operator_bic` (instructed agent)."""
    created = created or datetime.now(timezone.utc).replace(microsecond=0)
    unique = uuid.uuid4()
    msg_id = msg_id or f"MSG{unique.hex[:20].upper()}"
    end_to_end_id = end_to_end_id or f"E2E{unique.hex[20:32].upper()}"
    uetr = uetr or str(uuid.uuid4())
    stamp = created.isoformat().replace("+00:00", "Z")
    amount_text = str(Decimal(str(amount)))

    envelope, transfer, group = _pacs008_head(sender_bic, operator_bic, msg_id, stamp,
                                              business_service="swift.cbprplus.02")
    _sub(group, PACS008_NS, "NbOfTxs", "1")
    _nested(group, PACS008_NS, ["SttlmInf", "SttlmMtd"], "INDA")

    _transaction(transfer, instr_id=msg_id, end_to_end_id=end_to_end_id, uetr=uetr, amount_text=amount_text,
                 currency=currency, day=created.date().isoformat(), sender_bic=sender_bic, operator_bic=operator_bic,
                 creditor_agent_bic=creditor_agent_bic, debtor_name=debtor_name, debtor_iban=debtor_iban,
                 creditor_name=creditor_name, creditor_iban=creditor_iban, remittance=remittance)
    return etree.tostring(envelope, xml_declaration=True, encoding="UTF-8")


def _transaction(transfer, *, instr_id, end_to_end_id, uetr, amount_text, currency, day, sender_bic, operator_bic,
                 creditor_agent_bic, debtor_name, debtor_iban, creditor_name, creditor_iban, remittance,
                 compact: bool = False) -> None:
    """One CdtTrfTxInf. compact: only what pacs.008.001.08 requires and the payment's identity (the bench's
    10,000-transaction message fits the API's 4 MiB limit)."""
    tx = _sub(transfer, PACS008_NS, "CdtTrfTxInf")
    pmt_id = _sub(tx, PACS008_NS, "PmtId")
    if not compact:
        _sub(pmt_id, PACS008_NS, "InstrId", instr_id)
    _sub(pmt_id, PACS008_NS, "EndToEndId", end_to_end_id)
    _sub(pmt_id, PACS008_NS, "UETR", uetr)
    _sub(tx, PACS008_NS, "IntrBkSttlmAmt", amount_text, Ccy=currency)
    if not compact:
        _sub(tx, PACS008_NS, "IntrBkSttlmDt", day)
        _sub(tx, PACS008_NS, "InstdAmt", amount_text, Ccy=currency)
    _sub(tx, PACS008_NS, "ChrgBr", "SHAR")
    if not compact:
        _agent(tx, PACS008_NS, "InstgAgt", sender_bic)
        _agent(tx, PACS008_NS, "InstdAgt", operator_bic)
        _party(tx, "Dbtr", debtor_name, "Frankfurt am Main", "DE")
        _nested(tx, PACS008_NS, ["DbtrAcct", "Id", "IBAN"], debtor_iban)
    else:
        _nested(tx, PACS008_NS, ["Dbtr", "Nm"], debtor_name[:8])
    _agent(tx, PACS008_NS, "DbtrAgt", sender_bic)
    _agent(tx, PACS008_NS, "CdtrAgt", creditor_agent_bic)
    if not compact:
        _party(tx, "Cdtr", creditor_name, "Paris", "FR")
        _nested(tx, PACS008_NS, ["CdtrAcct", "Id", "IBAN"], creditor_iban)
        _nested(tx, PACS008_NS, ["RmtInf", "Ustrd"], remittance)
    else:
        _nested(tx, PACS008_NS, ["Cdtr", "Nm"], creditor_name[:8])


def bulk_credit_transfer(
    amounts,
    *,
    currency: str = "EUR",
    sender_bic: str = "DEUTDEFFXXX",
    operator_bic: str = DEFAULT_OPERATOR_BIC,
    creditor_agent_bic: str = "BNPAFRPPXXX",
    msg_id: str | None = None,
    created: datetime | None = None,
    number_of_transactions: str | None = None,
    total: str | None = None,
    creditor_ibans: dict | None = None,
    end_to_end_ids: list | None = None,
    uetrs: list | None = None,
    compact: bool = False,
) -> bytes:
    """A pacs.008.001.08 with one CdtTrfTxInf per amount (profile `iso`): the group header carries NbOfTxs
    and TtlIntrBkSttlmAmt (their sum), or `number_of_transactions` / `total` as given. `creditor_ibans`:
    {index: IBAN} for transactions that must fail a rule of their own (a bad check digit is AC01).
    `compact`: the smallest valid transactions (the bench's large messages)."""
    created = created or datetime.now(timezone.utc).replace(microsecond=0)
    unique = uuid.uuid4()
    msg_id = msg_id or f"BLK{unique.hex[:20].upper()}"
    stamp = created.isoformat().replace("+00:00", "Z")
    texts = [str(Decimal(str(amount))) for amount in amounts]

    envelope, transfer, group = _pacs008_head(sender_bic, operator_bic, msg_id, stamp)
    _sub(group, PACS008_NS, "NbOfTxs", number_of_transactions or str(len(texts)))
    _sub(group, PACS008_NS, "TtlIntrBkSttlmAmt", total or str(sum(Decimal(t) for t in texts)), Ccy=currency)
    _sub(group, PACS008_NS, "IntrBkSttlmDt", created.date().isoformat())
    _nested(group, PACS008_NS, ["SttlmInf", "SttlmMtd"], "INDA")
    _agent(group, PACS008_NS, "InstgAgt", sender_bic)
    _agent(group, PACS008_NS, "InstdAgt", operator_bic)
    for index, text in enumerate(texts):
        tx_unique = uuid.uuid4()
        _transaction(transfer, instr_id=f"{msg_id[:28]}-{index:06d}",
                     end_to_end_id=end_to_end_ids[index] if end_to_end_ids else
                     f"E{tx_unique.hex[:11 if compact else 24].upper()}",
                     uetr=uetrs[index] if uetrs else str(tx_unique), amount_text=text, currency=currency,
                     day=created.date().isoformat(), sender_bic=sender_bic, operator_bic=operator_bic,
                     creditor_agent_bic=creditor_agent_bic, debtor_name="Muster Maschinenbau GmbH",
                     debtor_iban="DE89370400440532013000", creditor_name="Dupont Fournitures SARL",
                     creditor_iban=(creditor_ibans or {}).get(index, "FR1420041010050500013M02606"),
                     remittance=f"Invoice 2026-{index + 1:05d}", compact=compact)
    return etree.tostring(envelope, xml_declaration=True, encoding="UTF-8")


def recall(original: bytes, *, reason: str = "DUPL", version: str = "camt.056.001.08", case_id: str | None = None,
           uetr: bool = True, operator_bic: str = DEFAULT_OPERATOR_BIC) -> bytes:
    """A camt.056 from the sender of `original` (a pacs.008 as credit_transfer builds it) to the operator,
    recalling it with `reason` (ExternalCancellationReason1Code): built by mxflow's own builder from the
    original's facts, the sender assigning the case to the operator. `uetr=False` leaves the OrgnlUETR
    out (the recall then names the original by its message, end-to-end and instruction ids only)."""
    from dataclasses import replace

    from mxflow.iso20022 import MessageVersions, build_cancellation_request, extract_facts, parse_message

    facts = extract_facts(parse_message(original))
    if not uetr:
        facts = replace(facts, uetr=None)
    sender = facts.sender_bic
    return build_cancellation_request(
        facts, case_id=case_id or f"CASE{uuid.uuid4().hex[:20].upper()}", case_creator_bic=sender,
        operator_bic=sender, assignee_bic=operator_bic, reason_code=reason,
        versions=MessageVersions(cancellation_request=version))
