"""The payment lifecycle (mxflow.lifecycle) on in-memory fakes of its ports and the real ISO 20022
library: every status change, race and idempotency rule, with no AWS (tests/app/fakes.py). The AWS
adapters have their own tests on moto (test_store.py, test_aws_adapters.py)."""
from __future__ import annotations

import threading
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
    PaymentNotFound,
    ServiceError,
    TransientError,
    UnknownReasonCode,
    UnsupportedMessage,
)
from mxflow.pending_age import PendingAgeSampler
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
    assert lifecycle.validate_and_persist(payment_id)["outcome"] == "await"
    lifecycle.park(payment_id, token)
    return payment_id


def statuses(lifecycle, payment_id) -> list[str]:
    return [e["status"] for e in lifecycle.store.history(payment_id)]


# -- receive ---------------------------------------------------------------------------------------

def test_receive_archives_creates_rcvd_and_starts_execution_named_by_payment_id(lifecycle, ports, message):
    data = message()
    created, receipt = lifecycle.receive(CLIENT_ID, data)
    payment_id = receipt["paymentId"]
    assert created and receipt["status"] == "RCVD"
    record = lifecycle.store.get(payment_id)
    assert record["status"] == "RCVD" and record["clientId"] == CLIENT_ID
    assert record["messageType"] == "pacs.008.001.08"
    assert lifecycle.archive.get(record["archiveKey"]) == data
    name, execution_input = ports.workflow.starts[0]
    assert name == payment_id
    assert execution_input == {"paymentId": payment_id, "archiveKey": record["archiveKey"],
                               "receivedAt": record["receivedAt"]}
    assert ports.workflow.executions[payment_id]["name"] == payment_id


def test_same_message_twice_is_the_same_payment(lifecycle, ports, message):
    data = message()
    first = lifecycle.receive(CLIENT_ID, data)
    second = lifecycle.receive(CLIENT_ID, data)
    assert first[0] is True and second[0] is False
    assert first[1] == second[1]
    payment_id = first[1]["paymentId"]
    assert statuses(lifecycle, payment_id) == ["RCVD"]
    assert list(ports.workflow.executions) == [payment_id]  # the start was repeated, not a new execution


def test_identical_resubmission_after_progress_returns_same_receipt(lifecycle, ports, message):
    data = message()
    _, receipt = lifecycle.receive(CLIENT_ID, data)
    lifecycle.validate_and_persist(receipt["paymentId"])
    assert lifecycle.receive(CLIENT_ID, data) == (False, receipt)
    assert len(ports.workflow.starts) == 1  # past RCVD the start is known to have happened


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
    assert ports.archive.objects == {} and ports.workflow.starts == []  # nothing kept of a refusal


def test_hostile_xml_is_refused_without_expansion(lifecycle):
    bomb = (b'<?xml version="1.0"?><!DOCTYPE d [<!ENTITY a "aaaaaaaaaa"><!ENTITY b "&a;&a;&a;&a;">]>'
            b'<Document xmlns="urn:iso:std:iso:20022:tech:xsd:pacs.008.001.08">&b;</Document>')
    with pytest.raises(UnsupportedMessage):
        lifecycle.receive(CLIENT_ID, bomb)


# -- validate --------------------------------------------------------------------------------------

def test_valid_message_becomes_actc_and_awaits(lifecycle, message):
    payment_id, _ = received(lifecycle, message)
    result = lifecycle.validate_and_persist(payment_id)
    assert result == {"outcome": "await", "status": "ACTC", "decisionTimeoutSeconds": 3600}
    record = lifecycle.store.get(payment_id)
    assert record["facts"]["paymentId"] == payment_id
    # a retried step finds its own write and answers the same
    assert lifecycle.validate_and_persist(payment_id) == result
    assert statuses(lifecycle, payment_id) == ["RCVD", "ACTC"]


def test_invalid_message_is_rejected_with_iso_reason_and_pacs002(lifecycle, ports, message):
    # Wrong currency precision: JPY has no minor units (ISO reason CH20 or another amount code).
    payment_id, _ = received(lifecycle, message, amount="100.50", currency="JPY")
    result = lifecycle.validate_and_persist(payment_id)
    assert result["outcome"] == "invalid" and result["status"] == "RJCT"
    record = lifecycle.store.get(payment_id)
    reason_code = record["reason"]["code"]
    assert iso20022.codes.is_status_reason(reason_code)
    report = lifecycle.archive.get(record["messages"]["pacs.002"])
    assert texts(report, "TxSts") == ["RJCT"]
    assert reason_code in texts(report, "Cd")
    view = lifecycle.get_payment(CLIENT_ID, payment_id)
    assert view["reason"]["code"] == reason_code and view["errors"]
    assert [h["status"] for h in view["history"]] == ["RCVD", "RJCT"]
    assert [e["reasonCode"] for e in ports.events.of_type("payment.rejected")] == [reason_code]
    assert lifecycle.validate_and_persist(payment_id) == result  # retried: same answer, no new write
    assert statuses(lifecycle, payment_id) == ["RCVD", "RJCT"]


def test_auto_approve_policy_releases_small_amounts_only(lifecycle_with, message):
    policy = lifecycle_with(Settings.from_environ({"AUTO_APPROVE_MAX_AMOUNT": "500",
                                                    "DECISION_TIMEOUT_SECONDS": "3600"}))
    assert policy.settings.auto_approve_max_amount == Decimal("500")
    small, _ = received(policy, message, amount="499.99")
    large, _ = received(policy, message, amount="500.01")
    assert policy.validate_and_persist(small)["outcome"] == "auto-approve"
    assert policy.store.get(small)["status"] == "ACSP"
    assert policy.store.get(small)["decision"]["decidedBy"] == "policy:auto-approve"
    assert policy.validate_and_persist(large)["outcome"] == "await"
    assert policy.validate_and_persist(small)["outcome"] == "auto-approve"  # retry: same answer
    assert statuses(policy, small) == ["RCVD", "ACTC", "ACSP"]


# -- park and decisions ----------------------------------------------------------------------------

def test_park_stores_token_and_publishes_pending_event(lifecycle, ports, message):
    payment_id = pending(lifecycle, message)
    record = lifecycle.store.get(payment_id)
    assert record["status"] == "PDNG" and record["taskToken"] == "token-1"
    event, attributes = ports.events.published[0]
    assert {"type": "payment.pending", "paymentId": payment_id, "status": "PDNG"}.items() <= event.items()
    assert attributes == {"eventType": "payment.pending", "status": "PDNG"}
    assert "amount" not in event
    lifecycle.park(payment_id, "token-2")  # a retried park refreshes the token
    assert lifecycle.store.get(payment_id)["taskToken"] == "token-2"
    assert statuses(lifecycle, payment_id) == ["RCVD", "ACTC", "PDNG"]
    later = parse_utc(ports.clock()) + timedelta(seconds=90)
    assert lifecycle.oldest_pending_age_seconds(later) >= 89


def test_a_park_retried_after_a_decision_delivers_it_with_the_new_token(lifecycle, ports, message):
    payment_id = pending(lifecycle, message)
    ports.workflow.gone_tokens.add("token-1")  # the decision found the first task gone
    lifecycle.decide(CLIENT_ID, payment_id, "approve", {})
    assert lifecycle.park(payment_id, "token-2") == {"paymentId": payment_id, "status": "ACSP"}
    assert [token for token, _ in ports.workflow.successes] == ["token-2"]


def test_approve_claims_acsp_and_sends_task_success(lifecycle, ports, message):
    payment_id = pending(lifecycle, message)
    result = lifecycle.decide(CLIENT_ID, payment_id, "approve", None)
    assert result["status"] == "ACSP"
    token, output = ports.workflow.successes[0]
    assert token == "token-1"
    assert output == {"action": "approve", "reasonCode": None, "additionalInfo": None, "decidedBy": CLIENT_ID}
    record = lifecycle.store.get(payment_id)
    assert record["decision"]["action"] == "approve" and "taskToken" not in record
    with pytest.raises(Conflict):
        lifecycle.decide(CLIENT_ID, payment_id, "reject", {"reasonCode": "AM04"})


def test_a_decision_whose_task_is_gone_is_kept_for_the_timeout_path(lifecycle, ports, message):
    payment_id = pending(lifecycle, message)
    ports.workflow.gone_tokens.add("token-1")
    assert lifecycle.decide(CLIENT_ID, payment_id, "approve", {})["status"] == "ACSP"
    assert lifecycle.decision_timeout(payment_id)["action"] == "approve"


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
    result = lifecycle.decide(CLIENT_ID, payment_id, "cancel", {"reasonCode": "DUPL"})
    assert result["status"] == "CANC"


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
    assert sorted(outcomes.values(), key=str) == sorted([409, "ACSP" if outcomes["approve"] != 409 else "RJCT"],
                                                         key=str)
    winner = "approve" if outcomes["approve"] != 409 else "reject"
    assert lifecycle.store.get(payment_id)["decision"]["action"] == winner
    assert len(ports.workflow.successes) == 1
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
    assert lifecycle.store.get(payment_id)["status"] == "CANC" and ports.workflow.successes == []


# -- timeout, finalise -----------------------------------------------------------------------------

def test_timeout_claims_rjct_ab06_and_finalise_writes_pacs002(lifecycle, ports, message):
    payment_id = pending(lifecycle, message)
    decision = lifecycle.decision_timeout(payment_id)
    assert decision["action"] == "timeout" and decision["reasonCode"] == "AB06"
    assert set(decision) == {"action", "reasonCode", "additionalInfo", "decidedBy"}
    with pytest.raises(Conflict):  # too late for a consumer
        lifecycle.decide(CLIENT_ID, payment_id, "approve", {})
    result = lifecycle.finalise(payment_id, decision)
    assert result == {"paymentId": payment_id, "status": "RJCT", "message": "pacs.002"}
    report = lifecycle.get_message(CLIENT_ID, payment_id, "pacs.002")
    assert texts(report, "TxSts") == ["RJCT"] and "AB06" in texts(report, "Cd")
    archived = dict(ports.archive.objects)
    assert lifecycle.finalise(payment_id, decision) == result  # retried: same answer, no new write
    assert ports.archive.objects == archived
    assert statuses(lifecycle, payment_id) == ["RCVD", "ACTC", "PDNG", "RJCT"]
    assert lifecycle.decision_timeout(payment_id) == decision  # a retried timeout answers the same


def test_timeout_honours_a_decision_claimed_first(lifecycle, message):
    payment_id = pending(lifecycle, message)
    lifecycle.decide(CLIENT_ID, payment_id, "approve", {"additionalInfo": "checked"})
    decision = lifecycle.decision_timeout(payment_id)
    assert decision == {"action": "approve", "reasonCode": None, "additionalInfo": "checked",
                        "decidedBy": CLIENT_ID}
    assert lifecycle.store.get(payment_id)["status"] == "ACSP"


def test_timeout_that_loses_to_a_decision_returns_that_decision(lifecycle, ports, message):
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
    decision = lifecycle.decision_timeout(payment_id)
    ports.store.get = real_get
    assert decision["action"] == "reject" and decision["reasonCode"] == "AM04"
    assert statuses(lifecycle, payment_id) == ["RCVD", "ACTC", "PDNG", "RJCT"]


def test_timeout_of_a_finished_payment_fails(lifecycle, message):
    payment_id, _ = received(lifecycle, message)
    with pytest.raises(InvalidState):
        lifecycle.decision_timeout(payment_id)


def test_reject_is_finalised_with_the_consumers_reason(lifecycle, ports, message):
    payment_id = pending(lifecycle, message)
    lifecycle.decide(CLIENT_ID, payment_id, "reject", {"reasonCode": "AM04", "additionalInfo": "funds"})
    lifecycle.finalise(payment_id, {"action": "reject"})
    report = lifecycle.get_message(CLIENT_ID, payment_id, "pacs.002")
    assert texts(report, "TxSts") == ["RJCT"] and "AM04" in texts(report, "Cd")
    view = lifecycle.get_payment(CLIENT_ID, payment_id)
    assert view["status"] == "RJCT" and view["reason"]["code"] == "AM04"
    assert ports.events.of_type("payment.rejected")[-1]["reasonCode"] == "AM04"


def test_cancel_is_finalised_with_camt029_cncl(lifecycle, ports, message):
    payment_id = pending(lifecycle, message)
    lifecycle.decide(CLIENT_ID, payment_id, "cancel", {"reasonCode": "CUST"})
    assert lifecycle.finalise(payment_id, {"action": "cancel"})["message"] == "camt.029"
    answer = lifecycle.get_message(CLIENT_ID, payment_id, "camt.029")
    assert "CNCL" in texts(answer, "Conf") or "CNCL" in texts(answer, "Cd")
    assert lifecycle.get_payment(CLIENT_ID, payment_id)["status"] == "CANC"
    assert [e["status"] for e in ports.events.of_type("payment.cancelled")] == ["CANC"]


def test_finalise_of_a_payment_still_pending_fails(lifecycle, message):
    payment_id = pending(lifecycle, message)
    with pytest.raises(InvalidState):
        lifecycle.finalise(payment_id, {"action": "reject"})


def test_unknown_message_names_are_not_found(lifecycle, ports, message):
    payment_id, _ = received(lifecycle, message)
    with pytest.raises(MessageNotFound):
        lifecycle.get_message(CLIENT_ID, payment_id, "pacs.002")
    ports.archive.objects.clear()  # named on the record, not (yet) in the archive
    with pytest.raises(MessageNotFound, match="not archived"):
        lifecycle.get_message(CLIENT_ID, payment_id, "received")


# -- release ---------------------------------------------------------------------------------------

def test_release_sends_once_per_payment_grouped_by_counterparty(lifecycle, ports, message):
    payment_id = pending(lifecycle, message, creditor_agent_bic="BNPAFRPPXXX")
    lifecycle.decide(CLIENT_ID, payment_id, "approve", {})
    assert lifecycle.release(payment_id) == {"paymentId": payment_id, "status": "ACSC"}
    assert lifecycle.release(payment_id) == {"paymentId": payment_id, "status": "ACSC"}  # retried
    sent = ports.release_queue.sent
    assert len(sent) == 1
    assert sent[0]["deduplicationId"] == payment_id
    assert sent[0]["groupId"] == "BNPAFRPPXXX"
    body = sent[0]["body"]
    assert body["paymentId"] == payment_id and body["key"].endswith("outbound.xml")
    assert body["bucket"] == ports.archive.bucket and body["message"].encode() == ports.archive.get(body["key"])
    view = lifecycle.get_payment(CLIENT_ID, payment_id)
    assert view["status"] == "ACSC"
    assert {"received", "outbound", "pacs.002"} <= set(view["messages"])
    assert [h["status"] for h in view["history"]] == ["RCVD", "ACTC", "PDNG", "ACSP", "ACSC"]
    assert texts(lifecycle.get_message(CLIENT_ID, payment_id, "pacs.002"), "TxSts") == ["ACSC"]
    outbound = lifecycle.get_message(CLIENT_ID, payment_id, "outbound")
    assert "MXFLGB2LXXX" in texts(outbound, "BICFI")
    assert lifecycle.store.get(payment_id)["releaseMessageId"] == "message-1"


def test_release_that_stopped_after_the_send_does_not_send_twice(lifecycle, ports, message, monkeypatch):
    payment_id = pending(lifecycle, message)
    lifecycle.decide(CLIENT_ID, payment_id, "approve", {})
    original = lifecycle.store.transition

    def crash(*args, **kwargs):
        raise RuntimeError("the function died after sending")

    monkeypatch.setattr(lifecycle.store, "transition", crash)
    with pytest.raises(RuntimeError):
        lifecycle.release(payment_id)
    monkeypatch.setattr(lifecycle.store, "transition", original)
    assert lifecycle.store.get(payment_id)["status"] == "ACSP"
    assert lifecycle.release(payment_id)["status"] == "ACSC"  # the redriven step
    assert len(ports.release_queue.sent) == 1


def test_release_of_a_payment_not_approved_fails(lifecycle, message):
    payment_id = pending(lifecycle, message)
    with pytest.raises(InvalidState):
        lifecycle.release(payment_id)


def test_different_counterparties_use_different_groups(lifecycle, ports, message):
    for bic in ("BNPAFRPPXXX", "COBADEFFXXX"):
        payment_id = pending(lifecycle, message, creditor_agent_bic=bic)
        lifecycle.decide(CLIENT_ID, payment_id, "approve", {})
        lifecycle.release(payment_id)
    groups = {m["groupId"] for m in ports.release_queue.sent}
    assert groups == {"BNPAFRPPXXX", "COBADEFFXXX"}


def test_throttled_send_is_a_transient_error_and_the_retry_sends_once(lifecycle, ports, message):
    payment_id = pending(lifecycle, message)
    lifecycle.decide(CLIENT_ID, payment_id, "approve", {})
    ports.release_queue.failures.append(TransientError("SendMessage: ThrottlingException"))
    with pytest.raises(TransientError):  # the state machine retries this error name
        lifecycle.release(payment_id)
    assert lifecycle.store.get(payment_id)["status"] == "ACSP"
    assert lifecycle.release(payment_id)["status"] == "ACSC"
    assert len(ports.release_queue.sent) == 1


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
    service.finalise(payment_id, {"action": "cancel"})
    assert _namespace(service.get_message(CLIENT_ID, payment_id, "camt.029")) == "camt.029.001.14"


def test_a_cancellation_answer_without_its_schema_fails_finalise_until_the_schema_is_added(
        lifecycle_with, settings, message):
    versions = iso20022.CBPR_PLUS_VERSIONS.with_version("camt.029.001.14")
    without = _with(lifecycle_with, settings, versions=versions, without=("camt.029.001.14",))
    payment_id = pending(without, message)
    without.decide(CLIENT_ID, payment_id, "cancel", {"reasonCode": "DUPL"})
    with pytest.raises(iso20022.SchemaNotInstalled, match="camt.029.001.14"):
        without.finalise(payment_id, {"action": "cancel"})
    record = without.store.get(payment_id)
    assert record["status"] == "CANC" and "camt.029" not in (record.get("messages") or {})  # nothing kept
    # the schema added (a new layer version), the redriven step finishes the payment
    redriven = _with(lifecycle_with, settings, versions=versions)
    assert redriven.finalise(payment_id, {"action": "cancel"})["message"] == "camt.029"
    assert _namespace(redriven.get_message(CLIENT_ID, payment_id, "camt.029")) == "camt.029.001.14"


def test_a_release_whose_status_report_has_no_schema_sends_nothing(lifecycle_with, settings, lifecycle, ports,
                                                                   message):
    without = _with(lifecycle_with, settings, without=("pacs.002.001.10",))
    payment_id = pending(lifecycle, message)
    lifecycle.decide(CLIENT_ID, payment_id, "approve", {})
    with pytest.raises(iso20022.SchemaNotInstalled, match="pacs.002.001.10"):
        without.release(payment_id)
    assert ports.release_queue.sent == []  # checked before the send: nothing left
    record = lifecycle.store.get(payment_id)
    assert record["status"] == "ACSP" and not record.get("releaseMessageId")
    assert "pacs.002" not in (record.get("messages") or {})
    assert lifecycle.release(payment_id)["status"] == "ACSC"  # redriven with the schema installed
    assert len(ports.release_queue.sent) == 1


def test_an_invalid_message_whose_rejection_has_no_schema_stays_received(lifecycle_with, settings, lifecycle,
                                                                         message):
    without = _with(lifecycle_with, settings, without=("pacs.002.001.10",))
    payment_id, _ = received(lifecycle, message, amount="12.345")  # EUR: CH20
    with pytest.raises(iso20022.SchemaNotInstalled):
        without.validate_and_persist(payment_id)
    assert lifecycle.store.get(payment_id)["status"] == "RCVD"
    assert lifecycle.validate_and_persist(payment_id)["outcome"] == "invalid"


# -- redrive, health -------------------------------------------------------------------------------

def test_redrive_not_redrivable_is_a_conflict(lifecycle, ports, message, api_problems):
    payment_id, _ = received(lifecycle, message)
    with pytest.raises(Conflict, match="ExecutionNotRedrivable") as refused:  # running: not redrivable
        lifecycle.redrive(CLIENT_ID, payment_id)
    assert api_problems(refused.value)[0] == 409
    with pytest.raises(PaymentNotFound):
        lifecycle.redrive("someone-else", payment_id)
    ports.workflow.redrivable.add(payment_id)  # its execution failed
    assert lifecycle.redrive(CLIENT_ID, payment_id) == {"paymentId": payment_id, "status": "RCVD",
                                                        "redriveDate": "2026-11-24T10:05:00+00:00"}
    assert ports.workflow.redrives == [payment_id]


def test_health_reports_region_store_reachability_and_schema_sources(lifecycle, ports):
    sources = lifecycle.registry.sources()
    assert lifecycle.health() == {"status": "ok", "region": "eu-west-1", "schemas": sources}
    assert sources["head.001.001.02"] == lifecycle.registry.entry_for("head.001.001.02").label
    ports.unavailable.on = True
    assert lifecycle.health() == {"status": "unhealthy", "region": "eu-west-1", "schemas": sources}


def test_park_before_validation_fails_and_changes_nothing(lifecycle, message):
    payment_id, _ = received(lifecycle, message)
    with pytest.raises(InvalidState):
        lifecycle.park(payment_id, "t")
    record = lifecycle.store.get(payment_id)
    assert record["status"] == "RCVD" and "taskToken" not in record


def test_a_step_on_an_unreachable_store_fails_with_the_services_error(lifecycle, ports, message):
    payment_id, _ = received(lifecycle, message)
    ports.unavailable.on = True
    with pytest.raises(ServiceError):
        lifecycle.validate_and_persist(payment_id)


def test_pending_age_sampler_is_throttled_and_never_fails_its_caller(lifecycle, ports, message):
    pending(lifecycle, message)
    sampler = PendingAgeSampler(interval_seconds=60)
    assert sampler.sample(lifecycle, clock=lambda: 1000.0) >= 0.0
    assert sampler.sample(lifecycle, clock=lambda: 1030.0) is None  # within the interval
    ports.unavailable.on = True
    assert sampler.sample(lifecycle, clock=lambda: 1061.0) is None  # store gone: no metric, no error
