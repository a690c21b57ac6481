"""The payment lifecycle (mxflow.lifecycle) on in-memory fakes of its ports and the real ISO 20022
library: every status change, race, idempotency rule and the release claim (docs/flow.md), with no
AWS (tests/app/fakes.py). The AWS adapters have their own tests on moto (test_store.py,
test_aws_adapters.py); the flow itself runs in tests/template and tests/e2e."""
from __future__ import annotations

import base64
import json
import threading
import zlib
from datetime import timedelta
from decimal import Decimal

import pytest
from lxml import etree

from mxflow import iso20022
from mxflow.clock import parse_utc
from mxflow.errors import (
    Conflict,
    DuplicateIdentity,
    InvalidRequest,
    InvalidState,
    MessageNotFound,
    MessageTooLarge,
    NotOwner,
    PaymentNotFound,
    ReleaseOutcomeUnknown,
    SendRefused,
    ServiceError,
    TransientError,
    UnknownReasonCode,
    UnsupportedMessage,
)
from mxflow.lifecycle import INLINE_MESSAGE_BYTES, RELEASE_WINDOW_SECONDS, received_key
from mxflow.ports import Fence
from mxflow.settings import Settings

CLIENT_ID = "bank-a-client"  # the conftest's client (fixture client_id)


def texts(xml: bytes, local_name: str) -> list[str]:
    root = etree.fromstring(xml, etree.XMLParser(resolve_entities=False, no_network=True))
    return [e.text for e in root.iter() if isinstance(e.tag, str) and etree.QName(e).localname == local_name]


def received(lifecycle, message, **kwargs):
    data = message(**kwargs)
    created, receipt = lifecycle.receive(CLIENT_ID, data)
    assert created
    return receipt["paymentId"], data


def pending(lifecycle, message, token="token-1", **kwargs):
    payment_id, data = received(lifecycle, message, **kwargs)
    assert lifecycle.validate(payment_id)["outcome"] == "await"
    assert lifecycle.park(payment_id, token)["action"] == "parked"
    return payment_id


def approved(lifecycle, message, **kwargs):
    payment_id = pending(lifecycle, message, **kwargs)
    lifecycle.decide(CLIENT_ID, payment_id, "approve", {})
    return payment_id


def statuses(lifecycle, payment_id) -> list[str]:
    return [e["status"] for e in lifecycle.store.get(payment_id)["history"]]


def writes(ports, payment_id) -> list[str]:
    return [kind for pid, kind in ports.store.writes if pid == payment_id]


# -- receive ---------------------------------------------------------------------------------------

def test_receive_archives_the_bytes_creates_rcvd_and_starts_the_flow_with_them(lifecycle, ports, message):
    data = message()
    created, receipt = lifecycle.receive(CLIENT_ID, data)
    payment_id = receipt["paymentId"]
    assert created and receipt["status"] == "RCVD"
    record = lifecycle.store.get(payment_id)
    assert record["status"] == "RCVD" and record["clientId"] == CLIENT_ID
    assert record["messageType"] == "pacs.008.001.08"
    assert record["contentSha256"] == iso20022.content_hash(data)
    assert ports.archive.get(received_key(payment_id, record["contentSha256"])) == data
    assert record["messages"] == {}  # the received message is named by its SHA-256; none generated yet
    assert "debtorName" not in record["facts"] and "paymentId" not in record["facts"]  # not kept twice
    assert [e["status"] for e in record["history"]] == ["RCVD"] and record["history"][0]["actor"] == CLIENT_ID
    assert ports.workflow.flows == [{"paymentId": payment_id, "stage": "validate", "decisionTimeoutSeconds": 3600,
                                      "message": base64.b64encode(data).decode()}]


def test_a_large_message_is_not_carried_by_the_flow(lifecycle_with, ports, message):
    big = lifecycle_with(Settings(max_message_bytes=4 * INLINE_MESSAGE_BYTES, region="eu-west-1"))
    data = message(remittance="R" * 140)
    padded = data.replace(b"</Document>", b"<!--" + b"x" * INLINE_MESSAGE_BYTES + b"--></Document>")
    payment_id = big.receive(CLIENT_ID, padded)[1]["paymentId"]
    assert ports.workflow.flows[-1]["message"] is None  # the Validate step reads the archive
    assert big.validate(payment_id)["outcome"] == "await"


def test_same_message_twice_is_the_same_payment(lifecycle, ports, message):
    data = message()
    first = lifecycle.receive(CLIENT_ID, data)
    second = lifecycle.receive(CLIENT_ID, data)
    assert first[0] is True and second[0] is False
    assert first[1] == second[1]
    payment_id = first[1]["paymentId"]
    assert statuses(lifecycle, payment_id) == ["RCVD"]
    # still RCVD: its start may have failed, so it is started again (the steps are idempotent)
    assert [f["stage"] for f in ports.workflow.flows] == ["validate", "validate"]


def test_identical_resubmission_after_progress_returns_same_receipt(lifecycle, ports, message):
    data = message()
    _, receipt = lifecycle.receive(CLIENT_ID, data)
    lifecycle.validate(receipt["paymentId"])
    assert lifecycle.receive(CLIENT_ID, data) == (False, receipt)
    assert len(ports.workflow.flows) == 1  # past RCVD the start is known to have happened


def test_same_identity_with_different_bytes_is_a_conflict(lifecycle, message, api_problems):
    fixed = {"msg_id": "MSGDUPLICATE0001", "end_to_end_id": "E2EDUP0001",
             "uetr": "8a562c67-ca16-48ba-b074-65581be6f011"}
    payment_id, _ = received(lifecycle, message, **fixed)
    with pytest.raises(Conflict) as raised:
        lifecycle.receive(CLIENT_ID, message(amount="999.00", **fixed))
    assert isinstance(raised.value, DuplicateIdentity)
    assert raised.value.code == "AM05" and api_problems(raised.value)[0] == 409
    assert lifecycle.store.get(payment_id)["facts"]["amount"] in ("1250.00", "1250")


def test_same_message_from_another_client_is_a_conflict(lifecycle, message):
    data = message()
    lifecycle.receive(CLIENT_ID, data)
    with pytest.raises(Conflict):
        lifecycle.receive("someone-else", data)


def test_too_large_not_xml_and_unsupported_are_refused(ports, lifecycle, lifecycle_with, message, shared):
    small = lifecycle_with(Settings(max_message_bytes=100))
    with pytest.raises(MessageTooLarge):
        small.receive(CLIENT_ID, message())
    with pytest.raises(UnsupportedMessage) as not_xml:
        lifecycle.receive(CLIENT_ID, b"this is not XML")
    assert not_xml.value.code
    status_report = (shared / "iso20022/samples/phoughton-cbpr-ur/y2026/pacs.002.min.xml").read_bytes()
    with pytest.raises(UnsupportedMessage):
        lifecycle.receive(CLIENT_ID, status_report)
    assert ports.archive.objects == {} and ports.workflow.flows == []  # nothing kept of a refusal


def test_a_message_whose_sender_cannot_be_answered_is_refused(lifecycle, ports, message):
    """No pacs.002 or camt.029 could be addressed to a malformed AppHdr From BIC: refused at receipt
    (FF01), not accepted and then stuck without an answer."""
    data = message().replace(b"<BICFI>DEUTDEFFXXX</BICFI></FinInstnId></FIId></Fr>",
                             b"<BICFI>DEUTbEFFXXX</BICFI></FinInstnId></FIId></Fr>")
    assert b"DEUTbEFFXXX" in data
    with pytest.raises(UnsupportedMessage) as refused:
        lifecycle.receive(CLIENT_ID, data)
    assert refused.value.code == "FF01" and "cannot be answered" in str(refused.value)
    assert ports.archive.objects == {} and ports.workflow.flows == []


def test_hostile_xml_is_refused_without_expansion(lifecycle):
    bomb = (b'<?xml version="1.0"?><!DOCTYPE d [<!ENTITY a "aaaaaaaaaa"><!ENTITY b "&a;&a;&a;&a;">]>'
            b'<Document xmlns="urn:iso:std:iso:20022:tech:xsd:pacs.008.001.08">&b;</Document>')
    with pytest.raises(UnsupportedMessage):
        lifecycle.receive(CLIENT_ID, bomb)


def test_a_wrongly_declared_encoding_is_ff01_as_mxflow_validate_says(lifecycle, ports, message):
    latin1 = message(debtor_name="Zoë Müller").replace("Zoë Müller".encode(), "Zoë Müller".encode("latin-1"))
    assert latin1.startswith(b"<?xml version='1.0' encoding='UTF-8'?>")
    verdict = iso20022.validate_message(latin1)
    assert not verdict.valid and verdict.errors[0].code == "FF01"  # what `mxflow validate` answers
    with pytest.raises(UnsupportedMessage) as refused:
        lifecycle.receive(CLIENT_ID, latin1)
    assert refused.value.code == "FF01"
    assert ports.archive.objects == {}


def test_utf16_with_a_bom_is_accepted_and_kept_byte_for_byte(lifecycle, ports, message):
    text = message(debtor_name="Zoë Müller").decode("utf-8").replace("encoding='UTF-8'", "encoding='UTF-16'")
    data = text.encode("utf-16")  # with its byte order mark
    assert data[:2] in (b"\xff\xfe", b"\xfe\xff")
    payment_id = lifecycle.receive(CLIENT_ID, data)[1]["paymentId"]
    record = lifecycle.store.get(payment_id)
    assert ports.archive.get(received_key(payment_id, record["contentSha256"])) == data
    assert lifecycle.get_message(CLIENT_ID, payment_id, "received") == data
    assert lifecycle.get_payment(CLIENT_ID, payment_id)["contentSha256"] == iso20022.content_hash(data)
    assert lifecycle.validate(payment_id, data)["outcome"] == "await"
    assert lifecycle.store.get(payment_id)["status"] == "ACTC"
    kept = iso20022.extract_facts(iso20022.parse_message(lifecycle.get_message(CLIENT_ID, payment_id, "received")))
    assert kept.debtor_name == "Zoë Müller"


# -- validate --------------------------------------------------------------------------------------

def test_valid_message_becomes_actc_and_awaits(lifecycle, ports, message):
    payment_id, data = received(lifecycle, message)
    ports.archive.objects.clear()  # the flow carries the bytes: the archive is not read
    result = lifecycle.validate(payment_id, data)
    assert result == {"outcome": "await", "status": "ACTC", "decisionTimeoutSeconds": 3600}
    record = lifecycle.store.get(payment_id)
    assert record["facts"]["uetr"] and record["facts"]["endToEndId"]
    assert None not in record["facts"].values()  # the item keeps no empty facts
    # a retried step finds its own write and answers the same
    assert lifecycle.validate(payment_id) == result
    assert statuses(lifecycle, payment_id) == ["RCVD", "ACTC"]


def test_the_carried_message_must_be_the_one_received(lifecycle, message):
    payment_id, _ = received(lifecycle, message)
    with pytest.raises(InvalidState, match="not the one received"):
        lifecycle.validate(payment_id, message())
    assert statuses(lifecycle, payment_id) == ["RCVD"]


def test_invalid_message_is_rejected_with_its_pacs002_in_the_same_write(lifecycle, ports, message):
    # Wrong currency precision: JPY has no minor units (ISO reason CH20 or another amount code).
    payment_id, _ = received(lifecycle, message, amount="100.50", currency="JPY")
    result = lifecycle.validate(payment_id)
    assert result["outcome"] == "invalid" and result["status"] == "RJCT"
    record = lifecycle.store.get(payment_id)
    assert writes(ports, payment_id) == ["create", "transition:RJCT"]
    reason_code = record["reason"]["code"]
    assert iso20022.codes.is_status_reason(reason_code)
    report = lifecycle.get_message(CLIENT_ID, payment_id, "pacs.002")
    assert zlib.decompress(record["messages"]["pacs.002"]["z"]) == report  # kept with the payment, compressed
    assert texts(report, "TxSts") == ["RJCT"] and reason_code in texts(report, "Cd")
    view = lifecycle.get_payment(CLIENT_ID, payment_id)
    assert view["reason"]["code"] == reason_code and view["errors"]
    assert [h["status"] for h in view["history"]] == ["RCVD", "RJCT"]
    assert [e["reasonCode"] for e in ports.events.of_type("payment.rejected")] == [reason_code]
    assert lifecycle.validate(payment_id) == result  # retried: same answer, no new write
    assert writes(ports, payment_id) == ["create", "transition:RJCT"]
    assert len(ports.events.of_type("payment.rejected")) == 2  # the event again: at least once, same id
    assert len({e["eventId"] for e in ports.events.of_type("payment.rejected")}) == 1


def test_auto_approve_policy_writes_actc_and_acsp_at_once_for_small_amounts(lifecycle_with, ports, message):
    policy = lifecycle_with(Settings.from_environ({"AUTO_APPROVE_MAX_AMOUNT": "500",
                                                    "DECISION_TIMEOUT_SECONDS": "3600",
                                                    "AWS_REGION": "eu-west-1"}))
    assert policy.settings.auto_approve_max_amount == Decimal("500")
    small, _ = received(policy, message, amount="499.99")
    large, _ = received(policy, message, amount="500.01")
    assert policy.validate(small)["outcome"] == "auto-approve"
    record = policy.store.get(small)
    assert record["status"] == "ACSP" and record["decision"]["decidedBy"] == "policy:auto-approve"
    assert writes(ports, small) == ["create", "transition:ACSP"]  # one write for ACTC and ACSP
    assert policy.validate(large)["outcome"] == "await"
    assert policy.validate(small)["outcome"] == "auto-approve"  # retry: same answer
    assert statuses(policy, small) == ["RCVD", "ACTC", "ACSP"]


def test_two_validations_of_one_payment_write_once_and_answer_alike(lifecycle, ports, message):
    """Express starts are at least once: a duplicate run races the first on the conditional write."""
    payment_id, data = received(lifecycle, message)
    barrier = threading.Barrier(2)
    answers = []

    def run():
        barrier.wait()
        answers.append(lifecycle.validate(payment_id, data))

    threads = [threading.Thread(target=run) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=30)
    assert len(answers) == 2 and answers[0] == answers[1] and answers[0]["status"] == "ACTC"
    assert statuses(lifecycle, payment_id) == ["RCVD", "ACTC"]


def test_a_step_of_a_region_that_does_not_own_the_payment_writes_nothing(lifecycle, ports, message):
    payment_id, _ = received(lifecycle, message)
    ports.store._records[payment_id]["ownerRegion"] = "us-west-2"  # taken over by the other Region
    with pytest.raises(NotOwner):
        lifecycle.validate(payment_id)
    assert statuses(lifecycle, payment_id) == ["RCVD"]


# -- the anchor's wait (park) and decisions --------------------------------------------------------

def test_park_stores_the_token_and_publishes_the_pending_event(lifecycle, ports, message):
    payment_id = pending(lifecycle, message)
    record = lifecycle.store.get(payment_id)
    assert record["status"] == "PDNG" and record["taskToken"] == "token-1"
    event, attributes = ports.events.published[0]
    assert {"type": "payment.pending", "paymentId": payment_id, "status": "PDNG"}.items() <= event.items()
    assert attributes == {"eventType": "payment.pending", "status": "PDNG"}
    assert "amount" not in event
    assert lifecycle.park(payment_id, "token-2")["action"] == "parked"  # a retried wait: a new token
    assert lifecycle.store.get(payment_id)["taskToken"] == "token-2"
    assert statuses(lifecycle, payment_id) == ["RCVD", "ACTC", "PDNG"]


@pytest.mark.parametrize("stage", ["validate", "send", "settle"])
def test_park_resumes_a_handed_over_stage_with_its_token(lifecycle, ports, message, stage):
    payment_id, _ = received(lifecycle, message)
    carried = {"messageId": "m-1"} if stage == "settle" else {}
    answer = lifecycle.park(payment_id, "tok", {"stage": stage, "carried": carried})
    assert answer["action"] == "resumed" and answer["stage"] == stage
    expected = {"paymentId": payment_id, "stage": stage, "message": None, "taskToken": "tok", "mode": "anchored"}
    if carried:
        expected["carried"] = carried
    assert ports.workflow.flows[-1] == expected
    assert statuses(lifecycle, payment_id) == ["RCVD"]  # the wait itself writes nothing


def test_park_of_an_approved_payment_sends_it_and_of_a_finished_one_answers(lifecycle, ports, message):
    payment_id = approved(lifecycle, message)
    assert lifecycle.park(payment_id, "tok-2") == {"paymentId": payment_id, "status": "ACSP", "action": "resumed",
                                                   "stage": "send"}
    lifecycle.send(payment_id)
    lifecycle.settle(payment_id, "message-1")
    assert lifecycle.park(payment_id, "tok-3")["action"] == "answered"
    assert ports.workflow.successes[-1] == ("tok-3", {"paymentId": payment_id, "status": "ACSC"})


def test_approve_claims_acsp_and_starts_the_send_with_the_anchors_token(lifecycle, ports, message):
    payment_id = pending(lifecycle, message)
    result = lifecycle.decide(CLIENT_ID, payment_id, "approve", None)
    assert result["status"] == "ACSP"  # the 200 says the decision was taken
    assert result["decision"] == {"action": "approve", "reasonCode": None, "additionalInfo": None,
                                  "decidedBy": CLIENT_ID}
    assert ports.workflow.flows[-1] == {"paymentId": payment_id, "stage": "send", "message": None,
                                        "taskToken": "token-1", "mode": "anchored"}
    record = lifecycle.store.get(payment_id)
    assert record["decision"]["action"] == "approve" and "taskToken" not in record
    with pytest.raises(Conflict):
        lifecycle.decide(CLIENT_ID, payment_id, "reject", {"reasonCode": "AM04"})


def test_an_approval_whose_flow_cannot_start_hands_the_send_to_the_anchor(lifecycle, ports, message):
    payment_id = pending(lifecycle, message)
    ports.workflow.refuse_starts = 1
    assert lifecycle.decide(CLIENT_ID, payment_id, "approve", {})["status"] == "ACSP"  # taken all the same
    assert ports.workflow.failures == [("token-1", "StageFailed", json.dumps({"stage": "send"}))]


def test_reject_writes_rjct_and_its_pacs002_together_and_ends_the_wait(lifecycle, ports, message):
    payment_id = pending(lifecycle, message)
    result = lifecycle.decide(CLIENT_ID, payment_id, "reject", {"reasonCode": "AM04", "additionalInfo": "funds"})
    assert result["status"] == "RJCT"
    assert writes(ports, payment_id)[-1] == "transition:RJCT"
    report = lifecycle.get_message(CLIENT_ID, payment_id, "pacs.002")  # visible with the status, at once
    assert texts(report, "TxSts") == ["RJCT"] and "AM04" in texts(report, "Cd")
    view = lifecycle.get_payment(CLIENT_ID, payment_id)
    assert view["status"] == "RJCT" and view["reason"]["code"] == "AM04" and "pacs.002" in view["messages"]
    assert ports.workflow.successes == [("token-1", {"paymentId": payment_id, "status": "RJCT"})]
    assert ports.events.of_type("payment.rejected")[-1]["reasonCode"] == "AM04"
    assert "taskToken" not in lifecycle.store.get(payment_id)


def test_cancel_writes_canc_and_its_camt029(lifecycle, ports, message):
    payment_id = pending(lifecycle, message)
    assert lifecycle.decide(CLIENT_ID, payment_id, "cancel", {"reasonCode": "CUST"})["status"] == "CANC"
    answer = lifecycle.get_message(CLIENT_ID, payment_id, "camt.029")
    assert "CNCL" in texts(answer, "Conf") or "CNCL" in texts(answer, "Cd")
    assert lifecycle.get_payment(CLIENT_ID, payment_id)["status"] == "CANC"
    assert [e["status"] for e in ports.events.of_type("payment.cancelled")] == ["CANC"]


def test_a_decision_whose_wait_is_gone_is_taken_all_the_same(lifecycle, ports, message):
    payment_id = pending(lifecycle, message)
    ports.workflow.gone_tokens.add("token-1")
    assert lifecycle.decide(CLIENT_ID, payment_id, "reject", {"reasonCode": "AM04"})["status"] == "RJCT"
    assert lifecycle.decision_timeout(payment_id)["action"] == "done"


def test_reject_and_cancel_validate_iso_reason_codes(lifecycle, message):
    payment_id = pending(lifecycle, message)
    with pytest.raises(UnknownReasonCode):
        lifecycle.decide(CLIENT_ID, payment_id, "reject", {"reasonCode": "ZZ99"})
    with pytest.raises(UnknownReasonCode):
        lifecycle.decide(CLIENT_ID, payment_id, "cancel", {"reasonCode": "AM04"})  # not a cancel reason
    with pytest.raises(InvalidRequest):
        lifecycle.decide(CLIENT_ID, payment_id, "reject", {"reason": "AM04"})
    with pytest.raises(InvalidRequest):
        lifecycle.decide(CLIENT_ID, payment_id, "approve", {"unexpected": 1})
    assert lifecycle.store.get(payment_id)["status"] == "PDNG"


def test_decide_on_another_clients_payment_is_not_found(lifecycle, message):
    payment_id = pending(lifecycle, message)
    with pytest.raises(PaymentNotFound):
        lifecycle.decide("someone-else", payment_id, "approve", {})
    with pytest.raises(PaymentNotFound):
        lifecycle.get_payment("someone-else", payment_id)
    with pytest.raises(PaymentNotFound):
        lifecycle.get_payment(CLIENT_ID, "p-00000000000000000000000000000000")


def test_decide_before_pending_is_a_conflict(lifecycle, message):
    payment_id, _ = received(lifecycle, message)
    with pytest.raises(Conflict):
        lifecycle.decide(CLIENT_ID, payment_id, "approve", {})


def test_two_concurrent_decisions_exactly_one_wins(lifecycle, ports, message, api_problems):
    payment_id = pending(lifecycle, message)
    barrier = threading.Barrier(2)
    outcomes = {}

    def decide(action, body):
        barrier.wait()
        try:
            outcomes[action] = lifecycle.decide(CLIENT_ID, payment_id, action, body)["status"]
        except Conflict as conflict:
            outcomes[action] = api_problems(conflict)[0]

    threads = [threading.Thread(target=decide, args=("approve", {})),
               threading.Thread(target=decide, args=("reject", {"reasonCode": "AM04"}))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=10)
    winner = "approve" if outcomes["approve"] != 409 else "reject"
    loser = "reject" if winner == "approve" else "approve"
    assert outcomes[loser] == 409 and outcomes[winner] == {"approve": "ACSP", "reject": "RJCT"}[winner]
    assert lifecycle.store.get(payment_id)["decision"]["action"] == winner
    assert statuses(lifecycle, payment_id)[-1] == outcomes[winner]


def test_a_decision_that_loses_the_conditional_write_is_a_conflict(lifecycle, ports, message):
    """The other writer won between the read and the write (the fake store is made to lose it)."""
    payment_id = pending(lifecycle, message)
    real_get = ports.store.get

    def get_then_someone_decides(pid):
        record = real_get(pid)
        ports.store.transition(pid, expected_status="PDNG", expected_version=record["version"],
                               new_status="CANC", set_values={"decision": {"action": "cancel"}})
        return record

    ports.store.get = get_then_someone_decides
    with pytest.raises(Conflict, match="decided or changed meanwhile"):
        lifecycle.decide(CLIENT_ID, payment_id, "approve", {})
    ports.store.get = real_get
    assert lifecycle.store.get(payment_id)["status"] == "CANC" and ports.workflow.flows[-1]["stage"] == "validate"


# -- the anchor's timeout --------------------------------------------------------------------------

def test_timeout_claims_rjct_ab06_with_its_pacs002(lifecycle, ports, message):
    payment_id = pending(lifecycle, message)
    assert lifecycle.decision_timeout(payment_id) == {"action": "done", "resume": None, "status": "RJCT"}
    assert writes(ports, payment_id)[-1] == "transition:RJCT"
    with pytest.raises(Conflict):  # too late for a consumer
        lifecycle.decide(CLIENT_ID, payment_id, "approve", {})
    report = lifecycle.get_message(CLIENT_ID, payment_id, "pacs.002")
    assert texts(report, "TxSts") == ["RJCT"] and "AB06" in texts(report, "Cd")
    record = lifecycle.store.get(payment_id)
    assert record["decision"]["action"] == "timeout" and "taskToken" not in record
    assert lifecycle.decision_timeout(payment_id)["action"] == "done"  # retried: nothing more
    assert statuses(lifecycle, payment_id) == ["RCVD", "ACTC", "PDNG", "RJCT"]


def test_timeout_after_an_approval_resumes_the_send(lifecycle, message):
    payment_id = approved(lifecycle, message)
    assert lifecycle.decision_timeout(payment_id) == {"action": "resume", "resume": {"stage": "send", "carried": {}},
                                                      "status": "ACSP"}
    assert lifecycle.store.get(payment_id)["status"] == "ACSP"


def test_timeout_of_a_payment_never_validated_resumes_validation(lifecycle, message):
    payment_id, _ = received(lifecycle, message)
    assert lifecycle.decision_timeout(payment_id)["resume"] == {"stage": "validate", "carried": {}}


def test_timeout_that_loses_to_a_decision_honours_it(lifecycle, ports, message):
    """The consumer's claim lands between the timeout's read and its conditional write."""
    payment_id = pending(lifecycle, message)
    real_get = ports.store.get
    first = {"done": False}

    def get_then_consumer_decides(pid):
        record = real_get(pid)
        if not first["done"]:
            first["done"] = True
            lifecycle.decide(CLIENT_ID, pid, "reject", {"reasonCode": "AM04"})
        return record

    ports.store.get = get_then_consumer_decides
    answer = lifecycle.decision_timeout(payment_id)
    ports.store.get = real_get
    assert answer == {"action": "done", "resume": None, "status": "RJCT"}
    assert lifecycle.store.get(payment_id)["reason"]["code"] == "AM04"
    assert statuses(lifecycle, payment_id) == ["RCVD", "ACTC", "PDNG", "RJCT"]


# -- send: the release claim and the window rule ---------------------------------------------------

def test_send_claims_the_release_then_sends_once_grouped_by_counterparty(lifecycle, ports, message):
    payment_id = approved(lifecycle, message, creditor_agent_bic="BNPAFRPPXXX")
    answer = lifecycle.send(payment_id)
    assert answer["messageId"] == "message-1"
    release = lifecycle.store.get(payment_id)["release"]
    assert (release["attempts"], release["definitiveFailures"], release["region"], release["epoch"]) == (
        1, 0, "eu-west-1", 1)
    sent = ports.release_queue.of(payment_id)
    assert len(sent) == 1 and sent[0]["groupId"] == "BNPAFRPPXXX"
    body = sent[0]["body"]
    facts = lifecycle.store.get(payment_id)["facts"]
    assert body["paymentId"] == payment_id and body["uetr"] == facts["uetr"]  # the engine's idempotency key
    assert "MXFLGB2LXXX" in texts(body["message"].encode(), "BICFI")
    assert base64.b64decode(answer["outbound"]).decode() == body["message"]  # for Settle to keep
    assert writes(ports, payment_id)[-1] == "release"


def test_a_resend_within_the_window_sends_the_same_bytes(lifecycle, ports, message):
    """Within the window the queue deduplicates a resend (deduplication id = payment id); the fake
    queue does not, so both sends are visible here, with identical bodies."""
    payment_id = approved(lifecycle, message)
    lifecycle.send(payment_id)
    ports.clock.advance(RELEASE_WINDOW_SECONDS - 1)
    lifecycle.send(payment_id)
    first, second = ports.release_queue.of(payment_id)
    assert first == second
    release = lifecycle.store.get(payment_id)["release"]
    assert release["attempts"] == 2 and parse_utc(release["windowAt"]) < parse_utc(ports.clock()) - timedelta(
        seconds=RELEASE_WINDOW_SECONDS - 2)


def test_past_the_window_an_unknown_outcome_suspends_and_never_sends_again(lifecycle, ports, message):
    payment_id = approved(lifecycle, message)
    ports.release_queue.failures.append(("after", TransientError("SendMessage: 500")))  # sent, answer lost
    with pytest.raises(TransientError):
        lifecycle.send(payment_id)
    assert len(ports.release_queue.of(payment_id)) == 1
    ports.clock.advance(RELEASE_WINDOW_SECONDS + 1)
    with pytest.raises(ReleaseOutcomeUnknown):
        lifecycle.send(payment_id)
    assert len(ports.release_queue.of(payment_id)) == 1  # never a second send
    record = lifecycle.store.get(payment_id)
    assert record["status"] == "ACSP" and record["suspense"]["reason"] == "release outcome unknown"
    assert ports.store.suspended("eu-west-1") == [payment_id]
    assert lifecycle.get_payment(CLIENT_ID, payment_id)["suspense"]["attempts"] == 1
    assert ports.events.of_type("payment.suspended")[0]["paymentId"] == payment_id
    with pytest.raises(ReleaseOutcomeUnknown):  # a redrive before the operator's answer: the same
        lifecycle.send(payment_id)
    assert lifecycle.sample()["suspendedPayments"] == 1


def test_refused_sends_open_a_new_window(lifecycle, ports, message):
    payment_id = approved(lifecycle, message)
    ports.release_queue.failures.append(SendRefused("SendMessage: KMS.AccessDeniedException"))
    with pytest.raises(TransientError, match="refused"):
        lifecycle.send(payment_id)
    release = lifecycle.store.get(payment_id)["release"]
    assert (release["attempts"], release["definitiveFailures"]) == (1, 1)
    ports.clock.advance(RELEASE_WINDOW_SECONDS * 3)
    assert lifecycle.send(payment_id)["messageId"] == "message-1"  # nothing was sent before: a new window
    release = lifecycle.store.get(payment_id)["release"]
    assert (release["attempts"], release["definitiveFailures"]) == (2, 1)
    assert parse_utc(release["windowAt"]) > parse_utc(ports.clock()) - timedelta(seconds=1)
    assert len(ports.release_queue.of(payment_id)) == 1


def test_a_recorded_send_is_never_sent_again(lifecycle, ports, message):
    payment_id = approved(lifecycle, message)
    lifecycle.send(payment_id)
    lifecycle.settle(payment_id, "message-1")
    ports.clock.advance(3600)
    assert lifecycle.send(payment_id) == {"messageId": "message-1", "outbound": None, "alreadySent": True}
    assert len(ports.release_queue.of(payment_id)) == 1


def test_send_needs_an_approved_payment_owned_here(lifecycle, ports, message):
    payment_id = pending(lifecycle, message)
    with pytest.raises(InvalidState):
        lifecycle.send(payment_id)
    lifecycle.decide(CLIENT_ID, payment_id, "approve", {})
    ports.store._records[payment_id]["epoch"] = 2  # the other Region took it over
    ports.store._records[payment_id]["ownerRegion"] = "us-west-2"
    with pytest.raises(NotOwner):
        lifecycle.send(payment_id)
    assert ports.release_queue.sent == [] and "release" not in lifecycle.store.get(payment_id)


def test_a_claim_that_changed_meanwhile_is_retried_not_sent(lifecycle, ports, message):
    payment_id = approved(lifecycle, message)
    real_get = ports.store.get

    def get_then_another_attempt_claims(pid):
        record = real_get(pid)
        ports.store.update_release(pid, {"region": "eu-west-1", "epoch": 1, "attempts": 1, "windowAt": ports.clock(),
                                         "definitiveFailures": 0}, expected_attempts=None,
                                   fence=Fence("eu-west-1", 1))
        return record

    ports.store.get = get_then_another_attempt_claims
    with pytest.raises(TransientError, match="claim changed"):
        lifecycle.send(payment_id)
    ports.store.get = real_get
    assert ports.release_queue.sent == []


# -- settle ----------------------------------------------------------------------------------------

def test_settle_writes_acsc_with_the_pacs002_the_outbound_as_sent_and_the_message_id(lifecycle, ports, message):
    payment_id = approved(lifecycle, message)
    sent = lifecycle.send(payment_id)
    ports.archive.objects.clear()  # the flow carries the outbound message: the archive is not read
    assert lifecycle.settle(payment_id, "message-1", outbound=base64.b64decode(sent["outbound"])) == {
        "paymentId": payment_id, "status": "ACSC"}
    assert writes(ports, payment_id)[-1] == "transition:ACSC"
    record = lifecycle.store.get(payment_id)
    assert record["release"]["messageId"] == "message-1" and record["release"]["sentAt"]
    assert "inflight" not in record and "taskToken" not in record
    outbound = lifecycle.get_message(CLIENT_ID, payment_id, "outbound")
    assert outbound.decode() == ports.release_queue.of(payment_id)[0]["body"]["message"]  # what was sent
    assert texts(lifecycle.get_message(CLIENT_ID, payment_id, "pacs.002"), "TxSts") == ["ACSC"]
    view = lifecycle.get_payment(CLIENT_ID, payment_id)
    assert [h["status"] for h in view["history"]] == ["RCVD", "ACTC", "PDNG", "ACSP", "ACSC"]
    assert view["messages"] == ["outbound", "pacs.002", "received"]
    assert [e["status"] for e in ports.events.of_type("payment.released")] == ["ACSC"]
    assert lifecycle.settle(payment_id, "message-1")["status"] == "ACSC"  # repeated: no new write
    assert writes(ports, payment_id).count("transition:ACSC") == 1


def test_a_settle_resumed_without_the_outbound_message_builds_it_again_byte_for_byte(lifecycle, ports, message):
    payment_id = approved(lifecycle, message)
    lifecycle.send(payment_id)
    ports.clock.advance(60)  # later: the message is built for the window it was sent in, not for now
    lifecycle.settle(payment_id, "message-1")
    assert lifecycle.get_message(CLIENT_ID, payment_id, "outbound").decode() == \
        ports.release_queue.of(payment_id)[0]["body"]["message"]


def test_settle_follows_a_send(lifecycle, message):
    payment_id = approved(lifecycle, message)
    with pytest.raises(InvalidState, match="no release claimed"):
        lifecycle.settle(payment_id, "message-1")


# -- an operator resolves a suspended release -----------------------------------------------------

def suspended(lifecycle, ports, message):
    payment_id = approved(lifecycle, message)
    ports.release_queue.failures.append(("after", TransientError("SendMessage: timeout")))
    with pytest.raises(TransientError):
        lifecycle.send(payment_id)
    ports.clock.advance(RELEASE_WINDOW_SECONDS + 60)
    with pytest.raises(ReleaseOutcomeUnknown):
        lifecycle.send(payment_id)
    return payment_id


def test_confirmed_sent_settles_without_a_second_send(lifecycle, ports, message):
    payment_id = suspended(lifecycle, ports, message)
    answer = lifecycle.confirm_release(CLIENT_ID, payment_id, {"sent": True, "messageId": "engine-ref-1"})
    assert answer == {"paymentId": payment_id, "status": "ACSP", "sent": True,
                      "next": f"POST /payments/{payment_id}/redrive"}
    assert ports.store.suspended("eu-west-1") == []
    assert lifecycle.send(payment_id) == {"messageId": "engine-ref-1", "outbound": None, "alreadySent": True}
    lifecycle.settle(payment_id, None)
    record = lifecycle.store.get(payment_id)
    assert record["status"] == "ACSC" and record["release"]["messageId"] == "engine-ref-1"
    assert "suspense" not in record and len(ports.release_queue.of(payment_id)) == 1


def test_confirmed_not_sent_sends_in_a_new_window(lifecycle, ports, message):
    payment_id = suspended(lifecycle, ports, message)
    ports.release_queue.sent.clear()  # the engine says it never got it
    lifecycle.confirm_release(CLIENT_ID, payment_id, {"sent": False})
    assert lifecycle.send(payment_id)["messageId"]
    assert len(ports.release_queue.of(payment_id)) == 1


def test_confirm_needs_a_suspended_payment_and_a_valid_answer(lifecycle, ports, message):
    payment_id = approved(lifecycle, message)
    with pytest.raises(Conflict, match="not suspended"):
        lifecycle.confirm_release(CLIENT_ID, payment_id, {"sent": True})
    for body in (None, {}, {"sent": "yes"}, {"sent": True, "extra": 1}):
        with pytest.raises(InvalidRequest):
            lifecycle.confirm_release(CLIENT_ID, payment_id, body)
    with pytest.raises(PaymentNotFound):
        lifecycle.confirm_release("someone-else", payment_id, {"sent": True})


# -- generated message versions and their schemas --------------------------------------------------

def _with(lifecycle_with, settings, *, versions=None, without=()):
    """A lifecycle on the same fakes, with other message versions and/or a registry lacking `without`
    (as a layer without those schemas would be)."""
    import dataclasses

    from mxflow.iso20022.schema_sets import builtin_entries

    service = lifecycle_with(dataclasses.replace(settings, message_versions=versions or settings.message_versions))
    if without:
        service._registry = iso20022.SchemaRegistry(
            builtin=[e for e in builtin_entries() if e.message_id not in without])
    return service


def _namespace(xml: bytes) -> str:
    return iso20022.parse_message(xml).message_id


def test_the_configured_versions_are_generated(lifecycle_with, settings, message):
    versions = iso20022.CBPR_PLUS_VERSIONS.with_version("camt.029.001.14")
    assert Settings.from_environ({"MXFLOW_CANCELLATION_ANSWER_VERSION": "camt.029.001.14"}).message_versions == versions
    service = _with(lifecycle_with, settings, versions=versions)
    payment_id = pending(service, message)
    service.decide(CLIENT_ID, payment_id, "cancel", {"reasonCode": "DUPL"})
    assert _namespace(service.get_message(CLIENT_ID, payment_id, "camt.029")) == "camt.029.001.14"


def test_a_cancel_whose_answer_has_no_schema_is_not_taken_until_the_schema_is_added(
        lifecycle_with, settings, ports, message):
    """The terminal status is written with its answer: without the answer's schema, no CANC either."""
    versions = iso20022.CBPR_PLUS_VERSIONS.with_version("camt.029.001.14")
    without = _with(lifecycle_with, settings, versions=versions, without=("camt.029.001.14",))
    payment_id = pending(without, message)
    with pytest.raises(iso20022.SchemaNotInstalled, match="camt.029.001.14"):
        without.decide(CLIENT_ID, payment_id, "cancel", {"reasonCode": "DUPL"})
    record = without.store.get(payment_id)
    assert record["status"] == "PDNG" and not record.get("decision") and record["taskToken"] == "token-1"
    assert ports.workflow.successes == [] and ports.events.of_type("payment.cancelled") == []
    # the schema added (a new layer version), the same decision is taken, with its answer
    added = _with(lifecycle_with, settings, versions=versions)
    assert added.decide(CLIENT_ID, payment_id, "cancel", {"reasonCode": "DUPL"})["status"] == "CANC"
    assert _namespace(added.get_message(CLIENT_ID, payment_id, "camt.029")) == "camt.029.001.14"


def test_a_send_whose_status_report_has_no_schema_sends_and_claims_nothing(lifecycle_with, settings, lifecycle,
                                                                           ports, message):
    without = _with(lifecycle_with, settings, without=("pacs.002.001.10",))
    payment_id = approved(lifecycle, message)
    with pytest.raises(iso20022.SchemaNotInstalled, match="pacs.002.001.10"):
        without.send(payment_id)
    assert ports.release_queue.sent == []  # checked before the send: nothing left
    record = lifecycle.store.get(payment_id)
    assert record["status"] == "ACSP" and "release" not in record  # not an attempt of unknown outcome
    ports.clock.advance(RELEASE_WINDOW_SECONDS * 2)  # however late the redrive, it sends
    sent = lifecycle.send(payment_id)
    assert lifecycle.settle(payment_id, sent["messageId"])["status"] == "ACSC"
    assert len(ports.release_queue.sent) == 1


def test_an_outbound_message_without_its_schema_is_never_sent(lifecycle_with, settings, lifecycle, ports,
                                                              message):
    without = _with(lifecycle_with, settings, without=("head.001.001.02",))
    payment_id = approved(lifecycle, message)
    with pytest.raises(iso20022.SchemaNotInstalled, match="head.001.001.02"):
        without.send(payment_id)
    assert ports.release_queue.sent == [] and "release" not in lifecycle.store.get(payment_id)


def test_an_invalid_message_whose_rejection_has_no_schema_stays_received(lifecycle_with, settings, lifecycle,
                                                                         message):
    without = _with(lifecycle_with, settings, without=("pacs.002.001.10",))
    payment_id, _ = received(lifecycle, message, amount="12.345")  # EUR: CH20
    with pytest.raises(iso20022.SchemaNotInstalled):
        without.validate(payment_id)
    assert lifecycle.store.get(payment_id)["status"] == "RCVD"
    assert lifecycle.validate(payment_id)["outcome"] == "invalid"


# -- reads, redrive, health, sample ----------------------------------------------------------------

def test_unknown_message_names_are_not_found(lifecycle, ports, message):
    payment_id, _ = received(lifecycle, message)
    with pytest.raises(MessageNotFound):
        lifecycle.get_message(CLIENT_ID, payment_id, "pacs.002")
    ports.archive.objects.clear()  # named on the record, not (yet) in the archive
    with pytest.raises(MessageNotFound, match="not archived"):
        lifecycle.get_message(CLIENT_ID, payment_id, "received")


def test_redrive_not_redrivable_is_a_conflict(lifecycle, ports, message, api_problems):
    payment_id, _ = received(lifecycle, message)
    with pytest.raises(Conflict, match="ExecutionNotRedrivable") as refused:  # no failed anchor
        lifecycle.redrive(CLIENT_ID, payment_id)
    assert api_problems(refused.value)[0] == 409
    with pytest.raises(PaymentNotFound):
        lifecycle.redrive("someone-else", payment_id)
    ports.workflow.redrivable.add(payment_id)  # its anchor failed
    assert lifecycle.redrive(CLIENT_ID, payment_id) == {"paymentId": payment_id, "status": "RCVD",
                                                        "redriveDate": "2026-11-24T10:05:00+00:00"}
    assert ports.workflow.redrives == [payment_id]


def test_health_reports_region_store_reachability_and_schema_sources(lifecycle, ports):
    sources = lifecycle.registry.sources()
    assert lifecycle.health() == {"status": "ok", "region": "eu-west-1", "schemas": sources}
    assert sources["head.001.001.02"] == lifecycle.registry.entry_for("head.001.001.02").label
    ports.unavailable.on = True
    assert lifecycle.health() == {"status": "unhealthy", "region": "eu-west-1", "schemas": sources}


def test_park_before_validation_resumes_it(lifecycle, ports, message):
    payment_id, _ = received(lifecycle, message)
    assert lifecycle.park(payment_id, "t")["stage"] == "validate"
    record = lifecycle.store.get(payment_id)
    assert record["status"] == "RCVD" and "taskToken" not in record


def test_a_step_on_an_unreachable_store_fails_with_the_services_error(lifecycle, ports, message):
    payment_id, _ = received(lifecycle, message)
    ports.unavailable.on = True
    with pytest.raises(ServiceError):
        lifecycle.validate(payment_id)


def test_the_sample_gives_the_oldest_age_per_status(lifecycle, ports, message):
    stuck, _ = received(lifecycle, message)
    ports.clock.advance(30)
    waiting = pending(lifecycle, message)
    ports.clock.advance(90)
    sample = lifecycle.sample()
    assert sample["oldestPendingAgeSeconds"] >= 90 and sample["oldestPendingAgeSeconds"] < 100
    assert sample["oldestInFlightAgeSeconds"] >= 120  # the RCVD one nobody moved on
    assert sample["oldestAgeSecondsByStatus"]["RCVD"] == sample["oldestInFlightAgeSeconds"]
    assert sample["sampled"] == 2 and sample["suspendedPayments"] == 0
    lifecycle.decide(CLIENT_ID, waiting, "reject", {"reasonCode": "AM04"})
    assert lifecycle.sample()["oldestPendingAgeSeconds"] == 0.0
    assert stuck
