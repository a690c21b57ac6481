"""Facts and the payment id: exact values from real samples, JSON round trip, identity semantics."""
from __future__ import annotations

import json
import re

import pytest

from mxflow.iso20022.facts import Facts, content_hash, extract_facts, payment_id
from mxflow.iso20022.parsing import parse_message

PACS008 = "phoughton-cbpr-ur/2025/cbprplus_pacs008_2025.xml"
PACS009 = "phoughton-cbpr-ur/2026/pacs009_fi_transfer_sample.xml"
EXECUTION_NAME_FORBIDDEN = re.compile(r"[\s<>{}\[\]?*\"#%\\^|~`$&,;:/]")


def test_pacs008_facts(parsed_sample):
    facts = extract_facts(parsed_sample(PACS008))
    assert facts.to_dict() | {"paymentId": None} == {
        "messageType": "pacs.008.001.08", "paymentId": None, "msgId": "pcs008bzmsgidr-1",
        "creationDateTime": "2022-10-20T09:05:00+01:00", "instrId": "pcs008bzmsgidr-1",
        "endToEndId": "E2E04044506271305", "txId": None, "uetr": "174c245f-2682-4291-ad67-2a41e530cd27",
        "amount": "12000000", "currency": "RON", "settlementDate": "2022-10-20", "debtorName": "Debtor Co",
        "creditorName": "Supplier B", "debtorAgentBic": "BRDEROBU", "creditorAgentBic": "WBANRO22",
        "instructingAgentBic": "BRDEROBU", "instructedAgentBic": "BTRLRO22", "chargeBearer": "DEBT",
        "numberOfTransactions": 1, "headerFrom": "BRDEROBU", "headerTo": "BTRLRO22",
        "businessMessageId": "pcs008bzmsgidr-1", "businessService": "swift.cbprplus.02",
        "originalMsgId": None, "originalMsgNmId": None, "originalCreationDateTime": None,
        "originalInstrId": None, "originalEndToEndId": None, "originalTxId": None, "originalUetr": None,
        "originalAmount": None, "originalCurrency": None, "originalSettlementDate": None, "caseId": None,
        "cancellationReason": None, "originalPaymentId": None,
    }
    assert re.fullmatch(r"p-[0-9a-f]{32}", facts.payment_id)


def test_amount_is_the_exact_decimal_text(parsed_sample):
    facts = extract_facts(parsed_sample("phoughton-cbpr-ur/2025/cbprplus_pacs008_sample_bic_mismatch.xml"))
    assert (facts.amount, facts.currency) == ("12345.67", "EUR")
    assert facts.creditor_name.startswith("CdtrNm-") and facts.tx_id == "TxId-7x10x13x16x"


def test_pacs009_facts(parsed_sample):
    facts = extract_facts(parsed_sample(PACS009))
    assert (facts.message_type, facts.msg_id, facts.end_to_end_id, facts.uetr) == (
        "pacs.009.001.08", "P009-20260413-6201", "E2E-04137745", "b2c3d4e5-f6a7-4901-bcde-f12345678901")
    assert (facts.amount, facts.currency, facts.settlement_date) == ("45000000", "JPY", "2026-04-13")
    assert (facts.instructing_agent_bic, facts.instructed_agent_bic) == ("KRMTJP2X", "PLNFSGSX")
    assert facts.charge_bearer is None and facts.debtor_name is None


def test_camt056_facts_link_to_the_payment_they_cancel(camt056_bytes, parsed_sample):
    facts = extract_facts(parse_message(camt056_bytes))
    assert facts.message_type == "camt.056.001.08"
    assert (facts.msg_id, facts.case_id, facts.cancellation_reason) == ("CXL-20261120-0001", "CASE-0001", "DUPL")
    assert (facts.instructing_agent_bic, facts.instructed_agent_bic) == ("BRDEROBU", "BTRLRO22")
    assert (facts.original_msg_id, facts.original_msg_nm_id, facts.original_end_to_end_id) == (
        "pcs008bzmsgidr-1", "pacs.008.001.08", "E2E04044506271305")
    assert facts.original_uetr == "174c245f-2682-4291-ad67-2a41e530cd27"
    assert (facts.original_amount, facts.original_currency, facts.original_settlement_date) == (
        "12000000", "RON", "2026-11-19")
    assert facts.number_of_transactions == 1
    original = extract_facts(parsed_sample(PACS008))
    assert facts.original_payment_id == original.payment_id
    assert facts.payment_id != original.payment_id  # the request is a message of its own


def test_to_dict_is_json_and_round_trips(parsed_sample, camt056_bytes):
    for parsed in (parsed_sample(PACS008), parsed_sample(PACS009), parse_message(camt056_bytes)):
        facts = extract_facts(parsed)
        data = json.loads(json.dumps(facts.to_dict()))
        assert all(re.fullmatch(r"[a-z][A-Za-z]*", key) for key in data)
        assert Facts.from_dict(data) == facts
    assert Facts.from_dict({"messageType": "pacs.008.001.08", "somethingNew": 1}).message_type == "pacs.008.001.08"


def test_payment_id_is_a_valid_execution_name_and_reveals_nothing(parsed_sample):
    facts = extract_facts(parsed_sample(PACS008))
    assert len(facts.payment_id) <= 80 and not EXECUTION_NAME_FORBIDDEN.search(facts.payment_id)
    for value in (facts.msg_id, facts.end_to_end_id, facts.uetr, "BRDEROBU"):
        assert value not in facts.payment_id


def test_same_identity_other_bytes_is_the_same_payment(sample_bytes):
    data = sample_bytes(PACS008)
    reformatted = data.replace(b"\t", b"  ").replace(b"<pacs:Nm>Debtor Co</pacs:Nm>", b"<pacs:Nm>Debtor Company</pacs:Nm>")
    first, second = extract_facts(parse_message(data)), extract_facts(parse_message(reformatted))
    assert first.payment_id == second.payment_id
    assert content_hash(data) != content_hash(reformatted)
    assert content_hash(data) == content_hash(bytes(data))


@pytest.mark.parametrize("old, new", [
    (b"<pacs:MsgId>pcs008bzmsgidr-1<", b"<pacs:MsgId>pcs008bzmsgidr-2<"),
    (b"E2E04044506271305", b"E2E04044506271306"),
    (b"174c245f-2682-4291-ad67-2a41e530cd27", b"174c245f-2682-4291-ad67-2a41e530cd28"),
    (b"<head:BICFI>BRDEROBU<", b"<head:BICFI>RZBRROBU<"),
])
def test_another_identity_is_another_payment(sample_bytes, old, new):
    data = sample_bytes(PACS008)
    assert old in data
    assert extract_facts(parse_message(data)).payment_id != extract_facts(parse_message(data.replace(old, new))).payment_id


def test_sender_without_header_is_the_instructing_agent(sample_bytes):
    """The same payment sent with or without an AppHdr (From = InstgAgt) has the same id; a BIC11
    with branch XXX is the same sender as its BIC8."""
    data = sample_bytes(PACS008)
    with_header = extract_facts(parse_message(data))
    start, end = data.index(b"<pacs:Document"), data.index(b"</pacs:Document>") + len(b"</pacs:Document>")
    bare = extract_facts(parse_message(data[start:end]))
    assert bare.header_from is None and bare.sender_bic == "BRDEROBU"
    assert bare.payment_id == with_header.payment_id
    assert payment_id(message_family="pacs.008", sender="BRDEROBUXXX", msg_id="m", end_to_end_id="e", uetr=None) == \
        payment_id(message_family="pacs.008", sender="BRDEROBU", msg_id="m", end_to_end_id="e", uetr=None)


def test_message_version_does_not_change_the_payment_but_the_family_does():
    common = dict(sender="BRDEROBU", msg_id="m", end_to_end_id="e", uetr=None)
    assert payment_id(message_family="pacs.008", **common) != payment_id(message_family="pacs.009", **common)
    # the canonical encoding keeps parts apart: moving a character between parts changes the id
    assert payment_id(message_family="pacs.008", sender="A", msg_id="bc", end_to_end_id=None, uetr=None) != \
        payment_id(message_family="pacs.008", sender="Ab", msg_id="c", end_to_end_id=None, uetr=None)
