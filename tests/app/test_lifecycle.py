"""The payment lifecycle (mxflow.payments) against moto and the real ISO 20022 library."""
from __future__ import annotations

import json
import threading
from datetime import datetime, timedelta, timezone

import boto3
import pytest
from lxml import etree

from mxflow import iso20022
from mxflow.payments import (
    Conflict,
    InvalidRequest,
    InvalidState,
    MessageTooLarge,
    NotFound,
    PaymentLifecycle,
    Settings,
    UnknownReasonCode,
    UnsupportedMessage,
    execution_arn,
)

CLIENT_ID = "bank-a-client"  # the conftest's client (fixture client_id)

PACS002_NS = "urn:iso:std:iso:20022:tech:xsd:pacs.002.001.10"


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


# -- receive ---------------------------------------------------------------------------------------

def test_receive_archives_creates_rcvd_and_starts_execution_named_by_payment_id(aws, lifecycle, message,
                                                                               sfn_calls):
    data = message()
    created, receipt = lifecycle.receive(CLIENT_ID, data)
    payment_id = receipt["paymentId"]
    assert created and receipt["status"] == "RCVD"
    record = lifecycle.store.get(payment_id)
    assert record["status"] == "RCVD" and record["clientId"] == CLIENT_ID
    assert record["messageType"] == "pacs.008.001.08"
    assert lifecycle.archive.get(record["archiveKey"]) == data
    start = sfn_calls.named("StartExecution")[0]
    assert start["name"] == payment_id
    assert json.loads(start["input"]) == {"paymentId": payment_id, "archiveKey": record["archiveKey"],
                                          "receivedAt": record["receivedAt"]}
    execution = boto3.client("stepfunctions").describe_execution(
        executionArn=execution_arn(aws.state_machine_arn, payment_id))
    assert execution["name"] == payment_id


def test_same_message_twice_is_the_same_payment(lifecycle, message):
    data = message()
    first = lifecycle.receive(CLIENT_ID, data)
    second = lifecycle.receive(CLIENT_ID, data)
    assert first[0] is True and second[0] is False
    assert first[1] == second[1]
    payment_id = first[1]["paymentId"]
    assert [e["status"] for e in lifecycle.store.history(payment_id)] == ["RCVD"]


def test_identical_resubmission_after_progress_returns_same_receipt(lifecycle, message):
    data = message()
    _, receipt = lifecycle.receive(CLIENT_ID, data)
    lifecycle.validate_and_persist(receipt["paymentId"])
    assert lifecycle.receive(CLIENT_ID, data) == (False, receipt)


def test_same_identity_with_different_bytes_is_a_conflict(lifecycle, message):
    fixed = {"msg_id": "MSGDUPLICATE0001", "end_to_end_id": "E2EDUP0001",
             "uetr": "8a562c67-ca16-48ba-b074-65581be6f011"}
    payment_id, _ = received(lifecycle, message, **fixed)
    with pytest.raises(Conflict) as raised:
        lifecycle.receive(CLIENT_ID, message(amount="999.00", **fixed))
    assert raised.value.code == "AM05" and raised.value.status == 409
    assert lifecycle.store.get(payment_id)["facts"]["amount"] in ("1250.00", "1250")


def test_same_message_from_another_client_is_a_conflict(lifecycle, message):
    data = message()
    lifecycle.receive(CLIENT_ID, data)
    with pytest.raises(Conflict):
        lifecycle.receive("someone-else", data)


def test_too_large_not_xml_and_unsupported_are_refused(lifecycle, message, shared):
    small = PaymentLifecycle(settings=Settings(max_message_bytes=100))
    with pytest.raises(MessageTooLarge):
        small.receive(CLIENT_ID, message())
    with pytest.raises(UnsupportedMessage) as not_xml:
        lifecycle.receive(CLIENT_ID, b"this is not XML")
    assert not_xml.value.code
    status_report = (shared / "iso20022/samples/phoughton-cbpr-ur/y2026/pacs.002.min.xml").read_bytes()
    with pytest.raises(UnsupportedMessage):
        lifecycle.receive(CLIENT_ID, status_report)


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
    assert [e["status"] for e in lifecycle.store.history(payment_id)] == ["RCVD", "ACTC"]


def test_invalid_message_is_rejected_with_iso_reason_and_pacs002(lifecycle, message):
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


def test_auto_approve_policy_releases_small_amounts_only(aws, message):
    policy = PaymentLifecycle(settings=Settings.from_environ({**_env(aws), "AUTO_APPROVE_MAX_AMOUNT": "500"}))
    small, _ = received(policy, message, amount="499.99")
    large, _ = received(policy, message, amount="500.01")
    assert policy.validate_and_persist(small)["outcome"] == "auto-approve"
    assert policy.store.get(small)["status"] == "ACSP"
    assert policy.validate_and_persist(large)["outcome"] == "await"
    assert policy.validate_and_persist(small)["outcome"] == "auto-approve"  # retry: same answer


def _env(aws):
    import os

    return dict(os.environ)


# -- park and decisions ----------------------------------------------------------------------------

def test_park_stores_token_and_publishes_pending_event(aws, lifecycle, message):
    sqs = boto3.client("sqs")
    inbox = sqs.create_queue(QueueName="subscriber")["QueueUrl"]
    inbox_arn = sqs.get_queue_attributes(QueueUrl=inbox, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    boto3.client("sns").subscribe(TopicArn=aws.topic_arn, Protocol="sqs", Endpoint=inbox_arn,
                                  Attributes={"RawMessageDelivery": "true"})
    payment_id = pending(lifecycle, message)
    record = lifecycle.store.get(payment_id)
    assert record["status"] == "PDNG" and record["taskToken"] == "token-1"
    events = [json.loads(m["Body"]) for m in sqs.receive_message(QueueUrl=inbox, MaxNumberOfMessages=10)["Messages"]]
    assert {"type": "payment.pending", "paymentId": payment_id, "status": "PDNG"}.items() <= events[0].items()
    assert "amount" not in events[0]
    lifecycle.park(payment_id, "token-2")  # a retried park refreshes the token
    assert lifecycle.store.get(payment_id)["taskToken"] == "token-2"
    assert lifecycle.oldest_pending_age_seconds(
        datetime.now(timezone.utc) + timedelta(seconds=90)) >= 89


def test_approve_claims_acsp_and_sends_task_success(lifecycle, message, sfn_calls):
    payment_id = pending(lifecycle, message)
    result = lifecycle.decide(CLIENT_ID, payment_id, "approve", None)
    assert result["status"] == "ACSP"
    sent = sfn_calls.named("SendTaskSuccess")
    assert sent[0]["taskToken"] == "token-1"
    assert json.loads(sent[0]["output"]) == {"action": "approve", "reasonCode": None,
                                             "additionalInfo": None, "decidedBy": CLIENT_ID}
    record = lifecycle.store.get(payment_id)
    assert record["decision"]["action"] == "approve" and "taskToken" not in record
    with pytest.raises(Conflict):
        lifecycle.decide(CLIENT_ID, payment_id, "reject", {"reasonCode": "AM04"})


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
    with pytest.raises(NotFound):
        lifecycle.decide("someone-else", payment_id, "approve", {})
    with pytest.raises(NotFound):
        lifecycle.get_payment("someone-else", payment_id)


def test_decide_before_pending_is_a_conflict(lifecycle, message):
    payment_id, _ = received(lifecycle, message)
    with pytest.raises(Conflict):
        lifecycle.decide(CLIENT_ID, payment_id, "approve", {})


def test_two_concurrent_decisions_exactly_one_wins(lifecycle, message, serialised_dynamodb, sfn_calls):
    payment_id = pending(lifecycle, message)
    barrier = threading.Barrier(2)
    outcomes = {}

    def decide(action, body):
        barrier.wait()
        try:
            outcomes[action] = lifecycle.decide(CLIENT_ID, payment_id, action, body)["status"]
        except Conflict as conflict:
            outcomes[action] = conflict.status

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
    assert len(sfn_calls.named("SendTaskSuccess")) == 1
    assert [e["status"] for e in lifecycle.store.history(payment_id)][-1] == outcomes[winner]


# -- timeout, finalise -----------------------------------------------------------------------------

def test_timeout_claims_rjct_ab06_and_finalise_writes_pacs002(lifecycle, message):
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
    assert lifecycle.finalise(payment_id, decision) == result  # retried: same answer, no new write


def test_timeout_honours_a_decision_claimed_first(lifecycle, message):
    payment_id = pending(lifecycle, message)
    lifecycle.decide(CLIENT_ID, payment_id, "approve", {"additionalInfo": "checked"})
    decision = lifecycle.decision_timeout(payment_id)
    assert decision == {"action": "approve", "reasonCode": None, "additionalInfo": "checked",
                        "decidedBy": CLIENT_ID}
    assert lifecycle.store.get(payment_id)["status"] == "ACSP"


def test_reject_is_finalised_with_the_consumers_reason(lifecycle, message):
    payment_id = pending(lifecycle, message)
    lifecycle.decide(CLIENT_ID, payment_id, "reject", {"reasonCode": "AM04", "additionalInfo": "funds"})
    lifecycle.finalise(payment_id, {"action": "reject"})
    report = lifecycle.get_message(CLIENT_ID, payment_id, "pacs.002")
    assert texts(report, "TxSts") == ["RJCT"] and "AM04" in texts(report, "Cd")
    view = lifecycle.get_payment(CLIENT_ID, payment_id)
    assert view["status"] == "RJCT" and view["reason"]["code"] == "AM04"


def test_cancel_is_finalised_with_camt029_cncl(lifecycle, message):
    payment_id = pending(lifecycle, message)
    lifecycle.decide(CLIENT_ID, payment_id, "cancel", {"reasonCode": "CUST"})
    assert lifecycle.finalise(payment_id, {"action": "cancel"})["message"] == "camt.029"
    answer = lifecycle.get_message(CLIENT_ID, payment_id, "camt.029")
    assert "CNCL" in texts(answer, "Conf") or "CNCL" in texts(answer, "Cd")
    assert lifecycle.get_payment(CLIENT_ID, payment_id)["status"] == "CANC"


def test_finalise_of_a_payment_still_pending_fails(lifecycle, message):
    payment_id = pending(lifecycle, message)
    with pytest.raises(InvalidState):
        lifecycle.finalise(payment_id, {"action": "reject"})


# -- release ---------------------------------------------------------------------------------------

def _released_messages(aws):
    sqs = boto3.client("sqs")
    return sqs.receive_message(QueueUrl=aws.queue_url, MaxNumberOfMessages=10,
                               AttributeNames=["All"]).get("Messages", [])


def test_release_sends_once_per_payment_grouped_by_counterparty(aws, lifecycle, message):
    payment_id = pending(lifecycle, message, creditor_agent_bic="BNPAFRPPXXX")
    lifecycle.decide(CLIENT_ID, payment_id, "approve", {})
    assert lifecycle.release(payment_id) == {"paymentId": payment_id, "status": "ACSC"}
    assert lifecycle.release(payment_id) == {"paymentId": payment_id, "status": "ACSC"}  # retried
    sent = _released_messages(aws)
    assert len(sent) == 1
    assert sent[0]["Attributes"]["MessageDeduplicationId"] == payment_id
    assert sent[0]["Attributes"]["MessageGroupId"] == "BNPAFRPPXXX"
    body = json.loads(sent[0]["Body"])
    assert body["paymentId"] == payment_id and body["key"].endswith("outbound.xml")
    view = lifecycle.get_payment(CLIENT_ID, payment_id)
    assert view["status"] == "ACSC"
    assert {"received", "outbound", "pacs.002"} <= set(view["messages"])
    assert [h["status"] for h in view["history"]] == ["RCVD", "ACTC", "PDNG", "ACSP", "ACSC"]
    assert texts(lifecycle.get_message(CLIENT_ID, payment_id, "pacs.002"), "TxSts") == ["ACSC"]
    outbound = lifecycle.get_message(CLIENT_ID, payment_id, "outbound")
    assert "MXFLGB2LXXX" in texts(outbound, "BICFI")


def test_release_that_stopped_after_the_send_does_not_send_twice(aws, lifecycle, message, monkeypatch):
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
    assert len(_released_messages(aws)) == 1


def test_release_of_a_payment_not_approved_fails(lifecycle, message):
    payment_id = pending(lifecycle, message)
    with pytest.raises(InvalidState):
        lifecycle.release(payment_id)


def test_different_counterparties_use_different_groups(aws, lifecycle, message):
    for bic in ("BNPAFRPPXXX", "COBADEFFXXX"):
        payment_id = pending(lifecycle, message, creditor_agent_bic=bic)
        lifecycle.decide(CLIENT_ID, payment_id, "approve", {})
        lifecycle.release(payment_id)
    groups = {m["Attributes"]["MessageGroupId"] for m in _released_messages(aws)}
    assert groups == {"BNPAFRPPXXX", "COBADEFFXXX"}


# -- generated message versions and their schemas --------------------------------------------------

def _with(lifecycle, *, versions=None, without=()):
    """The same store and archive, other message versions and/or a registry lacking `without`."""
    import dataclasses

    from mxflow.iso20022.schema_sets import builtin_entries

    settings = dataclasses.replace(lifecycle.settings, message_versions=versions or lifecycle.settings.message_versions)
    registry = lifecycle.registry
    if without:
        registry = iso20022.SchemaRegistry(builtin=[e for e in builtin_entries() if e.message_id not in without])
    return PaymentLifecycle(lifecycle.store, lifecycle.archive, settings, registry=registry)


def _namespace(xml: bytes) -> str:
    return iso20022.parse_message(xml).message_id


def test_the_configured_versions_are_generated(lifecycle, message):
    versions = iso20022.CBPR_PLUS_VERSIONS.with_version("camt.029.001.14")
    assert Settings.from_environ({"MXFLOW_CANCELLATION_ANSWER_VERSION": "camt.029.001.14"}).message_versions == versions
    service = _with(lifecycle, versions=versions)
    payment_id = pending(service, message)
    service.decide(CLIENT_ID, payment_id, "cancel", {"reasonCode": "DUPL"})
    service.finalise(payment_id, {"action": "cancel"})
    assert _namespace(service.get_message(CLIENT_ID, payment_id, "camt.029")) == "camt.029.001.14"


def test_a_cancellation_answer_without_its_schema_fails_finalise_until_the_schema_is_added(lifecycle, message):
    versions = iso20022.CBPR_PLUS_VERSIONS.with_version("camt.029.001.14")
    without = _with(lifecycle, versions=versions, without=("camt.029.001.14",))
    payment_id = pending(without, message)
    without.decide(CLIENT_ID, payment_id, "cancel", {"reasonCode": "DUPL"})
    with pytest.raises(iso20022.SchemaNotInstalled, match="camt.029.001.14"):
        without.finalise(payment_id, {"action": "cancel"})
    record = lifecycle.store.get(payment_id)
    assert record["status"] == "CANC" and "camt.029" not in (record.get("messages") or {})  # nothing kept
    # the schema added (a new layer version), the redriven step finishes the payment
    redriven = _with(lifecycle, versions=versions)
    assert redriven.finalise(payment_id, {"action": "cancel"})["message"] == "camt.029"
    assert _namespace(redriven.get_message(CLIENT_ID, payment_id, "camt.029")) == "camt.029.001.14"


def test_a_release_whose_status_report_has_no_schema_sends_nothing(aws, lifecycle, message):
    without = _with(lifecycle, without=("pacs.002.001.10",))
    payment_id = pending(lifecycle, message)
    lifecycle.decide(CLIENT_ID, payment_id, "approve", {})
    with pytest.raises(iso20022.SchemaNotInstalled, match="pacs.002.001.10"):
        without.release(payment_id)
    assert _released_messages(aws) == []  # checked before the send: nothing left
    record = lifecycle.store.get(payment_id)
    assert record["status"] == "ACSP" and not record.get("releaseMessageId")
    assert "pacs.002" not in (record.get("messages") or {})
    assert lifecycle.release(payment_id)["status"] == "ACSC"  # redriven with the schema installed
    assert len(_released_messages(aws)) == 1


def test_an_invalid_message_whose_rejection_has_no_schema_stays_received(lifecycle, message):
    without = _with(lifecycle, without=("pacs.002.001.10",))
    payment_id, _ = received(lifecycle, message, amount="12.345")  # EUR: CH20
    with pytest.raises(iso20022.SchemaNotInstalled):
        without.validate_and_persist(payment_id)
    assert lifecycle.store.get(payment_id)["status"] == "RCVD"
    assert lifecycle.validate_and_persist(payment_id)["outcome"] == "invalid"


# -- redrive, health -------------------------------------------------------------------------------

def test_redrive_not_redrivable_is_a_conflict(lifecycle, message, monkeypatch):
    from botocore.exceptions import ClientError

    payment_id, _ = received(lifecycle, message)

    def not_redrivable(**kwargs):
        assert kwargs == {"executionArn": execution_arn(lifecycle.settings.state_machine_arn, payment_id)}
        raise ClientError({"Error": {"Code": "ExecutionNotRedrivable", "Message": "running"}},
                          "RedriveExecution")

    monkeypatch.setattr(lifecycle.stepfunctions, "redrive_execution", not_redrivable)
    with pytest.raises(Conflict):
        lifecycle.redrive(CLIENT_ID, payment_id)
    with pytest.raises(NotFound):
        lifecycle.redrive("someone-else", payment_id)


def test_health_reports_region_table_reachability_and_schema_sources(aws, lifecycle):
    sources = lifecycle.registry.sources()
    assert lifecycle.health() == {"status": "ok", "region": "eu-west-1", "schemas": sources}
    assert sources["head.001.001.02"] == lifecycle.registry.entry_for("head.001.001.02").label
    boto3.client("dynamodb").delete_table(TableName=aws.table_name)
    assert lifecycle.health() == {"status": "unhealthy", "region": "eu-west-1", "schemas": sources}


def test_park_before_validation_fails_and_changes_nothing(lifecycle, message):
    payment_id, _ = received(lifecycle, message)
    with pytest.raises(InvalidState):
        lifecycle.park(payment_id, "t")
    record = lifecycle.store.get(payment_id)
    assert record["status"] == "RCVD" and "taskToken" not in record


def test_throttled_send_is_a_transient_error_and_the_retry_sends_once(aws, lifecycle, message, monkeypatch):
    from botocore.exceptions import ClientError

    from mxflow.payments import TransientError

    payment_id = pending(lifecycle, message)
    lifecycle.decide(CLIENT_ID, payment_id, "approve", {})
    real_send = lifecycle.sqs.send_message

    def throttled(**kwargs):
        raise ClientError({"Error": {"Code": "ThrottlingException", "Message": "slow down"},
                           "ResponseMetadata": {"HTTPStatusCode": 400}}, "SendMessage")

    monkeypatch.setattr(lifecycle.sqs, "send_message", throttled)
    with pytest.raises(TransientError):  # the state machine retries this error name
        lifecycle.release(payment_id)
    assert lifecycle.store.get(payment_id)["status"] == "ACSP"
    monkeypatch.setattr(lifecycle.sqs, "send_message", real_send)
    assert lifecycle.release(payment_id)["status"] == "ACSC"
    assert len(_released_messages(aws)) == 1


def test_pending_age_sampler_is_throttled_and_never_fails_its_caller(aws, lifecycle, message):
    from mxflow.payments import PendingAgeSampler

    pending(lifecycle, message)
    sampler = PendingAgeSampler(interval_seconds=60)
    assert sampler.sample(lifecycle, clock=lambda: 1000.0) >= 0.0
    assert sampler.sample(lifecycle, clock=lambda: 1030.0) is None  # within the interval
    boto3.client("dynamodb").delete_table(TableName=aws.table_name)
    assert sampler.sample(lifecycle, clock=lambda: 1061.0) is None  # table gone: no metric, no error
